// Drives the gateway's /docs page in headless Chromium and prints a JSON summary of what it saw:
//
//   node deploy/browser/docs_check.mjs <base-url> [--screenshot <file.png>]
//
// It opens <base>/docs, waits for Swagger UI to render, compares the operations on the page with
// those of <base>/openapi.json, checks that the description's Markdown is rendered, then expands
// GET /health, clicks "Try it out" and "Execute", and reads the status the page shows. Console
// errors, Content-Security-Policy violations, failed requests and requests to any other origin
// (refused, not sent) are recorded. Exits 1 when any check fails, 2 when it cannot run at all.
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM); deploy/browser.sh installs it and the
// puppeteer-core pinned in package-lock.json. Each wait gives up after $DOCS_CHECK_TIMEOUT_MS
// (30 s by default).

import puppeteer from "puppeteer-core";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const TIMEOUT_MS = Number(process.env.DOCS_CHECK_TIMEOUT_MS || 30_000);

function usage(message) {
  console.error(`${message}\nusage: docs_check.mjs <base-url> [--screenshot <file.png>]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let screenshot = null;
const positional = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--screenshot") {
    screenshot = args[++i] ?? usage("--screenshot needs a file");
  } else {
    positional.push(args[i]);
  }
}
if (positional.length !== 1) usage("one base URL expected");
const base = new URL(positional[0]);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const key = (method, path) => `${method.toUpperCase()} ${path}`;

const summary = {
  base: base.origin,
  documentOperations: 0,
  renderedOperations: 0,
  missingOperations: [],
  unexpectedOperations: [],
  markdownRendered: false,
  rawBackticks: null,
  health: { status: null, url: null },
  consoleErrors: [],
  cspViolations: [],
  failedRequests: [],
  externalRequests: [],
  localRequests: 0,
  failures: [],
};

function fail(message) {
  summary.failures.push(message);
}

async function documentOperations() {
  const response = await fetch(new URL("/openapi.json", base));
  if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
  const document = await response.json();
  const operations = [];
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const method of METHODS) {
      if (item[method]) operations.push(key(method, path));
    }
  }
  return operations.sort();
}

async function run(browser) {
  const expected = await documentOperations();
  summary.documentOperations = expected.length;

  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1400 });
  page.setDefaultTimeout(TIMEOUT_MS);

  // Every request is seen here; one to another origin is recorded and refused, so that none
  // leaves the machine even when the page tries.
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    const url = request.url();
    if (url.startsWith("data:") || url.startsWith("blob:")) return request.continue();
    if (new URL(url).origin !== base.origin) {
      summary.externalRequests.push(url);
      return request.abort("blockedbyclient");
    }
    summary.localRequests++;
    return request.continue();
  });
  page.on("requestfailed", (request) => {
    if (!summary.externalRequests.includes(request.url())) {
      summary.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400) summary.failedRequests.push(`${response.url()}: ${response.status()}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error") summary.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => summary.consoleErrors.push(`uncaught: ${error.message}`));
  await page.exposeFunction("__genieCspViolation", (violation) =>
    summary.cspViolations.push(violation),
  );
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (event) =>
      window.__genieCspViolation(
        `${event.violatedDirective} blocked ${event.blockedURI || "(inline)"} ` +
          `at ${event.sourceFile}:${event.lineNumber}`,
      ),
    );
  });

  const response = await page.goto(new URL("/docs", base).href, { waitUntil: "networkidle0" });
  if (response?.status() !== 200) fail(`GET /docs answered ${response?.status()}`);

  // Swagger UI renders every tag expanded: wait until it has drawn as many operations as the
  // document has (or the timeout), then read them.
  await page.waitForSelector(".swagger-ui .opblock");
  await page
    .waitForFunction((count) => document.querySelectorAll(".opblock").length >= count, {}, expected.length)
    .catch(() => {});
  const rendered = (
    await page.$$eval(".opblock", (blocks) =>
      blocks.map((block) => {
        const method = block.querySelector(".opblock-summary-method")?.textContent ?? "";
        const path = block.querySelector(".opblock-summary-path");
        const text = path?.getAttribute("data-path") ?? path?.textContent ?? "";
        // Swagger UI puts zero-width spaces after slashes so that long paths wrap.
        return [method.trim(), text.replace(/\u200b/g, "").trim()];
      }),
    )
  )
    .map(([method, path]) => key(method, path))
    .sort();
  summary.renderedOperations = rendered.length;
  summary.missingOperations = expected.filter((operation) => !rendered.includes(operation));
  summary.unexpectedOperations = rendered.filter((operation) => !expected.includes(operation));
  if (summary.missingOperations.length) fail(`operations not rendered: ${summary.missingOperations.join(", ")}`);
  if (summary.unexpectedOperations.length) fail(`operations not in the document: ${summary.unexpectedOperations.join(", ")}`);
  if (rendered.length !== expected.length) fail(`${rendered.length} operations rendered, ${expected.length} in the document`);

  // The description's `code` spans must be rendered as code, not shown as backticks.
  const markdown = await page.$eval(".swagger-ui .info", (info) => ({
    code: info.querySelectorAll(".markdown code, .renderedMarkdown code").length,
    backticks: info.textContent.includes("`"),
  }));
  summary.markdownRendered = markdown.code > 0;
  summary.rawBackticks = markdown.backticks;
  if (!summary.markdownRendered) fail("the description shows no rendered code span");
  if (markdown.backticks) fail("the description shows raw backticks");

  await tryHealth(page);
  await openTheRest(page);

  if (screenshot) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: screenshot });
    summary.screenshot = screenshot;
  }
  await page.close();
}

// Expands GET /health, clicks "Try it out" then "Execute", and reads the status in the page.
async function tryHealth(page) {
  const blocks = await page.$$(".opblock.opblock-get");
  let block = null;
  for (const candidate of blocks) {
    const path = await candidate.$eval(".opblock-summary-path", (element) =>
      (element.getAttribute("data-path") ?? element.textContent).replace(/\u200b/g, "").trim(),
    );
    if (path === "/health") block = candidate;
  }
  if (!block) return fail("GET /health is not on the page");
  const summaryButton = (await block.$(".opblock-summary-control")) ?? (await block.$(".opblock-summary"));
  await summaryButton.click();
  const tryOut = await block.waitForSelector(".try-out__btn");
  if ((await tryOut.evaluate((button) => button.textContent.trim())) === "Try it out") {
    await tryOut.click();
  }
  const execute = await block.waitForSelector("button.execute");
  const answered = page.waitForResponse(
    (response) => new URL(response.url()).pathname === "/health" && response.request().method() === "GET",
  );
  await execute.click();
  summary.health.url = (await answered).url();
  const status = await block.waitForSelector(".live-responses-table .response .response-col_status");
  summary.health.status = Number((await status.evaluate((cell) => cell.textContent)).trim());
  if (summary.health.status !== 200) fail(`GET /health from the page shows ${summary.health.status}`);
}

// Opens what else a reader opens (the authorisation dialog, an operation with a request body
// and its schema, a model), so that anything these need that the policy blocks is recorded.
async function openTheRest(page) {
  await page.click(".swagger-ui .auth-wrapper .authorize");
  await page.waitForSelector(".swagger-ui .modal-ux .auth-container");
  await page.click(".swagger-ui .modal-ux .close-modal");
  const register = await page.waitForSelector(".opblock.opblock-post[id$='register']");
  await (await register.$(".opblock-summary-control")).click();
  await register.waitForSelector(".opblock-body .body-param__example, .opblock-body .highlight-code");
  const schemaTab = await register.$(".tab [data-name='model'], .tablinks[data-name='model']");
  if (schemaTab) await schemaTab.click();
  // OpenAPI 3.1 schemas are drawn by Swagger UI's JSON Schema 2020-12 plugin.
  await page.click(".swagger-ui section.models .json-schema-2020-12-expand-deep-button");
  await new Promise((resolve) => setTimeout(resolve, 500));
}

let browser;
try {
  browser = await puppeteer.launch({
    executablePath,
    headless: true,
    // Chromium runs as root here (no sandbox), in a container without a GPU and with a small /dev/shm.
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
  });
} catch (error) {
  console.error(`cannot start Chromium at ${executablePath}: ${error.message} (deploy/browser.sh installs it)`);
  process.exit(2);
}
try {
  await run(browser);
} catch (error) {
  fail(`the check stopped: ${error.message}`);
} finally {
  await browser.close();
}
if (summary.consoleErrors.length) fail("console errors");
if (summary.cspViolations.length) fail("Content-Security-Policy violations");
if (summary.externalRequests.length) fail("requests to another origin");
if (summary.failedRequests.length) fail("failed requests");
console.log(JSON.stringify(summary, null, 2));
process.exit(summary.failures.length ? 1 : 0);

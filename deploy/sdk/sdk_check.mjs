// Drives the gateway with the official Directus SDK (@directus/sdk, pinned in package-lock.json)
// as a Directus app would, and prints a JSON summary of what the SDK returned at each step:
//
//   node deploy/sdk/sdk_check.mjs <base-url> <email> <password> <new-email>
//
// Steps: login (json mode), readMe with and without `fields`, readMe naming a field the user has
// not, updateMe (names and email, answered with `fields`), updateMe with a field that cannot be
// changed and with a blank name, refresh, readMe with the refreshed token, logout, serverPing,
// serverHealth; then the refresh tokens it held (`refreshTokens`: login's and refresh's). A step that throws records the SDK's error (message, HTTP status, Directus
// errors) instead of a result; the caller decides what is right. Exits 2 when it cannot run.
//
// deploy/sdk.sh installs the SDK; deploy/test.sh runs it.

import {
  authentication,
  createDirectus,
  readMe,
  rest,
  serverHealth,
  serverPing,
  updateMe,
} from "@directus/sdk";

const [base, email, password, newEmail] = process.argv.slice(2);
if (!base || !email || !password || !newEmail) {
  console.error("usage: sdk_check.mjs <base-url> <email> <password> <new-email>");
  process.exit(2);
}

const client = createDirectus(base)
  .with(authentication("json", { autoRefresh: false }))
  .with(rest());

function describe(error) {
  return {
    message: error?.message ?? String(error),
    status: error?.response?.status ?? null,
    errors: error?.errors ?? null,
  };
}

const summary = {};
async function step(name, run) {
  try {
    summary[name] = { ok: true, value: (await run()) ?? null };
  } catch (error) {
    summary[name] = { ok: false, error: describe(error) };
  }
}

// The refresh tokens the SDK held, for the caller to try after the logout.
const refreshTokens = {};
await step("login", async () => {
  const data = await client.login({ email, password });
  refreshTokens.login = data.refresh_token;
  return {
    access_token: typeof data.access_token === "string" && data.access_token.length > 0,
    refresh_token: typeof data.refresh_token === "string" && data.refresh_token.length > 0,
    expires: data.expires,
  };
});
await step("readMeFields", () => client.request(readMe({ fields: ["id", "email", "first_name"] })));
await step("readMe", () => client.request(readMe()));
await step("readMeUnknownField", () => client.request(readMe({ fields: ["id", "favourite_colour"] })));
await step("updateMe", () =>
  client.request(
    updateMe(
      { first_name: "Grace", last_name: "Hopper", email: newEmail },
      { fields: ["id", "first_name", "last_name", "email"] },
    ),
  ),
);
await step("updateMeRole", () => client.request(updateMe({ role: null })));
await step("updateMeBlank", () => client.request(updateMe({ last_name: "  " })));

await step("refresh", async () => {
  const data = await client.refresh();
  refreshTokens.refreshed = data.refresh_token;
  return {
    access_token: (await client.getToken()) === data.access_token,
    rotated: typeof data.refresh_token === "string" && data.refresh_token !== refreshTokens.login,
    expires: data.expires,
  };
});
await step("readMeAfterRefresh", () =>
  client.request(readMe({ fields: ["email", "first_name", "last_name"] })),
);
await step("logout", async () => {
  await client.logout();
  return { token_after: await client.getToken() };
});
summary.refreshTokens = refreshTokens;
await step("serverPing", () => client.request(serverPing()));
await step("serverHealth", () => client.request(serverHealth()));

console.log(JSON.stringify(summary));

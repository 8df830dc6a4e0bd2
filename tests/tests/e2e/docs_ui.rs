//! The `/docs` page in a real browser: Debian's Chromium, driven by puppeteer-core through
//! `deploy/browser/docs_check.mjs` (both installed by `deploy/browser.sh`, which the test command
//! runs). Swagger UI must render every operation of `/openapi.json`, try `GET /health` from the
//! page and show 200, and do so with no request to another origin and nothing blocked by the
//! page's Content-Security-Policy. Set `GENIE_DOCS_SCREENSHOT=<file.png>` to keep a screenshot.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/browser");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn operations_of(document: &Value) -> usize {
    document["paths"]
        .as_object()
        .expect("the document has paths")
        .values()
        .map(|item| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .count()
        })
        .sum()
}

#[tokio::test]
async fn the_docs_page_renders_every_operation_and_tries_health_in_headless_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: run deploy/browser.sh (deploy/test.sh does)"
    );
    assert!(
        Path::new(&format!(
            "{BROWSER_DIR}/node_modules/puppeteer-core/package.json"
        ))
        .exists(),
        "puppeteer-core is not installed in deploy/browser: run deploy/browser.sh (deploy/test.sh does)"
    );
    let app = spawn_app().await;
    let document = app.get("/openapi.json", None).await;
    assert_eq!(document.status, StatusCode::OK);
    let operations = operations_of(&document.body);

    let mut check = tokio::process::Command::new("node");
    check
        .arg(format!("{BROWSER_DIR}/docs_check.mjs"))
        .arg(&app.address)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    if let Ok(screenshot) = std::env::var("GENIE_DOCS_SCREENSHOT") {
        check.arg("--screenshot").arg(screenshot);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), check.output())
        .await
        .expect("the browser check ends within 120 s")
        .unwrap_or_else(|error| {
            panic!("cannot run node: {error} (deploy/browser.sh installs Node.js)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("the browser check printed no summary ({error}):\n{stdout}\n{stderr}")
    });
    let context = format!("{summary:#}\n{stderr}");
    println!("{context}");

    assert!(
        output.status.success(),
        "the browser check failed: {context}"
    );
    assert_eq!(summary["failures"], serde_json::json!([]), "{context}");
    assert_eq!(summary["documentOperations"], operations, "{context}");
    assert_eq!(summary["renderedOperations"], operations, "{context}");
    assert_eq!(
        summary["missingOperations"],
        serde_json::json!([]),
        "{context}"
    );
    assert_eq!(summary["markdownRendered"], true, "{context}");
    assert_eq!(summary["rawBackticks"], false, "{context}");
    assert_eq!(summary["health"]["status"], 200, "{context}");
    assert_eq!(
        summary["health"]["url"],
        app.url("/health"),
        "the page tried the request against this gateway: {context}"
    );
    assert_eq!(
        summary["externalRequests"],
        serde_json::json!([]),
        "{context}"
    );
    assert_eq!(summary["cspViolations"], serde_json::json!([]), "{context}");
    assert_eq!(summary["consoleErrors"], serde_json::json!([]), "{context}");
    assert!(
        summary["localRequests"].as_u64().unwrap_or(0) >= 5,
        "{context}"
    );
}

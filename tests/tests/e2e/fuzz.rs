//! The live stack fuzzed from its own `/openapi.json` with schemathesis (PyPI; installed into
//! `.tools/schemathesis` by `deploy/schemathesis.sh`, which the test command runs), once with a
//! creator's token and once with an administrator's. Every generated case must pass
//! `not_a_server_error`, `status_code_conformance`, `content_type_conformance` and
//! `response_schema_conformance`. The figures go to `target/fuzz-summary.txt`, which the test
//! command prints.
//!
//! `GENIE_FUZZ_SECONDS` (default 45 per token) bounds the run; `GENIE_FUZZ_SEED` (default fixed,
//! so that CI is repeatable) picks the generated data.

use std::path::Path;

use crate::helpers::*;

const SCHEMATHESIS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../.tools/schemathesis/bin/schemathesis"
);
const SUMMARY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fuzz-summary.txt");
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// What one schemathesis run said.
struct Run {
    who: &'static str,
    ok: bool,
    cases: String,
    output: String,
}

async fn fuzz(app: &TestApp, who: &'static str, token: &str) -> Run {
    let seconds = std::env::var("GENIE_FUZZ_SECONDS").unwrap_or_else(|_| "45".to_owned());
    let seed = std::env::var("GENIE_FUZZ_SEED").unwrap_or_else(|_| "20261202".to_owned());
    let output = tokio::process::Command::new(SCHEMATHESIS)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--max-time", &seconds, "--seed", &seed, "--checks", CHECKS])
        .args(["--no-color"])
        .output()
        .await
        .expect("run schemathesis");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let cases = text
        .lines()
        .skip_while(|line| !line.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or("no summary")
        .trim()
        .to_owned();
    Run {
        who,
        ok: output.status.success(),
        cases,
        output: text,
    }
}

#[tokio::test]
async fn schemathesis_finds_no_failure_with_a_creator_s_or_an_administrator_s_token() {
    assert!(
        Path::new(SCHEMATHESIS).exists(),
        "schemathesis is not installed: run deploy/schemathesis.sh (deploy/test.sh does)"
    );
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("fuzzed@genie.test").await;
    let admin = app.admin_token().await;
    let runs = [
        fuzz(&app, "creator", &creator).await,
        fuzz(&app, "administrator", &admin).await,
    ];
    let summary: String = runs
        .iter()
        .map(|run| format!("fuzz ({}): {}\n", run.who, run.cases))
        .collect();
    // `target/` is not there when the build goes elsewhere (CARGO_TARGET_DIR).
    if let Some(directory) = std::path::Path::new(SUMMARY).parent() {
        std::fs::create_dir_all(directory).expect("make the fuzz summary's directory");
    }
    std::fs::write(SUMMARY, &summary).expect("write the fuzz summary");
    for run in &runs {
        assert!(
            run.ok,
            "schemathesis with the {} token:\n{}",
            run.who, run.output
        );
    }
}

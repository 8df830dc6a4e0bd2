//! End-to-end tests: svc-auth and the gateway on random ports, in this process, against a fresh
//! PostgreSQL database per test, driven over HTTP as a client would.

// Test support: a failed setup step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod auth_flow;
mod credentials;
mod directus_mode;
mod directus_sdk;
mod docs_ui;
mod fuzz;
mod observability;
mod queue;
mod resilience;
mod skills;
mod tokens;
mod usage;

//! The operator's binary, `genie`, run as an operator runs it: with nothing but environment
//! variables, driven over HTTP or read from its output. One test binary for the crate.

// Test support: a failed setup step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod rotate_keys;
mod up;

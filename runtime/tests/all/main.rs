//! End-to-end tests of the runtime: real components built from `components/`, the real
//! engine, the Sandbox facade. Each test names the seed behaviour (S-…) it checks.
// Test helpers may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

mod cache;
mod cli;
mod cli_restores;
mod concurrency;
mod faults;
mod scaffold;
mod sessions;
mod shared_store;
mod snapshots;
mod tools;
mod warm;

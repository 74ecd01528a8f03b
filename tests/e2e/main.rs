//! End-to-end tests: the real server on 127.0.0.1 (random port), real components, real HTTP.
// Test helpers may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod cluster;
mod deploy;
mod disconnect;
mod durable;
mod e2b;
mod e2b_letter;
mod mcp;
mod openapi;
mod robustness;
mod routes;
mod run;
mod run_snapshots;
mod scalebox;
mod scientific;
mod sdk;
mod seeds;
mod shell;
mod snapshots;
mod snapshots_s3;
mod tenancy;
mod web;

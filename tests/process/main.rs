//! The real `keyhook` binary: its commands, `serve` as a child process
//! (signals, restarts, trace logs without secrets), its `/metrics`
//! (read from the process under test alone, so counts are exact), and load.

#[allow(dead_code, unused_imports)] // each binary uses a part of the shared harness
#[path = "../harness/mod.rs"]
mod harness;

mod audit_cli;
mod cli;
mod errors;
mod gauges;
mod hangups;
mod logging;
mod metrics;
mod observability;
mod reliability_load;
mod reliability_secrets;
mod store;
mod timeouts;

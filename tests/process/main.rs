//! The real `keyhook` binary: its commands, `serve` as a child process
//! (signals, restarts, trace logs without secrets), and load.

#[allow(dead_code, unused_imports)] // each binary uses a part of the shared harness
#[path = "../harness/mod.rs"]
mod harness;

mod cli;
mod reliability_load;
mod reliability_secrets;

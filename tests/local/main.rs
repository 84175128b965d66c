//! The suites that need nothing but keyhook in-process on the embedded
//! store: both front doors, the admin listener, the HTTP surface, audit log, TLS,
//! hostile input, and the shipped configuration file.

#[allow(dead_code, unused_imports)] // each binary uses a part of the shared harness
#[path = "../harness/mod.rs"]
mod harness;

mod admin;
mod admin_listener;
mod audit;
mod config_file;
mod http_surface;
mod lifecycle;
mod provisioning;
mod readme;
mod reliability_hostile;
mod sensedia;
mod tls;
mod upgrade;

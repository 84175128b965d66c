//! The suites of the AWS backend, against one moto server per run (started
//! by the harness), through a counting, fault-injecting proxy: behaviour,
//! least-privilege IAM policies, faults (answers lost after AWS applied the
//! call among them), and replicas racing.

#[allow(dead_code, unused_imports)] // each binary uses a part of the shared harness
#[path = "../harness/mod.rs"]
mod harness;

mod audit;
mod aws;
mod ceiling;
mod claims;
mod errors;
mod first_logins;
mod iam;
mod iam_policies;
mod lifecycle;
mod lost_answers;
mod reliability_concurrency;
mod reliability_faults;
mod revocation;
mod upgrade;

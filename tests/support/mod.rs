//! Test support for the AWS backend: a real moto server on loopback, a
//! fault-injecting proxy in front of it, and seeding through the real SDK.
#![allow(dead_code)]

pub mod app;
pub mod child;
pub mod emulator;
pub mod moto;
pub mod proxy;

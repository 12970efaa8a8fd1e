//! One integration-test binary (fast linking); each module is one feature.
//! The lockdown tests live in `tests/lockdown.rs`, which runs every case in
//! its own process.

mod support;

mod bench;
mod errors;
mod hostile;
mod observability;
mod sandbox_e2e;
mod serving;

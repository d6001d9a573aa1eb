//! The integration test binary (one binary, a module per area; see house-style.md).

mod common;
mod core_props;
mod crash;
mod e2e;

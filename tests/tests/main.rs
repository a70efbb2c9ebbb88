//! Workspace integration tests, one binary with a module per concern.

mod compat;
mod discover;
mod executor;
mod faults;
mod matrix;
mod plugins;
mod qemu;
mod reserve;
mod run;
mod run_podman;
mod run_reasons;
mod ssh;
mod testing_farm;
mod toolbox;

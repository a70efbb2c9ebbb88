//! Workspace integration tests, one binary with a module per concern.

mod executor;
mod plugins;
mod qemu;
mod run;
mod run_podman;
mod testing_farm;
mod toolbox;

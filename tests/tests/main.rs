//! Workspace integration tests, one binary with a module per concern.

mod executor;
mod plugins;
mod reserve;
mod run;
mod run_podman;
mod ssh;
mod testing_farm;
mod toolbox;

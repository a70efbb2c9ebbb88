//! Workspace integration tests, one binary with a module per concern.

mod compat;
mod executor;
mod plugins;
mod run;
mod run_podman;
mod testing_farm;
mod toolbox;

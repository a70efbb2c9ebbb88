//! Workspace integration tests, one binary with a module per concern.

mod executor;
mod plugins;
mod testing_farm;
mod run;
mod run_podman;
mod toolbox;

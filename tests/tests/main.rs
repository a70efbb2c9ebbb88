//! Workspace integration tests, one binary with a module per concern.

mod beakerlib;
mod compat;
mod discover;
mod executor;
mod faults;
mod live;
mod matrix;
mod plugin_commands;
mod plugins;
mod prepare;
mod qemu;
mod remote;
mod reserve;
mod run;
mod run_podman;
mod run_reasons;
mod ssh;
mod testing_farm;
mod toolbox;

//! Workspace integration tests, one binary with a module per concern.

mod executor;
mod plugins;

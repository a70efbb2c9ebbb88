//! Running tests on one system.
//!
//! [`transport`] turns a remote's connection data into local processes the
//! host owns.

pub mod transport;

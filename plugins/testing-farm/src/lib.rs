//! The `testing-farm` provisioner: machines reserved from Testing Farm.
//!
//! Each machine is a Testing Farm request running the reserve plan
//! (`/testing-farm/reserve` from `https://gitlab.com/testing-farm/tests`)
//! with the provisioner's own public key in the reservation secret
//! `TF_RESERVATION_AUTHORIZED_KEYS_BASE64`. A background thread per
//! reservation submits the request, follows its state, reads `pipeline.log`
//! incrementally (HEAD until it exists, then `Range` GETs) for the line
//! `Guest is ready: ArtemisGuest(…, USER@HOST, arch=…)`, waits until ssh
//! with the key works, and queues the machine for `get_remote`. Releasing
//! a machine, or `stop`, cancels its request (`DELETE`); `stop` cancels up
//! to 10 at once.
//!
//! # Options
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `compose` | required | compose to install, checked against `GET /v0.2/composes/{ranch}` at start |
//! | `arch` | `x86_64` | architecture |
//! | `api_url` | `$TESTING_FARM_API_URL`, else `https://api.testing-farm.io` | API base URL |
//! | `token` | `$TESTING_FARM_API_TOKEN` | API token, checked with `GET /v0.1/whoami` at start |
//! | `pool` | none | infrastructure pool |
//! | `hardware`, `kickstart` | none | mappings passed to TF as they are |
//! | `variables`, `secrets` | none | mappings of the request's environment |
//! | `tags` | none | cloud tags (`ArtemisUseSpot=false` is always set) |
//! | `timeout` | 60 | request lifetime in minutes, queue included |
//! | `max` (`max_remotes`) | 3 | machines held at once, at most 50 |
//! | `retries` | 10 | failed reservations replaced before giving up (per provisioner) |
//! | `port` | 22 | ssh port (another one behind a gateway) |
//! | `skip_guest_setup` | false | TF's `pipeline.skip_guest_setup` |
//! | `source_cidr` | none | public ranch: CIDR allowed in by an ingress rule |
//! | `platform` | `COMPOSE@ARCH` | platform results are filed under |
//! | `poll_interval` | 5 | seconds between polls of one request and its log |
//! | `min_interval` | 0.1 | smallest gap in seconds between two API calls of the provisioner |
//! | `ssh_timeout` | 600 | seconds for ssh to work once the guest is ready |
//! | `http_attempts` | 12 | attempts of one HTTP call (429, 5xx, transport errors) |
//! | `http_backoff` | 1 | first backoff in seconds, doubling, capped at 60 |
//! | `http_timeout` | 30 | seconds one HTTP exchange may take |
//!
//! # Robustness
//!
//! Idempotent calls are retried on transport errors, 408, 429 and 5xx,
//! honouring `Retry-After` (which also holds back the provisioner's other
//! calls). A POST is never sent twice blindly: each request carries a
//! unique cloud tag ([`MARKER_TAG`]), and when a POST's outcome is unknown
//! the provisioner searches its own recent requests for that tag first. A
//! reservation whose request ends in `error` or `canceled`, or whose ssh
//! never works, is reported with the reason, cancelled, and replaced while
//! the `retries` budget lasts. The token and private key are never logged.

#![deny(clippy::unwrap_used)]

pub mod api;
pub mod config;
mod provisioner;
mod ssh;

pub use config::{DEFAULT_API_URL, TestingFarmConfig};
pub use provisioner::{MARKER_TAG, TestingFarmProvisioner, TestingFarmRemote};

atex_plugin_api::export_plugin! {
    name: "testing-farm",
    version: env!("CARGO_PKG_VERSION"),
    description: "reserves machines from Testing Farm and reaches them over ssh",
    provisioner: TestingFarmProvisioner::new,
}

//! The `testing-farm` provisioner: machines reserved from Testing Farm.
//!
//! Each machine is a Testing Farm request running the reserve plan
//! (`/testing-farm/reserve` from `https://gitlab.com/testing-farm/tests`)
//! with the provisioner's public key (generated per run, or the user's
//! `ssh_key`) in the reservation secret
//! `TF_RESERVATION_AUTHORIZED_KEYS_BASE64`. A background thread per
//! reservation submits the request and asks for its state once per
//! `poll_interval`; once it runs, `pipeline.log` on the artifacts server is
//! followed every `log_interval` (HEAD until it exists, then `Range` GETs)
//! for the line `Guest is ready: ArtemisGuest(…, USER@HOST, arch=…)`; ssh
//! with the key is then probed every 250 ms, and the machine is queued for
//! `get_remote` as soon as it answers. Releasing
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
//! | `artifacts` | none | installed during provisioning: a list of `{type, id, packages, install, order}` mappings or `TYPE:ID` strings, or one string of space-separated `TYPE:ID` (below) |
//! | `tmt` | none | TF's `tmt` mapping of the environment (`context`, `environment`, `extra_args`), passed as it is |
//! | `post_install_script` | none | script TF runs on the guest after provisioning (`settings.provisioning.post_install_script`) |
//! | `ssh_key` | generated | the user's private key (e.g. one shared by a team); its public key is `KEY.pub`, else `ssh-keygen -y` |
//! | `tags` | none | cloud tags (`ArtemisUseSpot=false` is always set) |
//! | `timeout` | 60 | request lifetime in minutes, queue included |
//! | `max` (`max_remotes`) | 3 | machines held at once, at most 50 |
//! | `retries` | 10 | failed reservations replaced before giving up (per provisioner) |
//! | `port` | 22 | ssh port (another one behind a gateway) |
//! | `skip_guest_setup` | false | TF's `pipeline.skip_guest_setup` |
//! | `source_cidr` | detected | public ranch: CIDR allowed in by an ingress rule; when not given, the caller's address from `source_cidr_url` as `ADDR/32` |
//! | `source_cidr_url` | `https://ipv4.icanhazip.com` | URL answering the caller's public address as text (public ranch only) |
//! | `platform` | `COMPOSE@ARCH` | platform results are filed under |
//! | `poll_interval` | 5 | seconds between API polls of one request's state |
//! | `log_interval` | 1 | seconds between reads of a running request's pipeline.log (artifacts server) until its guest is ready |
//! | `min_interval` | 0.1 | smallest gap in seconds between two API calls of the provisioner |
//! | `ssh_timeout` | 600 | seconds for ssh to work once the guest is ready |
//! | `http_attempts` | 12 | attempts of one HTTP call (429, 5xx, transport errors) |
//! | `http_backoff` | 1 | first backoff in seconds, doubling, capped at 60 |
//! | `http_timeout` | 30 | seconds one HTTP exchange may take |
//!
//! ## Artifacts
//!
//! Types: `fedora-koji-build`, `fedora-copr-build`, `redhat-brew-build`,
//! `repository`, `repository-file`. The compact form splits at the first
//! `:` only, so `repository:https://host/repo` keeps its URL; on the
//! command line items are separated by spaces (a comma ends the option):
//! `-p 'testing-farm:compose=Fedora-Rawhide,artifacts=fedora-koji-build:123 repository:https://example.org/repo'`.
//! In a YAML file:
//!
//! ```yaml
//! artifacts:
//!   - {type: fedora-copr-build, id: "1784470:fedora-32-x86_64", packages: [foo], order: 30}
//!   - redhat-brew-build:123456
//! ```
//!
//! # Commands
//!
//! `atex testing-farm whoami`, `composes [--ranch R]`, `requests [--mine]
//! [--state S]... [--json]` and `cancel ID...|--mine`, for looking around
//! and cleaning up by hand (see `commands.rs`; `atex testing-farm COMMAND
//! --help`). They read `$TESTING_FARM_API_URL` and `$TESTING_FARM_API_TOKEN`,
//! or `--api-url` and `--token`.
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
mod commands;
pub mod config;
mod provisioner;
mod ssh;

pub use config::{DEFAULT_API_URL, TestingFarmConfig};
pub use provisioner::{MARKER_TAG, TestingFarmProvisioner, TestingFarmRemote};

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new(
            "compose",
            "string",
            "",
            "Required. Compose to install, checked against GET /v0.2/composes/{ranch} at start.",
        ),
        OptionSpec::new("arch", "string", "x86_64", "Architecture."),
        OptionSpec::new(
            "api_url",
            "URL",
            "$TESTING_FARM_API_URL, else https://api.testing-farm.io",
            "API base URL.",
        ),
        OptionSpec::new(
            "token",
            "string",
            "$TESTING_FARM_API_TOKEN",
            "API token, checked with GET /v0.1/whoami at start.",
        ),
        OptionSpec::new("pool", "string", "", "Infrastructure pool."),
        OptionSpec::new("hardware", "mapping", "", "Mapping passed to TF as it is."),
        OptionSpec::new("kickstart", "mapping", "", "Mapping passed to TF as it is."),
        OptionSpec::new(
            "variables",
            "mapping",
            "",
            "Mapping of the request's environment.",
        ),
        OptionSpec::new(
            "secrets",
            "mapping",
            "",
            "Mapping of the request's environment.",
        ),
        OptionSpec::new(
            "artifacts",
            "list, or a string",
            "",
            "Installed during provisioning: a list of {type, id, packages, install, order} mappings or TYPE:ID strings, or one string of space-separated TYPE:ID (below).",
        ),
        OptionSpec::new(
            "tmt",
            "mapping",
            "",
            "TF's tmt mapping of the environment (context, environment, extra_args), passed as it is.",
        ),
        OptionSpec::new(
            "post_install_script",
            "string",
            "",
            "Script TF runs on the guest after provisioning (settings.provisioning.post_install_script).",
        ),
        OptionSpec::new(
            "ssh_key",
            "path",
            "generated",
            "The user's private key (e.g. one shared by a team); its public key is KEY.pub, else ssh-keygen -y.",
        ),
        OptionSpec::new(
            "tags",
            "mapping",
            "",
            "Cloud tags (ArtemisUseSpot=false is always set).",
        ),
        OptionSpec::new(
            "timeout",
            "minutes",
            "60",
            "Request lifetime in minutes, queue included.",
        ),
        OptionSpec::new(
            "max",
            "integer",
            "3",
            "Machines held at once, at most 50. Also accepted as max_remotes.",
        ),
        OptionSpec::new(
            "retries",
            "integer",
            "10",
            "Failed reservations replaced before giving up (per provisioner).",
        ),
        OptionSpec::new(
            "port",
            "integer",
            "22",
            "Ssh port (another one behind a gateway).",
        ),
        OptionSpec::new(
            "skip_guest_setup",
            "bool",
            "false",
            "TF's pipeline.skip_guest_setup.",
        ),
        OptionSpec::new(
            "source_cidr",
            "CIDR",
            "detected",
            "Public ranch: CIDR allowed in by an ingress rule; when not given, the caller's address from source_cidr_url as ADDR/32.",
        ),
        OptionSpec::new(
            "source_cidr_url",
            "URL",
            "https://ipv4.icanhazip.com",
            "URL answering the caller's public address as text (public ranch only).",
        ),
        OptionSpec::new(
            "platform",
            "string",
            "COMPOSE@ARCH",
            "Platform results are filed under.",
        ),
        OptionSpec::new(
            "poll_interval",
            "seconds",
            "5",
            "Seconds between API polls of one request's state.",
        ),
        OptionSpec::new(
            "log_interval",
            "seconds",
            "1",
            "Seconds between reads of a running request's pipeline.log (artifacts server) until its guest is ready.",
        ),
        OptionSpec::new(
            "min_interval",
            "seconds",
            "0.1",
            "Smallest gap in seconds between two API calls of the provisioner.",
        ),
        OptionSpec::new(
            "ssh_timeout",
            "seconds",
            "600",
            "Seconds for ssh to work once the guest is ready.",
        ),
        OptionSpec::new(
            "http_attempts",
            "integer",
            "12",
            "Attempts of one HTTP call (429, 5xx, transport errors).",
        ),
        OptionSpec::new(
            "http_backoff",
            "seconds",
            "1",
            "First backoff in seconds, doubling, capped at 60.",
        ),
        OptionSpec::new(
            "http_timeout",
            "seconds",
            "30",
            "Seconds one HTTP exchange may take.",
        ),
    ]
};

atex_plugin_api::export_plugin! {
    name: "testing-farm",
    version: env!("CARGO_PKG_VERSION"),
    description: "reserves machines from Testing Farm and reaches them over ssh",
    provisioner: TestingFarmProvisioner::new,
    options: OPTIONS,
    commands: commands::COMMANDS,
    run_command: commands::run,
}

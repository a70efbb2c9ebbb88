//! The `podman` provisioner: containers on the user's own machine.
//!
//! `start` pulls the image once (`pull`), and optionally builds an image
//! holding the suite's packages (`prepare`, cached) or a user's
//! Containerfile (`containerfile`). Containers are started on background
//! threads from that local image (`--pull=never`) and handed out when
//! ready; at most `max` exist at once. Every container carries the labels `atex.run=<run id>` and
//! `atex.provisioner=<random token of this provisioner>`; `stop` removes
//! all containers with its token. After a run killed with SIGKILL, remove
//! what it left with `atex podman leftovers --run RUN_ID --remove` (the
//! plugin's command; without `--remove` it lists them), [`remove_leftovers`]
//! or `podman rm -f -t 0 $(podman ps -aq --filter label=atex.run=RUN_ID)`.
//!
//! # Options
//!
//! | option            | default                          | meaning |
//! |-------------------|----------------------------------|---------|
//! | `image`           | `localhost/atex-test:bookworm`   | image to run (the base of a prepared image) |
//! | `pull`            | `missing`                        | `never`, `missing`, `always`: pull `image` once in `start` |
//! | `tls_verify`      | true                             | false: pull from a plain-HTTP registry |
//! | `prepare`         | none                             | packages installed into a cached derived image (list, or one string); `suite`: the selected tests' packages |
//! | `prepare_recommend` | none                           | packages also installed into it when they can be (best effort) |
//! | `containerfile`   | none                             | a Containerfile built once per run; containers start from it |
//! | `prepare_timeout` | 1200                             | seconds a pull or a build may take |
//! | `max`             | 4                                | containers existing at once |
//! | `run_options`     | none                             | extra `podman run` options (list, or one string split at spaces) |
//! | `command`         | `sleep infinity` (`/sbin/init` in systemd mode) | what keeps the container alive |
//! | `runtime`         | containers.conf's                | `podman run --runtime` |
//! | `systemd`         | false                            | systemd as init, `--restart=always`: reboots work |
//! | `label`           | the run id                       | value of the `atex.run` label |
//! | `platform`        | image name and tag, e.g. `atex-test-bookworm` | platform results are filed under |
//! | `boot_timeout`    | 120                              | seconds for systemd to boot / a reboot to finish |
//! | `command_timeout` | 300                              | seconds any podman command may take |
//! | `retries`         | 3                                | retries of a `podman run` that failed transiently |
//! | `containers_conf` | inherited `CONTAINERS_CONF`      | containers.conf(5) for the plugin's podman commands |
//!
//! # Requests
//!
//! `provision(n)` asks for `n` more containers, `provision(u32::MAX)` for
//! `max` at all times until `clear`. `clear` drops requests not started
//! yet, except those that callers blocked in `get_remote` right now are
//! waiting for (and that no starting or ready container will serve):
//! whoever is still asking still gets a container. Containers already
//! starting or ready stay until handed out or `stop`.
//!
//! # The connection
//!
//! A remote's connection is [`Connection::command`] with the prefix
//! `["podman", "exec", "--interactive", "<full container id>"]`: the host
//! appends an argv and runs the result as a local process. It passes stdin
//! through, never allocates a TTY (no `--tty`), returns the command's exit
//! status (podman's own failures exit 125-127; a command killed by a signal
//! gives 128+N), starts the command with default signal dispositions
//! (SIGPIPE is not ignored: `yes | head -1` ends), runs as the image's user
//! (root) in `/`, and does not depend on the plugin's configuration: a
//! container remembers its OCI runtime, so `exec` needs no `--runtime`, and
//! the prefix works without `CONTAINERS_CONF`. In systemd mode a reboot
//! restarts the same container (same id), so the same prefix works again
//! once it is running; commands in flight during the reboot end with an
//! error.
//!
//! # Liveness
//!
//! `alive()` is false once released, when the container no longer exists,
//! or when it is not running. In systemd mode a container that is not
//! running but has the `always` restart policy is still alive (it is
//! rebooting) until it has been down for `boot_timeout` seconds.
//!
//! [`Connection::command`]: atex_plugin_api::Connection::command

#![deny(clippy::unwrap_used)]

mod cleanup;
mod commands;
mod config;
mod podman;
mod prepare;
mod provisioner;

pub use cleanup::{
    list_containers, list_prepared_images, remove_containers, remove_leftovers,
    remove_prepared_images,
};
pub use config::{DEFAULT_IMAGE, PodmanConfig, PullPolicy};
pub use podman::PodmanError;
pub use prepare::{BASE_LABEL, PREPARED_LABEL, PREPARED_REPO, PackageSet};
pub use provisioner::{CancelFn, PodmanProvisioner, PodmanRemote, command_prefix};

/// Label carrying the run id (or the configured `label`).
pub const RUN_LABEL: &str = "atex.run";
/// Label carrying a token unique to one provisioner.
pub const PROVISIONER_LABEL: &str = "atex.provisioner";

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new(
            "image",
            "string",
            "localhost/atex-test:bookworm",
            "Image to run (the base of a prepared image).",
        ),
        OptionSpec::new(
            "pull",
            "never|missing|always",
            "missing",
            "Never, missing, always: pull image once in start.",
        ),
        OptionSpec::new(
            "tls_verify",
            "bool",
            "true",
            "False: pull from a plain-HTTP registry.",
        ),
        OptionSpec::new(
            "prepare",
            "list of strings, or a string",
            "",
            "Packages installed into a cached derived image (list, or one string); suite: the selected tests' packages.",
        ),
        OptionSpec::new(
            "prepare_recommend",
            "list of strings, or a string",
            "",
            "Packages also installed into it when they can be (best effort).",
        ),
        OptionSpec::new(
            "containerfile",
            "path",
            "",
            "A Containerfile built once per run; containers start from it.",
        ),
        OptionSpec::new(
            "prepare_timeout",
            "seconds",
            "1200",
            "Seconds a pull or a build may take.",
        ),
        OptionSpec::new("max", "integer", "4", "Containers existing at once."),
        OptionSpec::new(
            "run_options",
            "list of strings, or a string",
            "",
            "Extra podman run options (list, or one string split at spaces).",
        ),
        OptionSpec::new(
            "command",
            "list of strings, or a string",
            "sleep infinity (/sbin/init in systemd mode)",
            "What keeps the container alive.",
        ),
        OptionSpec::new(
            "runtime",
            "string",
            "containers.conf's",
            "Podman run --runtime.",
        ),
        OptionSpec::new(
            "systemd",
            "bool",
            "false",
            "Systemd as init, --restart=always: reboots work.",
        ),
        OptionSpec::new(
            "label",
            "string",
            "the run id",
            "Value of the atex.run label.",
        ),
        OptionSpec::new(
            "platform",
            "string",
            "image name and tag, e.g. atex-test-bookworm",
            "Platform results are filed under.",
        ),
        OptionSpec::new(
            "boot_timeout",
            "seconds",
            "120",
            "Seconds for systemd to boot / a reboot to finish.",
        ),
        OptionSpec::new(
            "command_timeout",
            "seconds",
            "300",
            "Seconds any podman command may take.",
        ),
        OptionSpec::new(
            "retries",
            "integer",
            "3",
            "Retries of a podman run that failed transiently.",
        ),
        OptionSpec::new(
            "containers_conf",
            "path",
            "inherited CONTAINERS_CONF",
            "Containers.conf(5) for the plugin's podman commands.",
        ),
    ]
};

atex_plugin_api::export_plugin! {
    name: "podman",
    version: env!("CARGO_PKG_VERSION"),
    description: "containers on this machine, started with podman (systemd mode for reboots)",
    provisioner: PodmanProvisioner::new,
    options: OPTIONS,
    commands: commands::COMMANDS,
    run_command: commands::run,
}

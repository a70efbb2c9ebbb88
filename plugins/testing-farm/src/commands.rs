//! `atex testing-farm COMMAND`: looking around and cleaning up by hand.
//!
//! - `whoami`: the token's id, name and ranch, and its user;
//! - `composes [--ranch R]`: the composes a ranch offers;
//! - `requests [--mine] [--state S]... [--json]`: requests in the given
//!   states (new, queued and running by default), only the token's own
//!   with `--mine`;
//! - `cancel ID... | --mine`: cancels the given requests, or every request
//!   of the token that is still new, queued or running.
//!
//! Each takes `--api-url URL` (default `$TESTING_FARM_API_URL`, else the
//! public API) and `--token TOKEN` (default `$TESTING_FARM_API_TOKEN`).

use std::{sync::atomic::AtomicBool, time::Duration};

use atex_plugin_api::{
    CommandOutput, PluginError,
    sdk::{CommandContext, CommandSpec},
};
use serde_json::Value;

use crate::{
    DEFAULT_API_URL,
    api::{ALIVE_STATES, Api, ApiError, RetryPolicy, Secret},
};

/// The subcommands, for `atex testing-farm --help` and `atex plugin info`.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "whoami",
        summary: "show the token's id, name and ranch, and its user",
        help: concat!(
            "usage: atex testing-farm whoami [--json] [--api-url URL] [--token TOKEN]\n\n",
            "Asks GET /v0.1/whoami and prints the token (id, name, ranch, role) and\n",
            "its user; --json prints the whole reply.\n\n",
            "  --api-url URL   the API [default: $TESTING_FARM_API_URL, else https://api.testing-farm.io]\n",
            "  --token TOKEN   the API token [default: $TESTING_FARM_API_TOKEN]"
        ),
    },
    CommandSpec {
        name: "composes",
        summary: "list the composes a ranch offers",
        help: concat!(
            "usage: atex testing-farm composes [--ranch public|redhat] [--api-url URL] [--token TOKEN]\n\n",
            "Prints the composes of GET /v0.2/composes/RANCH, one a line; a name that\n",
            "is a pattern (accepted composes match it) is marked `(regex)`. The ranch\n",
            "defaults to the token's (whoami), else public.\n\n",
            "  --api-url URL   the API [default: $TESTING_FARM_API_URL, else https://api.testing-farm.io]\n",
            "  --token TOKEN   the API token [default: $TESTING_FARM_API_TOKEN]"
        ),
    },
    CommandSpec {
        name: "requests",
        summary: "list requests (--mine: only the token's)",
        help: concat!(
            "usage: atex testing-farm requests [--mine] [--state STATE]... [--json] [--api-url URL] [--token TOKEN]\n\n",
            "Lists requests in the given states (default: new, queued, running), one a\n",
            "line: id, state, created, compose@arch. --mine keeps the token's own\n",
            "(searched by its id); --json prints the request objects.\n\n",
            "  --api-url URL   the API [default: $TESTING_FARM_API_URL, else https://api.testing-farm.io]\n",
            "  --token TOKEN   the API token [default: $TESTING_FARM_API_TOKEN]"
        ),
    },
    CommandSpec {
        name: "cancel",
        summary: "cancel requests by id, or all of the token's (--mine)",
        help: concat!(
            "usage: atex testing-farm cancel ID... | --mine [--api-url URL] [--token TOKEN]\n\n",
            "Cancels each request given, or with --mine every request of the token\n",
            "that is new, queued or running. Prints one line per request: cancel\n",
            "requested, already cancelled, already finished, or why it failed; exits\n",
            "1 when any failed.\n\n",
            "  --api-url URL   the API [default: $TESTING_FARM_API_URL, else https://api.testing-farm.io]\n",
            "  --token TOKEN   the API token [default: $TESTING_FARM_API_TOKEN]"
        ),
    },
];

/// Parsed arguments shared by every command.
struct Args {
    api_url: String,
    token: Option<Secret>,
    flags: Vec<String>,
    states: Vec<String>,
    ranch: Option<String>,
    positional: Vec<String>,
}

fn usage(command: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!(
        "{message} (atex testing-farm {command} --help for usage)"
    ))
}

fn parse(command: &str, args: &[String], flags: &[&str]) -> Result<Args, PluginError> {
    let mut out = Args {
        api_url: std::env::var("TESTING_FARM_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string()),
        token: std::env::var("TESTING_FARM_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        flags: Vec::new(),
        states: Vec::new(),
        ranch: None,
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, PluginError> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| usage(command, format!("{what} needs a value")))
        };
        match name {
            "--api-url" => out.api_url = value("--api-url")?,
            "--token" => out.token = Some(Secret::new(value("--token")?)),
            "--state" if flags.contains(&"--state") => out.states.push(value("--state")?),
            "--ranch" if flags.contains(&"--ranch") => out.ranch = Some(value("--ranch")?),
            f if f.starts_with('-') && flags.contains(&f) && inline.is_none() => {
                out.flags.push(f.to_string());
            }
            f if f.starts_with('-') => {
                return Err(usage(command, format!("unknown option `{f}`")));
            }
            _ => out.positional.push(arg.clone()),
        }
    }
    if !(out.api_url.starts_with("http://") || out.api_url.starts_with("https://")) {
        return Err(usage(
            command,
            format!("--api-url must be an http(s) URL, not {:?}", out.api_url),
        ));
    }
    Ok(out)
}

impl Args {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn api(&self) -> Api {
        Api::new(
            &self.api_url,
            self.token.clone(),
            RetryPolicy {
                attempts: 4,
                backoff: Duration::from_secs(1),
                backoff_max: Duration::from_secs(10),
                min_interval: Duration::ZERO,
                http_timeout: Duration::from_secs(30),
            },
        )
    }

    fn need_token(&self, command: &str) -> Result<(), PluginError> {
        if self.token.is_none() {
            return Err(PluginError::config(format!(
                "`{command}` needs a token: set TESTING_FARM_API_TOKEN or give --token"
            )));
        }
        Ok(())
    }
}

fn api_error(what: &str, e: ApiError) -> PluginError {
    PluginError::remote(format!("{what}: {e}"))
}

/// Runs one subcommand (the handler given to `export_plugin!`).
pub fn run(ctx: &CommandContext) -> Result<CommandOutput, PluginError> {
    // The host's cancel flag is not a plain AtomicBool; commands are short
    // and the retry policy bounds them, so they do not watch it.
    let abort = AtomicBool::new(false);
    let command = ctx.command.as_str();
    match command {
        "whoami" => {
            let args = parse(command, &ctx.args, &["--json"])?;
            no_positional(command, &args)?;
            args.need_token(command)?;
            let v = args
                .api()
                .get_json("/v0.1/whoami", true, &abort)
                .map_err(|e| api_error("GET /v0.1/whoami", e))?;
            if args.has("--json") {
                return Ok(CommandOutput::text(pretty(&v)));
            }
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("-");
            Ok(CommandOutput::text(format!(
                "token: {} (id {}), ranch {}, role {}\nuser: {} (id {})\n",
                s("/token/name"),
                s("/token/id"),
                s("/token/ranch"),
                s("/token/role"),
                s("/user/auth_name"),
                s("/user/id"),
            )))
        }
        "composes" => {
            let args = parse(command, &ctx.args, &["--ranch"])?;
            no_positional(command, &args)?;
            let api = args.api();
            let ranch = match (&args.ranch, &args.token) {
                (Some(r), _) => r.clone(),
                (None, Some(_)) => {
                    api.whoami(&abort)
                        .map_err(|e| api_error("GET /v0.1/whoami", e))?
                        .ranch
                }
                (None, None) => "public".to_string(),
            };
            let list = api
                .composes(&ranch, &abort)
                .map_err(|e| api_error(&format!("GET /v0.2/composes/{ranch}"), e))?;
            let mut text = String::new();
            for (name, regex) in list {
                text.push_str(&name);
                if regex {
                    text.push_str(" (regex)");
                }
                text.push('\n');
            }
            Ok(CommandOutput::text(text))
        }
        "requests" => {
            let args = parse(command, &ctx.args, &["--mine", "--json", "--state"])?;
            no_positional(command, &args)?;
            let api = args.api();
            let found = search(&api, &args, command, &abort)?;
            if args.has("--json") {
                return Ok(CommandOutput::text(pretty(&Value::Array(found))));
            }
            let mut text = String::new();
            for r in &found {
                text.push_str(&request_line(r));
                text.push('\n');
            }
            Ok(CommandOutput::text(text))
        }
        "cancel" => {
            let args = parse(command, &ctx.args, &["--mine"])?;
            args.need_token(command)?;
            let api = args.api();
            let ids: Vec<String> = match (args.has("--mine"), args.positional.is_empty()) {
                (true, true) => search(&api, &args, command, &abort)?
                    .iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect(),
                (false, false) => args.positional.clone(),
                (true, false) => {
                    return Err(usage(command, "give request ids or --mine, not both"));
                }
                (false, true) => return Err(usage(command, "give request ids or --mine")),
            };
            let mut text = String::new();
            let mut failed = false;
            for id in &ids {
                let line = match api.cancel_request(id) {
                    Ok(200) => "cancel requested".to_string(),
                    Ok(204) => "already cancelled".to_string(),
                    Ok(409) => "already finished".to_string(),
                    Ok(status) => format!("HTTP {status}"),
                    Err(e) => {
                        failed = true;
                        format!("not cancelled: {e}")
                    }
                };
                text.push_str(&format!("{id}: {line}\n"));
            }
            if ids.is_empty() {
                text.push_str("no requests to cancel\n");
            }
            Ok(CommandOutput::text(text).with_exit_code(i32::from(failed)))
        }
        other => Err(PluginError::new(
            atex_plugin_api::ErrorKind::UNSUPPORTED,
            format!("no command `{other}`"),
        )),
    }
}

fn no_positional(command: &str, args: &Args) -> Result<(), PluginError> {
    match args.positional.first() {
        Some(extra) => Err(usage(command, format!("unexpected argument `{extra}`"))),
        None => Ok(()),
    }
}

/// Requests in `--state`s (alive ones by default); only the token's with
/// `--mine` (and always for `cancel`).
fn search(
    api: &Api,
    args: &Args,
    command: &str,
    abort: &AtomicBool,
) -> Result<Vec<Value>, PluginError> {
    let mine = args.has("--mine") || command == "cancel";
    let token_id = if mine {
        args.need_token(command)?;
        Some(
            api.whoami(abort)
                .map_err(|e| api_error("GET /v0.1/whoami", e))?
                .token_id,
        )
    } else {
        None
    };
    let states: Vec<&str> = if args.states.is_empty() {
        ALIVE_STATES.to_vec()
    } else {
        args.states.iter().map(String::as_str).collect()
    };
    let mut found = Vec::new();
    for state in states {
        let mut path = format!("/v0.1/requests?state={state}");
        if let Some(id) = &token_id {
            path.push_str(&format!("&token_id={id}"));
        }
        match api.get_json(&path, mine, abort) {
            Ok(Value::Array(list)) => found.extend(list),
            Ok(Value::Null) => {}
            Ok(_) => {
                return Err(api_error(
                    "GET /v0.1/requests",
                    ApiError::BadReply("not a list".into()),
                ));
            }
            Err(e) => return Err(api_error("GET /v0.1/requests", e)),
        }
    }
    Ok(found)
}

fn request_line(r: &Value) -> String {
    let s = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("-");
    let env = |k: &str| {
        r.pointer(&format!("/environments_requested/0/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    };
    let compose = r
        .pointer("/environments_requested/0/os/compose")
        .and_then(Value::as_str)
        .unwrap_or("-");
    format!(
        "{}  {:<16}  {}  {compose}@{}",
        s("/id"),
        s("/state"),
        s("/created"),
        env("arch")
    )
}

fn pretty(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON: &str = "  --api-url URL   the API [default: $TESTING_FARM_API_URL, else https://api.testing-farm.io]
  --token TOKEN   the API token [default: $TESTING_FARM_API_TOKEN]";

    #[test]
    fn every_help_starts_with_usage_and_ends_with_the_common_options() {
        for c in COMMANDS {
            assert!(
                c.help
                    .starts_with(&format!("usage: atex testing-farm {}", c.name)),
                "{}",
                c.name
            );
            assert!(c.help.ends_with(COMMON), "{}", c.name);
        }
    }

    #[test]
    fn unknown_options_are_refused_naming_them() {
        let err = parse("whoami", &["--bogus".to_string()], &["--json"])
            .err()
            .map(|e| e.message.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown option `--bogus`"), "{err}");
    }
}

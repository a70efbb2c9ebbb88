//! The provisioner: reservation threads, the ready queue, release and stop.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        Arc, Condvar, LazyLock, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use atex_plugin_api::{
    Connection, ErrorKind, PluginError, SshTarget,
    abi_stable::std_types::{ROption, RString, RVec},
    sdk::{PluginContext, ProvisionerImpl, RemoteImpl},
};
use regex::Regex;
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::{
    api::{ALIVE_STATES, Api, ApiError, Identity, iso_utc, sleep_unless},
    config::{DEFAULT_SOURCE_CIDR_URL, Settings, TestingFarmConfig},
    ssh::{KeyPair, probe, valid_login_part},
};

const TARGET: &str = "atex_testing_farm";

/// The plan that holds a machine until the request is cancelled.
const RESERVE_TEST: (&str, &str, &str) = (
    "https://gitlab.com/testing-farm/tests",
    "main",
    "/testing-farm/reserve",
);

/// The cloud tag that marks each of our requests, so a request whose POST
/// reply was lost can be found again.
pub const MARKER_TAG: &str = "AtexReservation";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One reservation: the TF request behind it, cancelled exactly once.
struct Ticket {
    serial: u64,
    id: Mutex<Option<String>>,
    cancelled: AtomicBool,
}

struct Reserved {
    ticket: Arc<Ticket>,
    id: String,
    user: String,
    host: String,
}

#[derive(Default)]
struct State {
    started: bool,
    stopped: bool,
    /// Asked for with `provision` and not being reserved yet.
    pending: u32,
    /// Reservation threads running.
    reserving: u32,
    /// Reserved and not handed out yet.
    ready: VecDeque<Reserved>,
    /// Handed out and not released.
    active: u32,
    /// Failed reservations that may still be replaced.
    retries_left: u32,
    /// Why no more machines will come.
    fatal: Option<String>,
    /// Requests that are not cancelled yet.
    tickets: Vec<Arc<Ticket>>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    settings: Settings,
    api: Api,
    ctx: PluginContext,
    identity: Mutex<Option<Identity>>,
    key: Mutex<Option<KeyPair>>,
    key_path: Mutex<Option<PathBuf>>,
    /// The ingress CIDR (given or detected) on the public ranch.
    source_cidr: Mutex<Option<String>>,
    state: Mutex<State>,
    changed: Condvar,
    /// Set by `stop` (or a host cancel): every wait ends early.
    abort: AtomicBool,
    serial: AtomicU64,
    instance: String,
}

/// Why one reservation did not produce a machine.
enum Failure {
    /// Worth replacing with a new reservation (counts against `retries`).
    Retry(String),
    /// No reservation will work (bad token, refused request, API down).
    Fatal(String),
    /// Stopped or cancelled.
    Aborted,
}

/// The testing-farm provisioner.
pub struct TestingFarmProvisioner {
    shared: Arc<Shared>,
}

impl TestingFarmProvisioner {
    /// Constructs it from the plugin context (parses and checks options; no
    /// network traffic until `start`).
    pub fn new(ctx: PluginContext) -> Result<Self, PluginError> {
        let config: TestingFarmConfig = ctx.parse_config()?;
        let token = config.token();
        let settings = config.validate()?;
        let api = Api::new(&settings.api_url, token, settings.policy.clone());
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let instance = format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff);
        let retries = settings.raw.retries;
        Ok(TestingFarmProvisioner {
            shared: Arc::new(Shared {
                settings,
                api,
                ctx,
                identity: Mutex::new(None),
                key: Mutex::new(None),
                key_path: Mutex::new(None),
                source_cidr: Mutex::new(None),
                state: Mutex::new(State {
                    retries_left: retries,
                    ..State::default()
                }),
                changed: Condvar::new(),
                abort: AtomicBool::new(false),
                serial: AtomicU64::new(0),
                instance,
            }),
        })
    }
}

fn start_error(url: &str, what: &str, e: &ApiError) -> PluginError {
    match e {
        ApiError::Status {
            status: 401 | 403,
            message,
        } => PluginError::config(format!(
            "testing-farm: the API token was refused by {url}: {message}"
        )),
        ApiError::Unreachable(m) => PluginError::remote(format!(
            "testing-farm: cannot reach the Testing Farm API at {url} ({what}): {m}"
        )),
        other => PluginError::remote(format!("testing-farm: {what} at {url} failed: {other}")),
    }
}

fn compose_offered(compose: &str, offered: &[(String, bool)]) -> bool {
    offered.iter().any(|(name, is_regex)| {
        if *is_regex {
            Regex::new(&format!("^(?:{name})$")).is_ok_and(|re| re.is_match(compose))
        } else {
            name == compose
        }
    })
}

impl Shared {
    fn aborted(&self) -> bool {
        if self.ctx.is_cancelled() {
            self.abort.store(true, Ordering::SeqCst);
        }
        self.abort.load(Ordering::SeqCst)
    }

    fn start(&self) -> Result<(), PluginError> {
        let url = self.settings.api_url.as_str();
        if !self.api.has_token() {
            return Err(PluginError::config(
                "testing-farm: no API token: set TESTING_FARM_API_TOKEN or the `token` option",
            ));
        }
        let identity = self
            .api
            .whoami(&self.abort)
            .map_err(|e| start_error(url, "whoami", &e))?;
        let offered = self
            .api
            .composes(&identity.ranch, &self.abort)
            .map_err(|e| start_error(url, "listing composes", &e))?;
        let compose = &self.settings.compose;
        if !compose_offered(compose, &offered) {
            let mut names: Vec<&str> = offered
                .iter()
                .filter(|(_, re)| !re)
                .map(|(n, _)| n.as_str())
                .take(8)
                .collect();
            if names.is_empty() {
                names.push("none");
            }
            return Err(PluginError::config(format!(
                "testing-farm: compose `{compose}` is not offered on the `{}` ranch of {url} (offered: {}, ...)",
                identity.ranch,
                names.join(", ")
            )));
        }
        if identity.ranch == "public" {
            let cidr = match &self.settings.raw.source_cidr {
                Some(c) => c.clone(),
                None => self.detect_source_cidr()?,
            };
            *lock(&self.source_cidr) = Some(cidr);
        }
        let key = match &self.settings.raw.ssh_key {
            Some(path) => KeyPair::from_file(path)
                .map_err(|e| PluginError::config(format!("testing-farm: {e}")))?,
            None => {
                KeyPair::generate().map_err(|e| PluginError::io(format!("testing-farm: {e}")))?
            }
        };
        *lock(&self.key_path) = Some(key.private_path());
        *lock(&self.key) = Some(key);
        info!(
            target: TARGET,
            "testing-farm: {url}, ranch {}, compose {compose} ({})",
            identity.ranch,
            self.settings.raw.arch
        );
        *lock(&self.identity) = Some(identity);
        lock(&self.state).started = true;
        Ok(())
    }

    /// The caller's public address as a CIDR, from `source_cidr_url`.
    fn detect_source_cidr(&self) -> Result<String, PluginError> {
        let url = self
            .settings
            .raw
            .source_cidr_url
            .as_deref()
            .unwrap_or(DEFAULT_SOURCE_CIDR_URL);
        let fail = |why: String| {
            PluginError::config(format!(
                "testing-farm: the public ranch needs `source_cidr` (the address machines accept ssh from) \
                 and looking it up at {url} failed: {why}; set `source_cidr` (e.g. 203.0.113.7/32) or `source_cidr_url`"
            ))
        };
        let reply = self
            .api
            .call("GET", url, false, None, &self.abort)
            .map_err(|e| fail(e.to_string()))?;
        if reply.status != 200 {
            return Err(fail(format!("HTTP {}", reply.status)));
        }
        let text = String::from_utf8_lossy(&reply.body);
        let text = text.trim();
        let cidr = match text.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => format!("{a}/32"),
            Ok(std::net::IpAddr::V6(a)) => format!("{a}/128"),
            Err(_) => {
                let shown: String = text.chars().take(40).collect();
                return Err(fail(format!("the answer is not an IP address: {shown:?}")));
            }
        };
        info!(target: TARGET, "source_cidr detected: {cidr}");
        Ok(cidr)
    }

    fn request_body(&self, ranch: &str, marker: &str) -> Result<Value, Failure> {
        let raw = &self.settings.raw;
        let key_b64 = lock(&self.key)
            .as_ref()
            .map(KeyPair::authorized_keys_base64)
            .ok_or(Failure::Aborted)?;
        let mut secrets: Map<String, Value> = raw
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose().to_string())))
            .collect();
        secrets.insert(
            "TF_RESERVATION_AUTHORIZED_KEYS_BASE64".into(),
            Value::String(key_b64),
        );
        let mut tags: Map<String, Value> = Map::new();
        tags.insert("ArtemisUseSpot".into(), "false".into());
        for (k, v) in &raw.tags {
            tags.insert(k.clone(), Value::String(v.clone()));
        }
        tags.insert(MARKER_TAG.into(), Value::String(marker.to_string()));
        let mut provisioning = Map::new();
        provisioning.insert("tags".into(), Value::Object(tags));
        let cidr = lock(&self.source_cidr).clone();
        if ranch == "public"
            && let Some(cidr) = cidr
        {
            provisioning.insert(
                "security_group_rules_ingress".into(),
                json!([{"type": "ingress", "protocol": "-1", "cidr": cidr,
                        "port_min": 0, "port_max": 65535}]),
            );
        }
        if let Some(script) = &raw.post_install_script {
            provisioning.insert("post_install_script".into(), Value::String(script.clone()));
        }
        let mut settings = Map::new();
        settings.insert("provisioning".into(), Value::Object(provisioning));
        if raw.skip_guest_setup {
            settings.insert("pipeline".into(), json!({"skip_guest_setup": true}));
        }
        let mut env = Map::new();
        env.insert("arch".into(), Value::String(raw.arch.clone()));
        env.insert("os".into(), json!({"compose": self.settings.compose}));
        if let Some(pool) = &raw.pool {
            env.insert("pool".into(), Value::String(pool.clone()));
        }
        if let Some(hw) = &raw.hardware {
            env.insert("hardware".into(), hw.clone());
        }
        if let Some(ks) = &raw.kickstart {
            env.insert("kickstart".into(), ks.clone());
        }
        if !raw.variables.is_empty() {
            env.insert("variables".into(), json!(raw.variables));
        }
        if !self.settings.artifacts.is_empty() {
            env.insert("artifacts".into(), json!(self.settings.artifacts));
        }
        if let Some(tmt) = &raw.tmt {
            env.insert("tmt".into(), tmt.clone());
        }
        env.insert("secrets".into(), Value::Object(secrets));
        env.insert("settings".into(), Value::Object(settings));
        let (url, git_ref, name) = RESERVE_TEST;
        Ok(json!({
            "test": {"fmf": {"url": url, "ref": git_ref, "path": ".", "name": name}},
            "environments": [Value::Object(env)],
            "settings": {"pipeline": {"timeout": raw.timeout}},
        }))
    }

    /// Our request with `marker`, if it exists (after a POST whose outcome
    /// is unknown).
    fn find_by_marker(
        &self,
        identity: &Identity,
        marker: &str,
        since: &str,
    ) -> Result<Option<Value>, ApiError> {
        for state in ["new", "queued", "running", "error", "complete", "canceled"] {
            let found = self
                .api
                .search_requests(state, &identity.token_id, since, &self.abort)?;
            if let Some(req) = found.into_iter().find(|r| has_marker(r, marker)) {
                info!(target: TARGET, "found the request of a POST whose reply was lost");
                return Ok(Some(req));
            }
        }
        Ok(None)
    }

    fn api_failure(&self, e: ApiError, what: &str) -> Failure {
        let url = &self.settings.api_url;
        match e {
            ApiError::Aborted => Failure::Aborted,
            ApiError::Status {
                status: 401 | 403,
                message,
            } => Failure::Fatal(format!(
                "testing-farm: the API at {url} refused the token ({what}): {message}"
            )),
            ApiError::Unreachable(m) => Failure::Fatal(format!(
                "testing-farm: the Testing Farm API at {url} is unreachable ({what}): {m}"
            )),
            other => Failure::Retry(format!("{what}: {other}")),
        }
    }

    /// Reserves one machine: submit, follow, read pipeline.log, wait for ssh.
    fn reserve(&self, ticket: &Arc<Ticket>) -> Result<Reserved, Failure> {
        let identity = lock(&self.identity).clone().ok_or(Failure::Aborted)?;
        let key_path = lock(&self.key_path).clone().ok_or(Failure::Aborted)?;
        let marker = format!("atex-{}-{}", self.instance, ticket.serial);
        let body = self.request_body(&identity.ranch, &marker)?;
        let since = iso_utc(SystemTime::now() - Duration::from_secs(300));
        let find = || self.find_by_marker(&identity, &marker, &since);
        let created = match self.api.submit_request(&body, &self.abort, &find) {
            Ok(v) => v,
            Err(ApiError::Status {
                status: 400 | 422,
                message,
            }) => {
                return Err(Failure::Fatal(format!(
                    "testing-farm: the reservation request was refused: {message}"
                )));
            }
            Err(e) => return Err(self.api_failure(e, "submitting the request")),
        };
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .ok_or_else(|| Failure::Retry("the POST reply has no valid request id".into()))?
            .to_string();
        *lock(&ticket.id) = Some(id.clone());
        if self.aborted() {
            return Err(Failure::Aborted);
        }
        info!(target: TARGET, "request {id} submitted");
        self.ctx
            .progress(format!("testing-farm: request {id} submitted"), None);

        // The request's state is asked for once per `poll` (the API); once
        // it runs, pipeline.log (the artifacts server) is followed every
        // `log_interval` with ranged GETs, so the guest line is seen soon
        // after it is written.
        let poll = self.settings.poll;
        let log_every = self.settings.log_interval.min(poll);
        let mut log = LogReader::default();
        let mut last_state = String::new();
        let mut artifacts: Option<String> = None;
        let mut next_state = Instant::now();
        let (user, host) = loop {
            if self.aborted() {
                return Err(Failure::Aborted);
            }
            if Instant::now() < next_state
                && let Some(url) = &artifacts
            {
                log.poll(&self.api, url, &self.abort)
                    .map_err(|e| self.api_failure(e, "reading pipeline.log"))?;
                if let Some(login) = log.login.clone() {
                    break login;
                }
                if !sleep_unless(&self.abort, log_every) {
                    return Err(Failure::Aborted);
                }
                continue;
            }
            next_state = Instant::now() + poll;
            let req = self
                .api
                .get_request(&id, &self.abort)
                .map_err(|e| self.api_failure(e, &format!("following request {id}")))?;
            let state = req
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            if state != last_state {
                debug!(target: TARGET, "request {id}: {state}");
                self.ctx
                    .progress(format!("testing-farm: request {id} {state}"), None);
                last_state = state.to_string();
            }
            match state {
                "new" | "queued" => {}
                "running" => {
                    if let Some(url) = req.pointer("/run/artifacts").and_then(Value::as_str) {
                        log.poll(&self.api, url, &self.abort)
                            .map_err(|e| self.api_failure(e, "reading pipeline.log"))?;
                        if let Some(login) = log.login.clone() {
                            break login;
                        }
                        artifacts = Some(url.to_string());
                    }
                }
                other => return Err(Failure::Retry(gone_reason(&id, other, &req))),
            }
            let pause = if artifacts.is_some() { log_every } else { poll };
            if !sleep_unless(&self.abort, pause) {
                return Err(Failure::Aborted);
            }
        };
        if !valid_login_part(&user) || !valid_login_part(&host) {
            return Err(Failure::Retry(format!(
                "request {id}: unusable guest address in pipeline.log: {user:?}@{host:?}"
            )));
        }
        let port = self.settings.raw.port;
        info!(target: TARGET, "request {id}: guest {user}@{host}, waiting for ssh");
        let deadline = Instant::now() + self.settings.ssh_timeout;
        let mut next_check = Instant::now() + poll;
        let mut next_log = Instant::now() + log_every;
        loop {
            if self.aborted() {
                return Err(Failure::Aborted);
            }
            // The reserve test installs our key a little after tests start.
            if log.started && probe(&key_path, &user, &host, port) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Failure::Retry(format!(
                    "request {id}: ssh to {user}@{host}:{port} with our key did not work within {:?}",
                    self.settings.ssh_timeout
                )));
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + poll;
                let req = self
                    .api
                    .get_request(&id, &self.abort)
                    .map_err(|e| self.api_failure(e, &format!("following request {id}")))?;
                let state = req
                    .get("state")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                if state != "running" {
                    return Err(Failure::Retry(gone_reason(&id, state, &req)));
                }
                if artifacts.is_none() {
                    artifacts = req
                        .pointer("/run/artifacts")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
            if !log.started
                && Instant::now() >= next_log
                && let Some(url) = &artifacts
            {
                next_log = Instant::now() + log_every;
                log.poll(&self.api, url, &self.abort)
                    .map_err(|e| self.api_failure(e, "reading pipeline.log"))?;
            }
            // Probing ssh costs no API call: try often once tests started.
            let pause = if log.started {
                Duration::from_millis(250)
            } else {
                log_every
            };
            if !sleep_unless(&self.abort, pause.min(poll)) {
                return Err(Failure::Aborted);
            }
        }
        info!(target: TARGET, "request {id}: {user}@{host}:{port} is ready");
        self.ctx
            .progress(format!("testing-farm: {user}@{host} ready"), None);
        Ok(Reserved {
            ticket: Arc::clone(ticket),
            id,
            user,
            host,
        })
    }

    /// Cancels the request of `ticket` once (DELETE).
    fn cancel(&self, ticket: &Ticket) -> Result<(), CancelError> {
        let Some(id) = lock(&ticket.id).clone() else {
            return Ok(());
        };
        if ticket.cancelled.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        match self.api.cancel_request(&id) {
            Ok(status) => {
                debug!(target: TARGET, "request {id} cancelled (HTTP {status})");
                Ok(())
            }
            Err(e) => {
                warn!(target: TARGET, "cancelling request {id}: {e}");
                Err(CancelError::Api { id, error: e })
            }
        }
    }

    /// Starts reservations while machines are wanted and slots are free.
    fn schedule(self: &Arc<Self>, st: &mut State) {
        st.threads.retain(|t| !t.is_finished());
        let max = self.settings.raw.max;
        while st.started
            && !st.stopped
            && st.fatal.is_none()
            && st.pending > 0
            && (st.reserving + st.active).saturating_add(st.ready.len() as u32) < max
        {
            st.pending -= 1;
            st.reserving += 1;
            let ticket = Arc::new(Ticket {
                serial: self.serial.fetch_add(1, Ordering::SeqCst) + 1,
                id: Mutex::new(None),
                cancelled: AtomicBool::new(false),
            });
            st.tickets.push(Arc::clone(&ticket));
            let shared = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name(format!("tf-reserve-{}", ticket.serial))
                .spawn(move || shared.reservation_thread(ticket));
            match spawned {
                Ok(handle) => st.threads.push(handle),
                Err(e) => {
                    st.reserving -= 1;
                    st.fatal = Some(format!("testing-farm: cannot start a thread: {e}"));
                }
            }
        }
    }

    fn reservation_thread(self: Arc<Self>, ticket: Arc<Ticket>) {
        let result = self.reserve(&ticket);
        let outcome = match result {
            Ok(reserved) => {
                let mut st = lock(&self.state);
                if st.stopped {
                    drop(st);
                    let _ = self.cancel(&ticket);
                } else {
                    st.ready.push_back(reserved);
                }
                None
            }
            Err(failure) => {
                let _ = self.cancel(&ticket);
                lock(&self.state)
                    .tickets
                    .retain(|t| !Arc::ptr_eq(t, &ticket));
                Some(failure)
            }
        };
        let mut st = lock(&self.state);
        st.reserving = st.reserving.saturating_sub(1);
        match outcome {
            None | Some(Failure::Aborted) => {}
            Some(Failure::Fatal(reason)) => {
                warn!(target: TARGET, "{reason}");
                st.fatal.get_or_insert(reason);
            }
            Some(Failure::Retry(reason)) if st.stopped => {
                debug!(target: TARGET, "after stop: {reason}");
            }
            Some(Failure::Retry(reason)) => {
                if st.retries_left > 0 {
                    st.retries_left -= 1;
                    st.pending = st.pending.saturating_add(1);
                    warn!(
                        target: TARGET,
                        "reservation failed: {reason}; replacing it ({} retries left)",
                        st.retries_left
                    );
                } else {
                    let total = self.settings.raw.retries + 1;
                    let msg = format!(
                        "testing-farm: no machine after {total} failed reservation(s); last: {reason}"
                    );
                    warn!(target: TARGET, "{msg}");
                    st.fatal.get_or_insert(msg);
                }
            }
        }
        self.schedule(&mut st);
        self.changed.notify_all();
    }
}

fn has_marker(req: &Value, marker: &str) -> bool {
    req.get("environments_requested")
        .and_then(Value::as_array)
        .is_some_and(|envs| {
            envs.iter().any(|e| {
                e.pointer(&format!("/settings/provisioning/tags/{MARKER_TAG}"))
                    .and_then(Value::as_str)
                    == Some(marker)
            })
        })
}

/// Why a request that should hold a machine does not.
fn gone_reason(id: &str, state: &str, req: &Value) -> String {
    let summary = req
        .pointer("/result/summary")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            let notes: Vec<&str> = req
                .get("notes")
                .and_then(Value::as_array)
                .map(|n| {
                    n.iter()
                        .filter_map(|n| n.get("message").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            (!notes.is_empty()).then(|| notes.join("; "))
        })
        .unwrap_or_else(|| "no reason given".into());
    match state {
        "error" => format!("request {id} ended in error: {summary}"),
        "canceled" | "cancel-requested" => format!("request {id} was canceled: {summary}"),
        "complete" => format!("request {id} completed before the machine was ready: {summary}"),
        other => format!("request {id} is in state `{other}`: {summary}"),
    }
}

static GUEST_READY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"\] Guest is ready: ArtemisGuest\([^,]+, ([^\s@,]+)@([^,]+), arch=").ok()
});
static TESTS_STARTED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\] starting tests execution").ok());
static ANSI: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\x1b\[[0-9;]*[A-Za-z]").ok());

/// Reads pipeline.log incrementally: HEAD until it exists, then ranged GETs.
#[derive(Default)]
struct LogReader {
    exists: bool,
    offset: u64,
    partial: Vec<u8>,
    login: Option<(String, String)>,
    started: bool,
}

impl LogReader {
    fn poll(&mut self, api: &Api, artifacts: &str, abort: &AtomicBool) -> Result<(), ApiError> {
        let url = format!("{}/pipeline.log", artifacts.trim_end_matches('/'));
        if !self.exists {
            let head = api.call("HEAD", &url, false, None, abort)?;
            match head.status {
                200 => self.exists = true,
                // TF creates the directory before the file.
                403 | 404 => return Ok(()),
                status => {
                    return Err(ApiError::Status {
                        status,
                        message: "HEAD pipeline.log".into(),
                    });
                }
            }
        }
        let reply = api.call("GET", &url, false, Some(self.offset), abort)?;
        let new: &[u8] = match reply.status {
            206 => &reply.body,
            416 | 403 | 404 => &[],
            // No Range support: skip what was read already.
            200 => reply
                .body
                .get(usize::try_from(self.offset).unwrap_or(usize::MAX)..)
                .unwrap_or(&[]),
            status => {
                return Err(ApiError::Status {
                    status,
                    message: "GET pipeline.log".into(),
                });
            }
        };
        self.offset += new.len() as u64;
        self.partial.extend_from_slice(new);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            self.line(&String::from_utf8_lossy(&line));
        }
        Ok(())
    }

    fn line(&mut self, raw: &str) {
        let line = match ANSI.as_ref() {
            Some(re) => re.replace_all(raw, ""),
            None => raw.into(),
        };
        if self.login.is_none()
            && let Some(c) = GUEST_READY.as_ref().and_then(|re| re.captures(&line))
        {
            self.login = Some((c[1].to_string(), c[2].trim().to_string()));
        }
        if self.login.is_some() && TESTS_STARTED.as_ref().is_some_and(|re| re.is_match(&line)) {
            self.started = true;
        }
    }
}

impl ProvisionerImpl for TestingFarmProvisioner {
    type Remote = TestingFarmRemote;

    fn start(&self) -> Result<(), PluginError> {
        self.shared.start()
    }

    fn provision(&self, count: u32) {
        let mut st = lock(&self.shared.state);
        st.pending = st.pending.saturating_add(count);
        self.shared.schedule(&mut st);
        self.shared.changed.notify_all();
    }

    fn get_remote(&self, timeout: Duration) -> Result<Option<TestingFarmRemote>, PluginError> {
        let deadline = Instant::now().checked_add(timeout);
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        loop {
            if st.stopped {
                return Err(PluginError::remote(
                    "testing-farm: the provisioner is stopped",
                ));
            }
            if !st.started {
                return Err(PluginError::remote("testing-farm: start() was not called"));
            }
            if let Some(r) = st.ready.pop_front() {
                st.active += 1;
                let key = lock(&shared.key_path).clone();
                return Ok(Some(TestingFarmRemote {
                    shared: Arc::clone(shared),
                    name: format!("testing-farm-{}-{}", r.ticket.serial, short(&r.id)),
                    key,
                    reserved: r,
                    released: AtomicBool::new(false),
                    last_check: Mutex::new(None),
                }));
            }
            if let Some(fatal) = &st.fatal {
                return Err(PluginError::remote(fatal.clone()));
            }
            if shared.ctx.is_cancelled() {
                return Ok(None);
            }
            shared.schedule(&mut st);
            let mut wait = Duration::from_millis(200);
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                wait = wait.min(left);
            }
            st = shared
                .changed
                .wait_timeout(st, wait)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }

    fn clear(&self) {
        lock(&self.shared.state).pending = 0;
    }

    fn max_remotes(&self) -> Option<u32> {
        Some(self.shared.settings.raw.max)
    }

    fn stop(&self) -> Result<(), PluginError> {
        let shared = &self.shared;
        shared.abort.store(true, Ordering::SeqCst);
        let (tickets, threads) = {
            let mut st = lock(&shared.state);
            st.stopped = true;
            st.pending = 0;
            st.ready.clear();
            shared.changed.notify_all();
            (
                std::mem::take(&mut st.tickets),
                std::mem::take(&mut st.threads),
            )
        };
        if !tickets.is_empty() {
            info!(target: TARGET, "cancelling {} request(s)", tickets.len());
        }
        // Up to 10 DELETEs at once.
        let mut errors: Vec<String> = Vec::new();
        for chunk in tickets.chunks(10) {
            let results: Vec<Result<(), CancelError>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk.iter().map(|t| s.spawn(|| shared.cancel(t))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Err(CancelError::Panicked)))
                    .collect()
            });
            errors.extend(
                results
                    .into_iter()
                    .filter_map(|r| r.err().map(|e| e.to_string())),
            );
        }
        // Reservation threads notice the abort within a poll; each cancels
        // a request it created after the list above was taken.
        let deadline = Instant::now() + Duration::from_secs(60);
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                warn!(target: TARGET, "a reservation thread did not finish in time");
            }
        }
        // Whatever was added meanwhile (a machine that became ready).
        let late = std::mem::take(&mut lock(&shared.state).tickets);
        for t in &late {
            if let Err(e) = shared.cancel(t) {
                errors.push(e.to_string());
            }
        }
        lock(&shared.key).take();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PluginError::remote(format!(
                "testing-farm: could not cancel {} request(s): {}",
                errors.len(),
                errors.join("; ")
            )))
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A reserved Testing Farm machine.
pub struct TestingFarmRemote {
    shared: Arc<Shared>,
    name: String,
    key: Option<PathBuf>,
    reserved: Reserved,
    released: AtomicBool,
    last_check: Mutex<Option<(Instant, bool)>>,
}

impl TestingFarmRemote {
    /// The Testing Farm request id behind it.
    pub fn request_id(&self) -> &str {
        &self.reserved.id
    }
}

impl RemoteImpl for TestingFarmRemote {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn platform(&self) -> String {
        self.shared.settings.platform.clone()
    }

    fn connection(&self) -> Result<Connection, PluginError> {
        Ok(Connection::ssh(SshTarget {
            host: RString::from(self.reserved.host.as_str()),
            port: self.shared.settings.raw.port,
            user: RString::from(self.reserved.user.as_str()),
            identity_file: match &self.key {
                Some(k) => ROption::RSome(RString::from(k.to_string_lossy().as_ref())),
                None => ROption::RNone,
            },
            options: RVec::new(),
        }))
    }

    fn alive(&self) -> Result<bool, PluginError> {
        if self.released.load(Ordering::SeqCst)
            || self.reserved.ticket.cancelled.load(Ordering::SeqCst)
            || lock(&self.shared.state).stopped
        {
            return Ok(false);
        }
        let mut last = lock(&self.last_check);
        if let Some((at, alive)) = *last
            && at.elapsed() < self.shared.settings.poll
        {
            return Ok(alive);
        }
        let never = AtomicBool::new(false);
        let req = self
            .shared
            .api
            .get_request(&self.reserved.id, &never)
            .map_err(|e| {
                PluginError::new(
                    ErrorKind::REMOTE,
                    format!("testing-farm: request {}: {e}", self.reserved.id),
                )
            })?;
        let state = req.get("state").and_then(Value::as_str).unwrap_or("");
        let alive = ALIVE_STATES.contains(&state);
        *last = Some((Instant::now(), alive));
        Ok(alive)
    }

    fn release(&self) -> Result<(), PluginError> {
        if self.released.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let result = self.shared.cancel(&self.reserved.ticket);
        {
            let mut st = lock(&self.shared.state);
            st.active = st.active.saturating_sub(1);
            st.tickets
                .retain(|t| !Arc::ptr_eq(t, &self.reserved.ticket));
            self.shared.schedule(&mut st);
            self.shared.changed.notify_all();
        }
        result.map_err(|e| PluginError::remote(format!("testing-farm: {e}")))
    }
}

/// A request could not be cancelled.
#[derive(Debug, thiserror::Error)]
enum CancelError {
    /// The API refused or could not be reached.
    #[error("request {id}: {error}")]
    Api {
        /// The request.
        id: String,
        /// What the API said.
        error: ApiError,
    },
    /// The cancelling thread panicked.
    #[error("cancel panicked")]
    Panicked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_compile() {
        assert!(GUEST_READY.is_some() && TESTS_STARTED.is_some() && ANSI.is_some());
    }

    #[test]
    fn log_lines_give_the_login() {
        let mut r = LogReader::default();
        r.line("[10:15:01] [+] [Fedora-Rawhide:x86_64:/testing-farm/reserve] Guest is being provisioned\n");
        assert!(r.login.is_none());
        r.line("[10:18:33] [+] [F:x86_64:/r] \x1b[32mGuest is ready: ArtemisGuest(5b1e2, root@127.0.0.101, arch=x86_64,compose=F,snapshots=False)\x1b[0m\n");
        assert_eq!(
            r.login,
            Some(("root".to_string(), "127.0.0.101".to_string()))
        );
        assert!(!r.started);
        r.line("[10:18:40] [+] [F:x86_64:/r] starting tests execution\n");
        assert!(r.started);
    }

    #[test]
    fn regex_composes_match_whole_names() {
        let offered = vec![
            ("Fedora-Rawhide".to_string(), false),
            ("RHEL-9\\.[0-9]+.*".to_string(), true),
        ];
        assert!(compose_offered("Fedora-Rawhide", &offered));
        assert!(compose_offered("RHEL-9.6.0-Nightly", &offered));
        assert!(!compose_offered("Fedora-Rawhide2", &offered));
        assert!(!compose_offered("xRHEL-9.6", &offered));
    }

    #[test]
    fn gone_reasons_name_the_summary() {
        let req = json!({"state": "error", "result": {"summary": "no capacity"}});
        assert_eq!(
            gone_reason("abc", "error", &req),
            "request abc ended in error: no capacity"
        );
        let req = json!({"state": "canceled", "notes": [{"message": "a"}, {"message": "b"}]});
        assert_eq!(
            gone_reason("abc", "canceled", &req),
            "request abc was canceled: a; b"
        );
    }

    #[test]
    fn marker_is_found_in_tags() {
        let req = json!({"environments_requested": [{"settings": {"provisioning": {"tags": {MARKER_TAG: "m-1"}}}}]});
        assert!(has_marker(&req, "m-1"));
        assert!(!has_marker(&req, "m-2"));
        assert!(!has_marker(&json!({"environments_requested": null}), "m-1"));
    }
}

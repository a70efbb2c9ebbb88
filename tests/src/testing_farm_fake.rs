//! A local Testing Farm: the API endpoints the testing-farm plugin uses,
//! with the real state machine and JSON shapes, an artifacts server whose
//! `pipeline.log` grows as the real one does, and real machines: each
//! reservation starts a container running sshd on port 22 of its own
//! loopback address (`127.0.0.N`), with the submitted key installed a
//! moment after "starting tests execution", so the client sees
//! `root@127.0.0.N` exactly as it would see a real guest.
//!
//! Every HTTP call is recorded; faults are injected on demand through
//! [`FakeTf::faults`].
//!
//! Endpoints (`http://127.0.0.1:PORT`): `GET /v0.1/about`,
//! `GET /v0.1/whoami`, `GET /v0.2/composes/{ranch}`,
//! `GET /v0.1/composes[/{ranch}]`, `POST /v0.1/requests`,
//! `GET /v0.1/requests/{id}`, `GET /v0.1/requests?state=…`,
//! `DELETE /v0.1/requests/{id}`, and, outside the TF API, `GET /myip`
//! (the caller's address as text, as a "what is my IP" service answers).
//! Artifacts (`http://127.0.0.1:PORT2`):
//! `HEAD`/`GET /{id}/pipeline.log` with `Range: bytes=N-` (206/416).

use std::{
    collections::{BTreeSet, HashMap},
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use atex_plugin_api::time::UtcTime;
use serde_json::{Value, json};

/// The image every fake machine runs (tests/images/build.sh ssh).
pub const SSH_IMAGE: &str = "localhost/atex-test-ssh:bookworm";
/// The label on every container the fake starts.
pub const CONTAINER_LABEL: &str = "atex.test=testing-farm-fake";
/// The token the fake accepts by default (ranch `public`).
pub const TOKEN: &str = "fake-tf-token-0123456789";
/// A second token of the `public` ranch, of another user.
pub const OTHER_TOKEN: &str = "fake-tf-token-other";
/// A token of the `redhat` ranch (no ingress rules needed there).
pub const REDHAT_TOKEN: &str = "fake-tf-token-redhat";
/// A token the fake answers "Token has expired" for.
pub const EXPIRED_TOKEN: &str = "fake-tf-token-expired";
/// Composes offered: plain names and one regex.
pub const COMPOSES: &[(&str, &str)] = &[
    ("Fedora-Rawhide", "compose"),
    ("Fedora-42", "compose"),
    ("CentOS-Stream-9", "compose"),
    ("RHEL-9\\.[0-9]+\\.0-Nightly", "regex"),
];

pub use crate::containers_conf;
use crate::podman;

/// Builds the ssh image if missing (idempotent).
pub fn ensure_ssh_image() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/images/build.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("ssh")
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("run tests/images/build.sh");
    assert!(
        out.status.success(),
        "build.sh ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Timings of the fake worker.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// How often the worker looks at a request (cancel latency).
    pub tick: Duration,
    /// Time in `new`.
    pub new_delay: Duration,
    /// Time in `queued`.
    pub queue_delay: Duration,
    /// From `Guest is being provisioned` to the machine being started (a
    /// real guest takes minutes here).
    pub provision_delay: Duration,
    /// From `starting tests execution` to the key being installed.
    pub key_delay: Duration,
    /// Between `Reservation tick` lines in pipeline.log.
    pub log_tick: Duration,
    /// First loopback host number tried (127.0.0.N).
    pub first_host: u8,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            tick: Duration::from_millis(100),
            new_delay: Duration::from_millis(200),
            queue_delay: Duration::from_millis(500),
            provision_delay: Duration::ZERO,
            key_delay: Duration::from_millis(500),
            log_tick: Duration::from_secs(1),
            first_host: 100,
        }
    }
}

/// Faults to inject; each counter is used up one event at a time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N API calls answer 429 with `Retry-After: retry_after`.
    pub rate_limit: u32,
    /// Seconds in `Retry-After`.
    pub retry_after: u64,
    /// The next N API calls answer 500/502/503 (in turn).
    pub server_errors: u32,
    /// The next N POSTs create the request, then close the connection
    /// without an answer.
    pub drop_post_responses: u32,
    /// The next N API calls hang for `hang_for`, then close without an answer.
    pub hang: u32,
    /// How long a hung call hangs.
    pub hang_for: Duration,
    /// The next N requests end in `error` (with `error_summary`) after the queue.
    pub error_requests: u32,
    /// The reason given for those.
    pub error_summary: String,
    /// The next N machines never get the key installed (ssh never works).
    pub ssh_never_up: u32,
    /// HEAD of a new pipeline.log answers 404 this many times first.
    pub log_404: u32,
    /// Extra time in `queued` for every request from now on.
    pub slow_queue: Duration,
}

/// One recorded HTTP call.
#[derive(Debug, Clone)]
pub struct Call {
    /// `api` or `artifacts`.
    pub server: &'static str,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Status sent; 0 when no answer was sent (dropped or hung).
    pub status: u16,
    /// Whether it carried a valid token.
    pub authorized: bool,
    /// The `Authorization` header as received (to check nothing else leaks).
    pub body_len: usize,
}

/// What the fake knows about one request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The request id.
    pub id: String,
    /// Its state now.
    pub state: String,
    /// Every state it went through.
    pub history: Vec<String>,
    /// DELETEs received for it.
    pub deletes: u32,
    /// The `AtexReservation` tag it carried.
    pub marker: Option<String>,
    /// The address of its machine, once it had one.
    pub address: Option<Ipv4Addr>,
    /// The submitted body.
    pub body: Value,
    /// When pipeline.log got the `Guest is ready` line.
    pub ready_at: Option<Instant>,
    /// When the stand-in started installing the submitted key (its
    /// `podman exec`), once it did.
    pub key_at: Option<Instant>,
}

struct Req {
    id: String,
    token_id: String,
    user_id: String,
    body: Value,
    state: String,
    history: Vec<String>,
    created: String,
    updated: String,
    created_at: SystemTime,
    result: Value,
    run: Value,
    notes: Vec<Value>,
    deletes: u32,
    log: Vec<u8>,
    log_exists: bool,
    head_404_left: u32,
    container: Option<String>,
    address: Option<Ipv4Addr>,
    queued_at: Option<Instant>,
    running_at: Option<Instant>,
    fail_with: Option<String>,
    ssh_never_up: bool,
    ready_at: Option<Instant>,
    key_at: Option<Instant>,
}

impl Req {
    fn set_state(&mut self, s: &str) {
        self.state = s.to_string();
        self.history.push(s.to_string());
        self.updated = iso_micro(SystemTime::now());
    }

    fn log_line(&mut self, msg: &str) {
        let compose = self
            .body
            .pointer("/environments/0/os/compose")
            .and_then(Value::as_str)
            .unwrap_or("none");
        let arch = self
            .body
            .pointer("/environments/0/arch")
            .and_then(Value::as_str)
            .unwrap_or("x86_64");
        let line = format!(
            "[{}] [+] [{compose}:{arch}:/testing-farm/reserve] {msg}\n",
            hms(SystemTime::now())
        );
        self.log.extend_from_slice(line.as_bytes());
        self.log_exists = true;
    }

    fn json(&self, owner: bool) -> Value {
        let mut envs = self
            .body
            .get("environments")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        if !owner && let Some(list) = envs.as_array_mut() {
            for env in list {
                if let Some(Value::Object(secrets)) = env.get_mut("secrets") {
                    for v in secrets.values_mut() {
                        *v = Value::String("hidden".into());
                    }
                }
                if let Some(Value::Object(vars)) = env.pointer_mut("/tmt/environment") {
                    for v in vars.values_mut() {
                        *v = Value::String("hidden".into());
                    }
                }
            }
        }
        let fmf = self
            .body
            .pointer("/test/fmf")
            .cloned()
            .unwrap_or(Value::Null);
        let field = |k: &str| fmf.get(k).cloned().unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "token_id": self.token_id,
            "test": {
                "fmf": {"url": field("url"), "ref": field("ref"), "merge_sha": field("merge_sha"),
                        "path": field("path"), "name": field("name"), "settings": field("settings"),
                        "plan_filter": field("plan_filter"), "test_filter": field("test_filter")},
                "script": null, "sti": null,
            },
            "state": self.state,
            "environments_requested": envs,
            "notes": self.notes,
            "result": self.result,
            "run": self.run,
            "settings": self.body.get("settings").cloned().unwrap_or(Value::Null),
            "user": {"webpage": null},
            "queued_time": self.queued_at.map_or(0.0, |q| q.elapsed().as_secs_f64()),
            "run_time": self.running_at.map_or(0.0, |r| r.elapsed().as_secs_f64()),
            "created": self.created,
            "updated": self.updated,
        })
    }
}

struct Token {
    secret: String,
    id: String,
    user_id: String,
    ranch: String,
}

struct Inner {
    opts: FakeOptions,
    instance: String,
    artifacts_base: Mutex<String>,
    tokens: Vec<Token>,
    faults: Mutex<Faults>,
    calls: Mutex<Vec<Call>>,
    requests: Mutex<Vec<Req>>,
    changed: Condvar,
    shutdown: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    error_cycle: Mutex<u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running fake. Dropping it stops the servers and removes every
/// container it started.
pub struct FakeTf {
    inner: Arc<Inner>,
    api_addr: String,
    artifacts_addr: String,
    servers: Vec<JoinHandle<()>>,
}

/// Loopback hosts in use by fakes of this process.
static HOSTS: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

impl FakeTf {
    /// Starts the fake with default timings.
    pub fn start() -> FakeTf {
        Self::with_options(FakeOptions::default())
    }

    /// Starts the fake.
    pub fn with_options(opts: FakeOptions) -> FakeTf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let instance = format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff_ffff);
        let inner = Arc::new(Inner {
            opts,
            instance,
            artifacts_base: Mutex::new(String::new()),
            tokens: vec![
                Token {
                    secret: TOKEN.into(),
                    id: uuid4(),
                    user_id: uuid4(),
                    ranch: "public".into(),
                },
                Token {
                    secret: OTHER_TOKEN.into(),
                    id: uuid4(),
                    user_id: uuid4(),
                    ranch: "public".into(),
                },
                Token {
                    secret: REDHAT_TOKEN.into(),
                    id: uuid4(),
                    user_id: uuid4(),
                    ranch: "redhat".into(),
                },
            ],
            faults: Mutex::new(Faults::default()),
            calls: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
            error_cycle: Mutex::new(0),
        });
        let api = TcpListener::bind("127.0.0.1:0").expect("bind api");
        let art = TcpListener::bind("127.0.0.1:0").expect("bind artifacts");
        let api_addr = format!("http://{}", api.local_addr().expect("addr"));
        let artifacts_addr = format!("http://{}", art.local_addr().expect("addr"));
        *lock(&inner.artifacts_base) = artifacts_addr.clone();
        let servers = vec![
            serve(Arc::clone(&inner), api, "api"),
            serve(Arc::clone(&inner), art, "artifacts"),
        ];
        FakeTf {
            inner,
            api_addr,
            artifacts_addr,
            servers,
        }
    }

    /// The API base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.api_addr
    }

    /// The artifacts server base URL.
    pub fn artifacts_url(&self) -> &str {
        &self.artifacts_addr
    }

    /// Changes the faults.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.inner.faults));
    }

    /// Submits a reservation of `compose` as the holder of `token`,
    /// through the same code as `POST /v0.1/requests`, and returns its id.
    /// With [`Faults::slow_queue`] set first, it stays `queued` (no machine).
    pub fn submit_as(&self, token: &str, compose: &str) -> String {
        let token = self
            .inner
            .tokens
            .iter()
            .find(|t| t.secret == token)
            .expect("a token the fake knows");
        let body = json!({
            "test": {"fmf": {"url": "https://gitlab.com/testing-farm/tests", "ref": "main",
                             "name": "/testing-farm/reserve"}},
            "environments": [{"arch": "x86_64", "os": {"compose": compose}}],
        });
        let bytes = serde_json::to_vec(&body).expect("json");
        match submit(&self.inner, token, &bytes) {
            Answer::Send(r) if r.status == 200 => {
                let v: Value = serde_json::from_slice(&r.body).expect("reply json");
                v["id"].as_str().expect("id").to_string()
            }
            _ => panic!("the fake refused its own request"),
        }
    }

    /// The state of request `id` now.
    pub fn state_of(&self, id: &str) -> Option<String> {
        lock(&self.inner.requests)
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.state.clone())
    }

    /// Every HTTP call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner.calls).clone()
    }

    /// Every request so far, in creation order.
    pub fn requests(&self) -> Vec<RequestInfo> {
        lock(&self.inner.requests)
            .iter()
            .map(|r| RequestInfo {
                id: r.id.clone(),
                state: r.state.clone(),
                history: r.history.clone(),
                deletes: r.deletes,
                marker: r
                    .body
                    .pointer("/environments/0/settings/provisioning/tags/AtexReservation")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                address: r.address,
                body: r.body.clone(),
                ready_at: r.ready_at,
                key_at: r.key_at,
            })
            .collect()
    }

    /// Containers of this fake that still exist.
    pub fn live_containers(&self) -> Vec<String> {
        list_containers(&self.inner.instance)
    }

    /// The label value that marks this fake's containers (`atex.tf-fake=`).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Waits until no request is alive and every container is gone.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let busy = lock(&self.inner.requests).iter().any(|r| {
                matches!(
                    r.state.as_str(),
                    "new" | "queued" | "running" | "cancel-requested"
                ) || r.container.is_some()
            });
            if !busy && self.live_containers().is_empty() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts the end state of a run: no duplicates (each marker once),
    /// every request that got a machine or was waiting for one cancelled by
    /// a DELETE, nothing alive, no container left.
    pub fn assert_all_cancelled(&self) {
        assert!(
            self.wait_settled(Duration::from_secs(30)),
            "requests or containers still alive: {:#?}",
            self.requests()
                .iter()
                .map(|r| (&r.id, &r.state))
                .collect::<Vec<_>>()
        );
        let reqs = self.requests();
        let mut markers = BTreeSet::new();
        for r in &reqs {
            let m = r.marker.clone().unwrap_or_else(|| r.id.clone());
            assert!(
                markers.insert(m),
                "duplicate request for marker of {}",
                r.id
            );
            match r.state.as_str() {
                "canceled" => assert!(r.deletes >= 1, "{} canceled without DELETE", r.id),
                "error" => {}
                other => panic!("request {} ended in {other}: {:?}", r.id, r.history),
            }
        }
    }
}

impl Drop for FakeTf {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.changed.notify_all();
        for addr in [&self.api_addr, &self.artifacts_addr] {
            let _ = TcpStream::connect(addr.trim_start_matches("http://"));
        }
        for s in self.servers.drain(..) {
            let _ = s.join();
        }
        let workers = std::mem::take(&mut *lock(&self.inner.workers));
        for w in workers {
            let _ = w.join();
        }
        remove_containers(&list_containers(&self.inner.instance));
        let mut hosts = lock(&HOSTS);
        for r in lock(&self.inner.requests).iter() {
            if let Some(a) = r.address {
                hosts.remove(&a.octets()[3]);
            }
        }
    }
}

fn list_containers(instance: &str) -> Vec<String> {
    let out = podman()
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=atex.tf-fake={instance}"))
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn remove_containers(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = podman()
        .args(["rm", "-f", "-t", "0"])
        .args(ids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes containers of fakes in this or earlier test processes.
pub fn remove_all_fake_containers() {
    let out = podman()
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label={CONTAINER_LABEL}"))
        .output();
    if let Ok(o) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        remove_containers(&ids);
    }
}

// ---------------------------------------------------------------- HTTP

struct HttpRequest {
    /// The caller's address.
    peer: String,
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct HttpResponse {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn json(status: u16, v: &Value) -> Self {
        HttpResponse {
            status,
            content_type: "application/json",
            headers: vec![],
            body: v.to_string().into_bytes(),
        }
    }
    fn empty(status: u16) -> Self {
        HttpResponse {
            status,
            content_type: "",
            headers: vec![],
            body: vec![],
        }
    }
}

/// What to do with a connection.
enum Answer {
    Send(HttpResponse),
    /// Close without an answer.
    Drop,
    /// Wait, then close without an answer.
    Hang(Duration),
}

fn serve(inner: Arc<Inner>, listener: TcpListener, server: &'static str) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if inner.shutdown.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else { continue };
            let inner = Arc::clone(&inner);
            std::thread::spawn(move || handle_conn(&inner, stream, server));
        }
    })
}

fn read_request(stream: &TcpStream) -> Option<HttpRequest> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(16 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        peer: stream
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn handle_conn(inner: &Arc<Inner>, mut stream: TcpStream, server: &'static str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&stream) else {
        return;
    };
    let authorized = token_of(inner, &req).is_some();
    let answer = if server == "api" {
        api(inner, &req)
    } else {
        Answer::Send(artifacts(inner, &req))
    };
    let status = match &answer {
        Answer::Send(r) => r.status,
        _ => 0,
    };
    lock(&inner.calls).push(Call {
        server,
        method: req.method.clone(),
        path: req.target.clone(),
        status,
        authorized,
        body_len: req.body.len(),
    });
    match answer {
        Answer::Drop => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Answer::Hang(d) => {
            let end = Instant::now() + d;
            while Instant::now() < end && !inner.shutdown.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Answer::Send(resp) => {
            let mut head = format!(
                "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                resp.status,
                reason(resp.status),
                resp.body.len()
            );
            if !resp.content_type.is_empty() {
                head.push_str(&format!("Content-Type: {}\r\n", resp.content_type));
            }
            for (k, v) in &resp.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            if req.method != "HEAD" {
                let _ = stream.write_all(&resp.body);
            }
            let _ = stream.flush();
        }
    }
}

fn token_of<'a>(inner: &'a Inner, req: &HttpRequest) -> Option<&'a Token> {
    let auth = req.headers.get("authorization")?;
    let t = auth.strip_prefix("Bearer ")?;
    inner.tokens.iter().find(|k| k.secret == t)
}

fn unauthorized(req: &HttpRequest) -> HttpResponse {
    let expired = req
        .headers
        .get("authorization")
        .is_some_and(|a| a.ends_with(EXPIRED_TOKEN));
    HttpResponse::json(
        401,
        &json!({"message": if expired { "Token has expired" } else { "Not authorized to perform this action" }}),
    )
}

fn query(target: &str) -> (String, HashMap<String, String>) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let params = q
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%3a", ":")))
        .collect();
    (path.to_string(), params)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            matches!(i, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
        })
}

fn api(inner: &Arc<Inner>, req: &HttpRequest) -> Answer {
    {
        let mut f = lock(&inner.faults);
        if f.hang > 0 {
            f.hang -= 1;
            return Answer::Hang(f.hang_for);
        }
        if f.rate_limit > 0 {
            f.rate_limit -= 1;
            let mut r = HttpResponse::json(429, &json!({"message": "Too many requests"}));
            r.headers
                .push(("Retry-After".into(), f.retry_after.to_string()));
            return Answer::Send(r);
        }
        if f.server_errors > 0 {
            f.server_errors -= 1;
            let mut cycle = lock(&inner.error_cycle);
            *cycle += 1;
            let status = [500, 502, 503][(*cycle % 3) as usize];
            return Answer::Send(HttpResponse::json(
                status,
                &json!({"message": "The service is temporarily unavailable"}),
            ));
        }
    }
    let (path, params) = query(&req.target);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let token = token_of(inner, req);
    let resp = match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["myip"]) => HttpResponse {
            status: 200,
            content_type: "text/plain",
            headers: vec![],
            body: format!("{}\n", req.peer).into_bytes(),
        },
        ("GET", ["v0.1", "about"]) => HttpResponse::json(
            200,
            &json!({"version": "0.1.0-fake", "release_notes": "https://docs.testing-farm.io/"}),
        ),
        ("GET", ["v0.1", "whoami"]) => match token {
            Some(t) => HttpResponse::json(
                200,
                &json!({
                    "token": {"enabled": true, "id": t.id, "name": "atex-tests", "ranch": t.ranch,
                              "role": "user", "user_id": t.user_id},
                    "user": {"auth_id": "atex", "auth_method": "fake", "auth_name": "atex",
                             "enabled": true, "id": t.user_id},
                }),
            ),
            None => unauthorized(req),
        },
        ("GET", ["v0.2", "composes", ranch]) => HttpResponse::json(
            200,
            &json!({"composes": COMPOSES.iter().filter(|_| matches!(*ranch, "public" | "redhat"))
                .map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>()}),
        ),
        ("GET", ["v0.1", "composes", ..]) => HttpResponse::json(
            200,
            &json!({"composes": COMPOSES.iter().map(|(n, _)| json!({"name": n})).collect::<Vec<_>>()}),
        ),
        ("POST", ["v0.1", "requests"]) => match token {
            None => unauthorized(req),
            Some(t) => return submit(inner, t, &req.body),
        },
        ("GET", ["v0.1", "requests"]) => search(inner, &params),
        ("GET", ["v0.1", "requests", id]) => {
            if !is_uuid(id) {
                HttpResponse::json(
                    422,
                    &json!({"detail": [{"loc": ["path", "request_id"], "msg": "value is not a valid uuid", "type": "type_error.uuid"}]}),
                )
            } else {
                let reqs = lock(&inner.requests);
                match reqs.iter().find(|r| r.id == *id) {
                    Some(r) => {
                        let owner = token.is_some_and(|t| t.id == r.token_id);
                        HttpResponse::json(200, &r.json(owner))
                    }
                    None => HttpResponse::json(404, &json!({"message": "No such entity"})),
                }
            }
        }
        ("DELETE", ["v0.1", "requests", id]) => match token {
            None => unauthorized(req),
            Some(t) => cancel(inner, t, id),
        },
        _ => HttpResponse::json(404, &json!({"detail": "Not Found"})),
    };
    Answer::Send(resp)
}

fn compose_offered(compose: &str) -> bool {
    COMPOSES.iter().any(|(n, t)| {
        if *t == "regex" {
            regex_lite_match(n, compose)
        } else {
            n == &compose
        }
    })
}

/// The only regex in [`COMPOSES`]: `RHEL-9\.[0-9]+\.0-Nightly`.
fn regex_lite_match(_re: &str, s: &str) -> bool {
    s.strip_prefix("RHEL-9.")
        .and_then(|r| r.strip_suffix(".0-Nightly"))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn submit(inner: &Arc<Inner>, token: &Token, body: &[u8]) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Answer::Send(HttpResponse::json(
            400,
            &json!({"message": "Request body is not valid JSON."}),
        ));
    };
    let test = body.get("test");
    let has_test = ["fmf", "tmt", "sti"]
        .iter()
        .any(|k| test.and_then(|t| t.get(k)).is_some_and(Value::is_object));
    if !has_test {
        return Answer::Send(HttpResponse::json(
            400,
            &json!({"message": "Test section is empty or test type is wrong."}),
        ));
    }
    let envs_ok = body
        .get("environments")
        .and_then(Value::as_array)
        .is_some_and(|e| {
            !e.is_empty()
                && e.iter()
                    .all(|e| e.get("arch").is_some_and(Value::is_string))
        });
    if !envs_ok {
        return Answer::Send(HttpResponse::json(
            422,
            &json!({"detail": [{"loc": ["body", "environments", 0, "arch"], "msg": "field required", "type": "value_error.missing"}]}),
        ));
    }
    let (fail_with, ssh_never_up, drop_reply) = {
        let mut f = lock(&inner.faults);
        let fail = (f.error_requests > 0).then(|| {
            f.error_requests -= 1;
            if f.error_summary.is_empty() {
                "Guest provisioning failed: no capacity in the pool".to_string()
            } else {
                f.error_summary.clone()
            }
        });
        let never = f.ssh_never_up > 0;
        if never {
            f.ssh_never_up -= 1;
        }
        let drop_reply = f.drop_post_responses > 0;
        if drop_reply {
            f.drop_post_responses -= 1;
        }
        (fail, never, drop_reply)
    };
    let compose = body
        .pointer("/environments/0/os/compose")
        .and_then(Value::as_str)
        .unwrap_or("");
    let fail_with = fail_with.or_else(|| {
        (!compose.is_empty() && !compose_offered(compose))
            .then(|| format!("Compose '{compose}' was not found"))
    });
    let now = SystemTime::now();
    let head_404 = lock(&inner.faults).log_404;
    let mut r = Req {
        id: uuid4(),
        token_id: token.id.clone(),
        user_id: token.user_id.clone(),
        body,
        state: "new".into(),
        history: vec!["new".into()],
        created: iso_micro(now),
        updated: iso_micro(now),
        created_at: now,
        result: Value::Null,
        run: Value::Null,
        notes: vec![],
        deletes: 0,
        log: vec![],
        log_exists: false,
        head_404_left: head_404,
        container: None,
        address: None,
        queued_at: None,
        running_at: None,
        fail_with,
        ssh_never_up,
        ready_at: None,
        key_at: None,
    };
    r.notes
        .push(json!({"level": "info", "message": "atex fake Testing Farm"}));
    let reply = r.json(true);
    let id = r.id.clone();
    lock(&inner.requests).push(r);
    spawn_worker(inner, id);
    if drop_reply {
        Answer::Drop
    } else {
        Answer::Send(HttpResponse::json(200, &reply))
    }
}

fn search(inner: &Inner, params: &HashMap<String, String>) -> HttpResponse {
    let Some(state) = params.get("state") else {
        return HttpResponse::json(
            422,
            &json!({"detail": [{"loc": ["query", "state"], "msg": "field required", "type": "value_error.missing"}]}),
        );
    };
    let reqs = lock(&inner.requests);
    let found: Vec<Value> = reqs
        .iter()
        .filter(|r| &r.state == state)
        .filter(|r| params.get("token_id").is_none_or(|t| *t == r.token_id))
        .filter(|r| params.get("user_id").is_none_or(|u| *u == r.user_id))
        .filter(|r| {
            params.get("ranch").is_none_or(|ranch| {
                inner
                    .tokens
                    .iter()
                    .any(|t| t.id == r.token_id && t.ranch == *ranch)
            })
        })
        .filter(|r| {
            params
                .get("created_after")
                .is_none_or(|a| r.created.as_str() >= a.as_str())
        })
        .filter(|r| {
            params
                .get("created_before")
                .is_none_or(|b| r.created.as_str() <= b.as_str())
        })
        .map(|r| r.json(false))
        .collect();
    if found.is_empty() {
        HttpResponse::json(200, &Value::Null)
    } else {
        HttpResponse::json(200, &Value::Array(found))
    }
}

fn cancel(inner: &Inner, token: &Token, id: &str) -> HttpResponse {
    let mut reqs = lock(&inner.requests);
    let Some(r) = reqs.iter_mut().find(|r| r.id == id) else {
        return HttpResponse::json(404, &json!({"message": "No such entity"}));
    };
    if r.token_id != token.id {
        return HttpResponse::json(
            403,
            &json!({"message": "Not authorized to perform this action"}),
        );
    }
    r.deletes += 1;
    let resp = match r.state.as_str() {
        "new" | "queued" | "running" => {
            r.set_state("cancel-requested");
            HttpResponse::json(
                200,
                &json!({"id": r.id, "state": r.state, "created": r.created, "updated": r.updated}),
            )
        }
        "cancel-requested" | "canceled" => HttpResponse::empty(204),
        _ => HttpResponse::json(
            409,
            &json!({"message": "Request is already finished and cannot be canceled"}),
        ),
    };
    inner.changed.notify_all();
    resp
}

fn artifacts(inner: &Inner, req: &HttpRequest) -> HttpResponse {
    let (path, _) = query(&req.target);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [id, "pipeline.log"] = segs.as_slice() else {
        return HttpResponse::json(404, &json!({"detail": "Not Found"}));
    };
    if req.method != "GET" && req.method != "HEAD" {
        return HttpResponse::json(405, &json!({"detail": "Method Not Allowed"}));
    }
    let mut reqs = lock(&inner.requests);
    let Some(r) = reqs.iter_mut().find(|r| r.id == *id) else {
        return HttpResponse::empty(404);
    };
    if !r.log_exists {
        return HttpResponse::empty(404);
    }
    if req.method == "HEAD" && r.head_404_left > 0 {
        r.head_404_left -= 1;
        return HttpResponse::empty(404);
    }
    let len = r.log.len();
    let from = req
        .headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    let mut resp = HttpResponse {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        headers: vec![("Accept-Ranges".into(), "bytes".into())],
        body: r.log.clone(),
    };
    match from {
        Some(n) if n >= len => {
            resp.status = 416;
            resp.body.clear();
            resp.headers
                .push(("Content-Range".into(), format!("bytes */{len}")));
        }
        Some(n) => {
            resp.status = 206;
            resp.body = r.log[n..].to_vec();
            resp.headers.push((
                "Content-Range".into(),
                format!("bytes {n}-{}/{len}", len - 1),
            ));
        }
        None => {}
    }
    resp
}

// ---------------------------------------------------------------- worker

fn spawn_worker(inner: &Arc<Inner>, id: String) {
    let arc = Arc::clone(inner);
    let handle = std::thread::spawn(move || worker(&arc, &id));
    lock(&inner.workers).push(handle);
}

/// Waits `d`; true when the request was cancel-requested (or the fake is
/// shutting down) meanwhile.
fn wait_or_cancel(inner: &Inner, id: &str, d: Duration) -> bool {
    let end = Instant::now() + d;
    let mut reqs = lock(&inner.requests);
    loop {
        if inner.shutdown.load(Ordering::SeqCst) {
            return true;
        }
        if reqs
            .iter()
            .find(|r| r.id == id)
            .is_none_or(|r| r.state == "cancel-requested")
        {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        reqs = inner
            .changed
            .wait_timeout(reqs, left.min(inner.opts.tick))
            .map_or_else(|e| e.into_inner().0, |r| r.0);
    }
}

fn with_req<T>(inner: &Inner, id: &str, f: impl FnOnce(&mut Req) -> T) -> Option<T> {
    let mut reqs = lock(&inner.requests);
    let r = reqs.iter_mut().find(|r| r.id == id)?;
    let out = f(r);
    inner.changed.notify_all();
    Some(out)
}

fn worker(inner: &Inner, id: &str) {
    let opts = inner.opts.clone();
    let finish_cancel = |inner: &Inner| {
        let container = with_req(inner, id, |r| {
            if r.state == "running" || r.state == "cancel-requested" {
                r.log_line("[testing-farm-request] Cancelling pipeline as requested");
            }
            r.container.take()
        })
        .flatten();
        if let Some(c) = &container {
            remove_containers(std::slice::from_ref(c));
        }
        with_req(inner, id, |r| {
            if let Some(a) = r.address {
                lock(&HOSTS).remove(&a.octets()[3]);
            }
            if r.state == "cancel-requested" {
                r.set_state("canceled");
                r.result =
                    json!({"summary": null, "overall": "error", "xunit": null, "xunit_url": null});
            }
        });
    };
    if wait_or_cancel(inner, id, opts.new_delay) {
        return finish_cancel(inner);
    }
    with_req(inner, id, |r| {
        r.set_state("queued");
        r.queued_at = Some(Instant::now());
    });
    let slow = lock(&inner.faults).slow_queue;
    if wait_or_cancel(inner, id, opts.queue_delay + slow) {
        return finish_cancel(inner);
    }
    let fail = with_req(inner, id, |r| r.fail_with.clone()).flatten();
    if let Some(summary) = fail {
        with_req(inner, id, |r| {
            r.set_state("error");
            r.result =
                json!({"summary": summary, "overall": "error", "xunit": null, "xunit_url": null});
        });
        return;
    }
    let base = lock(&inner.artifacts_base).clone();
    let (timeout, created_at) = with_req(inner, id, |r| {
        r.set_state("running");
        r.running_at = Some(Instant::now());
        r.run = json!({"console": null, "stages": null, "artifacts": format!("{base}/{id}")});
        let minutes = r
            .body
            .pointer("/settings/pipeline/timeout")
            .and_then(Value::as_u64)
            .unwrap_or(720);
        (Duration::from_secs(minutes * 60), r.created_at)
    })
    .unwrap_or((Duration::ZERO, SystemTime::now()));
    if wait_or_cancel(inner, id, opts.tick) {
        return finish_cancel(inner);
    }
    with_req(inner, id, |r| r.log_line("Guest is being provisioned"));
    if wait_or_cancel(inner, id, opts.provision_delay) {
        return finish_cancel(inner);
    }
    let started = start_machine(inner, id);
    let Some((name, addr)) = started.clone().ok() else {
        let err = started.err().unwrap_or_default();
        with_req(inner, id, |r| {
            r.log_line(&format!("Guest provisioning failed: {err}"));
            r.set_state("error");
            r.result = json!({"summary": format!("Guest provisioning failed: {err}"), "overall": "error", "xunit": null, "xunit_url": null});
        });
        return;
    };
    with_req(inner, id, |r| {
        r.container = Some(name.clone());
        r.address = Some(addr);
    });
    // Guest is ready once its sshd answers.
    let end = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&(addr, 22).into(), Duration::from_millis(500)).is_err() {
        if Instant::now() > end || wait_or_cancel(inner, id, opts.tick) {
            return finish_cancel(inner);
        }
    }
    with_req(inner, id, |r| {
        let compose = r
            .body
            .pointer("/environments/0/os/compose")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string();
        let arch = r
            .body
            .pointer("/environments/0/arch")
            .and_then(Value::as_str)
            .unwrap_or("x86_64")
            .to_string();
        let guest = uuid4();
        r.log_line(&format!(
            "Guest is ready: ArtemisGuest({guest}, root@{addr}, arch={arch},compose={compose},snapshots=False)"
        ));
        r.ready_at = Some(Instant::now());
        r.log_line("[pre-artifact-installation] nothing to install");
        r.log_line("starting tests execution");
        r.log_line("execute task #1");
    });
    if wait_or_cancel(inner, id, opts.key_delay) {
        return finish_cancel(inner);
    }
    let (key, never) = with_req(inner, id, |r| {
        // The public ranch lets in only what an ingress rule allows; the
        // client here is on loopback.
        let public = inner
            .tokens
            .iter()
            .any(|t| t.id == r.token_id && t.ranch == "public");
        let firewalled = public && !ingress_allows(&r.body, Ipv4Addr::LOCALHOST);
        if firewalled {
            r.log_line("[W] no ingress rule admits the client: guest unreachable");
        }
        (
            r.body
                .pointer("/environments/0/secrets/TF_RESERVATION_AUTHORIZED_KEYS_BASE64")
                .and_then(Value::as_str)
                .map(str::to_string),
            r.ssh_never_up || firewalled,
        )
    })
    .unwrap_or((None, true));
    if !never && let Some(key) = key.and_then(|k| base64_decode(&k)) {
        with_req(inner, id, |r| r.key_at = Some(Instant::now()));
        install_key(&name, &key);
    }
    let mut ticks = 0u64;
    loop {
        if wait_or_cancel(inner, id, opts.log_tick) {
            return finish_cancel(inner);
        }
        ticks += 1;
        let expired = created_at.elapsed().unwrap_or_default() >= timeout;
        with_req(inner, id, |r| {
            r.log_line(&format!(
                "Reservation tick: {ticks} s reserved, guest root@{addr}"
            ));
            if expired {
                r.log_line("Pipeline timeout reached");
            }
        });
        if expired {
            let c = with_req(inner, id, |r| r.container.take()).flatten();
            if let Some(c) = c {
                remove_containers(&[c]);
            }
            with_req(inner, id, |r| {
                lock(&HOSTS).remove(&addr.octets()[3]);
                r.set_state("error");
                r.result = json!({"summary": "Pipeline timed out", "overall": "error", "xunit": null, "xunit_url": null});
            });
            return;
        }
    }
}

fn start_machine(inner: &Inner, id: &str) -> Result<(String, Ipv4Addr), String> {
    let name = format!("atex-tf-fake-{}", &id[..13]);
    let mut last = String::new();
    for _ in 0..20 {
        let n = {
            let mut hosts = lock(&HOSTS);
            let Some(n) = (inner.opts.first_host..=250).find(|n| !hosts.contains(n)) else {
                return Err("no free loopback address".into());
            };
            hosts.insert(n);
            n
        };
        let addr = Ipv4Addr::new(127, 0, 0, n);
        let out = podman()
            .args(["run", "-d", "--pull=never", "--name", &name])
            .args(["--label", CONTAINER_LABEL])
            .arg("--label")
            .arg(format!("atex.tf-fake={}", inner.instance))
            .arg("--label")
            .arg(format!("atex.tf-fake.request={id}"))
            .arg("-p")
            .arg(format!("{addr}:22:22"))
            .arg(SSH_IMAGE)
            .output()
            .map_err(|e| format!("podman: {e}"))?;
        if out.status.success() {
            return Ok((name, addr));
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // Address taken (by another test run): keep it marked, try another.
        remove_containers(std::slice::from_ref(&name));
    }
    Err(last)
}

fn install_key(container: &str, key: &[u8]) {
    let child = podman()
        .args(["exec", "-i", container, "sh", "-c"])
        .arg("umask 077; mkdir -p /root/.ssh; cat >> /root/.ssh/authorized_keys")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(key);
        }
        let _ = child.wait();
    }
}

// ---------------------------------------------------------------- helpers

/// Whether an ingress rule of the request's environment admits `addr`.
fn ingress_allows(body: &Value, addr: Ipv4Addr) -> bool {
    let rules = body
        .pointer("/environments/0/settings/provisioning/security_group_rules_ingress")
        .and_then(Value::as_array);
    rules.is_some_and(|rules| {
        rules.iter().any(|r| {
            let Some((net, bits)) = r
                .get("cidr")
                .and_then(Value::as_str)
                .and_then(|c| c.split_once('/'))
            else {
                return false;
            };
            let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
                return false;
            };
            let mask = u32::MAX.checked_shl(32 - bits.min(32)).unwrap_or(0);
            r.get("type").and_then(Value::as_str) == Some("ingress")
                && u32::from(net) & mask == u32::from(addr) & mask
        })
    })
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

fn uuid4() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = n.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn iso_micro(t: SystemTime) -> String {
    let u = UtcTime::from_system_time(t);
    format!("{}.{:06}", u.iso_seconds(), u.micros)
}

fn hms(t: SystemTime) -> String {
    let u = UtcTime::from_system_time(t);
    format!("{:02}:{:02}:{:02}", u.hour, u.minute, u.second)
}

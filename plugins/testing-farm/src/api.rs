//! The Testing Farm HTTP API: a small blocking client with bounded retries,
//! a shared minimum interval between calls, and `Retry-After` support.
//!
//! Nothing here logs a request body or the token: bodies carry the
//! reservation secret, and the token only ever goes into the
//! `Authorization` header.

use std::{
    fmt,
    io::Read,
    sync::{Mutex, atomic::AtomicBool, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use atex_plugin_api::time::UtcTime;
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, warn};

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// States in which a request still holds (or will hold) a machine.
pub const ALIVE_STATES: &[&str] = &["new", "queued", "running"];

/// Statuses retried for any method (GET, HEAD, DELETE; POST only for 429).
const RETRY_STATUSES: &[u16] = &[408, 429, 500, 502, 503, 504];

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff; doubles per attempt.
    pub backoff: Duration,
    /// Largest backoff (and largest honoured `Retry-After`).
    pub backoff_max: Duration,
    /// Smallest gap between two calls of this client (all threads).
    pub min_interval: Duration,
    /// Time limit of one HTTP exchange.
    pub http_timeout: Duration,
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Why a call failed.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The service answered with a status the caller must handle.
    Status {
        /// HTTP status.
        status: u16,
        /// `message` / `detail` of the reply, or a summary.
        message: String,
    },
    /// The service could not be reached (after retries).
    Unreachable(String),
    /// The reply was not what the API promises (not JSON, …).
    BadReply(String),
    /// The caller asked to stop.
    Aborted,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            ApiError::Unreachable(m) => write!(f, "unreachable: {m}"),
            ApiError::BadReply(m) => write!(f, "bad reply: {m}"),
            ApiError::Aborted => f.write_str("aborted"),
        }
    }
}

/// Why one exchange got no reply.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Transport(String),
    /// The reply's body could not be read.
    #[error("reading the reply of {request}: {error}")]
    Body {
        /// Method and URL.
        request: String,
        /// What failed.
        error: std::io::Error,
    },
}

/// One HTTP reply.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, when given.
    pub content_type: Option<String>,
    /// `Retry-After` in seconds, when given as a number.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Result<Value, ApiError> {
        let is_json = self
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::BadReply(format!(
                "HTTP {} with content type {:?}, not JSON",
                self.status,
                self.content_type.as_deref().unwrap_or("none")
            )));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadReply(format!("HTTP {}: invalid JSON: {e}", self.status)))
    }

    /// The error message of a non-200 JSON reply (never the whole body: it
    /// may echo what we sent).
    fn error_message(&self) -> String {
        let Ok(v) = serde_json::from_slice::<Value>(&self.body) else {
            return http_reason(self.status).to_string();
        };
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_string();
        }
        match v.get("detail") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| {
                    let msg = i.get("msg")?.as_str()?;
                    let loc = i
                        .get("loc")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    Some(format!("{loc}: {msg}"))
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => http_reason(self.status).to_string(),
        }
    }
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "not authorized",
        403 => "forbidden",
        404 => "not found",
        409 => "conflict",
        422 => "invalid request",
        429 => "too many requests",
        500..=599 => "server error",
        _ => "unexpected status",
    }
}

/// What whoami tells about the token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `public` or `redhat`.
    pub ranch: String,
    /// The token's id (requests are searched by it).
    pub token_id: String,
    /// The user's id.
    pub user_id: String,
}

/// The client.
pub struct Api {
    base: String,
    token: Option<Secret>,
    agent: ureq::Agent,
    policy: RetryPolicy,
    /// Calls may not start before this instant (min interval, 429 pauses).
    next_slot: Mutex<Instant>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Sleeps up to `d`, waking early when `abort` is set. False when aborted.
pub fn sleep_unless(abort: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if abort.load(Ordering::SeqCst) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

impl Api {
    /// A client of the API at `base` (e.g. `https://api.testing-farm.io`).
    pub fn new(base: &str, token: Option<Secret>, policy: RetryPolicy) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(policy.http_timeout.min(Duration::from_secs(30)))
            .timeout(policy.http_timeout)
            .max_idle_connections_per_host(10)
            .user_agent(concat!("atex-testing-farm/", env!("CARGO_PKG_VERSION")))
            .build();
        Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
            policy,
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Waits for this client's next call slot.
    fn wait_slot(&self, abort: &AtomicBool) -> bool {
        let wait = {
            let mut slot = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = (*slot).max(now);
            *slot = start + self.policy.min_interval;
            start - now
        };
        sleep_unless(abort, wait)
    }

    /// Holds every call of this client back for `d` (a 429's Retry-After).
    fn pause(&self, d: Duration) {
        let mut slot = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + d;
        if until > *slot {
            *slot = until;
        }
    }

    /// One exchange, no retries. `Err` is a transport failure.
    fn send_once(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        auth: bool,
        range: Option<u64>,
    ) -> Result<Reply, SendError> {
        let mut req = self.agent.request(method, url);
        if auth && let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {}", t.expose()));
        }
        if let Some(from) = range {
            req = req.set("Range", &format!("bytes={from}-"));
        }
        let res = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(SendError::Transport(t.to_string())),
        };
        let status = resp.status();
        let content_type = resp.header("Content-Type").map(str::to_string);
        let retry_after = resp
            .header("Retry-After")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        resp.into_reader()
            .take(64 << 20)
            .read_to_end(&mut body)
            .map_err(|error| SendError::Body {
                request: format!("{method} {url}"),
                error,
            })?;
        Ok(Reply {
            status,
            content_type,
            retry_after,
            body,
        })
    }

    /// An idempotent call (GET, HEAD, DELETE), retried on transport errors
    /// and on 408/429/5xx with backoff, at most `policy.attempts` times.
    /// Returns any other reply as it is.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: bool,
        range: Option<u64>,
        abort: &AtomicBool,
    ) -> Result<Reply, ApiError> {
        let url = self.url(path);
        let mut last = String::new();
        for attempt in 0..self.policy.attempts.max(1) {
            if !self.wait_slot(abort) {
                return Err(ApiError::Aborted);
            }
            let delay = match self.send_once(method, &url, None, auth, range) {
                Ok(reply) if RETRY_STATUSES.contains(&reply.status) => {
                    last = format!("HTTP {} ({})", reply.status, reply.error_message());
                    self.retry_delay(&reply, attempt)
                }
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    last = e.to_string();
                    self.policy.delay(attempt)
                }
            };
            debug!(target: "atex_testing_farm", "{method} {url}: {last}; retrying in {delay:?}");
            if !sleep_unless(abort, delay) {
                return Err(ApiError::Aborted);
            }
        }
        Err(ApiError::Unreachable(format!(
            "{method} {url} failed {} times, last: {last}",
            self.policy.attempts.max(1)
        )))
    }

    fn retry_delay(&self, reply: &Reply, attempt: u32) -> Duration {
        match reply.retry_after {
            Some(after) if reply.status == 429 || reply.status == 503 => {
                let after = after.min(self.policy.backoff_max);
                self.pause(after);
                after
            }
            _ => self.policy.delay(attempt),
        }
    }

    /// `call` for a JSON API path; non-200 becomes [`ApiError::Status`].
    pub fn get_json(&self, path: &str, auth: bool, abort: &AtomicBool) -> Result<Value, ApiError> {
        let reply = self.call("GET", path, auth, None, abort)?;
        if reply.status != 200 {
            return Err(ApiError::Status {
                status: reply.status,
                message: reply.error_message(),
            });
        }
        reply.json()
    }

    /// `GET /v0.1/whoami`.
    pub fn whoami(&self, abort: &AtomicBool) -> Result<Identity, ApiError> {
        let v = self.get_json("/v0.1/whoami", true, abort)?;
        let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_string);
        Ok(Identity {
            ranch: s("/token/ranch")
                .ok_or_else(|| ApiError::BadReply("whoami has no token.ranch".into()))?,
            token_id: s("/token/id")
                .ok_or_else(|| ApiError::BadReply("whoami has no token.id".into()))?,
            user_id: s("/user/id").unwrap_or_default(),
        })
    }

    /// `GET /v0.2/composes/{ranch}`: (name, is_regex) pairs.
    pub fn composes(
        &self,
        ranch: &str,
        abort: &AtomicBool,
    ) -> Result<Vec<(String, bool)>, ApiError> {
        let v = self.get_json(&format!("/v0.2/composes/{ranch}"), false, abort)?;
        let list = v
            .get("composes")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::BadReply("composes reply has no `composes` list".into()))?;
        Ok(list
            .iter()
            .filter_map(|c| {
                let name = c.get("name")?.as_str()?.to_string();
                let regex = c.get("type").and_then(Value::as_str) == Some("regex");
                Some((name, regex))
            })
            .collect())
    }

    /// `GET /v0.1/requests/{id}`.
    pub fn get_request(&self, id: &str, abort: &AtomicBool) -> Result<Value, ApiError> {
        self.get_json(&format!("/v0.1/requests/{id}"), true, abort)
    }

    /// `GET /v0.1/requests?state=…&token_id=…&created_after=…` (mine).
    pub fn search_requests(
        &self,
        state: &str,
        token_id: &str,
        created_after: &str,
        abort: &AtomicBool,
    ) -> Result<Vec<Value>, ApiError> {
        let path = format!(
            "/v0.1/requests?state={state}&token_id={token_id}&created_after={created_after}"
        );
        match self.get_json(&path, true, abort)? {
            Value::Array(a) => Ok(a),
            Value::Null => Ok(Vec::new()),
            other => Err(ApiError::BadReply(format!(
                "search reply is not a list: {}",
                type_name(&other)
            ))),
        }
    }

    /// `DELETE /v0.1/requests/{id}`. Ok when cancelled now or already
    /// (200, 204) or when it had finished anyway (409).
    pub fn cancel_request(&self, id: &str) -> Result<u16, ApiError> {
        let never = AtomicBool::new(false);
        let reply = self.call(
            "DELETE",
            &format!("/v0.1/requests/{id}"),
            true,
            None,
            &never,
        )?;
        match reply.status {
            200 | 204 | 409 => Ok(reply.status),
            status => Err(ApiError::Status {
                status,
                message: reply.error_message(),
            }),
        }
    }

    /// `POST /v0.1/requests`, never creating two requests: when the outcome
    /// of a POST is unknown (transport error, 5xx), `find` is asked whether
    /// the request exists before the POST is sent again.
    pub fn submit_request(
        &self,
        body: &Value,
        abort: &AtomicBool,
        find: &dyn Fn() -> Result<Option<Value>, ApiError>,
    ) -> Result<Value, ApiError> {
        let url = self.url("/v0.1/requests");
        let mut last = String::new();
        for attempt in 0..self.policy.attempts.max(1) {
            if !self.wait_slot(abort) {
                return Err(ApiError::Aborted);
            }
            let delay = match self.send_once("POST", &url, Some(body), true, None) {
                Ok(reply) if reply.status == 200 => return reply.json(),
                Ok(reply) if reply.status == 429 => {
                    // Refused before it was processed: safe to send again.
                    last = format!("HTTP 429 ({})", reply.error_message());
                    let d = self.retry_delay(&reply, attempt);
                    if !sleep_unless(abort, d) {
                        return Err(ApiError::Aborted);
                    }
                    continue;
                }
                Ok(reply) if reply.status >= 500 || reply.status == 408 => {
                    last = format!("HTTP {} ({})", reply.status, reply.error_message());
                    self.retry_delay(&reply, attempt)
                }
                Ok(reply) => {
                    return Err(ApiError::Status {
                        status: reply.status,
                        message: reply.error_message(),
                    });
                }
                Err(e) => {
                    last = e.to_string();
                    self.policy.delay(attempt)
                }
            };
            // The request may have been created: look before sending again.
            warn!(target: "atex_testing_farm", "POST {url}: {last}; checking whether the request was created");
            if !sleep_unless(abort, delay) {
                return Err(ApiError::Aborted);
            }
            match find() {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(ApiError::Aborted) => return Err(ApiError::Aborted),
                // Cannot tell: do not risk a duplicate.
                Err(e) => {
                    return Err(ApiError::Unreachable(format!(
                        "POST {url} failed ({last}) and the search for the request failed too: {e}"
                    )));
                }
            }
        }
        Err(ApiError::Unreachable(format!(
            "POST {url} failed {} times, last: {last}",
            self.policy.attempts.max(1)
        )))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `t` as naive ISO 8601 in UTC (`2024-05-01T12:00:00`), as the search
/// parameters want it (no zone suffix).
pub fn iso_utc(t: SystemTime) -> String {
    UtcTime::from_system_time(t).iso_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        use std::time::UNIX_EPOCH;
        assert_eq!(iso_utc(UNIX_EPOCH), "1970-01-01T00:00:00");
        assert_eq!(
            iso_utc(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59"
        );
    }

    #[test]
    fn secrets_do_not_show() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s:?}"), "<redacted>");
        let api = Api::new(
            "http://127.0.0.1:1",
            Some(s),
            RetryPolicy {
                attempts: 1,
                backoff: Duration::ZERO,
                backoff_max: Duration::ZERO,
                min_interval: Duration::ZERO,
                http_timeout: Duration::from_secs(1),
            },
        );
        assert!(!format!("{api:?}").contains("tok-123"));
    }

    #[test]
    fn error_messages_never_echo_the_body() {
        let r = Reply {
            status: 422,
            content_type: Some("application/json".into()),
            retry_after: None,
            body: br#"{"detail":[{"loc":["body","environments"],"msg":"bad","input":"SECRET"}]}"#
                .to_vec(),
        };
        assert_eq!(r.error_message(), "body.environments: bad");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
            min_interval: Duration::ZERO,
            http_timeout: Duration::from_secs(1),
        };
        assert_eq!(p.delay(0), Duration::from_secs(1));
        assert_eq!(p.delay(2), Duration::from_secs(4));
        assert_eq!(p.delay(10), Duration::from_secs(5));
    }
}

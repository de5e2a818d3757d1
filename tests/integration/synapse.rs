//! A real Matrix homeserver for the Matrix channel tests: Synapse from PyPI
//! (`tests/matrix/install.sh`, once per test run into the target dir),
//! started on a free loopback port with a throwaway SQLite database, users
//! registered through the shared-secret admin API, and a small blocking
//! client that plays the human side (create rooms, invite, send, read).
//!
//! Also a forwarding proxy that can hold back the answers to message sends
//! after Synapse has made the event: the gateway behind it sees a send
//! that never returns, exactly as when it dies mid-request.
//!
//! Why Synapse is run under `sh` with a pipe on its stdin: when the test
//! process dies (a failed assert, a killed run), the pipe closes, `read`
//! returns, and the shell kills Synapse, so no homeserver outlives its test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{install, printed};

const SHARED_SECRET: &str = "clawback-test-registration-secret";
/// A fixed ed25519 seed: the server never federates, so its signing key
/// only has to be well-formed.
const SIGNING_KEY: &str = "ed25519 a_test lIZqDwD3b+2zqNEQQS0xfo9kMrD8BzEHLuxGRzsA13k";
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The venv's python, installed once for the whole test binary (tests run
/// in parallel threads; a second installer in the same venv would race).
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let started = Instant::now();
        let output = install(
            "tests/matrix/install.sh",
            "synapse",
            "python3 with its venv module (apt-get install python3-venv) and access to PyPI",
        );
        eprintln!("synapse: installed (or checked) in {:?}", started.elapsed());
        printed(&output, "PYTHON=")
    })
}

pub struct Synapse {
    pub port: u16,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    watchdog: Option<(Child, ChildStdin)>,
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub password: String,
    pub token: String,
}

/// Rate limits for sends (`rc_message`); the default is effectively none.
pub struct Limits {
    pub per_second: f64,
    pub burst: u32,
}

impl Synapse {
    pub fn start(message_limits: Option<Limits>) -> Synapse {
        let python = python();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let path = dir.path().display();
        let limits = message_limits.unwrap_or(Limits {
            per_second: 1000.0,
            burst: 1000,
        });
        let generous = "{per_second: 1000, burst_count: 1000}";
        let config = format!(
            "server_name: localhost
pid_file: {path}/homeserver.pid
listeners:
  - {{port: {port}, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{{names: [client], compress: false}}]}}
database: {{name: sqlite3, args: {{database: {path}/homeserver.db}}}}
media_store_path: {path}/media
signing_key_path: {path}/signing.key
registration_shared_secret: {SHARED_SECRET}
macaroon_secret_key: test-macaroon-secret
form_secret: test-form-secret
trusted_key_servers: []
report_stats: false
enable_metrics: false
presence: {{enabled: false}}
rc_message: {{per_second: {}, burst_count: {}}}
rc_registration: {generous}
rc_login: {{address: {generous}, account: {generous}, failed_attempts: {generous}}}
rc_joins: {{local: {generous}, remote: {generous}}}
rc_invites: {{per_room: {generous}, per_user: {generous}, per_issuer: {generous}}}
",
            limits.per_second, limits.burst
        );
        std::fs::write(dir.path().join("homeserver.yaml"), config).expect("config");
        std::fs::write(dir.path().join("signing.key"), SIGNING_KEY).expect("key");
        let started = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -m synapse.app.homeserver -c "$1" >"$2" 2>&1 & pid=$!; read _; kill $pid; wait $pid"#)
            .arg(python)
            .arg(dir.path().join("homeserver.yaml"))
            .arg(dir.path().join("synapse.log"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh starts synapse");
        let stdin = child.stdin.take().expect("stdin");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let synapse = Synapse {
            port,
            runtime,
            client: crate::support::http_client(Duration::from_secs(60)),
            watchdog: Some((child, stdin)),
            _dir: dir,
        };
        while synapse
            .request("GET", "/_matrix/client/versions", None, None)
            .map(|(status, _)| status)
            != Ok(200)
        {
            if started.elapsed() > READY_WITHIN {
                let log = std::fs::read_to_string(synapse._dir.path().join("synapse.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "synapse did not answer within {READY_WITHIN:?}; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("synapse: ready on port {port} in {:?}", started.elapsed());
        synapse
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP call; `Err` only when the server cannot be reached.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|error| error.to_string())?;
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            Ok((status, body))
        })
    }

    /// A client-server call that must succeed; a rate limit is waited out.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Value {
        for _ in 0..20 {
            let (status, answer) = self
                .request(method, path, token, body)
                .expect("synapse answers");
            if status == 429 {
                let wait = answer["retry_after_ms"].as_u64().unwrap_or(500);
                std::thread::sleep(Duration::from_millis(wait + 50));
                continue;
            }
            assert_eq!(status, 200, "{method} {path}: {answer}");
            return answer;
        }
        panic!("{method} {path}: still rate limited after 20 waits");
    }

    /// Registers `name` through the shared-secret admin API (the HMAC is
    /// computed by the venv's python: the tests have no HMAC-SHA1 of their
    /// own).
    pub fn register(&self, name: &str) -> User {
        let nonce = self.call("GET", "/_synapse/admin/v1/register", None, None)["nonce"]
            .as_str()
            .expect("nonce")
            .to_owned();
        let password = format!("pw-{name}-0451");
        let script = "import hmac, hashlib, sys\nprint(hmac.new(sys.argv[1].encode(), b'\\0'.join(a.encode() for a in sys.argv[2:]), hashlib.sha1).hexdigest())";
        let output = Command::new(python())
            .args([
                "-c",
                script,
                SHARED_SECRET,
                &nonce,
                name,
                &password,
                "notadmin",
            ])
            .output()
            .expect("python computes the mac");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mac = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let body = json!({"nonce": nonce, "username": name, "password": password, "admin": false, "mac": mac});
        let answer = self.call("POST", "/_synapse/admin/v1/register", None, Some(&body));
        User {
            id: answer["user_id"].as_str().expect("user id").to_owned(),
            token: answer["access_token"].as_str().expect("token").to_owned(),
            password,
        }
    }

    /// A DM from `from` to `to`, as Element makes one.
    pub fn create_dm(&self, from: &User, to: &User) -> String {
        let body = json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [to.id]});
        let answer = self.call(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(&from.token),
            Some(&body),
        );
        answer["room_id"].as_str().expect("room id").to_owned()
    }

    pub fn create_room(&self, from: &User, invite: &[&User]) -> String {
        let invite: Vec<&str> = invite.iter().map(|user| user.id.as_str()).collect();
        let body = json!({"preset": "private_chat", "name": "ops", "invite": invite});
        let answer = self.call(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(&from.token),
            Some(&body),
        );
        answer["room_id"].as_str().expect("room id").to_owned()
    }

    pub fn join(&self, user: &User, room: &str) {
        self.call(
            "POST",
            &format!("/_matrix/client/v3/join/{}", encode(room)),
            Some(&user.token),
            Some(&json!({})),
        );
    }

    pub fn joined(&self, user: &User, room: &str) -> Vec<String> {
        let answer = self.call(
            "GET",
            &format!("/_matrix/client/v3/rooms/{}/joined_members", encode(room)),
            Some(&user.token),
            None,
        );
        answer["joined"]
            .as_object()
            .map(|joined| joined.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends an `m.room.message` (or any `kind`); the event id.
    pub fn send(&self, user: &User, room: &str, kind: &str, content: Value) -> String {
        static TXN: AtomicUsize = AtomicUsize::new(0);
        let txn = TXN.fetch_add(1, Ordering::SeqCst);
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{kind}/test-{txn}",
            encode(room)
        );
        self.call("PUT", &path, Some(&user.token), Some(&content))["event_id"]
            .as_str()
            .expect("event id")
            .to_owned()
    }

    /// Uploads `bytes` as `user` (`POST /_matrix/media/v3/upload`, the
    /// spec's upload endpoint); the `mxc://` URI.
    pub fn upload(&self, user: &User, name: &str, content_type: &str, bytes: &[u8]) -> String {
        let request = self
            .client
            .post(format!(
                "{}/_matrix/media/v3/upload?filename={}",
                self.url(),
                encode(name)
            ))
            .bearer_auth(&user.token)
            .header("content-type", content_type)
            .body(bytes.to_vec());
        let answer: Value = self.runtime.block_on(async {
            let response = request.send().await.expect("synapse answers");
            assert!(
                response.status().is_success(),
                "upload: {}",
                response.status()
            );
            response.json().await.expect("upload answer")
        });
        answer["content_uri"]
            .as_str()
            .expect("content_uri")
            .to_owned()
    }

    /// Downloads `mxc://server/id` as `user` (authenticated media).
    pub fn download(&self, user: &User, mxc: &str) -> Vec<u8> {
        let path = mxc.strip_prefix("mxc://").expect("an mxc URI");
        let request = self
            .client
            .get(format!(
                "{}/_matrix/client/v1/media/download/{path}",
                self.url()
            ))
            .bearer_auth(&user.token);
        self.runtime.block_on(async {
            let response = request.send().await.expect("synapse answers");
            assert!(
                response.status().is_success(),
                "download: {}",
                response.status()
            );
            response.bytes().await.expect("bytes").to_vec()
        })
    }

    pub fn say(&self, user: &User, room: &str, text: &str) -> String {
        self.send(
            user,
            room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": text}),
        )
    }

    /// The room's `m.room.message` events, oldest first.
    pub fn events(&self, user: &User, room: &str) -> Vec<Value> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=200",
            encode(room)
        );
        let answer = self.call("GET", &path, Some(&user.token), None);
        let mut events: Vec<Value> = answer["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|event| event["type"] == "m.room.message")
            .cloned()
            .collect();
        events.reverse();
        events
    }

    /// The room's messages, oldest first: (sender, body, event id).
    pub fn messages(&self, user: &User, room: &str) -> Vec<(String, String, String)> {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        self.events(user, room)
            .iter()
            .map(|event| {
                (
                    text(&event["sender"]),
                    text(&event["content"]["body"]),
                    text(&event["event_id"]),
                )
            })
            .collect()
    }

    /// The bodies `sender` wrote in `room`.
    pub fn said_by(&self, reader: &User, room: &str, sender: &User) -> Vec<String> {
        self.messages(reader, room)
            .into_iter()
            .filter(|(from, _, _)| *from == sender.id)
            .map(|(_, body, _)| body)
            .collect()
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.watchdog.take() {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Waits (bounded) until `done` holds.
pub fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn encode(segment: &str) -> String {
    segment
        .replace('!', "%21")
        .replace(':', "%3A")
        .replace('#', "%23")
        .replace('$', "%24")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A proxy in front of Synapse that can stall message sends: the request
/// reaches Synapse (the event is made) but its answer never comes back.
pub struct Proxy {
    pub address: String,
    stall: Arc<AtomicBool>,
    /// Sends forwarded to Synapse, stalled or not.
    pub sends: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Forward {
    target: String,
    client: reqwest::Client,
    stall: Arc<AtomicBool>,
    sends: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let forward = Forward {
            target: target.to_owned(),
            client: crate::support::http_client(Duration::from_secs(90)),
            stall: Arc::new(AtomicBool::new(false)),
            sends: Arc::new(AtomicUsize::new(0)),
        };
        let (stall, sends) = (forward.stall.clone(), forward.sends.clone());
        let app = axum::Router::new().fallback(relay).with_state(forward);
        runtime.spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Proxy {
            address,
            stall,
            sends,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn stall_sends(&self, stall: bool) {
        self.stall.store(stall, Ordering::SeqCst);
    }
}

async fn relay(
    axum::extract::State(forward): axum::extract::State<Forward>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let is_send = method == axum::http::Method::PUT && path.contains("/send/m.room.message/");
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method");
    let mut request = forward
        .client
        .request(method, format!("{}{path}", forward.target))
        .body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name).and_then(|value| value.to_str().ok()) {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => {
            return (axum::http::StatusCode::BAD_GATEWAY, error.to_string()).into_response();
        }
    };
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.unwrap_or_default();
    if is_send {
        forward.sends.fetch_add(1, Ordering::SeqCst);
        if forward.stall.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
    let status = axum::http::StatusCode::from_u16(status).expect("status");
    (status, [("content-type", "application/json")], bytes).into_response()
}

//! Shared helpers: locating the binary, fresh state dirs, running commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_clawback")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Runs `clawback --state-dir DIR ARGS...` to completion.
pub fn clawback(state_dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("clawback runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A state dir holding the checked-in fixture log.
pub fn state_dir_with_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = fixture("log-v1.cblog");
    let output = clawback(
        dir.path(),
        &["log", "import", fixture.to_str().expect("utf-8 path")],
    );
    assert!(
        output.status.success(),
        "import failed: {}",
        stderr(&output)
    );
    dir
}

/// Runs an installer script (`tests/<name>/install.sh CACHE`) that puts a
/// real client from a package registry into the target dir, and returns
/// the `KEY=value` lines it printed. `needs` says what the machine lacks
/// when it fails.
pub fn install(script: &str, cache: &str, needs: &str) -> String {
    // Tests run in parallel and several may need the same software: one
    // installer at a time, so none removes what another is installing.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(cache);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let output = Command::new("bash")
        .arg(&script)
        .arg(&cache)
        .output()
        .expect("bash runs the installer");
    assert!(
        output.status.success(),
        "{} failed (it needs {needs}):\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of `KEY=` in an installer's output.
pub fn printed(text: &str, key: &str) -> PathBuf {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the installer printed no {key}: {text}"))
}

/// The last `n` records of a stopped gateway's log, as `log tail --json`
/// prints them.
pub fn log_records(state_dir: &Path, n: u64) -> Vec<serde_json::Value> {
    let tail = stdout(&clawback(
        state_dir,
        &["log", "tail", "-n", &n.to_string(), "--json"],
    ));
    tail.lines()
        .map(|line| serde_json::from_str(line).expect("log tail --json prints JSON lines"))
        .collect()
}

/// An HTTP client for tests that talk to the gateway over plain HTTP.
/// reqwest is built without a default TLS provider (the gateway picks
/// ring), and even plain HTTP needs one installed; every request is
/// bounded so a hung answer fails the test instead of stalling CI.
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("HTTP client")
}

/// A local HTTP server for a test double on its own one-thread runtime:
/// `make` builds the router, given the address it will listen on. The
/// runtime must be kept alive as long as the server is used.
pub fn serve(make: impl FnOnce(&str) -> axum::Router) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let app = make(&address);
    runtime.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (address, runtime)
}

/// Waits (at most 20 s, polling) until `done` holds; a test that would
/// otherwise hang fails with `what`.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A `multipart/form-data` body as JSON: text fields by name, files under
/// `files.<field>` as `{filename, content_type, bytes: [..]}`.
pub fn multipart(body: &[u8], boundary: &str) -> Option<serde_json::Value> {
    let delimiter = format!("--{boundary}");
    let mut form = serde_json::json!({"files": {}});
    let mut rest = body;
    loop {
        let start = find(rest, delimiter.as_bytes())? + delimiter.len();
        rest = &rest[start..];
        if rest.starts_with(b"--") {
            return Some(form);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?.to_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let value = &content[..end];
        rest = &content[end + 2..];
        let attribute = |key: &str| {
            let marker = format!("{key}=\"");
            let at = head.find(&marker)? + marker.len();
            Some(head[at..].split('"').next()?.to_owned())
        };
        let name = attribute("name")?;
        match attribute("filename") {
            Some(filename) => {
                let content_type = head.lines().find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-type: ")
                        .map(str::to_owned)
                });
                form["files"][name] = serde_json::json!({"filename": filename, "content_type": content_type,
                                             "bytes": value});
            }
            None => form[name] = serde_json::json!(String::from_utf8_lossy(value)),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

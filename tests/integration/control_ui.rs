//! The control UI, end to end: a real gateway with the local model server,
//! the page in headless Chromium (Debian's `chromium`, driven by npm's
//! `playwright-core` from `tests/ui/control_ui.mjs`, both installed by
//! `tests/ui/install.sh`): paste the token, chat and watch the reply stream
//! in, open the session's timeline, step through it to an LLM request and
//! response, read the audit status. A screenshot is kept at
//! `target/tmp/ui-test/control-ui.png`. Beside it, what needs no browser:
//! the Origin rule on WebSocket upgrades, the page's headers, and the
//! `clawback.*` methods' bounds and scopes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::agent::write_config;
use crate::gateway::{start_with, stop};
use crate::llm_server::LlmServer;
use crate::protocol::{TOKEN, call, connected, next_json, runtime};
use crate::support::{clawback, http_client, install, printed, stderr, stdout};

/// How long the browser script may take in all.
const BROWSER_SECONDS_MAX: u64 = 180;

/// Runs `tests/ui/control_ui.mjs` and returns its report.
fn run_browser(address: &str, message: &str, screenshot: &std::path::Path) -> Value {
    let installed = install(
        "tests/ui/install.sh",
        "ui-test",
        "Debian's chromium (apt-get, as root) and npm's playwright-core",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui/control_ui.mjs");
    let mut child = Command::new(printed(&installed, "NODE="))
        .arg(&script)
        .env("PLAYWRIGHT_DIR", printed(&installed, "PLAYWRIGHT_DIR="))
        .env("CHROMIUM", printed(&installed, "CHROMIUM="))
        .env("UI_URL", format!("http://{address}/"))
        .env("UI_TOKEN", TOKEN)
        .env("UI_MESSAGE", message)
        .env("UI_SCREENSHOT", screenshot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs the browser script");
    let deadline = Instant::now() + Duration::from_secs(BROWSER_SECONDS_MAX);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser script did not finish within {BROWSER_SECONDS_MAX} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("browser script output");
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|error| {
        panic!(
            "the browser script printed no report ({error}):\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn the_control_ui_chats_streams_replays_and_audits_in_chromium() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    // `slow-model` is the mock's model that sends one chunk every 200 ms:
    // the reply visibly streams in instead of arriving in one frame.
    let config = dir.path().join("config.json5");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("'mock/mock-model'", "'mock/slow-model'"),
    )
    .expect("config");
    let (running, address, _) =
        start_with(dir.path(), &["--token", TOKEN, "--checkpoint-every", "5"]);
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-test");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join("control-ui.png");
    let _ = std::fs::remove_file(&screenshot);
    let message = "hello from the browser";
    let report = run_browser(&address, message, &screenshot);
    eprintln!("control UI report: {report:#}");
    assert!(
        screenshot.exists(),
        "a screenshot at {}",
        screenshot.display()
    );
    eprintln!("screenshot: {}", screenshot.display());
    assert_eq!(report.get("error"), None, "{report:#}");
    eprintln!(
        "control UI load (reported, not asserted): first {} ms wall (DOMContentLoaded {} ms, load {} ms); reload {} ms wall (load {} ms)",
        report["loadWallMs"],
        report["timing"]["domContentLoadedMs"],
        report["timing"]["loadMs"],
        report["reloadWallMs"],
        report["reloadTiming"]["loadMs"]
    );
    assert_eq!(report["reconnectedFromStorage"], true);

    // Served with its protections, and nothing outside the gateway loaded.
    assert_eq!(report["status"], 200);
    let headers = &report["headers"];
    let csp = headers["content-security-policy"].as_str().expect("CSP");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(report["foreignRequests"], json!([]));
    // A CSP violation or a script error would be a console error.
    assert_eq!(report["consoleErrors"], json!([]), "{report:#}");

    // The token went into the connect frame, not the URL.
    assert_eq!(report["tokenInUrl"], false);
    assert_eq!(report["tokenInStorage"], true);
    assert!(
        report["statusText"]
            .as_str()
            .is_some_and(|text| text.starts_with("connected")),
        "{report:#}"
    );

    // The reply streamed in: partial texts, each a prefix of the final.
    let reply = format!("Hello from the mock. You said: {message}");
    assert_eq!(report["reply"], reply.as_str());
    let texts: Vec<&str> = report["bubbleTexts"]
        .as_array()
        .expect("bubble texts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let partial: Vec<&&str> = texts
        .iter()
        .filter(|text| !text.is_empty() && **text != reply)
        .collect();
    assert!(partial.len() >= 2, "the reply grew in steps: {texts:?}");
    assert!(
        partial.iter().all(|text| reply.starts_with(**text)),
        "{texts:?}"
    );
    let states: Vec<&str> = report["chatEvents"]
        .as_array()
        .expect("chat events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        states.contains(&"delta") && states.contains(&"final"),
        "{states:?}"
    );
    assert!(
        report["sessions"]
            .as_array()
            .expect("sessions")
            .contains(&json!("agent:main:main"))
    );

    // The timeline holds the turn, and stepping moves one step at a time.
    let kinds: Vec<&str> = report["timelineKinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for kind in [
        "message.appended",
        "agent.run.started",
        "llm.call.requested",
        "llm.call.completed",
        "agent.run.finished",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let steps = kinds.len();
    assert_eq!(
        report["positions"],
        json!([
            format!("1 / {steps}"),
            format!("2 / {steps}"),
            format!("3 / {steps}"),
            format!("2 / {steps}")
        ])
    );
    // The LLM step shows the exact request sent and the response recorded.
    let request = &report["llmRequest"];
    assert_eq!(request["phase"], "request");
    assert_eq!(request["model"], "slow-model");
    assert_eq!(request["request"]["model"], "slow-model", "{request:#}");
    let sent = request["request"]["messages"].to_string();
    assert!(sent.contains(message), "{sent}");
    let response = &report["llmResponse"];
    assert_eq!(response["phase"], "response");
    assert_eq!(response["callId"], request["callId"]);
    assert_eq!(response["stopReason"], "stop");
    assert!(
        response["response"].to_string().contains("You said"),
        "{response:#}"
    );

    // The audit status: the chain checked from 0, a signed checkpoint that
    // matches the log.
    let chain = report["auditChain"].as_str().expect("audit chain");
    assert!(
        chain.starts_with("Chain verified by this gateway: seq 0 to "),
        "{chain}"
    );
    let checkpoint = report["auditCheckpoint"].as_str().expect("checkpoint");
    assert!(
        checkpoint.contains("signature valid") && checkpoint.contains("root matches the log"),
        "{checkpoint}"
    );

    stop(running);
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stderr(&audit));
    // The page's connect carried the token; the log never does.
    let export = clawback(dir.path(), &["audit", "export"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let log = stdout(&export);
    assert!(
        log.contains("openclaw-control-ui"),
        "the page's connection is recorded"
    );
    assert!(!log.contains(TOKEN), "the token is never recorded");
}

/// A WebSocket upgrade with `origin` (or none); the HTTP status.
async fn upgrade_status(address: &str, origin: Option<&str>) -> u16 {
    let mut request = format!("ws://{address}/")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, response)) => {
            let challenge = next_json(&mut socket).await;
            assert_eq!(challenge["event"], "connect.challenge");
            response.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("gateway.controlUi.allowedOrigins"), "{body}");
            response.status().as_u16()
        }
        Err(error) => panic!("upgrade failed: {error}"),
    }
}

#[test]
fn browser_origins_are_checked_and_the_page_is_served_without_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        "{ gateway: { controlUi: { allowedOrigins: ['https://ui.example'] } } }",
    )
    .expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let port = address.rsplit(':').next().expect("port");
    runtime().block_on(async {
        // OpenClaw's CLI and TUI send no Origin: left to the handshake.
        assert_eq!(upgrade_status(&address, None).await, 101);
        // The page's own origin, on loopback.
        let own = format!("http://{address}");
        assert_eq!(upgrade_status(&address, Some(&own)).await, 101);
        assert_eq!(
            upgrade_status(&address, Some(&format!("http://localhost:{port}"))).await,
            403,
            "another host name is another origin"
        );
        assert_eq!(
            upgrade_status(&address, Some("https://ui.example")).await,
            101
        );
        for foreign in ["https://evil.example", "http://127.0.0.1:1", "null"] {
            assert_eq!(
                upgrade_status(&address, Some(foreign)).await,
                403,
                "{foreign}"
            );
        }
    });

    let client = http_client(Duration::from_secs(10));
    runtime().block_on(async {
        let page = client
            .get(format!("http://{address}/"))
            .send()
            .await
            .expect("GET /");
        assert_eq!(page.status(), 200);
        let etag = page.headers()["etag"].to_str().expect("etag").to_owned();
        let html = page.text().await.expect("html");
        assert!(!html.contains("<script>") && !html.contains(TOKEN));
        let script = html
            .split("src=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page names its script")
            .to_owned();
        assert!(script.starts_with("/ui/app.js?v="), "{script}");
        let js = client
            .get(format!("http://{address}{script}"))
            .send()
            .await
            .expect("GET app.js");
        assert_eq!(
            js.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            js.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let again = client
            .get(format!("http://{address}/ui/"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("GET /ui/");
        assert_eq!(again.status(), 304);
        let missing = client
            .get(format!("http://{address}/nothing"))
            .send()
            .await
            .expect("GET /nothing");
        assert_eq!(missing.status(), 404);
    });

    // The clawback methods: bounded, checked, scoped.
    runtime().block_on(async {
        let (mut socket, hello) = connected(&address, &["operator.read"]).await;
        let methods = hello["payload"]["features"]["methods"].to_string();
        assert!(methods.contains("clawback.timeline") && methods.contains("clawback.audit.status"));
        let refused = [
            (json!({}), "must have required property 'sessionKey'"),
            (
                json!({"sessionKey": "agent:main:main", "limit": 0}),
                "between 1 and 1000",
            ),
            (
                json!({"sessionKey": "agent:main:main", "limit": 1001}),
                "between 1 and 1000",
            ),
            (
                json!({"sessionKey": "agent:main:main", "seq": 3}),
                "unexpected property 'seq'",
            ),
            (json!({"sessionKey": " "}), "must not be empty"),
        ];
        for (index, (params, message)) in refused.into_iter().enumerate() {
            let answer = call(
                &mut socket,
                &format!("t{index}"),
                "clawback.timeline",
                Some(params),
            )
            .await;
            assert_eq!(answer["error"]["code"], "INVALID_REQUEST", "{answer}");
            let text = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(text.contains(message), "{text}");
        }
        let empty = call(
            &mut socket,
            "t9",
            "clawback.timeline",
            Some(json!({"sessionKey": "agent:main:none"})),
        )
        .await;
        assert_eq!(empty["payload"]["entries"], json!([]), "{empty}");
        assert_eq!(empty["payload"]["hasMore"], false);
        let status = call(&mut socket, "a1", "clawback.audit.status", None).await;
        let payload = &status["payload"];
        assert_eq!(payload["chain"]["complete"], true, "{status}");
        assert_eq!(payload["chain"]["failure"], Value::Null);
        assert_eq!(
            payload["chain"]["verifiedRecords"],
            payload["log"]["nextSeq"]
        );
        let extra = call(
            &mut socket,
            "a2",
            "clawback.audit.status",
            Some(json!({"x": 1})),
        )
        .await;
        assert_eq!(extra["error"]["code"], "INVALID_REQUEST");

        let (mut talker, _) = connected(&address, &["operator.talk"]).await;
        let forbidden = call(&mut talker, "f1", "clawback.audit.status", None).await;
        assert_eq!(forbidden["error"]["code"], "FORBIDDEN", "{forbidden}");
        assert_eq!(
            forbidden["error"]["details"]["missingScope"],
            "operator.read"
        );
        let _ = socket.close(None).await;
        let _ = talker.close(None).await;
    });
    stop(running);
}

//! `clawback demo`: clawback's reason to exist in one minute, with no API
//! key and no network.
//!
//! It starts a local provider that speaks OpenAI's Chat Completions format
//! with a scripted model (it asks to run `ls -1` through the `exec` tool,
//! then answers from the result), runs the real gateway (this binary) on a
//! fresh state dir configured for it, and drives one conversation as an
//! operator client would: the agent's command waits for an approval, the
//! demo approves it as "demo-operator", the reply streams back. Then the
//! gateway stops and the demo prints what the log recorded (`clawback
//! replay`) and checks it (`clawback audit verify`). Nothing is pretended:
//! every step is the real gateway, the real tool and the real log.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use clap::Args;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::bench_protocol::{Socket, next_json, spawn_gateway};

const TOKEN: &str = "demo-token-offline";
const SESSION: &str = "agent:main:demo";
const QUESTION: &str = "Which files are in my workspace?";
/// The whole conversation is bounded: a demo that hangs is a failure.
const CONVERSATION_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the demo's state dir here (a new empty or missing directory);
    /// by default a temporary one is used and deleted.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temporary;
    let dir = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            anyhow::ensure!(
                std::fs::read_dir(dir)?.next().is_none(),
                "{} is not empty: give --keep a new directory",
                dir.display()
            );
            dir.clone()
        }
        None => {
            temporary = super::bench::tempdir_in(None)?;
            temporary.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("clawback demo: an offline conversation with a scripted local model\n");
    let provider = runtime.block_on(start_provider())?;
    std::fs::write(
        dir.join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'demo/scripted' }} }} }},\n  models: {{ providers: {{ demo: {{ baseUrl: 'http://{provider}/v1', apiKey: 'sk-demo-offline', api: 'openai-completions', models: [{{ id: 'scripted' }}] }} }} }} }}\n"
        ),
    )?;
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(&workspace)?;
    std::fs::write(workspace.join("notes.md"), "# Notes\n\nBuy milk.\n")?;
    std::fs::write(workspace.join("plan.txt"), "1. Try clawback.\n")?;
    println!("state dir:  {}", dir.display());
    println!("provider:   http://{provider}/v1 (local, OpenAI Chat Completions format)\n");

    let (gateway, address) = spawn_gateway(&dir, TOKEN)?;
    println!("gateway:    ws://{address} (this binary, `gateway run`)\n");
    let reply = runtime.block_on(async {
        tokio::time::timeout(CONVERSATION_TIMEOUT, converse(&address))
            .await
            .map_err(|_| {
                anyhow::anyhow!("the conversation did not finish within {CONVERSATION_TIMEOUT:?}")
            })?
    })?;
    println!("\nagent:      {reply}\n");
    gateway.stop()?;

    let exe = std::env::current_exe()?;
    println!("--- what the log recorded: clawback replay {SESSION} ---\n");
    let replayed = Command::new(&exe)
        .arg("--state-dir")
        .arg(&dir)
        .args(["replay", SESSION, "--no-state"])
        .status()?;
    println!("\n--- is the log intact: clawback audit verify ---\n");
    let verified = Command::new(&exe)
        .arg("--state-dir")
        .arg(&dir)
        .args(["audit", "verify"])
        .status()?;
    if !(replayed.success() && verified.success()) {
        return Ok(ExitCode::from(1));
    }
    if args.keep.is_some() {
        println!(
            "\nThe state dir is kept: `clawback --state-dir {} replay {SESSION} --step` walks it event by event.",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One turn as an operator client: ask, approve the command the agent
/// wants to run, collect the reply.
async fn converse(address: &str) -> anyhow::Result<String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/")).await?;
    let _challenge = next_json(&mut socket).await?;
    send(
        &mut socket,
        json!({"type": "req", "id": "c", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "demo", "platform": std::env::consts::OS, "mode": "cli"},
        "role": "operator", "scopes": ["operator.read", "operator.write", "operator.approvals"],
        "auth": {"token": TOKEN}}}),
    )
    .await?;
    let hello = next_json(&mut socket).await?;
    anyhow::ensure!(hello["ok"] == true, "connect refused: {hello}");
    println!("you:        {QUESTION}");
    send(
        &mut socket,
        json!({"type": "req", "id": "ask", "method": "agent", "params": {
        "message": QUESTION, "idempotencyKey": "demo-1", "sessionKey": SESSION}}),
    )
    .await?;
    loop {
        let frame = next_json(&mut socket).await?;
        if frame["type"] == "event" && frame["event"] == "exec.approval.requested" {
            let id = frame["payload"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let command = frame["payload"]["request"]["command"]
                .as_str()
                .unwrap_or_default();
            println!(
                "approval:   the agent asks to run `{command}`: approved once by demo-operator"
            );
            send(
                &mut socket,
                json!({"type": "req", "id": "approve", "method": "exec.approval.resolve",
                "params": {"id": id, "decision": "allow-once", "reviewer": "demo-operator"}}),
            )
            .await?;
        } else if frame["type"] == "res" && frame["id"] == "approve" {
            anyhow::ensure!(frame["ok"] == true, "the approval was refused: {frame}");
        } else if frame["type"] == "res" && frame["id"] == "ask" {
            anyhow::ensure!(frame["ok"] == true, "the turn was refused: {frame}");
            match frame["payload"]["status"].as_str() {
                Some("accepted") => continue,
                Some("ok") => {
                    let text = frame["payload"]["result"]["payloads"][0]["text"]
                        .as_str()
                        .or_else(|| frame["payload"]["summary"].as_str())
                        .unwrap_or_default();
                    return Ok(text.to_owned());
                }
                _ => anyhow::bail!("the turn failed: {frame}"),
            }
        }
    }
}

async fn send(socket: &mut Socket, frame: Value) -> anyhow::Result<()> {
    socket.send(Message::text(frame.to_string())).await?;
    Ok(())
}

/// The scripted model: asks for `ls -1` through `exec`, then answers from
/// the tool's result (streamed as Chat Completions SSE chunks).
async fn start_provider() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|body: String| async move {
            let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let last = request["messages"]
                .as_array()
                .and_then(|messages| messages.last())
                .cloned()
                .unwrap_or(Value::Null);
            let deltas = if last["role"] == "tool" {
                let output = last["content"].as_str().unwrap_or_default();
                let files: Vec<&str> = output.lines().filter(|line| !line.trim().is_empty()).collect();
                let answer = format!(
                    "Your workspace holds {} files: {}. (A scripted answer from the demo's local model.)",
                    files.len(),
                    files.join(", ")
                );
                answer
                    .split_inclusive(' ')
                    .map(|piece| json!({"content": piece}))
                    .collect::<Vec<_>>()
            } else {
                vec![json!({"tool_calls": [{"index": 0, "id": "call_demo_1", "type": "function",
                    "function": {"name": "exec", "arguments": "{\"command\":\"ls -1\"}"}}]})]
            };
            let finish = if last["role"] == "tool" { "stop" } else { "tool_calls" };
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 0,
                       "model": "scripted", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            let mut text = format!("data: {}\n\n", chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            for delta in deltas {
                text.push_str(&format!("data: {}\n\n", chunk(delta, Value::Null)));
            }
            text.push_str(&format!("data: {}\n\n", chunk(json!({}), json!(finish))));
            text.push_str("data: [DONE]\n\n");
            axum::response::Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from(text))
                .expect("a static response")
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(address)
}

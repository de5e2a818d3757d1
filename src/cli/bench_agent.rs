//! `clawback bench agent`: what the gateway adds to an agent turn.
//!
//! Starts an OpenAI-format provider inside the benchmark (it answers a
//! short streamed reply at once and notes how long each request took it),
//! starts the real gateway (this binary) configured to use it, and runs
//! `agent` turns over WebSocket. A turn's overhead is its time from sending
//! `agent` to the final answer, minus the provider's own time for that
//! turn: everything clawback does (validation, the four durable batches a
//! turn records, the HTTP call, streaming events, the answers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header;
use axum::serve::ListenerExt;
use clap::Args;
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-agent-token";

#[derive(Args)]
pub struct AgentBenchArgs {
    /// Sequential turns measured, each in a new session.
    #[arg(long, default_value_t = 500)]
    turns: u32,
    /// Turns in one growing session (the context grows with each turn).
    #[arg(long, default_value_t = 200)]
    session_turns: u32,
    /// Sessions running turns at once for the throughput run.
    #[arg(long, default_value_t = 20)]
    sessions: u32,
    /// Turns per session in the throughput run.
    #[arg(long, default_value_t = 25)]
    turns_per_session: u32,
}

use super::bench_protocol::{Socket, micros, next_json};

/// Provider time per request, by the user message that identifies the turn.
pub(super) type ProviderTimes = Arc<Mutex<HashMap<String, Duration>>>;

pub fn run(args: AgentBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# clawback bench agent\n");
    println!("machine: {}\n", super::bench::machine_description());
    let times: ProviderTimes = Arc::default();
    let provider = runtime.block_on(start_provider(times.clone()))?;
    let state_dir = super::bench::tempdir_in(None)?;
    std::fs::write(
        state_dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: 'bench/instant' }} }},\n  models: {{ providers: {{ bench: {{ baseUrl: 'http://{provider}/v1', apiKey: 'sk-bench', models: [{{ id: 'instant' }}] }} }} }} }}\n"
        ),
    )?;
    let (_gateway, address) = super::bench_protocol::spawn_gateway(state_dir.path(), TOKEN)?;

    runtime.block_on(async {
        let mut socket = connect(&address).await?;
        for n in 0..20 {
            turn(&mut socket, &format!("warm-{n}"), &format!("agent:main:warm-{n}")).await?;
        }
        let (mut totals, mut overheads) = (histogram()?, histogram()?);
        for n in 0..args.turns {
            let message = format!("turn-{n}");
            let total = turn(&mut socket, &message, &format!("agent:main:bench-{n}")).await?;
            let provider_time = times.lock().expect("times").get(&message).copied().unwrap_or_default();
            totals.record(total.as_micros() as u64)?;
            overheads.record(total.saturating_sub(provider_time).as_micros() as u64)?;
        }
        let mut growing = histogram()?;
        let mut last = Duration::ZERO;
        for n in 0..args.session_turns {
            let message = format!("long-{n}");
            let total = turn(&mut socket, &message, "agent:main:long").await?;
            let provider_time = times.lock().expect("times").get(&message).copied().unwrap_or_default();
            last = total.saturating_sub(provider_time);
            growing.record(last.as_micros() as u64)?;
        }
        println!("| measure | value | note |");
        println!("|---|---:|---|");
        println!(
            "| turn, send to final answer, p50 / p99 ({} turns, new session each) | {} / {} | provider answers at once |",
            args.turns,
            micros(totals.value_at_quantile(0.5)),
            micros(totals.value_at_quantile(0.99))
        );
        println!(
            "| overhead per turn (minus the provider's time), p50 / p99 | {} / {} | |",
            micros(overheads.value_at_quantile(0.5)),
            micros(overheads.value_at_quantile(0.99))
        );
        println!(
            "| overhead per turn in one session of {} turns, p50 / p99 / last | {} / {} / {} | context re-read from the log each turn |",
            args.session_turns,
            micros(growing.value_at_quantile(0.5)),
            micros(growing.value_at_quantile(0.99)),
            micros(last.as_micros() as u64)
        );
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.sessions)
            .map(|session| {
                let address = address.clone();
                let per_session = args.turns_per_session;
                tokio::spawn(async move {
                    let mut socket = connect(&address).await?;
                    for n in 0..per_session {
                        turn(&mut socket, &format!("par-{session}-{n}"), &format!("agent:main:par-{session}")).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let elapsed = started.elapsed();
        let total = f64::from(args.sessions * args.turns_per_session);
        println!(
            "| turns/s, {} sessions at once x {} turns | {:.0} | |",
            args.sessions,
            args.turns_per_session,
            total / elapsed.as_secs_f64()
        );
        anyhow::Ok(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// An OpenAI-format server that streams a five-chunk reply at once.
pub(super) async fn start_provider(times: ProviderTimes) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: String| {
            let times = times.clone();
            async move {
                let started = Instant::now();
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let message = request["messages"]
                    .as_array()
                    .and_then(|messages| messages.last())
                    .and_then(|message| message["content"].as_str())
                    .unwrap_or("")
                    .to_owned();
                let mut text = String::new();
                for piece in ["Sure", ", here", " is", " the", " answer."] {
                    let chunk = json!({"id": "b", "object": "chat.completion.chunk", "created": 0,
                        "model": "instant", "choices": [{"index": 0, "delta": {"content": piece},
                        "finish_reason": null}]});
                    text.push_str(&format!("data: {chunk}\n\n"));
                }
                let end = json!({"id": "b", "object": "chat.completion.chunk", "created": 0,
                    "model": "instant", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}});
                text.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
                times.lock().expect("times").insert(message, started.elapsed());
                axum::response::Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .body(Body::from(text))
                    .expect("response")
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(
            listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app,
        )
        .await;
    });
    Ok(address)
}

async fn connect(address: &str) -> anyhow::Result<Socket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/")).await?;
    let _challenge = next_json(&mut socket).await?;
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": ["operator.write"], "auth": {"token": TOKEN},
    }});
    socket.send(Message::text(connect.to_string())).await?;
    let hello = next_json(&mut socket).await?;
    anyhow::ensure!(hello["ok"] == true, "connect refused: {hello}");
    Ok(socket)
}

/// One `agent` turn; the time from sending it to the final answer.
async fn turn(socket: &mut Socket, message: &str, session: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let request = json!({"type": "req", "id": message, "method": "agent", "params": {
        "message": message, "idempotencyKey": message, "sessionKey": session}});
    socket.send(Message::text(request.to_string())).await?;
    loop {
        let frame = next_json(socket).await?;
        if frame["type"] == "res" && frame["id"] == message {
            anyhow::ensure!(frame["ok"] == true, "agent failed: {frame}");
            match frame["payload"]["status"].as_str() {
                Some("accepted") => continue,
                Some("ok") => return Ok(started.elapsed()),
                _ => anyhow::bail!("the run failed: {frame}"),
            }
        }
    }
}

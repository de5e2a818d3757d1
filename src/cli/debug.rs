//! Hidden commands used by the test suite and to make fixtures. Not a stable
//! interface; `clawback debug --help` lists them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context;
use clap::Subcommand;
use clawback_events::event::*;
use clawback_events::store::MemoryStore;
use clawback_events::{Actor, Clock, Log, LogConfig, NewEvent, SystemClock, archive};

use crate::state_dir::StateDir;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Append from many threads forever, printing `ack <seq> <writer> <n>`
    /// after each acknowledged append (for the crash test).
    AppendLoad {
        #[arg(long, default_value_t = 32)]
        writers: usize,
    },
    /// Write the deterministic fixture log (every event kind) as an archive.
    WriteFixture {
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
}

pub fn run(state_dir: &StateDir, command: DebugCommand) -> anyhow::Result<ExitCode> {
    match command {
        DebugCommand::AppendLoad { writers } => append_load(state_dir, writers),
        DebugCommand::WriteFixture { output } => {
            let store = Arc::new(MemoryStore::new());
            {
                let clock = Arc::new(SteppingClock(AtomicI64::new(1_764_000_000_000)));
                let log = Log::open(store.clone(), LogConfig::default(), clock, None)?;
                for events in fixture_history() {
                    log.append_blocking(events)?;
                }
            }
            let mut file = std::fs::File::create(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let count = archive::write(&*store, 0, &mut file)?;
            file.sync_all()?;
            println!("wrote {count} records to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn append_load(state_dir: &StateDir, writers: usize) -> anyhow::Result<ExitCode> {
    let store = state_dir.open_store()?;
    let log = Arc::new(Log::open(
        store,
        LogConfig::default(),
        Arc::new(SystemClock),
        None,
    )?);
    println!("ready {}", log.next_seq());
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let log = log.clone();
            let stdout = stdout.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                for n in 0u64.. {
                    let session = format!("agent:main:load-{writer}");
                    let event = NewEvent::new(
                        session.clone(),
                        Actor::System,
                        Event::MessageAppended(MessageAppended {
                            session_key: session,
                            message_id: format!("w{writer}-n{n}"),
                            role: Role::User,
                            content: format!("load message {n} from writer {writer}"),
                            run_id: None,
                            tool_call_id: None,
                            origin: None,
                        }),
                    );
                    let committed = log.append_blocking(vec![event])?;
                    // Printed only after the append is durable: every line the
                    // test reads is a promise the log must keep.
                    let mut out = stdout.lock().expect("stdout lock");
                    writeln!(out, "ack {} {writer} {n}", committed.first_seq)?;
                    out.flush()?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer thread")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A clock that advances one second per reading: fixtures come out
/// byte-identical on every run.
struct SteppingClock(AtomicI64);

impl Clock for SteppingClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1_000, Ordering::SeqCst)
    }
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// A small but complete history: a conversation over a channel with an LLM
/// call, a tool call that needed approval, a delivery, plus cron, config,
/// presence, devices and nodes. Every event kind appears at least once.
pub fn fixture_history() -> Vec<Vec<NewEvent>> {
    let key = "agent:main:telegram:dm:42";
    let conn = Actor::Connection {
        conn_id: s("c1"),
        device_id: Some(s("dev1")),
    };
    let llm = Actor::Executor {
        name: s("llm:openai"),
    };
    let exec = Actor::Executor {
        name: s("tool:exec"),
    };
    let event =
        |stream: &str, actor: &Actor, event: Event| NewEvent::new(stream, actor.clone(), event);
    vec![
        vec![event("gateway", &Actor::System, Event::GatewayStarted(GatewayStarted { version: s("0.1.0"), bind: s("127.0.0.1:18789") }))],
        vec![event("config", &Actor::System, Event::ConfigChanged(ConfigChanged { config_hash: s("9f2c"), config_redacted: s(r#"{"gateway":{"auth":{"token":"__OPENCLAW_REDACTED__"}}}"#), source: s("startup") }))],
        vec![event("gateway", &conn, Event::ConnectionOpened(ConnectionOpened {
            conn_id: s("c1"), remote_addr: s("127.0.0.1:50000"),
            client: ClientInfo { id: s("cli"), version: s("2026.9.6"), platform: s("linux"), mode: s("cli"), display_name: None, instance_id: Some(s("i1")) },
            role: s("operator"), scopes: vec![s("operator.admin")], device_id: Some(s("dev1")), auth_method: s("token"),
        }))],
        vec![event("gateway", &conn, Event::PresenceChanged(PresenceChanged { key: s("i1"), change: PresenceChange::Upsert(PresenceEntry {
            host: Some(s("laptop")), ip: Some(s("127.0.0.1")), version: Some(s("2026.9.6")), platform: Some(s("linux")), mode: Some(s("cli")),
            reason: Some(s("connect")), text: None, device_id: Some(s("dev1")), roles: vec![s("operator")], scopes: vec![s("operator.admin")],
        }) }))],
        vec![event("gateway", &conn, Event::DevicePaired(DevicePaired { device_id: s("dev1"), public_key: s("AAAA"), role: s("operator"), scopes: vec![s("operator.admin")], approved_by: s("auto-loopback") }))],
        vec![event("gateway", &conn, Event::NodePaired(NodePaired { node_id: s("node1"), display_name: s("phone"), platform: s("ios"), capabilities: vec![s("camera")] }))],
        vec![
            event(key, &Actor::Channel { channel: s("telegram"), sender: s("42") }, Event::SessionCreated(SessionCreated { session_key: s(key), session_id: s("sess-1"), agent_id: s("main"), label: None, origin: Some(s("telegram")) })),
            event(key, &Actor::Channel { channel: s("telegram"), sender: s("42") }, Event::MessageAppended(MessageAppended {
                session_key: s(key), message_id: s("m1"), role: Role::User, content: s("What is in /tmp?"), run_id: None, tool_call_id: None,
                origin: Some(MessageOrigin { channel: s("telegram"), sender: s("42"), platform_message_id: Some(s("tg-1001")) }),
            })),
        ],
        vec![event(key, &Actor::System, Event::AgentRunStarted(AgentRunStarted { run_id: s("run-1"), session_key: s(key), agent_id: s("main"), model: Some(s("openai/gpt-5")), trigger: s("channel") })).correlated("run-1")],
        vec![event(key, &llm, Event::LlmCallRequested(LlmCallRequested { call_id: s("llm-1"), run_id: s("run-1"), session_key: s(key), provider: s("openai"), model: s("gpt-5"), attempt: 1, request: s(r#"{"model":"gpt-5","messages":[{"role":"user","content":"What is in /tmp?"}],"tools":[{"type":"function","function":{"name":"exec"}}]}"#) })).correlated("run-1")],
        vec![event(key, &llm, Event::LlmCallCompleted(LlmCallCompleted {
            call_id: s("llm-1"), run_id: s("run-1"), session_key: s(key), provider: s("openai"), model: s("gpt-5"),
            outcome: LlmOutcome::Ok { response: s(r#"{"choices":[{"message":{"tool_calls":[{"id":"call-1","function":{"name":"exec","arguments":"{\"command\":\"ls /tmp\"}"}}]}}]}"#), stop_reason: s("tool_calls") },
            usage: Usage { input_tokens: 120, output_tokens: 18, cache_read_tokens: 0, cache_write_tokens: 0 }, cost_micro_usd: 312, latency_ms: 840,
        })).correlated("run-1")],
        vec![event(key, &llm, Event::ToolCallRequested(ToolCallRequested { tool_call_id: s("call-1"), run_id: s("run-1"), session_key: s(key), tool: s("exec"), arguments: s(r#"{"command":"ls /tmp"}"#) })).correlated("run-1")],
        vec![event(key, &exec, Event::ApprovalRequested(ApprovalRequested { approval_id: s("appr-1"), kind: s("exec"), command: s("ls /tmp"), argv_hash: s("5d41"), session_key: Some(s(key)), agent_id: Some(s("main")), node_id: None, expires_at_ms: 1_764_000_300_000 })).correlated("run-1")],
        vec![event(key, &conn, Event::ApprovalResolved(ApprovalResolved { approval_id: s("appr-1"), decision: Decision::AllowAlways, reviewer: s("dev1"), grant_expires_at_ms: Some(1_764_086_400_000) })).correlated("run-1")],
        vec![event(key, &exec, Event::ToolCallStarted(ToolCallStarted { tool_call_id: s("call-1"), session_key: s(key) })).correlated("run-1")],
        vec![event(key, &exec, Event::ToolCallFinished(ToolCallFinished { tool_call_id: s("call-1"), session_key: s(key), outcome: ToolOutcome::Ok { output: s("a.txt\nb.txt\n") }, duration_ms: 12 })).correlated("run-1")],
        vec![event(key, &exec, Event::MessageAppended(MessageAppended { session_key: s(key), message_id: s("m2"), role: Role::Tool, content: s("a.txt\nb.txt\n"), run_id: Some(s("run-1")), tool_call_id: Some(s("call-1")), origin: None })).correlated("run-1")],
        vec![event(key, &llm, Event::LlmCallRequested(LlmCallRequested { call_id: s("llm-2"), run_id: s("run-1"), session_key: s(key), provider: s("openai"), model: s("gpt-5"), attempt: 1, request: s(r#"{"model":"gpt-5","messages":["..."]}"#) })).correlated("run-1")],
        vec![event(key, &llm, Event::LlmCallCompleted(LlmCallCompleted {
            call_id: s("llm-2"), run_id: s("run-1"), session_key: s(key), provider: s("openai"), model: s("gpt-5"),
            outcome: LlmOutcome::Failed { class: s("rate_limit"), message: s("429 Too Many Requests"), http_status: Some(429) },
            usage: Usage::default(), cost_micro_usd: 0, latency_ms: 95,
        })).correlated("run-1")],
        vec![event(key, &llm, Event::LlmCallCompleted(LlmCallCompleted {
            call_id: s("llm-3"), run_id: s("run-1"), session_key: s(key), provider: s("anthropic"), model: s("claude-sonnet-4-5"),
            outcome: LlmOutcome::Ok { response: s(r#"{"content":[{"type":"text","text":"Two files: a.txt and b.txt."}]}"#), stop_reason: s("end_turn") },
            usage: Usage { input_tokens: 160, output_tokens: 9, cache_read_tokens: 100, cache_write_tokens: 0 }, cost_micro_usd: 615, latency_ms: 1200,
        })).correlated("run-1")],
        vec![
            event(key, &llm, Event::MessageAppended(MessageAppended { session_key: s(key), message_id: s("m3"), role: Role::Assistant, content: s("Two files: a.txt and b.txt."), run_id: Some(s("run-1")), tool_call_id: None, origin: None })).correlated("run-1"),
            event(key, &Actor::System, Event::AgentRunFinished(AgentRunFinished { run_id: s("run-1"), session_key: s(key), status: RunStatus::Completed })).correlated("run-1"),
        ],
        vec![event(key, &Actor::System, Event::DeliveryPrepared(DeliveryPrepared { delivery_id: s("d1"), idempotency_key: s("run-1:m3"), channel: s("telegram"), target: s("42"), session_key: Some(s(key)), text: s("Two files: a.txt and b.txt.") }))],
        vec![event(key, &Actor::Executor { name: s("channel:telegram") }, Event::DeliverySent(DeliverySent { delivery_id: s("d1"), platform_message_id: Some(s("tg-1002")) }))],
        vec![event(key, &Actor::Executor { name: s("channel:telegram") }, Event::DeliveryFailed(DeliveryFailed { delivery_id: s("d2"), error: s("429 retry_after 3"), retryable: true }))],
        vec![event(key, &conn, Event::SessionPatched(SessionPatched { session_key: s(key), set: vec![(s("thinkingLevel"), s("\"high\""))], cleared: vec![s("label")] }))],
        vec![event(key, &Actor::System, Event::SessionCompacted(SessionCompacted { session_key: s(key), summary: s("User asked about /tmp; it holds a.txt and b.txt."), messages_compacted: 3, tokens_before: 2000, tokens_after: 300 }))],
        vec![event("cron", &conn, Event::CronJobAdded(CronJobAdded { job_id: s("job-1"), name: s("morning brief"), schedule: s("0 8 * * *"), payload: s(r#"{"kind":"agentTurn","message":"brief me"}"#), enabled: true }))],
        vec![event("cron", &Actor::Cron { job_id: s("job-1") }, Event::CronJobFired(CronJobFired { job_id: s("job-1"), slot_ms: 1_764_057_600_000, run_id: s("run-2") }))],
        vec![event("cron", &Actor::Cron { job_id: s("job-1") }, Event::CronJobFinished(CronJobFinished { job_id: s("job-1"), run_id: s("run-2"), ok: true, error: None }))],
        vec![event("cron", &conn, Event::CronJobRemoved(CronJobRemoved { job_id: s("job-1") }))],
        vec![event("gateway", &exec, Event::ApprovalRequested(ApprovalRequested { approval_id: s("appr-2"), kind: s("exec"), command: s("rm -rf /"), argv_hash: s("aa11"), session_key: None, agent_id: Some(s("main")), node_id: None, expires_at_ms: 1_764_000_100_000 }))],
        vec![event("gateway", &Actor::System, Event::ApprovalExpired(ApprovalExpired { approval_id: s("appr-2") }))],
        vec![event("gateway", &conn, Event::RpcReceived(RpcReceived { conn_id: s("c1"), request_id: s("r1"), method: s("sessions.reset"), params_redacted: s(r#"{"key":"agent:main:telegram:dm:42"}"#) }))],
        vec![event(key, &conn, Event::SessionReset(SessionReset { session_key: s(key), new_session_id: s("sess-2"), reason: s("reset") }))],
        vec![event("gateway", &conn, Event::RpcAnswered(RpcAnswered { conn_id: s("c1"), request_id: s("r1"), method: s("sessions.reset"), outcome: RpcOutcome::Ok }))],
        vec![event("gateway", &conn, Event::RpcAnswered(RpcAnswered { conn_id: s("c1"), request_id: s("r2"), method: s("nope"), outcome: RpcOutcome::Error { code: s("INVALID_REQUEST"), message: s("unknown method: nope") } }))],
        vec![event("agent:main:scratch", &conn, Event::SessionCreated(SessionCreated { session_key: s("agent:main:scratch"), session_id: s("sess-3"), agent_id: s("main"), label: Some(s("scratch")), origin: Some(s("webchat")) }))],
        vec![event("agent:main:scratch", &conn, Event::SessionDeleted(SessionDeleted { session_key: s("agent:main:scratch") }))],
        vec![event("gateway", &conn, Event::NodeUnpaired(NodeUnpaired { node_id: s("node1") }))],
        vec![event("gateway", &conn, Event::DeviceRevoked(DeviceRevoked { device_id: s("dev1"), reason: s("lost laptop") }))],
        vec![event("gateway", &conn, Event::PresenceChanged(PresenceChanged { key: s("i1"), change: PresenceChange::Removed { reason: s("disconnect") } }))],
        vec![event("gateway", &conn, Event::ConnectionClosed(ConnectionClosed { conn_id: s("c1"), code: 1000, reason: s("bye") }))],
        vec![event("gateway", &Actor::System, Event::GatewayStopped(GatewayStopped { reason: s("SIGTERM") }))],
    ]
}

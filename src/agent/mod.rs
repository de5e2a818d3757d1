//! The agent runtime: runs a turn of a session through the configured model
//! and records every step.
//!
//! - `provider`: what every wire format shares, and the dispatch by `api`;
//! - `openai`: OpenAI Chat Completions streaming (`openai-completions`);
//! - `openai_responses`: OpenAI Responses streaming (`openai-responses`);
//! - `anthropic`: Anthropic Messages streaming (`anthropic-messages`);
//! - `gemini`: Google Gemini streaming (`google-generative-ai`);
//! - `ollama`: Ollama's native chat API (`ollama`);
//! - `bedrock`: Amazon Bedrock ConverseStream (`bedrock-converse-stream`),
//!   with `eventstream` (AWS's binary frames) and `sigv4` (request signing);
//! - `run`: one run, from the user's message to the recorded reply;
//! - `models`: the model chain a run may use, resolved from the config;
//! - `context`: what the model is given (prompt, workspace files, summary,
//!   transcript, thinking level);
//! - `client_events`: the `agent` and `chat` events a run streams;
//! - `compact`: the old part of a transcript summarized through the model;
//! - `workspace`: the agent's files (AGENTS.md, SOUL.md, ...) that feed the
//!   system prompt;
//! - `tools`: the registry of tools a model may call, with their schemas.
//!
//! Why runs live here and not in the protocol layer: a run outlives the
//! request that started it (`chat.send` answers at once; `agent` answers
//! twice), and later channels, cron and hooks start runs too.
//!
//! Invariants: turns of one session run strictly one after another (a lane
//! per session); a run id (the client's idempotency key) starts at most one
//! run; every LLM call is recorded as a request/response pair around the
//! call, every tool call as requested/started/finished around its work,
//! and the reply is appended to the transcript before anyone is told the
//! run ended.

pub mod anthropic;
pub mod bedrock;
pub mod client_events;
pub mod compact;
pub mod context;
pub mod eventstream;
pub mod gemini;
pub mod models;
pub mod ollama;
pub mod openai;
pub mod openai_responses;
pub mod provider;
pub mod run;
pub mod sigv4;
pub mod tools;
pub mod workspace;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use run::{RunOutcome, RunRequest};

/// Finished outcomes kept for `agent.wait` and repeated idempotency keys
/// within this process (older ones are answered from the projection).
const FINISHED_KEPT: usize = 4_096;

pub struct Runtime {
    /// Built on the first run: loading the system's root certificates costs
    /// a few MB that a gateway without a model configured never needs.
    client: std::sync::OnceLock<reqwest::Client>,
    /// One lane per session key: runs of a session queue here.
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Runs started by this process, by run id, until they finish.
    running: Mutex<HashMap<String, watch::Receiver<Option<RunOutcome>>>>,
    finished: Mutex<(VecDeque<String>, HashMap<String, RunOutcome>)>,
    /// Unfinished runs' abort switches, by run id.
    aborts: Mutex<HashMap<String, AbortSwitch>>,
    /// Credentials cooling down after a rate limit, until (unix ms). Keyed
    /// by provider and credential (`Resolved::cooldown_key`): another key
    /// of the same provider may still have quota.
    cooldowns: Mutex<HashMap<String, i64>>,
    /// The tools runs may call.
    pub tools: tools::Registry,
}

/// How long a provider is skipped after it answered a rate limit.
pub const RATE_LIMIT_COOLDOWN_MS: i64 = 60_000;

/// A run's session key, and the switch that stops it (with the reason).
type AbortSwitch = (String, watch::Sender<Option<String>>);

/// How a start request was taken.
pub enum Started {
    /// A new run; its outcome arrives on the receiver.
    New(watch::Receiver<Option<RunOutcome>>),
    /// The run id is already running: the same receiver.
    Running(watch::Receiver<Option<RunOutcome>>),
    /// The run id already finished in this process.
    Finished(Box<RunOutcome>),
}

impl Runtime {
    pub fn new() -> anyhow::Result<Runtime> {
        Ok(Runtime {
            client: std::sync::OnceLock::new(),
            lanes: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            finished: Mutex::new((VecDeque::new(), HashMap::new())),
            aborts: Mutex::new(HashMap::new()),
            cooldowns: Mutex::new(HashMap::new()),
            tools: tools::Registry::builtin(),
        })
    }

    pub fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // rustls needs one crypto provider for the process; ring is it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("clawback/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Starts `request` unless its run id already ran or runs.
    pub fn start(
        self: &Arc<Self>,
        gateway: Arc<crate::gateway::Gateway>,
        request: RunRequest,
    ) -> Started {
        if let Some(outcome) = self.finished_outcome(&request.run_id) {
            return Started::Finished(Box::new(outcome));
        }
        let mut running = self.running.lock().expect("running lock");
        if let Some(receiver) = running.get(&request.run_id) {
            return Started::Running(receiver.clone());
        }
        let (sender, receiver) = watch::channel(None);
        running.insert(request.run_id.clone(), receiver.clone());
        drop(running);
        let (abort, aborted) = watch::channel(None);
        self.aborts
            .lock()
            .expect("aborts lock")
            .insert(request.run_id.clone(), (request.session_key.clone(), abort));
        let runtime = self.clone();
        tokio::spawn(async move {
            let lane = runtime.lane(&request.session_key);
            let run_id = request.run_id.clone();
            let outcome = {
                let _turn = lane.lock().await;
                run::execute(&gateway, &runtime, request, aborted).await
            };
            runtime.finish(&run_id, outcome.clone());
            let _ = sender.send(Some(outcome));
        });
        Started::New(receiver)
    }

    /// The receiver of a run started by this process, or its outcome.
    pub fn lookup(&self, run_id: &str) -> Option<Started> {
        if let Some(outcome) = self.finished_outcome(run_id) {
            return Some(Started::Finished(Box::new(outcome)));
        }
        self.running
            .lock()
            .expect("running lock")
            .get(run_id)
            .cloned()
            .map(Started::Running)
    }

    fn finished_outcome(&self, run_id: &str) -> Option<RunOutcome> {
        self.finished
            .lock()
            .expect("finished lock")
            .1
            .get(run_id)
            .cloned()
    }

    fn finish(&self, run_id: &str, outcome: RunOutcome) {
        let mut finished = self.finished.lock().expect("finished lock");
        let (order, outcomes) = &mut *finished;
        order.push_back(run_id.to_owned());
        outcomes.insert(run_id.to_owned(), outcome);
        while order.len() > FINISHED_KEPT {
            if let Some(oldest) = order.pop_front() {
                outcomes.remove(&oldest);
            }
        }
        drop(finished);
        self.running.lock().expect("running lock").remove(run_id);
        self.aborts.lock().expect("aborts lock").remove(run_id);
    }

    /// Aborts the unfinished runs of a session (or just `run_id`); returns
    /// the run ids told to stop. `reason` is recorded with each.
    pub fn abort(&self, session_key: &str, run_id: Option<&str>, reason: &str) -> Vec<String> {
        let aborts = self.aborts.lock().expect("aborts lock");
        let mut stopped: Vec<String> = aborts
            .iter()
            .filter(|(id, (session, _))| {
                session == session_key && run_id.is_none_or(|wanted| wanted == id.as_str())
            })
            .map(|(id, (_, abort))| {
                let _ = abort.send(Some(reason.to_owned()));
                id.clone()
            })
            .collect();
        stopped.sort();
        stopped
    }

    /// Puts a provider in cooldown; returns until when (unix ms).
    pub fn cool_down(&self, provider: &str) -> i64 {
        let until = crate::gateway::protocol::methods::now_ms() + RATE_LIMIT_COOLDOWN_MS;
        self.cooldowns
            .lock()
            .expect("cooldowns lock")
            .insert(provider.to_owned(), until);
        until
    }

    pub fn cooling(&self, provider: &str) -> bool {
        let now = crate::gateway::protocol::methods::now_ms();
        self.cooldowns
            .lock()
            .expect("cooldowns lock")
            .get(provider)
            .is_some_and(|until| *until > now)
    }

    /// The chain without the models whose provider is cooling down, unless
    /// all are: then the whole chain (the first answer decides).
    pub fn available(&self, chain: Vec<models::Resolved>) -> Vec<models::Resolved> {
        if chain
            .iter()
            .all(|resolved| self.cooling(&resolved.cooldown_key()))
        {
            return chain;
        }
        chain
            .into_iter()
            .filter(|resolved| !self.cooling(&resolved.cooldown_key()))
            .collect()
    }

    /// The lane of a session: hold it to act on the session between turns.
    pub fn lane(&self, session_key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        // Idle lanes (nobody else holds them) are dropped as we go, so the
        // map is bounded by the sessions with queued or running turns.
        lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
        lanes
            .entry(session_key.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }
}

/// Waits for a run's outcome.
pub async fn wait(mut receiver: watch::Receiver<Option<RunOutcome>>) -> Option<RunOutcome> {
    loop {
        if let Some(outcome) = receiver.borrow().clone() {
            return Some(outcome);
        }
        if receiver.changed().await.is_err() {
            return receiver.borrow().clone();
        }
    }
}

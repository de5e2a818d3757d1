//! The agent runtime: runs a turn of a session through the configured model
//! and records every step.
//!
//! - `provider`: what every wire format shares, and the dispatch by `api`;
//! - `openai`: OpenAI Chat Completions streaming (`openai-completions`);
//! - `openai_responses`: OpenAI Responses streaming (`openai-responses`);
//! - `anthropic`: Anthropic Messages streaming (`anthropic-messages`);
//! - `gemini`: Google Gemini streaming (`google-generative-ai`);
//! - `ollama`: Ollama's native chat API (`ollama`);
//! - `copilot`: GitHub Copilot's token exchange and headers in front of
//!   an OpenAI-compatible stream (`github-copilot`);
//! - `oauth`: an Anthropic OAuth profile's access token before a call,
//!   refreshed when it ages, the refresh on record;
//! - `bedrock`: Amazon Bedrock ConverseStream (`bedrock-converse-stream`),
//!   with `eventstream` (AWS's binary frames) and `sigv4` (request signing);
//! - `run`: one run, from the user's message to the recorded reply;
//! - `run_end`: how a run ends (completed, aborted, failed), recorded;
//! - `tool_round`: what happens between two model calls when the reply
//!   asked for tools;
//! - `models`: the model chain a run may use, resolved from the config;
//! - `context`: what the model is given (prompt, workspace files, summary,
//!   transcript, thinking level);
//! - `context_size`: its size in tokens for the window guard (the last
//!   reply's reported usage plus an estimate of what followed);
//! - `client_events`: the `agent` and `chat` events a run streams;
//! - `compact`: the old part of a transcript summarized through the model;
//! - `skills`: the workspace's SKILL.md catalog (prompt section, status);
//! - `workspace`: the agent's files (AGENTS.md, SOUL.md, ...) that feed the
//!   system prompt;
//! - `tools`: the registry of tools a model may call, with their schemas;
//! - `sampling`: a client's temperature, token cap, stop sequences... in
//!   each provider's words;
//! - `queue`: `chat.send`'s `steer` and `collect` messages waiting for a
//!   session's active run.
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
pub mod context_size;
pub mod copilot;
pub mod eventstream;
pub mod gemini;
pub mod models;
pub mod oauth;
pub mod ollama;
pub mod openai;
pub mod openai_responses;
pub mod provider;
pub mod queue;
pub mod run;
pub mod run_end;
pub mod sampling;
pub mod sigv4;
pub mod skills;
pub mod tool_round;
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
    /// Copilot tokens exchanged for GitHub tokens (memory only).
    pub copilot: copilot::Tokens,
    /// OAuth profiles' refreshes, one at a time per profile.
    pub oauth: crate::credentials::oauth::Refresher,
    /// Per session: the active run and the steered and collected messages
    /// waiting for it. Lock order: `queues`, then `running`, `aborts`,
    /// `aliases`.
    queues: Mutex<HashMap<String, queue::SessionQueue>>,
    /// Message ids (idempotency keys) taken into another run (steered into
    /// it, or collected into it), to that run's id; bounded like `finished`.
    aliases: Mutex<(VecDeque<String>, HashMap<String, String>)>,
    /// Runs whose reply text someone follows as it streams (the
    /// OpenAI-compatible HTTP streams), by run id: registered before the
    /// run starts, taken by the run when it starts. Bounded by the HTTP
    /// requests in flight.
    texts: Mutex<HashMap<String, watch::Sender<String>>>,
}

/// How a `steer` or `collect` message was taken.
pub enum Queued {
    /// Waiting for the active run `into` (steer: it joins that run;
    /// collect: it joins the turn `into` after that run).
    Waiting { into: String },
    /// No run of the session is active: run it as a turn of its own.
    Idle(Box<RunRequest>),
    /// The id is already known: as `start` would answer.
    Known(Started),
}

/// What runs a lane's next turn: the run's outcome sender and abort switch.
struct Registered {
    sender: watch::Sender<Option<RunOutcome>>,
    aborted: watch::Receiver<Option<String>>,
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
            copilot: copilot::Tokens::default(),
            oauth: crate::credentials::oauth::Refresher::default(),
            queues: Mutex::new(HashMap::new()),
            aliases: Mutex::new((VecDeque::new(), HashMap::new())),
            texts: Mutex::new(HashMap::new()),
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

    /// Follows the reply text of the run `run_id`, which must not have
    /// started yet: the receiver holds the text so far (a fallback to
    /// another model starts it again from empty) and closes when the run
    /// ends. Call `unfollow_text` if the run is then not started.
    pub fn follow_text(&self, run_id: &str) -> watch::Receiver<String> {
        let (sender, receiver) = watch::channel(String::new());
        self.texts
            .lock()
            .expect("texts lock")
            .insert(run_id.to_owned(), sender);
        receiver
    }

    pub fn unfollow_text(&self, run_id: &str) {
        self.texts.lock().expect("texts lock").remove(run_id);
    }

    /// The follower of `run_id`'s text, taken by the run as it starts.
    pub(crate) fn take_text_follower(&self, run_id: &str) -> Option<watch::Sender<String>> {
        self.texts.lock().expect("texts lock").remove(run_id)
    }

    /// Starts `request` unless its run id already ran or runs.
    pub fn start(
        self: &Arc<Self>,
        gateway: Arc<crate::gateway::Gateway>,
        request: RunRequest,
    ) -> Started {
        if let Some(known) = self.lookup(&request.run_id) {
            return known;
        }
        let mut running = self.running.lock().expect("running lock");
        if let Some(receiver) = running.get(&request.run_id) {
            return Started::Running(receiver.clone());
        }
        let (registered, receiver) = self.register(&mut running, &request);
        drop(running);
        self.spawn_lane(gateway, request, registered);
        Started::New(receiver)
    }

    /// Enters a run in the run table (with its abort switch).
    fn register(
        &self,
        running: &mut HashMap<String, watch::Receiver<Option<RunOutcome>>>,
        request: &RunRequest,
    ) -> (Registered, watch::Receiver<Option<RunOutcome>>) {
        let (sender, receiver) = watch::channel(None);
        running.insert(request.run_id.clone(), receiver.clone());
        let (abort, aborted) = watch::channel(None);
        self.aborts
            .lock()
            .expect("aborts lock")
            .insert(request.run_id.clone(), (request.session_key.clone(), abort));
        (Registered { sender, aborted }, receiver)
    }

    /// Runs `request` on its session's lane, then, still holding the lane,
    /// the turns that waited for it (steered messages it never reached, the
    /// collected turn), in order.
    fn spawn_lane(
        self: &Arc<Self>,
        gateway: Arc<crate::gateway::Gateway>,
        request: RunRequest,
        registered: Registered,
    ) {
        let runtime = self.clone();
        tokio::spawn(async move {
            let lane = runtime.lane(&request.session_key);
            let _turn = lane.lock().await;
            let mut next = VecDeque::from([(request, registered)]);
            while let Some((request, registered)) = next.pop_front() {
                let run_id = request.run_id.clone();
                let session_key = request.session_key.clone();
                runtime.set_active(&session_key, &run_id);
                let outcome = run::execute(&gateway, &runtime, request, registered.aborted).await;
                next.extend(runtime.end_active(&session_key));
                runtime.finish(&run_id, outcome.clone());
                let _ = registered.sender.send(Some(outcome));
            }
        });
    }

    fn set_active(&self, session_key: &str, run_id: &str) {
        self.queues
            .lock()
            .expect("queues lock")
            .entry(session_key.to_owned())
            .or_default()
            .active = Some(run_id.to_owned());
    }

    /// The session's active run ended: what waited for it, registered as
    /// runs, in order (steered messages it never took each as a turn of
    /// their own, then the collected turn).
    fn end_active(&self, session_key: &str) -> Vec<(RunRequest, Registered)> {
        let mut queues = self.queues.lock().expect("queues lock");
        let Some(mut waiting) = queues.remove(session_key) else {
            return Vec::new();
        };
        let mut turns: Vec<RunRequest> = waiting.steer.drain(..).collect();
        let mut aliases = self.aliases.lock().expect("aliases lock");
        for turn in &turns {
            aliases.1.remove(&turn.run_id);
        }
        drop(aliases);
        let collected_ids: Vec<String> = waiting
            .collect
            .iter()
            .map(|queued| queued.run_id.clone())
            .collect();
        let collected = waiting.take_collected();
        if let Some(turn) = &collected {
            // The turn takes the first message's id (the first may have
            // been withdrawn since the others were told another).
            for id in collected_ids.iter().filter(|id| **id != turn.run_id) {
                self.alias(id, &turn.run_id);
            }
        }
        let mut running = self.running.lock().expect("running lock");
        let mut out = Vec::new();
        for request in turns.drain(..) {
            let (registered, _) = self.register(&mut running, &request);
            out.push((request, registered));
        }
        if let Some(request) = collected {
            let (registered, _) = self.register(&mut running, &request);
            out.push((request, registered));
        }
        out
    }

    /// The steered messages waiting for `run_id` (the session's active
    /// run), taken at a model-call boundary.
    pub fn take_steered(&self, session_key: &str, run_id: &str) -> Vec<RunRequest> {
        self.queues
            .lock()
            .expect("queues lock")
            .get_mut(session_key)
            .map(|waiting| waiting.take_steered(run_id))
            .unwrap_or_default()
    }

    /// Takes a `steer` (`collect: false`) or `collect` message: it waits
    /// for the session's active run, or, with none active, is to run as a
    /// turn of its own. Refused when the session already has
    /// [`queue::PENDING_MAX`] messages waiting.
    pub fn enqueue(&self, request: RunRequest, collect: bool) -> Result<Queued, String> {
        let mut queues = self.queues.lock().expect("queues lock");
        if let Some(known) = self.lookup(&request.run_id) {
            return Ok(Queued::Known(known));
        }
        let waiting = queues.entry(request.session_key.clone()).or_default();
        let Some(active) = waiting.active.clone() else {
            if waiting.is_idle() {
                queues.remove(&request.session_key);
            }
            return Ok(Queued::Idle(Box::new(request)));
        };
        let already = waiting
            .steer
            .iter()
            .chain(&waiting.collect)
            .any(|queued| queued.run_id == request.run_id);
        if already || active == request.run_id {
            let into = if collect {
                waiting
                    .collect
                    .first()
                    .map_or(active, |first| first.run_id.clone())
            } else {
                active
            };
            return Ok(Queued::Waiting { into });
        }
        if waiting.pending() >= queue::PENDING_MAX {
            return Err(format!(
                "session {} already has {} messages waiting for its active run {active}; \
                 wait for it to finish, then send again",
                request.session_key,
                queue::PENDING_MAX
            ));
        }
        let into = if collect {
            match waiting.collect.first() {
                Some(first) => first.run_id.clone(),
                None => request.run_id.clone(),
            }
        } else {
            active
        };
        if into != request.run_id {
            self.alias(&request.run_id, &into);
        }
        if collect {
            waiting.collect.push(request);
        } else {
            waiting.steer.push_back(request);
        }
        Ok(Queued::Waiting { into })
    }

    /// For a message still waiting in a session's queue: the receiver of
    /// the active run it waits for.
    pub fn waiting_on(&self, id: &str) -> Option<watch::Receiver<Option<RunOutcome>>> {
        let queues = self.queues.lock().expect("queues lock");
        let active = queues
            .values()
            .find(|waiting| {
                waiting
                    .steer
                    .iter()
                    .chain(&waiting.collect)
                    .any(|queued| queued.run_id == id)
            })?
            .active
            .clone()?;
        let running = self.running.lock().expect("running lock");
        running.get(&active).cloned()
    }

    fn alias(&self, id: &str, into: &str) {
        let mut aliases = self.aliases.lock().expect("aliases lock");
        let (order, map) = &mut *aliases;
        if map.insert(id.to_owned(), into.to_owned()).is_none() {
            order.push_back(id.to_owned());
        }
        while order.len() > FINISHED_KEPT {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }

    /// The receiver of a run started by this process, or its outcome.
    /// A message steered or collected into another run answers as that
    /// run; one still waiting in a queue is not found here.
    pub fn lookup(&self, run_id: &str) -> Option<Started> {
        let aliased = self
            .aliases
            .lock()
            .expect("aliases lock")
            .1
            .get(run_id)
            .cloned();
        let run_id = aliased.as_deref().unwrap_or(run_id);
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
    /// Messages still waiting in the session's queue are withdrawn (all of
    /// them, or the one `run_id` names) and listed too.
    pub fn abort(&self, session_key: &str, run_id: Option<&str>, reason: &str) -> Vec<String> {
        let mut withdrawn = Vec::new();
        if let Some(waiting) = self
            .queues
            .lock()
            .expect("queues lock")
            .get_mut(session_key)
        {
            let wanted = |queued: &RunRequest| run_id.is_none_or(|id| id == queued.run_id);
            withdrawn.extend(
                waiting
                    .steer
                    .iter()
                    .chain(&waiting.collect)
                    .filter(|queued| wanted(queued))
                    .map(|queued| queued.run_id.clone()),
            );
            waiting.steer.retain(|queued| !wanted(queued));
            waiting.collect.retain(|queued| !wanted(queued));
            let mut aliases = self.aliases.lock().expect("aliases lock");
            for id in &withdrawn {
                aliases.1.remove(id);
            }
        }
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
        stopped.extend(withdrawn);
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

//! Token usage and cost, in total and per provider and model.
//!
//! Why integers: cost arrives in millionths of a dollar, so sums are exact
//! and identical on every rebuild; floats would make the state hash depend on
//! the order of additions. Sums saturate instead of wrapping.

use std::collections::BTreeMap;

use clawback_events::event::{LlmCallCompleted, LlmOutcome, Usage};
use serde::{Deserialize, Serialize};

use crate::At;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub calls: u64,
    pub failed_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_micro_usd: u64,
    pub latency_ms: u64,
}

impl UsageTotals {
    pub fn add(&mut self, usage: &Usage, cost_micro_usd: u64, latency_ms: u64, failed: bool) {
        self.calls = self.calls.saturating_add(1);
        self.failed_calls = self.failed_calls.saturating_add(u64::from(failed));
        self.input_tokens = self.input_tokens.saturating_add(usage.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(usage.output_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(usage.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(usage.cache_write_tokens);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(cost_micro_usd);
        self.latency_ms = self.latency_ms.saturating_add(latency_ms);
    }

    pub(crate) fn add_call(&mut self, event: &LlmCallCompleted) {
        let failed = matches!(event.outcome, LlmOutcome::Failed { .. });
        self.add(&event.usage, event.cost_micro_usd, event.latency_ms, failed);
    }
}

/// Days of per-day totals kept (a bit over a year); older days stay in the
/// grand totals and in the log.
pub const USAGE_DAYS_KEPT: usize = 400;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBook {
    pub total: UsageTotals,
    /// Provider -> model -> totals. Nested rather than keyed by a pair so a
    /// lookup borrows the event's strings instead of allocating a key.
    pub by_model: BTreeMap<String, BTreeMap<String, UsageTotals>>,
    /// Totals per UTC day (days since the Unix epoch, from the record's
    /// time) and agent, for `usage.cost`.
    pub by_day: BTreeMap<i64, BTreeMap<String, UsageTotals>>,
}

/// The agent a session key belongs to: `agent:<id>:...`, else `main`.
pub fn agent_of(session_key: &str) -> &str {
    crate::sessions::agent_in_key(session_key).unwrap_or("main")
}

impl UsageBook {
    pub(crate) fn llm_call_completed(&mut self, at: At, event: &LlmCallCompleted) {
        let day = at.ts_ms.div_euclid(DAY_MS);
        let agent = agent_of(&event.session_key);
        let day_totals = self.by_day.entry(day).or_default();
        match day_totals.get_mut(agent) {
            Some(totals) => totals.add_call(event),
            None => {
                let mut totals = UsageTotals::default();
                totals.add_call(event);
                day_totals.insert(agent.to_owned(), totals);
            }
        }
        while self.by_day.len() > USAGE_DAYS_KEPT {
            self.by_day.pop_first();
        }
        self.total.add_call(event);
        let known = self
            .by_model
            .get_mut(&event.provider)
            .and_then(|models| models.get_mut(&event.model));
        if let Some(totals) = known {
            totals.add_call(event);
            return;
        }
        self.by_model
            .entry(event.provider.clone())
            .or_default()
            .entry(event.model.clone())
            .or_default()
            .add_call(event);
    }
}

//! `usage.cost`: tokens and cost per day, from the usage projection (a fold
//! of every recorded `llm.call.completed`).

use serde_json::{Value, json};

use super::super::frames::ErrorShape;
use super::{Params, now_ms};
use crate::gateway::Gateway;

const DAY_MS: i64 = 86_400_000;
const DAYS_DEFAULT: u64 = 30;
const DAYS_MAX: u64 = clawback_projections::usage::USAGE_DAYS_KEPT as u64;

pub fn cost(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "usage.cost",
        params,
        &[
            "days",
            "startDate",
            "endDate",
            "mode",
            "utcOffset",
            "agentId",
            "agentScope",
        ],
    )?;
    if params.opt_str("startDate")?.is_some() || params.opt_str("endDate")?.is_some() {
        return Err(params.invalid("startDate/endDate are not supported by clawback yet; use days"));
    }
    let days = params.opt_u64("days")?.unwrap_or(DAYS_DEFAULT);
    if !(1..=DAYS_MAX).contains(&days) {
        return Err(params.invalid(format!("at /days: must be between 1 and {DAYS_MAX}")));
    }
    let all_agents = params.opt_choice("agentScope", &["all"])?.is_some();
    let agent = params.opt_str("agentId")?;
    if all_agents && agent.is_some() {
        return Err(ErrorShape::invalid(
            "agentScope=all cannot be combined with agentId",
        ));
    }
    let agent = agent.unwrap_or(super::agents::DEFAULT_AGENT);
    let today = now_ms().div_euclid(DAY_MS);
    let first = today - days as i64 + 1;
    let state = gateway.state.read().expect("state lock");
    let mut daily = Vec::new();
    let mut totals = Totals::default();
    for (day, agents) in state.usage.by_day.range(first..=today) {
        let mut row = Totals::default();
        for (name, usage) in agents {
            if all_agents || name == agent {
                row.add(usage);
            }
        }
        totals.merge(&row);
        daily.push(row.json(Some(&crate::timefmt::date(day * DAY_MS))));
    }
    Ok(json!({
        "updatedAt": now_ms(),
        "days": days,
        "daily": daily,
        "totals": totals.json(None),
    }))
}

#[derive(Default)]
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cost_micro_usd: u64,
    calls: u64,
}

impl Totals {
    fn add(&mut self, usage: &clawback_projections::usage::UsageTotals) {
        self.input += usage.input_tokens;
        self.output += usage.output_tokens;
        self.cache_read += usage.cache_read_tokens;
        self.cache_write += usage.cache_write_tokens;
        self.cost_micro_usd += usage.cost_micro_usd;
        self.calls += usage.calls;
    }

    fn merge(&mut self, other: &Totals) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.cost_micro_usd += other.cost_micro_usd;
        self.calls += other.calls;
    }

    fn json(&self, date: Option<&str>) -> Value {
        let mut value = json!({
            "input": self.input,
            "output": self.output,
            "cacheRead": self.cache_read,
            "cacheWrite": self.cache_write,
            "totalTokens": self.input + self.output + self.cache_read + self.cache_write,
            "totalCost": self.cost_micro_usd as f64 / 1e6,
            "calls": self.calls,
            "missingCostEntries": 0,
        });
        if let Some(date) = date {
            value["date"] = json!(date);
        }
        value
    }
}

/// `usage.status`: providers' quota windows (a subscription's "5-hour
/// window, 40% used"). OpenClaw reads them from the usage APIs of the
/// OAuth-backed plans it signs in to; clawback's providers are API keys,
/// which have no such windows, so the list is empty as OpenClaw's is when
/// no such provider is signed in. Spend is in `usage.cost`.
pub fn status(params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("usage.status", params, &[])?;
    Ok(json!({"updatedAt": now_ms(), "providers": []}))
}

//! When a job fires: OpenClaw's `at`, `every` and `cron` schedules as slots.
//!
//! A slot is the instant a schedule names (unix ms). The scheduler claims a
//! slot in the log before it runs the job, and a job's claimed slots only
//! move forward, so each slot runs at most once, across restarts. This module
//! only answers "which slot is due now" and "which comes next"; it is pure
//! given `now`, so the scheduler's decisions are testable without a clock.
//!
//! Missed slots are coalesced: after downtime a recurring job fires once,
//! for its latest missed slot, not once per missed slot.

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde_json::{Value, json};

/// The largest timestamp OpenClaw accepts (the JS Date range).
const TIMESTAMP_MS_MAX: i64 = 8_640_000_000_000_000;

pub enum Schedule {
    /// Once, at this instant.
    At { at_ms: i64 },
    /// Every `every_ms`, counted from `anchor_ms` (the job's creation when
    /// the client named no anchor).
    Every {
        every_ms: i64,
        anchor_ms: Option<i64>,
    },
    /// A 5- or 6-field cron expression in a time zone; each occurrence fires
    /// `stagger_ms` late (spreads jobs that share a minute).
    Cron {
        cron: Box<Cron>,
        zone: TimeZone,
        stagger_ms: i64,
    },
}

impl Schedule {
    /// Reads and checks a `schedule` object, returning it in the canonical
    /// form to store: a relative `at` ("20m") becomes an absolute time, and
    /// a time without an offset is read in `tz` or UTC, as OpenClaw does.
    /// The error names the field for the client.
    pub fn normalize(value: &Value, now_ms: i64) -> Result<(Schedule, Value), String> {
        let object = value
            .as_object()
            .ok_or_else(|| "at /schedule: must be object".to_owned())?;
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let allowed: &[&str] = match kind {
            "at" => &["kind", "at"],
            "every" => &["kind", "everyMs", "anchorMs"],
            "cron" => &["kind", "expr", "tz", "staggerMs"],
            "on-exit" | "stream" => {
                return Err(format!(
                    "at /schedule/kind: \"{kind}\" schedules need a supervised process, which clawback does not run yet; use \"at\", \"every\" or \"cron\""
                ));
            }
            _ => {
                return Err(
                    "at /schedule/kind: must be one of \"at\", \"every\", \"cron\"".to_owned(),
                );
            }
        };
        if let Some(key) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(format!(
                "at /schedule: must NOT have additional properties (unexpected property '{key}')"
            ));
        }
        let millis = |key: &str, minimum: i64| -> Result<Option<i64>, String> {
            match object.get(key) {
                None => Ok(None),
                Some(value) => value
                    .as_i64()
                    .filter(|ms| (minimum..=TIMESTAMP_MS_MAX).contains(ms))
                    .map(Some)
                    .ok_or_else(|| format!("at /schedule/{key}: must be an integer >= {minimum}")),
            }
        };
        let text = |key: &str| -> Result<Option<&str>, String> {
            match object.get(key) {
                None => Ok(None),
                Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.trim())),
                Some(_) => Err(format!("at /schedule/{key}: must be a non-empty string")),
            }
        };
        match kind {
            "at" => {
                let at = text("at")?.ok_or("at /schedule: must have required property 'at'")?;
                let at_ms = parse_at(at, now_ms)?;
                let canonical = Timestamp::from_millisecond(at_ms)
                    .map_err(|error| format!("at /schedule/at: {error}"))?
                    .to_string();
                Ok((
                    Schedule::At { at_ms },
                    json!({"kind": "at", "at": canonical}),
                ))
            }
            "every" => {
                let every_ms = millis("everyMs", 1)?
                    .ok_or("at /schedule: must have required property 'everyMs'")?;
                let anchor_ms = millis("anchorMs", 0)?;
                let mut canonical = json!({"kind": "every", "everyMs": every_ms});
                if let Some(anchor) = anchor_ms {
                    canonical["anchorMs"] = json!(anchor);
                }
                Ok((
                    Schedule::Every {
                        every_ms,
                        anchor_ms,
                    },
                    canonical,
                ))
            }
            _ => {
                let expr =
                    text("expr")?.ok_or("at /schedule: must have required property 'expr'")?;
                let tz = text("tz")?;
                let stagger_ms = millis("staggerMs", 0)?.unwrap_or(0);
                let schedule = Schedule::cron(expr, tz, stagger_ms)?;
                let mut canonical = json!({"kind": "cron", "expr": expr});
                if let Some(tz) = tz {
                    canonical["tz"] = json!(tz);
                }
                if stagger_ms > 0 {
                    canonical["staggerMs"] = json!(stagger_ms);
                }
                Ok((schedule, canonical))
            }
        }
    }

    /// Reads a schedule stored by [`Schedule::normalize`].
    pub fn stored(value: &Value) -> Result<Schedule, String> {
        // Normalizing a normalized schedule changes nothing; `now` only
        // matters for relative times, which are never stored.
        Schedule::normalize(value, 0).map(|(schedule, _)| schedule)
    }

    fn cron(expr: &str, tz: Option<&str>, stagger_ms: i64) -> Result<Schedule, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|error| format!("at /schedule/expr: invalid cron expression: {error}"))?;
        let zone = match tz {
            Some(name) => TimeZone::get(name).map_err(|_| {
                format!("at /schedule/tz: unknown time zone \"{name}\" (an IANA name such as \"Europe/Vienna\", or \"UTC\")")
            })?,
            // OpenClaw evaluates an expression without a zone in the
            // gateway host's zone.
            None => TimeZone::system(),
        };
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            zone,
            stagger_ms,
        })
    }

    /// The slot to fire now, if any: the latest slot that has come (with
    /// its stagger), is after the last claimed one, and (for recurring
    /// schedules) after `active_since_ms`.
    pub fn due(&self, active_since_ms: i64, last_slot_ms: Option<i64>, now_ms: i64) -> Option<i64> {
        let unclaimed = |slot: i64| last_slot_ms.is_none_or(|last| slot > last);
        match *self {
            Schedule::At { at_ms } => (at_ms <= now_ms && unclaimed(at_ms)).then_some(at_ms),
            Schedule::Every {
                every_ms,
                anchor_ms,
            } => {
                let anchor = anchor_ms.unwrap_or(active_since_ms);
                if now_ms < anchor {
                    return None;
                }
                let slot = anchor + (now_ms - anchor) / every_ms * every_ms;
                (slot > active_since_ms && unclaimed(slot)).then_some(slot)
            }
            Schedule::Cron {
                ref cron,
                ref zone,
                stagger_ms,
            } => {
                let latest = zoned(now_ms - stagger_ms, zone)?;
                let slot = cron.find_previous_occurrence(&latest, true).ok()?;
                let slot = slot.timestamp().as_millisecond();
                (slot > active_since_ms && unclaimed(slot)).then_some(slot)
            }
        }
    }

    /// When the job fires next (with its stagger): the first slot after
    /// `now`, the last claimed slot and `active_since_ms`. `None` when it
    /// never fires again.
    pub fn next_fire_ms(
        &self,
        active_since_ms: i64,
        last_slot_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<i64> {
        match *self {
            Schedule::At { at_ms } => {
                let unclaimed = last_slot_ms.is_none_or(|last| at_ms > last);
                unclaimed.then_some(at_ms)
            }
            Schedule::Every {
                every_ms,
                anchor_ms,
            } => {
                let anchor = anchor_ms.unwrap_or(active_since_ms);
                let after = now_ms
                    .max(last_slot_ms.unwrap_or(i64::MIN))
                    .max(active_since_ms);
                if after < anchor {
                    return Some(anchor);
                }
                Some(anchor + ((after - anchor) / every_ms + 1) * every_ms)
            }
            Schedule::Cron {
                ref cron,
                ref zone,
                stagger_ms,
            } => {
                let after = (now_ms - stagger_ms)
                    .max(last_slot_ms.unwrap_or(i64::MIN))
                    .max(active_since_ms);
                let from = zoned(after, zone)?;
                let slot = cron.find_next_occurrence(&from, false).ok()?;
                Some(slot.timestamp().as_millisecond() + stagger_ms)
            }
        }
    }

    /// Whether the job fires once only (then it may be deleted after it ran).
    pub fn is_one_shot(&self) -> bool {
        matches!(self, Schedule::At { .. })
    }
}

fn zoned(ms: i64, zone: &TimeZone) -> Option<Zoned> {
    Some(Timestamp::from_millisecond(ms).ok()?.to_zoned(zone.clone()))
}

/// An `at` time: RFC 3339 with an offset, a date-time without one (UTC), or
/// a duration from now ("20m", "1h 30m").
fn parse_at(at: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(timestamp) = Timestamp::from_str(at) {
        return Ok(timestamp.as_millisecond());
    }
    if let Ok(datetime) = jiff::civil::DateTime::from_str(at)
        && let Ok(zoned) = datetime.to_zoned(TimeZone::UTC)
    {
        return Ok(zoned.timestamp().as_millisecond());
    }
    if let Ok(duration) = humantime::parse_duration(at) {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_add(millis).min(TIMESTAMP_MS_MAX));
    }
    Err(format!(
        "at /schedule/at: \"{at}\" is not a time: use ISO 8601 (\"2027-02-01T16:00:00Z\") or a duration from now (\"20m\")"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    /// 2026-01-01T00:00:00Z.
    const NEW_YEAR: i64 = 1_767_225_600_000;

    fn schedule(value: Value) -> Schedule {
        Schedule::normalize(&value, NEW_YEAR).unwrap().0
    }

    #[test]
    fn at_is_canonical_and_fires_once() {
        let (at, canonical) =
            Schedule::normalize(&json!({"kind": "at", "at": "20m"}), NEW_YEAR).unwrap();
        assert_eq!(
            canonical,
            json!({"kind": "at", "at": "2026-01-01T00:20:00Z"})
        );
        let slot = NEW_YEAR + 20 * MINUTE;
        assert_eq!(at.due(NEW_YEAR, None, slot - 1), None);
        assert_eq!(at.due(NEW_YEAR, None, slot), Some(slot));
        assert_eq!(at.due(NEW_YEAR, Some(slot), slot + MINUTE), None);
        assert_eq!(at.next_fire_ms(NEW_YEAR, Some(slot), slot), None);
        let naive = schedule(json!({"kind": "at", "at": "2026-01-01T01:00:00"}));
        assert_eq!(naive.next_fire_ms(0, None, 0), Some(NEW_YEAR + 60 * MINUTE));
    }

    #[test]
    fn every_counts_from_activation_and_coalesces_missed_slots() {
        let every = schedule(json!({"kind": "every", "everyMs": 10 * MINUTE}));
        // Created at new year: nothing at creation, the first slot later.
        assert_eq!(every.due(NEW_YEAR, None, NEW_YEAR), None);
        assert_eq!(
            every.next_fire_ms(NEW_YEAR, None, NEW_YEAR),
            Some(NEW_YEAR + 10 * MINUTE)
        );
        // Three slots missed: one firing, for the latest.
        let later = NEW_YEAR + 35 * MINUTE;
        assert_eq!(
            every.due(NEW_YEAR, None, later),
            Some(NEW_YEAR + 30 * MINUTE)
        );
        assert_eq!(
            every.due(NEW_YEAR, Some(NEW_YEAR + 30 * MINUTE), later),
            None
        );
        assert_eq!(
            every.next_fire_ms(NEW_YEAR, Some(NEW_YEAR + 30 * MINUTE), later),
            Some(NEW_YEAR + 40 * MINUTE)
        );
    }

    #[test]
    fn cron_in_a_zone_with_stagger() {
        let daily =
            schedule(json!({"kind": "cron", "expr": "0 7 * * *", "tz": "UTC", "staggerMs": 5_000}));
        let seven = NEW_YEAR + 7 * 60 * MINUTE;
        assert_eq!(
            daily.next_fire_ms(NEW_YEAR, None, NEW_YEAR),
            Some(seven + 5_000)
        );
        assert_eq!(daily.due(NEW_YEAR, None, seven + 4_999), None);
        assert_eq!(daily.due(NEW_YEAR, None, seven + 5_000), Some(seven));
        // A slot before the job became active never fires.
        assert_eq!(daily.due(seven + 1, None, seven + 60_000), None);
    }

    #[test]
    fn bad_schedules_name_the_field() {
        let error = |value: Value| Schedule::normalize(&value, NEW_YEAR).err().unwrap();
        assert!(
            error(json!({"kind": "cron", "expr": "61 * * * *"})).starts_with("at /schedule/expr")
        );
        assert!(
            error(json!({"kind": "cron", "expr": "* * * * *", "tz": "Mars/Base"}))
                .starts_with("at /schedule/tz")
        );
        assert!(error(json!({"kind": "every", "everyMs": 0})).starts_with("at /schedule/everyMs"));
        assert!(error(json!({"kind": "at", "at": "soonish"})).starts_with("at /schedule/at"));
        assert!(error(json!({"kind": "on-exit", "command": "x"})).contains("supervised process"));
        assert!(error(json!({"kind": "every", "everyMs": 5, "x": 1})).contains("'x'"));
    }
}

//! Proptest strategies for event histories.
//!
//! Why a small id pool: random ids would almost never refer to each other,
//! and the interesting cases are the interactions (a message for a deleted
//! session, a decision on an expired approval, a slot fired twice, a restart
//! in the middle of a run). Drawing every id from a few values makes those
//! happen in nearly every generated history.

use clawback_events::event::*;
use clawback_events::{Actor, Body, Digest, Envelope, Event, NewEvent};
use proptest::prelude::*;

mod effects;
mod sessions;
mod surfaces;

use effects::side_effect_events;
use sessions::{run_events, session_events};
pub use surfaces::node_events;
use surfaces::{channel_events, gateway_events, http_events};

fn id(prefix: &'static str, pool: u8) -> impl Strategy<Value = String> {
    (0..pool).prop_map(move |n| format!("{prefix}{n}"))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z ]{1,12}",
        Just("\"quoted\"".to_owned())
    ]
}

fn ms() -> impl Strategy<Value = i64> {
    0i64..5_000
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::System),
        Just(Role::User),
        Just(Role::Assistant),
        Just(Role::Tool)
    ]
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        Just(Decision::AllowOnce),
        Just(Decision::AllowAlways),
        Just(Decision::Deny)
    ]
}

fn usage() -> impl Strategy<Value = Usage> {
    (0u64..1000, 0u64..1000, 0u64..10, 0u64..10).prop_map(|(i, o, r, w)| Usage {
        input_tokens: i,
        output_tokens: o,
        cache_read_tokens: r,
        cache_write_tokens: w,
    })
}

fn client() -> impl Strategy<Value = ClientInfo> {
    (id("client", 2), proptest::option::of(id("inst", 3))).prop_map(|(id, instance_id)| {
        ClientInfo {
            id,
            version: "2026.9.6".to_owned(),
            platform: "linux".to_owned(),
            mode: "cli".to_owned(),
            display_name: None,
            instance_id,
        }
    })
}

fn presence_entry() -> impl Strategy<Value = PresenceEntry> {
    (
        proptest::option::of(text()),
        proptest::option::of(id("dev", 3)),
    )
        .prop_map(|(text, device_id)| PresenceEntry {
            host: Some("host".to_owned()),
            ip: None,
            version: None,
            platform: None,
            mode: Some("cli".to_owned()),
            reason: Some("connect".to_owned()),
            text,
            device_id,
            roles: vec!["operator".to_owned()],
            scopes: vec!["operator.read".to_owned()],
        })
}

/// Any event, with ids drawn from small pools so events interact.
pub fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => gateway_events(),
        3 => session_events(),
        3 => run_events(),
        3 => side_effect_events(),
        2 => node_events(),
        1 => http_events(),
        1 => channel_events(),
    ]
}

/// A history of events with the time each happened after the previous one
/// (0 to 999 ms, so approval deadlines fall inside and outside histories).
pub fn timed_events(max_len: usize) -> impl Strategy<Value = Vec<(i64, Event)>> {
    proptest::collection::vec(
        (0i64..1000, event(), proptest::bool::weighted(0.3)),
        0..max_len,
    )
    .prop_map(|events| {
        events
            .into_iter()
            .map(|(delay, event, sealed)| (delay, if sealed { seal(event) } else { event }))
            .collect()
    })
}

/// `event` with its session content sealed, as the gateway's keyring would
/// (a fixed test key per session, a nonce from the content): reducers must
/// fold it exactly as the clear event. A purge of some keys comes with it.
fn seal(event: Event) -> Event {
    use clawback_events::event::SessionPurged;
    use clawback_events::sealed::{self, ContentKey};
    let Some(session_key) = event.session_key().map(str::to_owned) else {
        return event;
    };
    let key = ContentKey {
        id: format!("{:032x}", session_key.len()),
        bytes: [7u8; 32],
    };
    let nonce_source = blake3::hash(format!("{event:?}").as_bytes());
    let nonce: [u8; 12] = nonce_source.as_bytes()[..12].try_into().expect("12 bytes");
    match sealed::seal(event.clone(), None, |_| Ok((key.clone(), nonce))) {
        // A sealed deletion does not exist; purge the session's key instead.
        Ok(unchanged) if unchanged == event && matches!(event, Event::SessionDeleted(_)) => {
            Event::SessionPurged(SessionPurged {
                session_key,
                key_ids: vec![key.id],
            })
        }
        Ok(sealed) => sealed,
        Err(_) => event,
    }
}

/// What an appender would hand the log for `event`.
pub fn new_event(event: Event) -> NewEvent {
    let stream = event.session_key().unwrap_or("gateway").to_owned();
    NewEvent::new(stream, Actor::System, event)
}

/// Chains `events` into envelopes exactly as the log's writer would, starting
/// at seq 0 and time 0.
pub fn chain(events: &[(i64, Event)]) -> Vec<Envelope> {
    let mut prev_hash = Digest::GENESIS;
    let mut ts_ms = 0i64;
    let mut envelopes = Vec::with_capacity(events.len());
    for (seq, (delay_ms, event)) in events.iter().enumerate() {
        ts_ms += delay_ms;
        let new = new_event(event.clone());
        let body = Body {
            ts_ms,
            stream: new.stream,
            actor: new.actor,
            correlation: None,
            causation: None,
            event: new.event,
        };
        let seq = seq as u64;
        let (_, hash) = clawback_events::record::encode(seq, &prev_hash, &body);
        envelopes.push(Envelope {
            seq,
            body,
            prev_hash,
            hash,
        });
        prev_hash = hash;
    }
    envelopes
}

/// A chained history of up to `max_len` envelopes.
pub fn history(max_len: usize) -> impl Strategy<Value = Vec<Envelope>> {
    timed_events(max_len).prop_map(|events| chain(&events))
}

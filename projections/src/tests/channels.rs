//! The chat channels' projection: redeliveries, cursors, pending replies,
//! pairing and last routes.

use clawback_events::event::*;

use super::*;

fn received(message_id: &str, run_id: &str, cursor: &str, admitted: bool) -> Event {
    Event::ChannelMessageReceived(ChannelMessageReceived {
        channel: "telegram".to_owned(),
        account_id: "default".to_owned(),
        platform_message_id: message_id.to_owned(),
        cursor: Some(cursor.to_owned()),
        chat_kind: "direct".to_owned(),
        chat_id: "7".to_owned(),
        thread_id: None,
        sender_id: "7".to_owned(),
        sender_name: None,
        text: "hi".to_owned(),
        admission: if admitted {
            Admission::Admitted {
                agent_id: "main".to_owned(),
                session_key: "agent:main:main".to_owned(),
                run_id: run_id.to_owned(),
            }
        } else {
            Admission::Refused {
                reason: "not allowed".to_owned(),
            }
        },
    })
}

fn part(run_id: &str, index: u32) -> Event {
    Event::DeliveryPrepared(DeliveryPrepared {
        delivery_id: format!("d-{run_id}-{index}"),
        idempotency_key: format!("{run_id}#{index}"),
        channel: "telegram".to_owned(),
        target: "{}".to_owned(),
        session_key: None,
        text: "part".to_owned(),
    })
}

#[test]
fn a_message_is_taken_once_and_its_reply_tracked_until_settled() {
    let state = fold(vec![
        at(1, received("7:1", "r1", "2", true)),
        at(1, received("7:1", "r1", "2", true)),
        at(1, received("7:2", "r2", "3", false)),
        at(1, part("r1", 0)),
        at(1, part("r1", 0)),
        at(1, part("r1", 1)),
    ]);
    let channels = &state.channels;
    assert!(channels.seen("telegram", "default", "7:1"));
    assert!(
        !channels.seen("telegram", "other", "7:1"),
        "ids are per account"
    );
    assert_eq!(channels.cursor("telegram", "default"), Some("3"));
    let activity = &channels.accounts[&("telegram".to_owned(), "default".to_owned())];
    assert_eq!(
        (activity.admitted, activity.refused, activity.redelivered),
        (1, 1, 1)
    );
    assert_eq!(
        channels.pending_replies["r1"].parts_prepared, 2,
        "a repeated part counts once"
    );
    assert!(
        !channels.pending_replies.contains_key("r2"),
        "refused: no reply"
    );
    assert_eq!(state.anomalies.count("channel.message.redelivered"), 1);

    let mut events = vec![
        at(1, received("7:1", "r1", "2", true)),
        at(
            1,
            Event::ChannelReplyCompleted(ChannelReplyCompleted {
                run_id: "r1".to_owned(),
                outcome: "replied".to_owned(),
            }),
        ),
    ];
    events.push(events[1].clone());
    let settled = fold(events);
    assert!(settled.channels.pending_replies.is_empty());
    assert_eq!(settled.anomalies.count("channel.reply.unknown"), 1);
}

#[test]
fn a_session_remembers_the_chat_its_user_last_spoke_from() {
    let mut elsewhere = received("9:1", "r3", "4", true);
    if let Event::ChannelMessageReceived(message) = &mut elsewhere {
        message.chat_id = "9".to_owned();
        message.account_id = "work".to_owned();
    }
    let state = fold(vec![
        at(1, received("7:2", "r2", "3", false)),
        at(1, received("7:1", "r1", "2", true)),
    ]);
    let route = &state.channels.last_routes["agent:main:main"];
    assert_eq!((route.chat_id.as_str(), route.seq), ("7", 1));
    let refused_only = fold(vec![at(1, received("7:2", "r2", "3", false))]);
    assert!(
        refused_only.channels.last_routes.is_empty(),
        "a refused message sets no route"
    );
    let later = fold(vec![
        at(1, received("7:1", "r1", "2", true)),
        at(1, elsewhere),
    ]);
    let route = &later.channels.last_routes["agent:main:main"];
    assert_eq!(
        (route.account_id.as_str(), route.chat_id.as_str()),
        ("work", "9")
    );
}

//! Who may talk to the bot: DM and group policies, allowlists, mention
//! gating, as OpenClaw's channels apply them.
//!
//! Why fail-closed defaults: a bot token is reachable by anyone who finds
//! the bot's name. OpenClaw's defaults are `dmPolicy: "pairing"` and
//! `groupPolicy: "allowlist"`: here `pairing` admits `allowFrom` senders,
//! and `pairing` (the module) takes over for the others (a code, an
//! operator's approval), never everyone.

use super::routing::{Chat, ChatKind};
use super::settings::{Access, GroupRule, allow_entry};

/// Why a message is not answered, or `Ok` when it is.
pub fn admit(
    access: &Access,
    channel: &str,
    prefixes: &[&str],
    chat: &Chat,
    sender_id: &str,
    mentioned: bool,
) -> Result<(), String> {
    let sender = sender_id.to_lowercase();
    let listed = |list: &[serde_json::Value]| {
        list.iter()
            .filter_map(|entry| allow_entry(entry, prefixes))
            .any(|entry| entry == "*" || entry == sender)
    };
    match chat.kind {
        ChatKind::Direct => match access.dm_policy.as_deref().unwrap_or("pairing") {
            "open" if listed(&access.allow_from) => Ok(()),
            "open" => Err(format!(
                "dmPolicy open needs \"*\" in channels.{channel}.allowFrom"
            )),
            "disabled" => Err("direct messages are disabled (dmPolicy disabled)".to_owned()),
            policy @ ("allowlist" | "pairing") => {
                if listed(&access.allow_from) {
                    Ok(())
                } else {
                    Err(format!(
                        "sender {sender_id} is not in channels.{channel}.allowFrom (dmPolicy {policy})"
                    ))
                }
            }
            other => Err(format!("unknown dmPolicy {other:?}")),
        },
        ChatKind::Group | ChatKind::Channel => {
            let rule = group_rule(access, &chat.id);
            if rule.is_some_and(|rule| rule.enabled == Some(false)) {
                return Err(format!("group {} is disabled", chat.id));
            }
            let root_policy = access.group_policy.as_deref().unwrap_or("allowlist");
            if rule.is_none() {
                let open_without_list = access.groups.is_none() && root_policy == "open";
                if !open_without_list {
                    return Err(format!(
                        "group {} is not in channels.{channel}.groups",
                        chat.id
                    ));
                }
            }
            let policy = rule
                .and_then(|rule| rule.group_policy.as_deref())
                .unwrap_or(root_policy);
            match policy {
                "open" => {}
                "disabled" => {
                    return Err("group messages are disabled (groupPolicy disabled)".to_owned());
                }
                "allowlist" => {
                    let list = rule
                        .and_then(|rule| rule.allow_from.as_deref())
                        .or(access.group_allow_from.as_deref())
                        .unwrap_or(&access.allow_from);
                    if !listed(list) {
                        return Err(format!(
                            "sender {sender_id} is not allowed in group {} (groupPolicy allowlist)",
                            chat.id
                        ));
                    }
                }
                other => return Err(format!("unknown groupPolicy {other:?}")),
            }
            let require_mention = rule.and_then(|rule| rule.require_mention).unwrap_or(true);
            if require_mention && !mentioned {
                return Err("the bot was not mentioned (requireMention)".to_owned());
            }
            Ok(())
        }
    }
}

fn group_rule<'a>(access: &'a Access, chat_id: &str) -> Option<&'a GroupRule> {
    let groups = access.groups.as_ref()?;
    groups.get(chat_id).or_else(|| groups.get("*"))
}

/// Settings that cannot work as written, for `channels.status` and start.
pub fn issues(access: &Access, channel: &str) -> Vec<String> {
    let mut issues = Vec::new();
    match access.dm_policy.as_deref().unwrap_or("pairing") {
        "allowlist" if access.allow_from.is_empty() => issues.push(format!(
            "dmPolicy allowlist with an empty channels.{channel}.allowFrom blocks every DM; add sender ids"
        )),
        "open" if !access.allow_from.iter().any(|entry| entry == "*") => issues.push(format!(
            "dmPolicy open requires \"*\" in channels.{channel}.allowFrom"
        )),
        "allowlist" | "open" | "disabled" | "pairing" => {}
        other => issues.push(format!("unknown dmPolicy {other:?}")),
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn access(value: serde_json::Value) -> Access {
        serde_json::from_value(value).expect("access")
    }

    fn chat(kind: ChatKind, id: &str) -> Chat {
        Chat {
            kind,
            id: id.to_owned(),
            thread_id: None,
            thread_is_topic: false,
        }
    }

    #[test]
    fn direct_messages_follow_dm_policy_and_allow_from() {
        let dm = chat(ChatKind::Direct, "7");
        let check = |value, sender| {
            admit(
                &access(value),
                "telegram",
                &["telegram:", "tg:"],
                &dm,
                sender,
                false,
            )
        };
        assert!(check(json!({"allowFrom": ["tg:7"]}), "7").is_ok());
        assert!(check(json!({"allowFrom": [7]}), "7").is_ok());
        assert!(check(json!({"allowFrom": [8]}), "7").is_err());
        assert!(
            check(json!({}), "7").is_err(),
            "pairing with nobody listed admits nobody"
        );
        assert!(check(json!({"dmPolicy": "open", "allowFrom": ["*"]}), "9").is_ok());
        assert!(check(json!({"dmPolicy": "open"}), "9").is_err());
        assert!(check(json!({"dmPolicy": "disabled", "allowFrom": ["*"]}), "7").is_err());
    }

    #[test]
    fn groups_need_listing_a_listed_sender_and_a_mention() {
        let group = chat(ChatKind::Group, "-100");
        let check = |value, sender, mentioned| {
            admit(
                &access(value),
                "telegram",
                &["tg:"],
                &group,
                sender,
                mentioned,
            )
        };
        let listed = json!({"allowFrom": ["7"], "groups": {"-100": {}}});
        assert!(check(listed.clone(), "7", true).is_ok());
        assert!(
            check(listed.clone(), "7", false).is_err(),
            "mention required by default"
        );
        assert!(check(listed, "8", true).is_err(), "sender not allowed");
        assert!(
            check(json!({"allowFrom": ["7"]}), "7", true).is_err(),
            "group not listed"
        );
        let open = json!({"groups": {"*": {"groupPolicy": "open", "requireMention": false}}});
        assert!(check(open, "99", false).is_ok());
        assert!(check(json!({"groupPolicy": "open"}), "99", true).is_ok());
        let disabled = json!({"groups": {"-100": {"enabled": false}}, "groupPolicy": "open"});
        assert!(check(disabled, "7", true).is_err());
    }
}

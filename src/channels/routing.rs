//! Which agent answers an inbound message, and in which session.
//!
//! Why a module of its own: session keys are OpenClaw's contract with its
//! clients (they appear in `sessions.list`, `chat.history`, the TUI), so
//! they are built exactly as OpenClaw's `buildAgentPeerSessionKey` does
//! (protocol.md section 4.1, docs/channels/channel-routing.md), in one
//! place that the tests pin.

use super::settings::{Binding, SessionScopes};

/// The kind of conversation a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKind {
    Direct,
    Group,
    /// A broadcast channel or a room addressed as a channel (Discord,
    /// Slack channels).
    Channel,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
            ChatKind::Channel => "channel",
        }
    }

    pub fn parse(text: &str) -> Option<ChatKind> {
        match text {
            "direct" => Some(ChatKind::Direct),
            "group" => Some(ChatKind::Group),
            "channel" => Some(ChatKind::Channel),
            _ => None,
        }
    }
}

/// Where a message was said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    pub kind: ChatKind,
    pub id: String,
    /// A thread or a forum topic inside the chat.
    pub thread_id: Option<String>,
    /// Telegram calls threads "topics" and OpenClaw keys them so.
    pub thread_is_topic: bool,
}

/// The agent for a message: the most specific binding that matches (peer,
/// then peer wildcard, then account, then channel), else the default.
pub fn agent_for(
    bindings: &[Binding],
    default_agent: &str,
    channel: &str,
    account_id: &str,
    chat: &Chat,
    sender_id: &str,
) -> String {
    let peer_id = match chat.kind {
        ChatKind::Direct => sender_id,
        ChatKind::Group | ChatKind::Channel => chat.id.as_str(),
    };
    let on_channel = |binding: &&Binding| {
        binding
            .matches
            .channel
            .as_deref()
            .is_some_and(|wanted| wanted.eq_ignore_ascii_case(channel))
    };
    // As OpenClaw: a binding without `accountId` is the default account's
    // (so adding a second account does not reroute it), `*` any account's.
    let account_matches = |binding: &Binding| match binding.matches.account_id.as_deref() {
        None => account_id == super::settings::DEFAULT_ACCOUNT,
        Some("*") => true,
        Some(wanted) => wanted.eq_ignore_ascii_case(account_id),
    };
    let peer_score = |binding: &Binding| -> Option<u8> {
        let Some(peer) = &binding.matches.peer else {
            return Some(0);
        };
        let kind_matches = peer.kind.as_deref().is_none_or(|kind| {
            kind == chat.kind.as_str() || (kind == "dm" && chat.kind == ChatKind::Direct)
        });
        match peer.id.as_deref() {
            _ if !kind_matches => None,
            Some("*") => Some(2),
            Some(id) if id.eq_ignore_ascii_case(peer_id) => Some(3),
            Some(_) => None,
            None => Some(2),
        }
    };
    let mut best: Option<(u8, &Binding)> = None;
    for binding in bindings.iter().filter(on_channel) {
        if !account_matches(binding) {
            continue;
        }
        let Some(peer) = peer_score(binding) else {
            continue;
        };
        let account = match binding.matches.account_id.as_deref() {
            Some(id) if id != "*" => 1,
            _ => 0,
        };
        let score = peer * 2 + account;
        // The first binding wins among equals, as a config reads top-down.
        if best.is_none_or(|(top, _)| score > top) {
            best = Some((score, binding));
        }
    }
    best.map_or_else(
        || default_agent.to_owned(),
        |(_, binding)| binding.agent_id.to_lowercase(),
    )
}

/// The session key, by `session.dmScope` and `session.groupScope`.
pub fn session_key(
    scopes: &SessionScopes,
    agent_id: &str,
    channel: &str,
    account_id: &str,
    chat: &Chat,
    sender_id: &str,
) -> String {
    let main = format!("agent:{agent_id}:main");
    match chat.kind {
        ChatKind::Direct => {
            let peer = sender_id.to_lowercase();
            match scopes.dm_scope.as_deref() {
                Some("per-peer") => format!("agent:{agent_id}:direct:{peer}"),
                Some("per-channel-peer") => format!("agent:{agent_id}:{channel}:direct:{peer}"),
                Some("per-account-channel-peer") => {
                    let account = account_id.to_lowercase();
                    format!("agent:{agent_id}:{channel}:{account}:direct:{peer}")
                }
                _ => main,
            }
        }
        ChatKind::Group | ChatKind::Channel => {
            if scopes.group_scope.as_deref() == Some("main") {
                return main;
            }
            let id = chat.id.to_lowercase();
            let mut key = format!("agent:{agent_id}:{channel}:{}:{id}", chat.kind.as_str());
            if let Some(thread) = &chat.thread_id {
                let word = if chat.thread_is_topic {
                    "topic"
                } else {
                    "thread"
                };
                key.push_str(&format!(":{word}:{}", thread.to_lowercase()));
            }
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::settings::{BindingMatch, PeerMatch};

    fn chat(kind: ChatKind, id: &str, thread: Option<&str>, topic: bool) -> Chat {
        Chat {
            kind,
            id: id.to_owned(),
            thread_id: thread.map(str::to_owned),
            thread_is_topic: topic,
        }
    }

    #[test]
    fn keys_are_openclaws() {
        let dm = chat(ChatKind::Direct, "42", None, false);
        let scope = |dm: Option<&str>, group: Option<&str>| SessionScopes {
            dm_scope: dm.map(str::to_owned),
            group_scope: group.map(str::to_owned),
        };
        let key = |scopes: &SessionScopes, chat: &Chat| {
            session_key(scopes, "main", "telegram", "default", chat, "User42")
        };
        assert_eq!(key(&scope(None, None), &dm), "agent:main:main");
        assert_eq!(
            key(&scope(Some("per-peer"), None), &dm),
            "agent:main:direct:user42"
        );
        assert_eq!(
            key(&scope(Some("per-channel-peer"), None), &dm),
            "agent:main:telegram:direct:user42"
        );
        assert_eq!(
            key(&scope(Some("per-account-channel-peer"), None), &dm),
            "agent:main:telegram:default:direct:user42"
        );
        let topic = chat(ChatKind::Group, "-1001234567890", Some("42"), true);
        assert_eq!(
            key(&scope(None, None), &topic),
            "agent:main:telegram:group:-1001234567890:topic:42"
        );
        let thread = chat(ChatKind::Channel, "123456", Some("987654"), false);
        assert_eq!(
            session_key(
                &scope(None, None),
                "main",
                "discord",
                "default",
                &thread,
                "u"
            ),
            "agent:main:discord:channel:123456:thread:987654"
        );
        assert_eq!(key(&scope(None, Some("main")), &topic), "agent:main:main");
    }

    #[test]
    fn the_most_specific_binding_wins() {
        let binding = |agent: &str, account: Option<&str>, peer: Option<(&str, &str)>| Binding {
            agent_id: agent.to_owned(),
            matches: BindingMatch {
                channel: Some("telegram".to_owned()),
                account_id: account.map(str::to_owned),
                peer: peer.map(|(kind, id)| PeerMatch {
                    kind: Some(kind.to_owned()),
                    id: Some(id.to_owned()),
                }),
            },
            kind: None,
        };
        let bindings = vec![
            binding("channelwide", None, None),
            binding("anyaccount", Some("*"), None),
            binding("account", Some("default"), None),
            binding("anygroup", None, Some(("group", "*"))),
            binding("thisgroup", None, Some(("group", "-100"))),
        ];
        let group = chat(ChatKind::Group, "-100", None, false);
        let other = chat(ChatKind::Group, "-200", None, false);
        let dm = chat(ChatKind::Direct, "7", None, false);
        let agent = |chat: &Chat, account: &str| {
            agent_for(&bindings, "main", "telegram", account, chat, "7")
        };
        assert_eq!(agent(&group, "default"), "thisgroup");
        assert_eq!(agent(&other, "default"), "anygroup");
        assert_eq!(agent(&dm, "default"), "account");
        // Without accountId a binding is the default account's only.
        assert_eq!(agent(&dm, "second"), "anyaccount");
        assert_eq!(
            agent_for(&bindings[..1], "main", "telegram", "second", &dm, "7"),
            "main"
        );
        assert_eq!(
            agent_for(&bindings[..1], "main", "telegram", "default", &dm, "7"),
            "channelwide"
        );
        assert_eq!(
            agent_for(&bindings, "main", "matrix", "default", &dm, "7"),
            "main"
        );
    }
}

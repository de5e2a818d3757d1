//! DM pairing (`dmPolicy: "pairing"`, OpenClaw's default): an unknown
//! sender gets a code instead of an answer, and an operator approves or
//! dismisses the request (`channels.pairing.*`).
//!
//! Why in the log: who may talk to the agent is security state; the
//! request, the code sent and the decision (with its reviewer) are events,
//! so an audit shows when and by whom each sender was let in, and a
//! restart forgets nothing. OpenClaw's limits hold: codes of 8 characters
//! without ambiguous ones, an hour to live, at most 3 open per account.

use clawback_events::event::ChannelPairingRequested;
use clawback_projections::channels::PAIRING_PENDING_MAX;

use super::Inbound;
use super::manager::Account;
use crate::gateway::Gateway;

/// How long a code stays valid.
pub const CODE_TTL_MS: i64 = 3_600_000;
/// Upper-case letters and digits without `0 O 1 I`.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// What pairing makes of a DM the allowlist refused.
pub enum Verdict {
    /// The sender was paired earlier.
    Admit,
    /// Not answered, with the reason.
    Refuse(String),
    /// A new request: recorded with the message, then its code is sent.
    Request(ChannelPairingRequested),
}

/// Whether `account` pairs DMs (`dmPolicy` unset or `pairing`).
pub fn applies(account: &Account) -> bool {
    account
        .settings
        .access
        .dm_policy
        .as_deref()
        .is_none_or(|policy| policy == "pairing")
}

pub fn check(gateway: &Gateway, account: &Account, message: &Inbound, now_ms: i64) -> Verdict {
    let state = gateway.state.read().expect("state lock");
    let channels = &state.channels;
    if channels.paired(account.channel, &account.account_id, &message.sender_id) {
        return Verdict::Admit;
    }
    let pairing = channels
        .pairing
        .get(&(account.channel.to_owned(), account.account_id.clone()));
    let live: Vec<_> = pairing
        .map(|pairing| pairing.live(now_ms).collect())
        .unwrap_or_default();
    if let Some((id, _)) = live
        .iter()
        .find(|(_, request)| request.sender_id.eq_ignore_ascii_case(&message.sender_id))
    {
        return Verdict::Refuse(format!("awaiting pairing approval (request {id})"));
    }
    if live.len() >= PAIRING_PENDING_MAX {
        return Verdict::Refuse(format!(
            "{PAIRING_PENDING_MAX} pairing requests are open on this account; try again later"
        ));
    }
    Verdict::Request(ChannelPairingRequested {
        channel: account.channel.to_owned(),
        account_id: account.account_id.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        code: code(),
        sender_id: message.sender_id.clone(),
        sender_name: message.sender_name.clone(),
        chat_id: message.chat.id.clone(),
        expires_at_ms: now_ms + CODE_TTL_MS,
    })
}

fn code() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes
        .iter()
        .map(|byte| CODE_ALPHABET[usize::from(*byte) % CODE_ALPHABET.len()] as char)
        .collect()
}

/// The message a new requester gets (OpenClaw's wording, clawback's way to
/// approve).
pub fn code_message(label: &str, sender_id: &str, code: &str) -> String {
    format!(
        "clawback: access not configured.\n\nYour {label} user id: {sender_id}\nPairing code:\n```\n{code}\n```\n\nAsk the bot owner to approve it (channels.pairing.list shows the request; channels.pairing.approve lets you in)."
    )
}

pub const APPROVED_MESSAGE: &str = "clawback: access approved. You can message the agent now.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_avoid_ambiguous_characters() {
        for _ in 0..200 {
            let code = code();
            assert_eq!(code.len(), 8);
            assert!(
                code.chars().all(|c| CODE_ALPHABET.contains(&(c as u8))),
                "{code}"
            );
            assert!(!code.contains(['0', 'O', '1', 'I']));
        }
    }
}

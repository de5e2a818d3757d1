//! One Discord gateway connection: Hello, Identify or Resume, heartbeats,
//! dispatches (<https://discord.com/developers/docs/events/gateway>).
//!
//! Why resume state is the channel's cursor: each message is recorded with
//! `<session id> <seq> <resume url>`, so a new process resumes the session
//! where the log ends and Discord replays what came after; what it replays
//! that the log already has is recognised by message id.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::messages;
use crate::channels::Inbox;

/// GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);

/// Where a resumed connection continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub session_id: String,
    pub seq: u64,
    pub url: String,
}

impl Resume {
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.session_id, self.seq, self.url)
    }

    pub fn decode(cursor: &str) -> Option<Resume> {
        let mut parts = cursor.split(' ');
        let resume = Resume {
            session_id: parts.next()?.to_owned(),
            seq: parts.next()?.parse().ok()?,
            url: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(resume)
    }
}

/// How a connection ended.
pub enum Ended {
    /// Stopped on request.
    Stopped,
    /// Connect again, resuming this session if there is one.
    Reconnect(Option<Resume>),
}

/// Runs one connection until it must be replaced or `stop` turns true.
pub async fn connect(
    discord: &super::Discord,
    url: &str,
    resume: Option<Resume>,
    inbox: &Inbox,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Ended, String> {
    let mut address = reqwest::Url::parse(url)
        .map_err(|error| format!("Discord gateway URL {url:?}: {error}"))?;
    address.set_query(Some("v=10&encoding=json"));
    let address = address.to_string();
    let socket = crate::channels::websocket(&address)
        .await
        .map_err(|error| format!("Discord gateway connect: {error}"))?;
    let (mut sink, mut frames) = socket.split();
    let hello = next_payload(&mut frames).await?;
    if hello["op"] != 10 {
        return Err(format!(
            "Discord gateway: expected Hello, got op {}",
            hello["op"]
        ));
    }
    let interval = hello["d"]["heartbeat_interval"]
        .as_u64()
        .unwrap_or(41_250)
        .max(100);
    let mut session = resume.clone();
    let opening = match &resume {
        Some(resume) => {
            json!({"op": 6, "d": {"token": discord.token, "session_id": resume.session_id, "seq": resume.seq}})
        }
        None => json!({"op": 2, "d": {"token": discord.token, "intents": INTENTS,
            "properties": {"os": std::env::consts::OS, "browser": "clawback", "device": "clawback"}}}),
    };
    send(&mut sink, &opening).await?;
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(interval),
        Duration::from_millis(interval),
    );
    let mut acked = true;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(Ended::Stopped);
            }
            _ = heartbeat.tick() => {
                if !acked {
                    // No ack since the last beat: a zombie connection.
                    return Ok(Ended::Reconnect(session));
                }
                acked = false;
                let seq = session.as_ref().map(|session| session.seq);
                send(&mut sink, &json!({"op": 1, "d": seq})).await?;
            }
            frame = frames.next() => {
                let payload = match frame {
                    None => return Ok(Ended::Reconnect(session)),
                    Some(Err(error)) => {
                        tracing::info!(%error, "Discord gateway connection dropped; resuming");
                        return Ok(Ended::Reconnect(session));
                    }
                    Some(Ok(Message::Close(close))) => {
                        let code = close.as_ref().map(|close| close.code);
                        return closed(code, session);
                    }
                    Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text)
                        .map_err(|error| format!("Discord gateway sent unreadable JSON: {error}"))?,
                    Some(Ok(_)) => continue,
                };
                match payload["op"].as_u64() {
                    Some(0) => {
                        let seq = payload["s"].as_u64();
                        if let (Some(seq), Some(session)) = (seq, session.as_mut()) {
                            session.seq = seq;
                        }
                        match payload["t"].as_str() {
                            Some("READY") => {
                                let d = &payload["d"];
                                discord.set_bot_id(d["user"]["id"].as_str().unwrap_or_default());
                                session = Some(Resume {
                                    session_id: d["session_id"].as_str().unwrap_or_default().to_owned(),
                                    seq: seq.unwrap_or(0),
                                    url: d["resume_gateway_url"].as_str().unwrap_or(url).to_owned(),
                                });
                                inbox.account.connected(true);
                            }
                            Some("RESUMED") => inbox.account.connected(true),
                            Some("MESSAGE_CREATE") => {
                                let cursor = session.as_ref().map(Resume::encode).unwrap_or_default();
                                let bot_id = discord.bot_id();
                                if let Some(mut message) = messages::inbound(&payload["d"], &bot_id, cursor) {
                                    if let Some(guild) = payload["d"]["guild_id"].as_str() {
                                        message.group_verdict = Some(discord.admit_guild(
                                            guild,
                                            &message.chat.id,
                                            &message.sender_id,
                                            message.mentioned,
                                        ));
                                    }
                                    inbox.take(message).await?;
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(1) => {
                        let seq = session.as_ref().map(|session| session.seq);
                        send(&mut sink, &json!({"op": 1, "d": seq})).await?;
                    }
                    Some(7) => return Ok(Ended::Reconnect(session)),
                    Some(9) => {
                        let resumable = payload["d"].as_bool() == Some(true);
                        // Discord asks for a 1-5 s wait before identifying again.
                        tokio::time::sleep(Duration::from_millis(1_500)).await;
                        return Ok(Ended::Reconnect(if resumable { session } else { None }));
                    }
                    Some(11) => acked = true,
                    _ => {}
                }
            }
        }
    }
}

/// A close code: fatal ones (bad token, bad intents) end the account with
/// the reason; others resume.
fn closed(code: Option<CloseCode>, session: Option<Resume>) -> Result<Ended, String> {
    let code = code.map(u16::from);
    match code {
        Some(4004) => Err(
            "Discord refused the bot token (close 4004): check channels.discord.token".to_owned(),
        ),
        Some(4013 | 4014) => Err(format!(
            "Discord refused the intents (close {}): enable the Message Content intent for the bot in the Developer Portal",
            code.unwrap_or_default()
        )),
        Some(4007 | 4009) => Ok(Ended::Reconnect(None)),
        _ => Ok(Ended::Reconnect(session)),
    }
}

async fn next_payload<S>(frames: &mut S) -> Result<Value, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(&text).map_err(|error| error.to_string());
                }
                Ok(Message::Close(_)) => return Err("closed before Hello".to_owned()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
        Err("closed before Hello".to_owned())
    });
    wait.await
        .map_err(|_| "Discord gateway sent no Hello within 30 s".to_owned())?
        .map_err(|error| format!("Discord gateway: {error}"))
}

async fn send<S>(sink: &mut S, payload: &Value) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    sink.send(Message::Text(payload.to_string().into()))
        .await
        .map_err(|error| format!("Discord gateway send: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_cursor_round_trips() {
        let resume = Resume {
            session_id: "abc".to_owned(),
            seq: 42,
            url: "wss://gateway-us-east1-b.discord.gg".to_owned(),
        };
        assert_eq!(Resume::decode(&resume.encode()), Some(resume));
        assert_eq!(Resume::decode("abc x url"), None);
        assert_eq!(Resume::decode(""), None);
    }
}

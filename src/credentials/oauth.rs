//! OAuth sign-ins: which ones clawback can use, and keeping Anthropic's
//! (Claude Pro/Max) access token fresh.
//!
//! An `oauth` profile (imported from OpenClaw's `auth-profiles.json`) holds
//! a short-lived access token, a refresh token and `expires`, which OpenClaw
//! (pi-ai) stores five minutes before the real expiry. Before a model call,
//! [`Refresher::access`] hands out the access token, or, once it is within
//! [`REFRESH_MARGIN_MS`] of `expires`, trades the refresh token for new
//! tokens at the provider's token endpoint and writes them back into the
//! encrypted store. The exchange is pi-ai's (`refreshAnthropicToken`):
//! `POST {tokenUrl}` with the JSON body `{grant_type: "refresh_token",
//! client_id, refresh_token}`; the answer's `access_token`, `refresh_token`
//! and `expires_in` (seconds) become the new profile.
//!
//! Why single-flight per profile: refresh tokens are often single-use, so
//! two runs refreshing at once would see the second refused and the
//! sign-in lost. A refresh holds the profile's lock; whoever waited reads
//! the store again and finds the fresh token. A refresh token the endpoint
//! refused (400/401) is remembered (by digest, in memory) so later runs
//! fail over at once instead of asking again; signing in again replaces it.
//!
//! Tokens never leave this module except as the key of one call: failures
//! carry the endpoint's OAuth error code and status, never its body.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Credential, Store};

/// Anthropic's OAuth token endpoint (pi-ai 0.73's `TOKEN_URL`).
pub const ANTHROPIC_TOKEN_URL: &str = "https://platform.claude.com/v1/oauth/token";
/// The public OAuth client id of Claude Code's sign-in, which OpenClaw's
/// Anthropic profiles were issued to (a client id, not a secret).
pub const ANTHROPIC_CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
/// `expires` is stored this much before the token's real end, as pi-ai
/// stores it, so files move between OpenClaw and clawback unchanged.
const EXPIRY_EARLY_MS: i64 = 5 * 60_000;
/// A token is refreshed when it has less than this left before `expires`:
/// a run starting now must not send one that lapses on the way.
pub const REFRESH_MARGIN_MS: i64 = 60_000;
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest token endpoint answer read.
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Refused refresh tokens remembered; the oldest is forgotten first.
const REFUSED_MAX: usize = 64;

/// What clawback can do with an OAuth profile of `provider`.
#[derive(Debug, PartialEq, Eq)]
pub enum Usable {
    /// Anthropic: the access token is sent, refreshed here when it ages.
    Refreshable,
    /// GitHub Copilot: the profile's `refresh` is the GitHub token that
    /// `agent::copilot` exchanges for a Copilot token before each call.
    GithubToken,
    /// A sign-in for an API clawback does not speak: why, for the person.
    No(String),
}

pub fn usable(provider: &str) -> Usable {
    let why = match provider {
        "anthropic" => return Usable::Refreshable,
        "github-copilot" => return Usable::GithubToken,
        "openai-codex" => {
            "it signs in to ChatGPT's Codex backend (chatgpt.com/backend-api), which clawback does \
             not speak; use an OpenAI API key profile"
        }
        "google-gemini-cli" | "google-antigravity" => {
            "it signs in to Google's Cloud Code Assist API, which clawback does not speak; use a \
             Gemini API key (GEMINI_API_KEY or an api_key profile)"
        }
        _ => {
            "clawback can refresh only Anthropic (Claude Pro/Max) sign-ins and use GitHub Copilot's"
        }
    };
    Usable::No(format!(
        "an OAuth sign-in for {provider} cannot be used: {why}"
    ))
}

/// Whether an access token with this `expires` may still be sent.
pub fn is_fresh(expires: Option<i64>, now_ms: i64) -> bool {
    expires.is_none_or(|expires| expires - now_ms > REFRESH_MARGIN_MS)
}

/// Tokens the endpoint handed out.
#[derive(Debug, PartialEq, Eq)]
struct Tokens {
    access: String,
    refresh: String,
    expires_ms: i64,
}

/// Why a refresh did not give a token: an OAuth error code (or a word for
/// what went wrong) and the HTTP status; `attempted` when the endpoint was
/// asked (that is worth a record), not when a remembered refusal answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    pub http_status: Option<u16>,
    pub attempted: bool,
}

impl Refused {
    fn new(reason: &str, http_status: Option<u16>) -> Refused {
        Refused {
            reason: reason.to_owned(),
            http_status,
            attempted: true,
        }
    }

    /// For the run's failure message (no secret in it).
    pub fn describe(&self, profile_id: &str) -> String {
        let status = self
            .http_status
            .map(|status| format!(" (HTTP {status})"))
            .unwrap_or_default();
        format!(
            "the OAuth sign-in of auth profile {profile_id} could not be refreshed: {}{status}; \
             sign in again and re-import it (clawback auth import)",
            self.reason
        )
    }
}

/// The access token to send, and the new `expires` when this call
/// refreshed it.
#[derive(Debug)]
pub struct Access {
    pub token: String,
    pub refreshed: Option<i64>,
}

/// The request body of a refresh.
fn refresh_body(refresh_token: &str) -> Value {
    json!({"grant_type": "refresh_token", "client_id": ANTHROPIC_CLIENT_ID,
           "refresh_token": refresh_token})
}

/// The endpoint's answer: new tokens, or the refusal's OAuth error code
/// (RFC 6749 `{"error": "invalid_grant"}`, or Anthropic's
/// `{"error": {"type": ...}}`).
fn parse_answer(
    status: u16,
    body: &[u8],
    old_refresh: &str,
    now_ms: i64,
) -> Result<Tokens, Refused> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let code = parsed["error"]
            .as_str()
            .or_else(|| parsed["error"]["type"].as_str())
            .filter(|code| {
                !code.is_empty()
                    && code.len() <= 64
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            })
            .unwrap_or("refused");
        return Err(Refused::new(code, Some(status)));
    }
    let access = parsed["access_token"].as_str().filter(|t| !t.is_empty());
    // A lifetime beyond a year is not a token endpoint's answer.
    let lifetime_s = parsed["expires_in"]
        .as_i64()
        .filter(|s| (1..=366 * 86_400).contains(s));
    let (Some(access), Some(lifetime_s)) = (access, lifetime_s) else {
        return Err(Refused::new("malformed_answer", Some(status)));
    };
    Ok(Tokens {
        access: access.to_owned(),
        // An endpoint that does not rotate keeps the old refresh token valid.
        refresh: parsed["refresh_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .unwrap_or(old_refresh)
            .to_owned(),
        expires_ms: now_ms + lifetime_s * 1000 - EXPIRY_EARLY_MS,
    })
}

async fn ask(
    client: &reqwest::Client,
    token_url: &str,
    refresh_token: &str,
    now_ms: i64,
) -> Result<Tokens, Refused> {
    let response = client
        .post(token_url)
        .timeout(REFRESH_TIMEOUT)
        .header("accept", "application/json")
        .json(&refresh_body(refresh_token))
        .send()
        .await
        .map_err(|error| {
            Refused::new(
                if error.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                },
                None,
            )
        })?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| Refused::new("broken_answer", Some(status)))?
    {
        if body.len() + chunk.len() > ANSWER_BYTES_MAX {
            return Err(Refused::new("oversized_answer", Some(status)));
        }
        body.extend_from_slice(&chunk);
    }
    parse_answer(status, &body, refresh_token, now_ms)
}

/// Refreshes OAuth profiles, one refresh per profile at a time.
#[derive(Default)]
pub struct Refresher {
    /// One lock per profile id: the refresh's single flight.
    flights: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held around a load-modify-save of the store, so refreshes of two
    /// profiles do not write over each other.
    writes: Mutex<()>,
    /// Digests of refresh tokens the endpoint refused, oldest first.
    refused: Mutex<Vec<[u8; 32]>>,
}

impl Refresher {
    /// The access token of `profile_id` to send now: the stored one while
    /// fresh, else a refreshed one (written back to `store` first).
    pub async fn access(
        &self,
        store: &Store,
        client: &reqwest::Client,
        profile_id: &str,
        token_url: &str,
        now_ms: impl Fn() -> i64,
    ) -> Result<Access, Refused> {
        if let Some(access) = fresh(store, profile_id, now_ms())? {
            return Ok(access);
        }
        let flight = self
            .flights
            .lock()
            .expect("oauth flights lock")
            .entry(profile_id.to_owned())
            .or_default()
            .clone();
        let _flight = flight.lock().await;
        // Whoever held the lock before may have refreshed already.
        let refresh = match load(store, profile_id)? {
            Credential::Oauth {
                access, expires, ..
            } if is_fresh(expires, now_ms()) => {
                return Ok(Access {
                    token: access,
                    refreshed: None,
                });
            }
            Credential::Oauth {
                refresh: Some(refresh),
                ..
            } => refresh,
            _ => {
                return Err(Refused {
                    reason: "expired, and the profile holds no refresh token".to_owned(),
                    http_status: None,
                    attempted: false,
                });
            }
        };
        let digest = *blake3::hash(refresh.as_bytes()).as_bytes();
        if self
            .refused
            .lock()
            .expect("oauth refused lock")
            .contains(&digest)
        {
            return Err(Refused {
                reason: "its refresh token was refused before".to_owned(),
                http_status: None,
                attempted: false,
            });
        }
        let tokens = match ask(client, token_url, &refresh, now_ms()).await {
            Ok(tokens) => tokens,
            Err(refused) => {
                if matches!(refused.http_status, Some(400 | 401)) {
                    let mut all = self.refused.lock().expect("oauth refused lock");
                    all.push(digest);
                    if all.len() > REFUSED_MAX {
                        all.remove(0);
                    }
                }
                return Err(refused);
            }
        };
        self.save(store, profile_id, &tokens)?;
        Ok(Access {
            token: tokens.access,
            refreshed: Some(tokens.expires_ms),
        })
    }

    /// Writes the new tokens into the profile (atomically: the store's
    /// write is a rename), keeping everything else in the file.
    fn save(&self, store: &Store, profile_id: &str, tokens: &Tokens) -> Result<(), Refused> {
        let _write = self.writes.lock().expect("oauth writes lock");
        let not_saved = |what: &str, error: anyhow::Error| {
            tracing::error!(
                subsystem = "auth",
                "the refreshed tokens of {profile_id} cannot be {what}: {error:#}"
            );
            Refused::new("store_not_writable", None)
        };
        let mut profiles = store.load().map_err(|error| not_saved("read", error))?;
        let Some(Credential::Oauth {
            access,
            refresh,
            expires,
            ..
        }) = profiles.profiles.get_mut(profile_id)
        else {
            return Err(Refused::new("profile_removed", None));
        };
        access.clone_from(&tokens.access);
        *refresh = Some(tokens.refresh.clone());
        *expires = Some(tokens.expires_ms);
        store
            .save(&profiles)
            .map_err(|error| not_saved("saved", error))
    }
}

fn load(store: &Store, profile_id: &str) -> Result<Credential, Refused> {
    let profiles = store.load().map_err(|error| {
        tracing::error!(
            subsystem = "auth",
            "the auth profiles cannot be read: {error:#}"
        );
        Refused::new("store_unreadable", None)
    })?;
    profiles
        .profiles
        .get(profile_id)
        .cloned()
        .ok_or_else(|| Refused::new("profile_removed", None))
}

/// The stored access token if it is fresh.
fn fresh(store: &Store, profile_id: &str, now_ms: i64) -> Result<Option<Access>, Refused> {
    Ok(match load(store, profile_id)? {
        Credential::Oauth {
            access, expires, ..
        } if is_fresh(expires, now_ms) => Some(Access {
            token: access,
            refreshed: None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_tokens_stored_five_minutes_early() {
        let body = br#"{"token_type":"Bearer","access_token":"at-2","refresh_token":"rt-2","expires_in":28800}"#;
        let tokens = parse_answer(200, body, "rt-1", 1_000_000).unwrap();
        assert_eq!(
            tokens,
            Tokens {
                access: "at-2".to_owned(),
                refresh: "rt-2".to_owned(),
                expires_ms: 1_000_000 + 28_800_000 - 300_000,
            }
        );
        // Not rotated: the old refresh token stays.
        let kept =
            parse_answer(200, br#"{"access_token":"a","expires_in":60}"#, "rt-1", 0).unwrap();
        assert_eq!(kept.refresh, "rt-1");
        for bad in [
            &br#"{"access_token":"","expires_in":60}"#[..],
            br#"{"access_token":"a"}"#,
            br#"{"access_token":"a","expires_in":-5}"#,
            b"not json",
        ] {
            assert_eq!(
                parse_answer(200, bad, "r", 0).unwrap_err().reason,
                "malformed_answer"
            );
        }
    }

    #[test]
    fn refusals_keep_only_the_error_code() {
        let refused = parse_answer(
            400,
            br#"{"error":"invalid_grant","error_description":"Refresh token rt-secret is invalid"}"#,
            "rt-secret",
            0,
        )
        .unwrap_err();
        assert_eq!(refused.reason, "invalid_grant");
        assert_eq!(refused.http_status, Some(400));
        assert!(!refused.describe("anthropic:max").contains("rt-secret"));
        let anthropic = parse_answer(
            401,
            br#"{"type":"error","error":{"type":"authentication_error","message":"x"}}"#,
            "r",
            0,
        )
        .unwrap_err();
        assert_eq!(anthropic.reason, "authentication_error");
        // A code that is not a code is not copied.
        let odd = parse_answer(500, br#"{"error":"token rt-secret bad"}"#, "r", 0).unwrap_err();
        assert_eq!(odd.reason, "refused");
        assert_eq!(
            refresh_body("rt-1"),
            json!({"grant_type": "refresh_token", "client_id": ANTHROPIC_CLIENT_ID,
                   "refresh_token": "rt-1"})
        );
    }

    #[test]
    fn tokens_are_fresh_until_the_margin_and_providers_say_why_not() {
        assert!(is_fresh(None, 0));
        assert!(is_fresh(Some(REFRESH_MARGIN_MS + 1), 0));
        assert!(!is_fresh(Some(REFRESH_MARGIN_MS), 0));
        assert_eq!(usable("anthropic"), Usable::Refreshable);
        assert_eq!(usable("github-copilot"), Usable::GithubToken);
        let Usable::No(why) = usable("openai-codex") else {
            panic!("codex is not usable")
        };
        assert!(
            why.contains("openai-codex") && why.contains("Codex backend"),
            "{why}"
        );
        assert!(
            matches!(usable("google-gemini-cli"), Usable::No(why) if why.contains("Cloud Code Assist"))
        );
    }
}

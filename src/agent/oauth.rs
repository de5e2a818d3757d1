//! A model call authenticated by an Anthropic OAuth profile: its access
//! token read from the store right before the call, refreshed first when
//! it is about to expire, and the refresh put on record.
//!
//! Why apart from `credentials::oauth`: that module knows the token
//! endpoint and the store; this one is the executor's side: it records
//! `auth.profile.refreshed` (profile, provider, new expiry or the refusal's
//! code; never a token) on the `auth` stream, correlated to the run, and
//! turns a failed refresh into an `auth` failure, so the run moves to the
//! next credential or fallback model as for any refused key.

use clawback_events::event::{AuthProfileRefreshed, Event, RefreshOutcome};

use clawback_events::Actor;
use serde_json::Value;

use super::Runtime;
use super::copilot::Target;
use super::models::{OAuthProfile, Resolved};
use super::provider::Failure;
use crate::gateway::Gateway;

/// The stream refresh records go to: they concern a profile, not a session.
const STREAM: &str = "auth";

/// Where a call to `resolved` with `body` goes, and with which credential:
/// for an OAuth profile, its fresh access token; for Copilot, after the
/// token exchange; else as configured. `(actor, correlation)` are the
/// run's, for the refresh record.
pub async fn call_target(
    gateway: &Gateway,
    runtime: &Runtime,
    client: &reqwest::Client,
    (actor, correlation): (&Actor, &str),
    resolved: &Resolved,
    body: &Value,
) -> Result<Target, Failure> {
    match resolved.oauth() {
        Some(profile) => {
            target(
                gateway,
                runtime,
                client,
                (actor, correlation),
                resolved,
                profile,
            )
            .await
        }
        None => super::copilot::target(&runtime.copilot, client, resolved, body).await,
    }
}

/// Where a call with `profile` goes, with a fresh access token.
async fn target(
    gateway: &Gateway,
    runtime: &Runtime,
    client: &reqwest::Client,
    (actor, correlation): (&Actor, &str),
    resolved: &Resolved,
    profile: &OAuthProfile,
) -> Result<Target, Failure> {
    let refresher = &runtime.oauth;
    let store = gateway.credentials();
    let access = refresher
        .access(
            &store,
            client,
            &profile.profile_id,
            &profile.token_url,
            super::run::now_ms,
        )
        .await;
    let outcome = match &access {
        Ok(access) => access
            .refreshed
            .map(|expires_ms| RefreshOutcome::Refreshed { expires_ms }),
        Err(refused) if refused.attempted => Some(RefreshOutcome::Failed {
            reason: refused.reason.clone(),
            http_status: refused.http_status,
        }),
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        let refreshed = matches!(outcome, RefreshOutcome::Refreshed { .. });
        let event = Event::AuthProfileRefreshed(AuthProfileRefreshed {
            profile_id: profile.profile_id.clone(),
            provider: resolved.provider().to_owned(),
            outcome,
        });
        // The tokens are saved already; a refresh that cannot be recorded
        // still serves this call (the next one finds them fresh).
        if let Err(message) =
            super::compact::append(gateway, STREAM, actor, correlation, vec![event]).await
        {
            tracing::error!(subsystem = "auth", "{message}");
        }
        tracing::info!(
            subsystem = "auth",
            run = correlation,
            "auth profile {} {}",
            profile.profile_id,
            if refreshed {
                "refreshed"
            } else {
                "refresh refused"
            }
        );
    }
    match access {
        Ok(access) => Ok(Target {
            base_url: resolved.base_url().to_owned(),
            api_key: Some(access.token),
            aws: None,
            headers: resolved.headers().clone(),
            oauth: true,
        }),
        Err(refused) => Err(Failure {
            class: "auth",
            message: refused.describe(&profile.profile_id),
            http_status: None,
        }),
    }
}

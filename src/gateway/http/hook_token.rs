//! The hook token: present when hooks are on, and never the gateway's own
//! secret (openclaw #20809: whoever sends webhooks must not hold operator
//! access). Checked when the gateway starts, before a config change is
//! written, and on each hook request.

use crate::config::model::{ConfigFile, HooksSection, SecretInput};
use crate::gateway::protocol::connect::Auth;

/// Refuses hooks whose token is missing or is the gateway's own secret.
/// Checked when the gateway starts and before a config change is written.
pub fn check_token(config: &ConfigFile, auth: &Auth) -> Result<(), String> {
    let Some(hooks) = config
        .hooks
        .as_ref()
        .filter(|hooks| hooks.enabled == Some(true))
    else {
        return Ok(());
    };
    let token = resolve_token(hooks)?;
    let same = "hooks.token must differ from the gateway's token and password: whoever sends \
                webhooks would hold operator access to the gateway (openclaw #20809); set \
                hooks.token to a separate long random secret";
    if let Auth::Token(digest) | Auth::Password(digest) = auth
        && super::secret_matches(&token, digest)
    {
        return Err(same.to_owned());
    }
    // The config's own gateway secrets too (they apply at the next start).
    let gateway_auth = config
        .gateway
        .as_ref()
        .and_then(|gateway| gateway.auth.as_ref());
    let configured = gateway_auth
        .into_iter()
        .flat_map(|auth| [auth.token.as_ref(), auth.password.as_ref()])
        .flatten()
        .filter_map(|secret| secret.resolve().ok());
    for secret in configured {
        if secret == token {
            return Err(same.to_owned());
        }
    }
    Ok(())
}

pub(super) fn resolve_token(hooks: &HooksSection) -> Result<String, String> {
    let raw = hooks.token.as_deref().map(str::trim).unwrap_or_default();
    let token = SecretInput::Plain(raw.to_owned())
        .resolve()
        .map_err(|error| format!("hooks.token: {error}"))?;
    if token.trim().is_empty() {
        return Err(
            "hooks.enabled needs a non-empty hooks.token (a long random secret)".to_owned(),
        );
    }
    Ok(token)
}

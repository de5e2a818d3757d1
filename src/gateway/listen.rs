//! Where the gateway listens and the secret that admits clients, from the
//! flags, the environment and the config.
//!
//! Why one place: the gateway and its own CLI clients (`clawback fork`,
//! and `replay`/`diff` through a running gateway) must read them the same
//! way, or a client offers a secret the gateway does not take.

use std::net::SocketAddr;

use anyhow::Context;

use crate::config::model::{AuthMode, BindMode, ConfigFile, SecretInput};

/// Where the gateway listens when neither `--bind` nor the config says
/// (OpenClaw's default port).
pub const DEFAULT_PORT: u16 = 18789;

/// The listen address from the config's `gateway.port` and `gateway.bind`.
pub fn bind_from_config(config: &ConfigFile) -> anyhow::Result<SocketAddr> {
    let section = config.gateway.as_ref();
    let port = section
        .and_then(|gateway| gateway.port)
        .unwrap_or(DEFAULT_PORT);
    let host: std::net::IpAddr = match section.and_then(|gateway| gateway.bind) {
        None | Some(BindMode::Loopback) | Some(BindMode::Auto) => [127, 0, 0, 1].into(),
        Some(BindMode::Lan) => [0, 0, 0, 0].into(),
        Some(BindMode::Custom) => section
            .and_then(|gateway| gateway.custom_bind_host.as_deref())
            .context("gateway.bind is \"custom\" but gateway.customBindHost is not set")?
            .parse()
            .context("gateway.customBindHost is not an IP address")?,
        Some(BindMode::Tailnet) => anyhow::bail!(
            "gateway.bind \"tailnet\" is not supported by clawback; use \"lan\" or \"custom\""
        ),
    };
    Ok(SocketAddr::new(host, port))
}

/// A shared secret, in clear (the gateway keeps only its digest).
pub enum Secret {
    Token(String),
    Password(String),
}

/// The shared secret: `token`/`password` (the flags, or their environment
/// variables) first, then OpenClaw's environment variables, then the
/// config's `gateway.auth` (its `mode`, else whichever secret it holds);
/// `None` when nothing names one. Without a config only the first two.
pub fn secret(
    token: Option<String>,
    password: Option<String>,
    config: Option<&ConfigFile>,
) -> anyhow::Result<Option<Secret>> {
    let non_empty = |value: Option<String>| value.filter(|value| !value.is_empty());
    let env = |name: &str| non_empty(std::env::var(name).ok());
    if let Some(token) = non_empty(token).or_else(|| env("OPENCLAW_GATEWAY_TOKEN")) {
        return Ok(Some(Secret::Token(token)));
    }
    if let Some(password) = non_empty(password).or_else(|| env("OPENCLAW_GATEWAY_PASSWORD")) {
        return Ok(Some(Secret::Password(password)));
    }
    let section = config
        .and_then(|config| config.gateway.as_ref())
        .and_then(|gateway| gateway.auth.as_ref());
    let resolve = |input: Option<&SecretInput>, path: &str| {
        input
            .with_context(|| format!("{path} is not set"))?
            .resolve()
            .map_err(|error| anyhow::anyhow!("{path}: {error}"))
    };
    let token = |auth: Option<&crate::config::model::GatewayAuth>| {
        resolve(
            auth.and_then(|auth| auth.token.as_ref()),
            "gateway.auth.token",
        )
        .map(Secret::Token)
    };
    let password = |auth: Option<&crate::config::model::GatewayAuth>| {
        resolve(
            auth.and_then(|auth| auth.password.as_ref()),
            "gateway.auth.password",
        )
        .map(Secret::Password)
    };
    Ok(match section.and_then(|auth| auth.mode) {
        Some(AuthMode::Token) => Some(token(section)?),
        Some(AuthMode::Password) => Some(password(section)?),
        Some(AuthMode::TrustedProxy) => anyhow::bail!(
            "gateway.auth.mode \"trusted-proxy\" is not supported by clawback; use \"token\""
        ),
        Some(AuthMode::None) | None => match section {
            Some(auth) if auth.token.is_some() => Some(token(section)?),
            Some(auth) if auth.password.is_some() => Some(password(section)?),
            _ => None,
        },
    })
}

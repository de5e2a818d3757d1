//! An operator connection to the running gateway, for CLI commands that
//! act through it (`clawback fork`) rather than on the log offline.
//!
//! Why through the gateway and not on the store: the gateway holds the
//! log's single writer and runs the agent; a command that records a fork
//! and runs a turn must ask it, as any client does, and is checked and
//! recorded like one (`rpc.received` .. `rpc.answered`).
//!
//! Where the gateway is: `--url` (or `CLAWBACK_GATEWAY_URL`), else the
//! config's `gateway.port`/`gateway.bind`; the secret: `--token`/
//! `--password` (or `CLAWBACK_GATEWAY_TOKEN`/`CLAWBACK_GATEWAY_PASSWORD`),
//! `OPENCLAW_GATEWAY_TOKEN`/`_PASSWORD`, else the config's `gateway.auth`;
//! none for a gateway without auth (loopback). Both read by
//! `gateway::listen`, as `gateway run` reads them.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::listen::{self, Secret};
use crate::state_dir::StateDir;

/// The longest a connect handshake may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Clone)]
pub struct GatewayArgs {
    /// The gateway's WebSocket URL (default: from the config's gateway.port
    /// and gateway.bind, ws://127.0.0.1:18789 without one).
    #[arg(long, env = "CLAWBACK_GATEWAY_URL", value_name = "URL")]
    url: Option<String>,
    /// The gateway's shared token (gateway.auth.token).
    #[arg(long, env = "CLAWBACK_GATEWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The gateway's shared password (gateway.auth.password).
    #[arg(
        long,
        env = "CLAWBACK_GATEWAY_PASSWORD",
        hide_env_values = true,
        conflicts_with = "token"
    )]
    password: Option<String>,
    /// The config file the gateway runs with (default
    /// <state-dir>/config.json5, or OPENCLAW_CONFIG_PATH).
    #[arg(long, env = "CLAWBACK_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One authenticated operator connection.
/// Whether opening the store failed because a running gateway holds it:
/// then a reading command asks that gateway instead.
pub fn store_is_locked(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<clawback_events::store::StoreError>(),
        Some(clawback_events::store::StoreError::Locked { .. })
    )
}

pub struct Client {
    socket: Socket,
    next_id: u64,
    pub url: String,
}

impl Client {
    /// Connects and authenticates with read and write scopes, or says why
    /// not and what to do about it.
    pub async fn connect(state_dir: &StateDir, args: &GatewayArgs) -> anyhow::Result<Client> {
        let (url, secret) = target(state_dir, args)?;
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&url))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the gateway at {url} did not answer within {CONNECT_TIMEOUT:?}"
                    )
                })?;
        let (socket, _) = connected.map_err(|error| {
            anyhow::anyhow!(
                "cannot reach the gateway at {url} ({error}): is it running? start it with \
                 `clawback gateway run`, or pass --url (CLAWBACK_GATEWAY_URL)"
            )
        })?;
        let mut client = Client {
            socket,
            next_id: 0,
            url,
        };
        let mut auth = json!({});
        match secret {
            Some(Secret::Token(token)) => auth["token"] = json!(token),
            Some(Secret::Password(password)) => auth["password"] = json!(password),
            None => {}
        }
        let hello = tokio::time::timeout(
            CONNECT_TIMEOUT,
            client.request_raw(
                "connect",
                json!({
                    "minProtocol": 4, "maxProtocol": 4,
                    "client": {"id": "cli", "version": env!("CARGO_PKG_VERSION"),
                               "platform": std::env::consts::OS, "mode": "cli"},
                    "role": "operator",
                    "scopes": ["operator.read", "operator.write"],
                    "auth": auth,
                }),
                &mut |_| {},
            ),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("the gateway at {} did not finish the handshake", client.url)
        })??;
        if hello["ok"] != true {
            anyhow::bail!(
                "the gateway at {} refused the connection: {}; pass the gateway's secret with \
                 --token TOKEN (or CLAWBACK_GATEWAY_TOKEN), or --password",
                client.url,
                error_text(&hello)
            );
        }
        Ok(client)
    }

    /// Calls `method` and returns its payload, or the gateway's error as
    /// an error. Events arriving meanwhile go to `on_event`.
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
        on_event: &mut dyn FnMut(&Value),
    ) -> anyhow::Result<Value> {
        let answer = self.request_raw(method, params, on_event).await?;
        if answer["ok"] != true {
            anyhow::bail!("{method} failed: {}", error_text(&answer));
        }
        Ok(answer["payload"].clone())
    }

    /// Sends a request and reads frames until its answer.
    async fn request_raw(
        &mut self,
        method: &str,
        params: Value,
        on_event: &mut dyn FnMut(&Value),
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = format!("cli-{}", self.next_id);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .context("the gateway closed the connection")?;
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "res" && frame["id"] == id.as_str() {
                return Ok(frame);
            }
            if frame["type"] == "event" {
                on_event(&frame);
            }
        }
    }

    async fn next_frame(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).with_context(|| {
                        format!("the gateway sent a frame that is not JSON: {text}")
                    });
                }
                Some(Ok(Message::Close(close))) => anyhow::bail!(
                    "the gateway closed the connection{}",
                    close
                        .map(|close| format!(": {}", close.reason))
                        .unwrap_or_default()
                ),
                Some(Ok(_)) => {}
                Some(Err(error)) => anyhow::bail!("the connection to the gateway failed: {error}"),
                None => anyhow::bail!("the gateway closed the connection"),
            }
        }
    }
}

/// An error frame's message (and code), for a person.
fn error_text(frame: &Value) -> String {
    let error = &frame["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("{message} ({code})"),
        (None, Some(message)) => message.to_owned(),
        _ => frame.to_string(),
    }
}

/// The URL and secret to use (see the module docs for the order).
fn target(state_dir: &StateDir, args: &GatewayArgs) -> anyhow::Result<(String, Option<Secret>)> {
    let from_args = || listen::secret(args.token.clone(), args.password.clone(), None);
    if let (Some(url), Some(secret)) = (&args.url, from_args()?) {
        return Ok((url.clone(), Some(secret)));
    }
    let config_path = args
        .config
        .clone()
        .or_else(|| std::env::var_os("OPENCLAW_CONFIG_PATH").map(std::path::PathBuf::from))
        .unwrap_or_else(|| crate::config::default_path(state_dir.root()));
    let config = if config_path.exists() {
        let file = crate::config::ConfigFile::open(
            config_path.clone(),
            &crate::config::hash_key_path(state_dir.root()),
        )?;
        match crate::config::Loaded::read(&file)?.checked {
            Ok(checked) => Some(checked.typed),
            Err(issues) => anyhow::bail!(
                "the config {} is invalid: {}; fix it, or pass --url and --token",
                config_path.display(),
                crate::config::describe(&issues)
            ),
        }
    } else {
        None
    };
    let url = match (&args.url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => {
            let mut bind = listen::bind_from_config(config)?;
            if bind.ip().is_unspecified() {
                bind.set_ip([127, 0, 0, 1].into());
            }
            format!("ws://{bind}/")
        }
        (None, None) => "ws://127.0.0.1:18789/".to_owned(),
    };
    // The gateway's own order (flags, environment, config), so the
    // client offers the secret the gateway takes.
    let secret = listen::secret(args.token.clone(), args.password.clone(), config.as_ref())?;
    Ok((url, secret))
}

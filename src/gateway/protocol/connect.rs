//! The `connect` request: its params, checked as OpenClaw checks them, and
//! the shared-secret authentication it carries.
//!
//! Why hand-written checks rather than a JSON Schema engine: only this one
//! object is validated before authentication, its schema is small and
//! closed, and clients match on the exact messages ("invalid connect params:
//! at /client/id: must be equal to one of the allowed values"), which are
//! easiest to keep identical when written out.

use serde_json::{Map, Value};

use super::frames::{ErrorShape, codes};

/// The protocol this gateway speaks; a client range must include it.
pub const PROTOCOL_VERSION: u64 = 4;
/// The oldest protocol a probe may use (OpenClaw's MIN_PROBE_PROTOCOL_VERSION).
pub const MIN_PROBE_PROTOCOL_VERSION: u64 = 3;

const CONNECT_KEYS: &[&str] = &[
    "minProtocol",
    "maxProtocol",
    "client",
    "caps",
    "commands",
    "permissions",
    "pathEnv",
    "computerUse",
    "workerRuns",
    "role",
    "scopes",
    "device",
    "auth",
    "locale",
    "userAgent",
];
const CLIENT_KEYS: &[&str] = &[
    "id",
    "displayName",
    "version",
    "buildId",
    "platform",
    "deviceFamily",
    "modelIdentifier",
    "timeZone",
    "mode",
    "instanceId",
];
const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];
const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];
const ROLES: &[&str] = &["operator", "node", "worker"];
const AUTH_KEYS: &[&str] = &[
    "token",
    "password",
    "bootstrapToken",
    "deviceToken",
    "approvalRuntimeToken",
    "agentRuntimeIdentityToken",
];
const DEVICE_KEYS: &[&str] = &["id", "publicKey", "signature", "signedAt", "nonce"];

/// The parts of `connect` the gateway acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRequest {
    pub min_protocol: u64,
    pub max_protocol: u64,
    pub client_id: String,
    pub client_version: String,
    pub client_platform: String,
    pub client_mode: String,
    pub display_name: Option<String>,
    pub instance_id: Option<String>,
    pub device_family: Option<String>,
    pub role: String,
    /// `None` when the client sent no `scopes`.
    pub scopes: Option<Vec<String>>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// A device token issued earlier in `hello-ok.auth.deviceToken`.
    pub device_token: Option<String>,
    /// The `device` proof, verified by `device::verify`.
    pub device: Option<Value>,
    pub model_identifier: Option<String>,
    /// A node's declared capabilities and commands (trimmed, deduplicated)
    /// and its `permissions` object.
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: Option<Map<String, Value>>,
}

/// A node's `caps`/`commands`: trimmed, empty entries and repeats dropped,
/// first occurrence order kept (OpenClaw's normalization).
fn string_list(object: &Map<String, Value>, key: &str) -> Result<Vec<String>, ErrorShape> {
    let items = match object.get(key) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(format!("at /{key}: must be array"))),
    };
    let mut list: Vec<String> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let text = string(item, &format!("/{key}/{index}"))?;
        let text = text.trim();
        if !text.is_empty() && !list.iter().any(|seen| seen == text) {
            list.push(text.to_owned());
        }
    }
    Ok(list)
}

fn invalid(detail: String) -> ErrorShape {
    ErrorShape::invalid(format!("invalid connect params: {detail}"))
}

fn check_keys(object: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), ErrorShape> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(invalid(format!(
            "at {}: unexpected property '{key}'",
            if at.is_empty() { "/" } else { at }
        ))),
        None => Ok(()),
    }
}

fn required<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'a Value, ErrorShape> {
    object.get(key).ok_or_else(|| {
        let place = if at.is_empty() {
            String::new()
        } else {
            format!("at {at}: ")
        };
        invalid(format!("{place}must have required property '{key}'"))
    })
}

fn string(value: &Value, at: &str) -> Result<String, ErrorShape> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("at {at}: must be string")))
}

fn optional_string(
    object: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<String>, ErrorShape> {
    object
        .get(key)
        .map(|value| string(value, &format!("{at}/{key}")))
        .transpose()
}

fn protocol(value: &Value, at: &str) -> Result<u64, ErrorShape> {
    value
        .as_u64()
        .filter(|version| *version >= 1)
        .ok_or_else(|| invalid(format!("at {at}: must be integer >= 1")))
}

/// Validates `connect` params. Protocol range and auth are checked later,
/// by [`check_protocol`] and [`Auth::check`].
pub fn parse(params: Option<&Value>) -> Result<ConnectRequest, ErrorShape> {
    let Some(object) = params.and_then(Value::as_object) else {
        return Err(invalid("must be object".to_owned()));
    };
    check_keys(object, CONNECT_KEYS, "")?;
    let min_protocol = protocol(required(object, "minProtocol", "")?, "/minProtocol")?;
    let max_protocol = protocol(required(object, "maxProtocol", "")?, "/maxProtocol")?;
    let client = required(object, "client", "")?
        .as_object()
        .ok_or_else(|| invalid("at /client: must be object".to_owned()))?;
    check_keys(client, CLIENT_KEYS, "/client")?;
    let client_id = string(required(client, "id", "/client")?, "/client/id")?;
    if !CLIENT_IDS.contains(&client_id.as_str()) {
        return Err(invalid(
            "at /client/id: must be equal to one of the allowed values".to_owned(),
        ));
    }
    let client_version = string(required(client, "version", "/client")?, "/client/version")?;
    let client_platform = string(required(client, "platform", "/client")?, "/client/platform")?;
    let client_mode = string(required(client, "mode", "/client")?, "/client/mode")?;
    if !CLIENT_MODES.contains(&client_mode.as_str()) {
        return Err(invalid(
            "at /client/mode: must be equal to one of the allowed values".to_owned(),
        ));
    }
    let role = optional_string(object, "role", "")?.unwrap_or_else(|| "operator".to_owned());
    if !ROLES.contains(&role.as_str()) {
        return Err(invalid(
            "at /role: must be equal to one of the allowed values".to_owned(),
        ));
    }
    let scopes = match object.get("scopes") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| string(item, &format!("/scopes/{index}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(invalid("at /scopes: must be array".to_owned())),
    };
    let (token, password, device_token) = match object.get("auth") {
        None => (None, None, None),
        Some(Value::Object(auth)) => {
            check_keys(auth, AUTH_KEYS, "/auth")?;
            (
                optional_string(auth, "token", "/auth")?,
                optional_string(auth, "password", "/auth")?,
                optional_string(auth, "deviceToken", "/auth")?,
            )
        }
        Some(_) => return Err(invalid("at /auth: must be object".to_owned())),
    };
    let device = match object.get("device") {
        None => None,
        Some(value @ Value::Object(device)) => {
            check_keys(device, DEVICE_KEYS, "/device")?;
            Some(value.clone())
        }
        Some(_) => return Err(invalid("at /device: must be object".to_owned())),
    };
    Ok(ConnectRequest {
        min_protocol,
        max_protocol,
        client_id,
        client_version,
        client_platform,
        client_mode,
        display_name: optional_string(client, "displayName", "/client")?,
        instance_id: optional_string(client, "instanceId", "/client")?,
        device_family: optional_string(client, "deviceFamily", "/client")?,
        role,
        scopes,
        token,
        password,
        device_token,
        device,
        model_identifier: optional_string(client, "modelIdentifier", "/client")?,
        caps: string_list(object, "caps")?,
        commands: string_list(object, "commands")?,
        permissions: match object.get("permissions") {
            None => None,
            Some(Value::Object(permissions)) => Some(permissions.clone()),
            Some(_) => return Err(invalid("at /permissions: must be object".to_owned())),
        },
    })
}

/// The range must include protocol 4 (close 1002 otherwise).
pub fn check_protocol(request: &ConnectRequest) -> Result<(), ErrorShape> {
    if request.min_protocol <= PROTOCOL_VERSION && PROTOCOL_VERSION <= request.max_protocol {
        return Ok(());
    }
    Err(
        ErrorShape::invalid("protocol mismatch").with_details(serde_json::json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": request.min_protocol,
            "clientMaxProtocol": request.max_protocol,
            "expectedProtocol": PROTOCOL_VERSION,
            "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
        })),
    )
}

/// How connections authenticate (OpenClaw's `gateway.auth.mode`).
#[derive(Clone)]
pub enum Auth {
    /// Anyone who can reach the socket; only allowed on loopback binds.
    None,
    /// A shared secret, accepted in `auth.token` or `auth.password`.
    Token(blake3::Hash),
    Password(blake3::Hash),
}

impl std::fmt::Debug for Auth {
    // Never print the secret's digest either: it is enough to test guesses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

impl Auth {
    pub fn token(secret: &str) -> Auth {
        Auth::Token(blake3::hash(secret.as_bytes()))
    }

    pub fn password(secret: &str) -> Auth {
        Auth::Password(blake3::hash(secret.as_bytes()))
    }

    /// `hello-ok.auth.method`.
    pub fn method(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Token(_) => "token",
            Auth::Password(_) => "password",
        }
    }

    /// Checks the shared secret. Comparison is of blake3 digests, whose
    /// equality is constant-time, so the secret does not leak by timing.
    pub fn check(&self, request: &ConnectRequest) -> Result<(), ErrorShape> {
        let (expected, kind) = match self {
            Auth::None => return Ok(()),
            Auth::Token(expected) => (expected, "token"),
            Auth::Password(expected) => (expected, "password"),
        };
        let offered: Vec<&String> = [&request.token, &request.password]
            .into_iter()
            .flatten()
            .collect();
        if offered.is_empty() {
            // OpenClaw answers a credential-less, device-less connect this
            // way in token mode: the client should pair or send the secret.
            return Err(
                ErrorShape::new(codes::NOT_PAIRED, "device identity required")
                    .with_details(serde_json::json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
            );
        }
        if offered
            .iter()
            .any(|secret| blake3::hash(secret.as_bytes()) == *expected)
        {
            return Ok(());
        }
        let (message, code, reason) = if kind == "token" {
            (
                "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
                "AUTH_TOKEN_MISMATCH",
                "token_mismatch",
            )
        } else {
            (
                "unauthorized: gateway password mismatch (use this gateway's gateway.auth.password or pair the device)",
                "AUTH_PASSWORD_MISMATCH",
                "password_mismatch",
            )
        };
        Err(
            ErrorShape::invalid(message).with_details(serde_json::json!({
                "code": code,
                "authReason": reason,
                "canRetryWithDeviceToken": false,
                "recommendedNextStep": "update_auth_credentials",
            })),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cli_connect() -> Value {
        json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": "2026.9.6", "platform": "linux", "mode": "cli",
                       "deviceFamily": "Linux", "instanceId": "i-1"},
            "role": "operator", "scopes": ["operator.read"],
            "auth": {"token": "secret"}
        })
    }

    #[test]
    fn the_cli_connect_parses() {
        let request = parse(Some(&cli_connect())).expect("valid");
        assert_eq!(request.client_id, "cli");
        assert_eq!(request.scopes, Some(vec!["operator.read".to_owned()]));
        assert_eq!(request.token.as_deref(), Some("secret"));
        assert!(check_protocol(&request).is_ok());
    }

    #[test]
    fn schema_violations_name_the_path() {
        let mut params = cli_connect();
        params["client"]["id"] = json!("nope");
        assert_eq!(
            parse(Some(&params)).unwrap_err().message,
            "invalid connect params: at /client/id: must be equal to one of the allowed values"
        );
        let mut params = cli_connect();
        params["extra"] = json!(1);
        assert_eq!(
            parse(Some(&params)).unwrap_err().message,
            "invalid connect params: at /: unexpected property 'extra'"
        );
        let mut params = cli_connect();
        params.as_object_mut().unwrap().remove("client");
        assert_eq!(
            parse(Some(&params)).unwrap_err().message,
            "invalid connect params: must have required property 'client'"
        );
    }

    #[test]
    fn a_range_without_4_is_a_protocol_mismatch() {
        let mut params = cli_connect();
        params["minProtocol"] = json!(2);
        params["maxProtocol"] = json!(3);
        let error = check_protocol(&parse(Some(&params)).unwrap()).unwrap_err();
        assert_eq!(error.message, "protocol mismatch");
        assert_eq!(error.details.unwrap()["code"], "PROTOCOL_MISMATCH");
    }

    #[test]
    fn the_secret_is_accepted_in_either_field_and_mismatches_say_so() {
        let request = parse(Some(&cli_connect())).unwrap();
        assert!(Auth::token("secret").check(&request).is_ok());
        let mut by_password = request.clone();
        by_password.password = by_password.token.take();
        assert!(Auth::token("secret").check(&by_password).is_ok());
        let error = Auth::token("other").check(&request).unwrap_err();
        assert_eq!(error.code, "INVALID_REQUEST");
        assert_eq!(error.details.unwrap()["code"], "AUTH_TOKEN_MISMATCH");
        let mut bare = request.clone();
        bare.token = None;
        let error = Auth::token("secret").check(&bare).unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            ("NOT_PAIRED", "device identity required")
        );
        assert!(Auth::None.check(&bare).is_ok());
    }
}

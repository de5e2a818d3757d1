//! Device identity at `connect`: an Ed25519 key proving which device is
//! connecting, bound to this socket's challenge.
//!
//! Why verify at all when a shared secret already authenticates: the secret
//! says "someone allowed", the device says "which one", and only a verified
//! device may be recorded as the actor of what a connection does, or be
//! revoked later. Rules as observed from OpenClaw 2026.9.6
//! (shared/openclaw/protocol.md §1.3): the key is raw 32 bytes in base64url,
//! the device id is the lowercase hex sha256 of the key, the signature covers
//! the v3 payload (v2 still accepted), `nonce` is the challenge's and
//! `signedAt` its time. The detail codes are OpenClaw's
//! (`connect-error-details.ts`); the human messages are clawback's own, as the
//! observed ones for these cases were not captured.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::connect::ConnectRequest;
use super::frames::ErrorShape;

/// How far `signedAt` may be from the gateway's clock.
pub const SIGNATURE_MAX_SKEW_MS: i64 = 10 * 60 * 1000;

/// The `device` object of `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProof {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: i64,
    pub nonce: Option<String>,
}

/// A device whose proof verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedDevice {
    pub device_id: String,
    /// base64url, as sent.
    pub public_key: String,
}

fn refused(code: &'static str, message: &str) -> ErrorShape {
    ErrorShape::invalid(format!("device identity invalid: {message}"))
        .with_details(serde_json::json!({"code": code}))
}

/// Reads the `device` object (its keys were already checked by `connect`).
pub fn parse(value: &Value) -> Result<DeviceProof, ErrorShape> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(id), Some(public_key), Some(signature)) =
        (text("id"), text("publicKey"), text("signature"))
    else {
        return Err(refused(
            "DEVICE_AUTH_INVALID",
            "id, publicKey and signature are required strings",
        ));
    };
    let Some(signed_at) = value.get("signedAt").and_then(Value::as_i64) else {
        return Err(refused(
            "DEVICE_AUTH_INVALID",
            "signedAt must be an integer",
        ));
    };
    Ok(DeviceProof {
        id,
        public_key,
        signature,
        signed_at,
        nonce: text("nonce"),
    })
}

fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// `sha256(raw public key)` in lowercase hex: OpenClaw's device id.
pub fn device_id(raw_public_key: &[u8]) -> String {
    Sha256::digest(raw_public_key)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The fields both payload versions sign, `|`-joined after the version.
fn payload_fields(proof: &DeviceProof, connect: &ConnectRequest, nonce: &str) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        proof.id,
        connect.client_id,
        connect.client_mode,
        connect.role,
        connect.scopes.as_deref().unwrap_or(&[]).join(","),
        proof.signed_at,
        // OpenClaw signs the shared token, else the device token.
        connect
            .token
            .as_deref()
            .or(connect.device_token.as_deref())
            .unwrap_or(""),
        nonce,
    )
}

/// The v3 payload OpenClaw clients sign (`buildDeviceAuthPayloadV3`): the
/// v2 fields plus platform and device family, lowercased.
pub fn payload_v3(proof: &DeviceProof, connect: &ConnectRequest, nonce: &str) -> String {
    format!(
        "v3|{}|{}|{}",
        payload_fields(proof, connect, nonce),
        connect.client_platform.to_lowercase(),
        connect
            .device_family
            .as_deref()
            .unwrap_or("")
            .to_lowercase(),
    )
}

/// The legacy v2 payload, still accepted.
pub fn payload_v2(proof: &DeviceProof, connect: &ConnectRequest, nonce: &str) -> String {
    format!("v2|{}", payload_fields(proof, connect, nonce))
}

/// Verifies `proof` for this socket's `challenge_nonce`, at `now_ms`.
pub fn verify(
    proof: &DeviceProof,
    connect: &ConnectRequest,
    challenge_nonce: &str,
    now_ms: i64,
) -> Result<VerifiedDevice, ErrorShape> {
    let raw_key = decode_base64url(&proof.public_key)
        .filter(|raw| raw.len() == 32)
        .ok_or_else(|| {
            refused(
                "DEVICE_AUTH_PUBLIC_KEY_INVALID",
                "publicKey must be a raw 32-byte Ed25519 key in base64url",
            )
        })?;
    let key_bytes: [u8; 32] = raw_key.as_slice().try_into().expect("32 bytes checked");
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| {
        refused(
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            "publicKey is not a valid Ed25519 point",
        )
    })?;
    if proof.id != device_id(&raw_key) {
        return Err(refused(
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "id is not the sha256 of publicKey",
        ));
    }
    let Some(nonce) = proof.nonce.as_deref() else {
        return Err(refused(
            "DEVICE_AUTH_NONCE_REQUIRED",
            "nonce (the connect.challenge nonce) is required",
        ));
    };
    if nonce != challenge_nonce {
        return Err(refused(
            "DEVICE_AUTH_NONCE_MISMATCH",
            "nonce is not this connection's challenge",
        ));
    }
    if (now_ms - proof.signed_at).abs() > SIGNATURE_MAX_SKEW_MS {
        return Err(refused(
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            "signedAt is too far from the gateway's clock",
        ));
    }
    let signature = decode_base64url(&proof.signature)
        .and_then(|raw| Signature::from_slice(&raw).ok())
        .ok_or_else(|| {
            refused(
                "DEVICE_AUTH_SIGNATURE_INVALID",
                "signature is not a 64-byte Ed25519 signature in base64url",
            )
        })?;
    let signed = [
        payload_v3(proof, connect, nonce),
        payload_v2(proof, connect, nonce),
    ];
    if signed
        .iter()
        .any(|payload| key.verify_strict(payload.as_bytes(), &signature).is_ok())
    {
        Ok(VerifiedDevice {
            device_id: proof.id.clone(),
            public_key: proof.public_key.clone(),
        })
    } else {
        Err(refused(
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "signature does not verify for this connect",
        ))
    }
}

#[cfg(test)]
pub mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    use super::*;
    use crate::gateway::protocol::connect;

    pub fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// A connect with a device proof signed by `key` over the v3 payload.
    pub fn signed_connect(key: &SigningKey, nonce: &str, signed_at: i64) -> Value {
        let raw = key.verifying_key().to_bytes();
        let id = device_id(&raw);
        let mut params = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "version": "2026.9.6", "platform": "Linux",
                       "mode": "ui", "deviceFamily": "Linux"},
            "role": "operator", "scopes": ["operator.admin", "operator.read"],
            "auth": {"token": "t"},
            "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(raw), "signature": "",
                       "signedAt": signed_at, "nonce": nonce},
        });
        let request = connect::parse(Some(&params)).unwrap();
        let proof = parse(&params["device"]).unwrap();
        let signature = key.sign(payload_v3(&proof, &request, nonce).as_bytes());
        params["device"]["signature"] = json!(URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        params
    }

    fn check(params: &Value, nonce: &str, now: i64) -> Result<VerifiedDevice, ErrorShape> {
        let request = connect::parse(Some(params)).unwrap();
        verify(&parse(&params["device"]).unwrap(), &request, nonce, now)
    }

    fn detail(error: ErrorShape) -> String {
        error.details.unwrap()["code"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_correct_v3_signature_verifies_and_names_the_device() {
        let key = signing_key(7);
        let params = signed_connect(&key, "n-1", 1_000_000);
        let device = check(&params, "n-1", 1_000_500).expect("verifies");
        assert_eq!(device.device_id, device_id(&key.verifying_key().to_bytes()));
        assert_eq!(device.device_id.len(), 64);
    }

    #[test]
    fn every_tampering_is_refused_with_its_code() {
        let key = signing_key(7);
        let params = signed_connect(&key, "n-1", 1_000_000);
        assert_eq!(
            detail(check(&params, "n-2", 1_000_000).unwrap_err()),
            "DEVICE_AUTH_NONCE_MISMATCH"
        );
        assert_eq!(
            detail(check(&params, "n-1", 1_000_000 + SIGNATURE_MAX_SKEW_MS + 1).unwrap_err()),
            "DEVICE_AUTH_SIGNATURE_EXPIRED"
        );
        let mut scopes_changed = params.clone();
        scopes_changed["scopes"] = json!(["operator.admin"]);
        assert_eq!(
            detail(check(&scopes_changed, "n-1", 1_000_000).unwrap_err()),
            "DEVICE_AUTH_SIGNATURE_INVALID"
        );
        let mut other_id = params.clone();
        other_id["device"]["id"] = json!("00".repeat(32));
        assert_eq!(
            detail(check(&other_id, "n-1", 1_000_000).unwrap_err()),
            "DEVICE_AUTH_DEVICE_ID_MISMATCH"
        );
        let mut bad_key = params.clone();
        bad_key["device"]["publicKey"] = json!("AAAA");
        assert_eq!(
            detail(check(&bad_key, "n-1", 1_000_000).unwrap_err()),
            "DEVICE_AUTH_PUBLIC_KEY_INVALID"
        );
    }
}

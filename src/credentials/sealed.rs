//! The profile file's encryption: AES-256-GCM with a key kept apart from
//! it.
//!
//! Why encrypt a file that is already 0600: backups, synced folders and
//! support bundles copy state dirs; a copied profile file must not be a
//! copied API key. The key comes from `CLAWBACK_AUTH_KEY` (base64 of 32
//! bytes, for hosts with a secret manager) or from a key file created on
//! first use beside the state (0600); keep the key out of backups of the
//! profile file. The file format: a magic line, a 96-bit random nonce, then
//! the ciphertext with its tag; the magic line is authenticated too, so a
//! file from another format version is refused, not misread.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine;

/// The first bytes of a sealed profile file.
const MAGIC: &[u8] = b"clawback-auth-profiles v1\n";
const NONCE_BYTES: usize = 12;
const KEY_BYTES: usize = 32;
/// The environment variable that holds the key (base64), if set.
pub const KEY_ENV: &str = "CLAWBACK_AUTH_KEY";

/// The profile file's key: from the environment, else the key file
/// (created when `create` and missing).
pub fn key(key_path: &Path, create: bool) -> anyhow::Result<[u8; KEY_BYTES]> {
    if let Ok(encoded) = std::env::var(KEY_ENV) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .with_context(|| format!("{KEY_ENV} is not base64"))?;
        return bytes.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!(
                "{KEY_ENV} holds {} bytes; it must be 32 (e.g. `head -c32 /dev/urandom | base64`)",
                bytes.len()
            )
        });
    }
    match std::fs::read(key_path) {
        Ok(bytes) => bytes.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!(
                "the auth key file {} holds {} bytes, not 32; restore it from a backup (without it the profiles cannot be read)",
                key_path.display(),
                bytes.len()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = [0u8; KEY_BYTES];
            getrandom::fill(&mut key).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
            crate::private_file::write(key_path, &key)?;
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| {
            format!(
                "cannot read the auth key file {} (set {KEY_ENV} or restore the file)",
                key_path.display()
            )
        }),
    }
}

/// Encrypts `plain` into the file format.
pub fn seal(key: &[u8; KEY_BYTES], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: MAGIC,
            },
        )
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts the file format; any change to the file (or a wrong key) is an
/// error, never garbage.
pub fn open(key: &[u8; KEY_BYTES], file: &[u8]) -> anyhow::Result<Vec<u8>> {
    let Some(rest) = file.strip_prefix(MAGIC) else {
        bail!("not a clawback auth profile file (or another format version)");
    };
    if rest.len() < NONCE_BYTES {
        bail!("the auth profile file is truncated");
    }
    let (nonce, sealed) = rest.split_at(NONCE_BYTES);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: MAGIC })
        .map_err(|_| {
            anyhow::anyhow!(
                "the auth profile file does not open with this key: it was changed, or the key is not the one it was written with"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_files_open_only_unchanged_and_with_their_key() {
        let key = [7u8; KEY_BYTES];
        let sealed = seal(&key, b"{\"secret\":\"sk-1\"}").unwrap();
        assert!(!sealed.windows(4).any(|window| window == b"sk-1"));
        assert_eq!(open(&key, &sealed).unwrap(), b"{\"secret\":\"sk-1\"}");
        // Two seals of the same text differ (fresh nonce).
        assert_ne!(seal(&key, b"x").unwrap(), seal(&key, b"x").unwrap());
        assert!(open(&[8u8; KEY_BYTES], &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&key, &flipped).is_err());
        assert!(open(&key, b"plain text").is_err());
        assert!(open(&key, &sealed[..MAGIC.len() + 3]).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.key");
        let first = key(&path, true).unwrap();
        assert_eq!(key(&path, false).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(key(&path, false).unwrap_err().to_string().contains("32"));
        assert!(key(&dir.path().join("missing"), false).is_err());
    }
}

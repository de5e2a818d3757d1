//! The key that signs the log's checkpoints: an Ed25519 key in the state
//! dir, apart from the log, made on first use.
//!
//! Why apart from the log: the log is what the key vouches for, and is
//! copied, exported and archived; the key must not travel with it. Anyone
//! who holds the key can sign a checkpoint for a rewritten log, so the file
//! is created 0600 and refused when others can read it. It is written in Go's
//! note signer encoding (`PRIVATE+KEY+<name>+<id>+<base64>`), so Go's
//! `sumdb/note` tools can use it too. The key's name is the log's origin:
//! `clawback/<first 16 hex digits of SHA-256(public key)>`, unique per key.

use std::path::Path;

use anyhow::Context;
use clawback_replay::merkle::note::{NoteSigner, NoteVerifier};
use sha2::{Digest as _, Sha256};

/// Loads the signing key, creating it (0600) when there is none.
pub fn load_or_create(path: &Path) -> anyhow::Result<NoteSigner> {
    if let Some(signer) = load(path)? {
        return Ok(signer);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|error| anyhow::anyhow!("no randomness for the checkpoint key: {error}"))?;
    // The public key's hash names the log.
    let public = NoteSigner::from_seed("clawback/unnamed", &seed)?
        .verifier()
        .public_key();
    let digest = Sha256::digest(public);
    let name: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let signer = NoteSigner::from_seed(&format!("clawback/{name}"), &seed)?;
    crate::private_file::write(path, format!("{}\n", signer.to_signer_key()).as_bytes())
        .with_context(|| format!("cannot write the checkpoint key {}", path.display()))?;
    Ok(signer)
}

/// Loads the signing key if there is one. Refuses a key others can read.
pub fn load(path: &Path) -> anyhow::Result<Option<NoteSigner>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the checkpoint key {}", path.display()));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "the checkpoint key {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    let signer = NoteSigner::parse(&text).with_context(|| {
        format!(
            "the checkpoint key {} is damaged; restore it from a backup (checkpoints it signed stay verifiable with its public key)",
            path.display()
        )
    })?;
    Ok(Some(signer))
}

/// The key to check checkpoints with: `--key` (a verifier key, or a file
/// holding one) when given, else the state dir's own key when it exists.
pub fn verifier(explicit: Option<&str>, key_path: &Path) -> anyhow::Result<Option<NoteVerifier>> {
    match explicit {
        Some(value) => {
            let text = if Path::new(value).is_file() {
                std::fs::read_to_string(value)
                    .with_context(|| format!("cannot read the key file {value}"))?
            } else {
                value.to_owned()
            };
            Ok(Some(NoteVerifier::parse(&text)?))
        }
        None => Ok(load(key_path)?.map(|signer| signer.verifier())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_named_after_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint.key");
        let made = load_or_create(&path).expect("created");
        assert!(made.name().starts_with("clawback/") && made.name().len() == 25);
        let again = load_or_create(&path).expect("loaded");
        assert_eq!(again.verifier(), made.verifier());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = load(&path).expect_err("world-readable key refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}

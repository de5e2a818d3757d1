//! Signed tree heads as C2SP signed notes (c2sp.org/signed-note) carrying a
//! C2SP checkpoint (c2sp.org/tlog-checkpoint), so tools outside clawback
//! (Go's `golang.org/x/mod/sumdb/note`, transparency-dev's `formats/log`,
//! witnesses) can read and verify them.
//!
//! A checkpoint note, byte for byte:
//!
//! ```text
//! <origin>\n                      the log's identity, also the key's name
//! <tree size>\n                   decimal, no leading zeros
//! <base64 root hash>\n            RFC 9162 root at that size
//! time_ms <unix milliseconds>\n   extension line: when it was signed
//! \n
//! — <key name> <base64(key ID (4 bytes, big-endian) || Ed25519 signature)>\n
//! ```
//!
//! The signature covers the note text (the first four lines, newlines
//! included). The time is an extension line because the signature must
//! cover it and C2SP defines no other place; the spec calls extension lines
//! "not recommended" only because monitors cannot audit them, and parsers
//! that do not know it keep or ignore it. Keys use Go's note encodings:
//! the verifier key `<name>+<key ID hex>+<base64(0x01 || public key)>` and
//! the signer key `PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || seed)>`,
//! with key ID = `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{Hash, hash_from_base64, to_base64};

/// Signature type byte of Ed25519 in the signed-note registry.
const SIGNATURE_TYPE_ED25519: u8 = 0x01;
/// The largest note accepted: room for the 16 signatures the spec requires
/// verifiers to accept, even post-quantum ones (about 5 KB each).
pub const NOTE_BYTES_MAX: usize = 128 * 1024;
/// The most signature lines read from one note.
pub const SIGNATURES_MAX: usize = 32;
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
const TIME_LINE_PREFIX: &str = "time_ms ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed signed note: {0}")]
    Malformed(String),
    #[error("malformed key: {0}")]
    BadKey(String),
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(String),
    #[error(
        "the note is not signed by the key {key} (it carries signatures by: {signers}); check that you pass the key of the log that made it"
    )]
    NoKnownSignature { key: String, signers: String },
    #[error(
        "the signature by {key} does not verify: the note was altered after signing, or forged"
    )]
    BadSignature { key: String },
    #[error("the checkpoint is for the log {origin}, but the key is {key}'s")]
    WrongOrigin { origin: String, key: String },
}

fn key_id(name: &str, public_key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', SIGNATURE_TYPE_ED25519]);
    hasher.update(public_key.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Key names (and origins): non-empty, no Unicode space, no `+`, no
/// control character.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '+')
    {
        return Err(format!(
            "the name {name:?} contains {bad:?} (no spaces, '+' or control characters)"
        ));
    }
    Ok(())
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .ok()
}

/// A log's signing key and its name.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl NoteSigner {
    /// The key made from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name).map_err(NoteError::BadKey)?;
        let key = SigningKey::from_bytes(seed);
        Ok(NoteSigner {
            key_id: key_id(name, &key.verifying_key()),
            name: name.to_owned(),
            key,
        })
    }

    /// Parses Go's signer key encoding, checking the key ID it names.
    pub fn parse(text: &str) -> Result<NoteSigner, NoteError> {
        let bad = |why: &str| NoteError::BadKey(format!("signer key: {why}"));
        let rest = text
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let data = decode_base64(data).ok_or_else(|| bad("the key is not base64"))?;
        let seed: [u8; 32] = match data.split_first() {
            Some((&SIGNATURE_TYPE_ED25519, seed)) => seed
                .try_into()
                .map_err(|_| bad("an Ed25519 seed is 32 bytes"))?,
            _ => return Err(bad("not an Ed25519 key (type 0x01)")),
        };
        let signer = NoteSigner::from_seed(name, &seed)?;
        if id != format!("{:08x}", signer.key_id) {
            return Err(bad("the key ID does not match the key"));
        }
        Ok(signer)
    }

    /// Go's signer key encoding (secret: belongs in a 0600 file).
    pub fn to_signer_key(&self) -> String {
        let mut data = vec![SIGNATURE_TYPE_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            to_base64(&data)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// Signs `text` (which must end in a newline) into a signed note.
    pub fn sign(&self, text: &str) -> String {
        assert!(text.ends_with('\n'), "note text ends in a newline");
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{text}\n{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.name,
            to_base64(&blob)
        )
    }
}

/// Shows the key's name and ID, never the secret.
impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.verifier().label())
    }
}

/// A public key a note is checked against: what an outside verifier is
/// given, out of band, and pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl NoteVerifier {
    /// Parses Go's verifier key encoding, checking the key ID it names.
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |why: &str| {
            NoteError::BadKey(format!(
                "verifier key: {why} (expected <name>+<8 hex digits>+<base64 key>, as `clawback audit checkpoint --verifier-key` prints)"
            ))
        };
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("it has fewer than three '+'-separated parts"));
        };
        check_name(name).map_err(|why| bad(&why))?;
        let data = decode_base64(data).ok_or_else(|| bad("the key is not base64"))?;
        let key_bytes: [u8; 32] = match data.split_first() {
            Some((&SIGNATURE_TYPE_ED25519, key)) => key
                .try_into()
                .map_err(|_| bad("an Ed25519 public key is 32 bytes"))?,
            _ => return Err(bad("not an Ed25519 key (type 0x01)")),
        };
        let key =
            VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad("not a valid Ed25519 point"))?;
        let verifier = NoteVerifier {
            key_id: key_id(name, &key),
            name: name.to_owned(),
            key,
        };
        if id != format!("{:08x}", verifier.key_id) {
            return Err(bad("the key ID does not match the key"));
        }
        Ok(verifier)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// `<name>+<key ID>`: enough to tell keys apart in messages.
    pub fn label(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }

    /// Go's verifier key encoding: `<name>+<key ID>+<base64(0x01 || key)>`.
    pub fn to_verifier_key(&self) -> String {
        let mut data = vec![SIGNATURE_TYPE_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, to_base64(&data))
    }

    /// Verifies `note` and returns its text. Signatures by other keys are
    /// ignored, as the spec requires; one by this key must be present and
    /// valid.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let malformed = |why: &str| NoteError::Malformed(why.to_owned());
        if note.len() > NOTE_BYTES_MAX {
            return Err(malformed("the note is larger than 128 KiB"));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("the note contains control characters"));
        }
        if !note.ends_with('\n') {
            return Err(malformed("the note does not end in a newline"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line separates the text from the signatures"))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        let mut signers = Vec::new();
        let mut verified = false;
        for (count, line) in signatures.lines().enumerate() {
            if count >= SIGNATURES_MAX {
                return Err(malformed("the note has too many signatures"));
            }
            let rest = line
                .strip_prefix(SIGNATURE_LINE_PREFIX)
                .ok_or_else(|| malformed("a signature line does not start with an em dash"))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("a signature line has no signature"))?;
            let blob = decode_base64(blob)
                .filter(|blob| blob.len() > 4)
                .ok_or_else(|| malformed("a signature is not base64 of a key ID and bytes"))?;
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            signers.push(format!("{name}+{id:08x}"));
            if name != self.name || id != self.key_id {
                continue;
            }
            let signature = ed25519_dalek::Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::BadSignature { key: self.label() })?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature { key: self.label() })?;
            verified = true;
        }
        if signers.is_empty() {
            return Err(malformed("the note has no signature lines"));
        }
        if !verified {
            return Err(NoteError::NoKnownSignature {
                key: self.label(),
                signers: signers.join(", "),
            });
        }
        Ok(text)
    }
}

/// A signed tree head: the log's identity, size and root, and when it was
/// signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Unix milliseconds of the signing (the gateway's clock).
    pub time_ms: i64,
}

impl Checkpoint {
    /// The note text, in the C2SP checkpoint format.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{TIME_LINE_PREFIX}{}\n",
            self.origin,
            self.size,
            to_base64(&self.root),
            self.time_ms
        )
    }

    /// Parses a checkpoint note text strictly: the canonical forms only, so
    /// one checkpoint has exactly one text.
    pub fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: String| NoteError::BadCheckpoint(why);
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end in a newline".to_owned()))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(bad("fewer than three lines".to_owned()));
        };
        check_name(origin).map_err(|why| bad(format!("origin: {why}")))?;
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (*size == "0" || !size.starts_with('0'));
        let size: u64 = size
            .parse()
            .ok()
            .filter(|_| size_ok)
            .ok_or_else(|| bad(format!("tree size {size:?} is not a decimal number")))?;
        let root_hash = hash_from_base64(root)
            .filter(|hash| to_base64(hash) == *root)
            .ok_or_else(|| bad(format!("root hash {root:?} is not base64 of 32 bytes")))?;
        let mut time_ms = None;
        for line in extensions {
            if line.is_empty() {
                return Err(bad("an extension line is empty".to_owned()));
            }
            if let Some(value) = line.strip_prefix(TIME_LINE_PREFIX) {
                let parsed: i64 = value
                    .parse()
                    .map_err(|_| bad(format!("time {value:?} is not a number")))?;
                if time_ms.replace(parsed).is_some() {
                    return Err(bad("two time_ms lines".to_owned()));
                }
            }
        }
        let time_ms = time_ms.ok_or_else(|| {
            bad("no time_ms line: not a checkpoint written by clawback".to_owned())
        })?;
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root: root_hash,
            time_ms,
        })
    }

    /// Signs this checkpoint with `signer`, whose name must be the origin.
    pub fn sign(&self, signer: &NoteSigner) -> String {
        assert_eq!(self.origin, signer.name(), "a log signs under its origin");
        signer.sign(&self.to_text())
    }

    /// Verifies a signed checkpoint note with `verifier` and parses it.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        let text = verifier.open(note)?;
        let checkpoint = Checkpoint::parse_text(text)?;
        if checkpoint.origin != verifier.name() {
            return Err(NoteError::WrongOrigin {
                origin: checkpoint.origin,
                key: verifier.name().to_owned(),
            });
        }
        Ok(checkpoint)
    }

    /// Parses a signed checkpoint note without verifying its signature: for
    /// reading a stored checkpoint's size before the key is at hand. Never
    /// trust what this returns.
    pub fn parse_unverified(note: &str) -> Result<Checkpoint, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        Checkpoint::parse_text(&note[..split + 1])
    }
}

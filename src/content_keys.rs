//! The keyring of session data keys: crypto-shredding's other half.
//!
//! Why a directory of small files beside the log, not records in it: a key
//! in the log could never be destroyed (the log is append-only), and a key
//! in the same store would be copied by every backup of it. Each session's
//! key is one file, `<state-dir>/content-keys/<id>.key` (0600): made durable
//! (written, synced, renamed, directory synced) before the first record
//! sealed under it is appended, so an acknowledged record always has its
//! key. A purge writes `<id>.purged` (so readers can say "purged" rather
//! than "lost"), overwrites the key file with zeros, syncs, and unlinks it.
//!
//! What destroying a file achieves is what the file system and its backups
//! allow: on a copy-on-write or journaling file system, or in a backup taken
//! before the purge, the old bytes may survive. Keep the keyring out of
//! backups that must forget, or on storage you can wipe.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clawback_events::Event;
use clawback_events::sealed::{
    self, ContentKey, ContentKeys, KEY_BYTES, KeyLookup, NONCE_BYTES, Sealer,
};

/// The first bytes of a key file (then the key, then the session key).
const MAGIC: &[u8] = b"clawback-content-key v1\n";
/// Key ids are 128 random bits, in hex.
const KEY_ID_BYTES: usize = 16;

pub struct Keyring {
    dir: PathBuf,
    /// When false (offline readers), no key is ever made.
    writable: bool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Every key whose file exists: id -> (bytes, session key).
    live: BTreeMap<String, ([u8; KEY_BYTES], String)>,
    /// The key new content of a session is sealed under. A session whose
    /// keys are being purged has none until its next content.
    current: BTreeMap<String, String>,
}

impl Keyring {
    /// The gateway's keyring at `dir`, created if missing. Every key file is
    /// read now: a damaged one is an error that names it, not a silent loss.
    pub fn open(dir: &Path) -> anyhow::Result<Keyring> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the content keyring {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        Keyring::load(dir, true)
    }

    /// The gateway's keyring at its start: opened, and the purges the log
    /// records but a crash interrupted finished (their keys destroyed)
    /// before anything can read or seal.
    pub fn start(dir: &Path, purges: &clawback_projections::Purges) -> anyhow::Result<Keyring> {
        let keyring = Keyring::open(dir)?;
        let finished = keyring.finish_purges(purges.keys.keys())?;
        if finished > 0 {
            println!("finished {finished} interrupted session purge(s): their keys are destroyed");
        }
        Ok(keyring)
    }

    /// The keyring for a command that only reads (replay, export): a missing
    /// directory is an empty keyring, and nothing is ever written.
    pub fn open_read_only(dir: &Path) -> anyhow::Result<Keyring> {
        if !dir.exists() {
            return Ok(Keyring {
                dir: dir.to_path_buf(),
                writable: false,
                inner: Mutex::new(Inner::default()),
            });
        }
        Keyring::load(dir, false)
    }

    fn load(dir: &Path, writable: bool) -> anyhow::Result<Keyring> {
        let mut inner = Inner::default();
        let mut paths = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<Vec<_>, _>>()?;
        paths.sort();
        for path in paths {
            let Some(id) = key_id_of(&path, "key") else {
                continue;
            };
            // The gateway refuses keys others can read, as it refuses such a
            // checkpoint key: a readable key is a readable session.
            #[cfg(unix)]
            if writable {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path)?.permissions().mode();
                anyhow::ensure!(
                    mode & 0o077 == 0,
                    "the content key {} is readable by other users (mode {:o}); run `chmod 600 {}/*.key`",
                    path.display(),
                    mode & 0o777,
                    dir.display()
                );
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let (key, session_key) = parse_key_file(&bytes).with_context(|| {
                format!(
                    "the content key file {} is damaged; restore it from a backup (without it that session's content cannot be read)",
                    path.display()
                )
            })?;
            inner
                .current
                .entry(session_key.clone())
                .or_insert(id.clone());
            inner.live.insert(id, (key, session_key));
        }
        Ok(Keyring {
            dir: dir.to_path_buf(),
            writable,
            inner: Mutex::new(inner),
        })
    }

    /// The key `session_key`'s new content is sealed under, made durable
    /// first if the session has none.
    pub fn key_for(&self, session_key: &str) -> anyhow::Result<ContentKey> {
        let mut inner = self.inner.lock().expect("keyring lock");
        if let Some(id) = inner.current.get(session_key) {
            let (bytes, _) = inner.live[id];
            return Ok(ContentKey {
                id: id.clone(),
                bytes,
            });
        }
        anyhow::ensure!(self.writable, "this keyring is read-only");
        let mut raw_id = [0u8; KEY_ID_BYTES];
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut raw_id).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        let id = hex(&raw_id);
        let mut file = Vec::with_capacity(MAGIC.len() + KEY_BYTES + session_key.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&bytes);
        file.extend_from_slice(session_key.as_bytes());
        write_durably(&self.dir, &format!("{id}.key"), &file)?;
        inner
            .live
            .insert(id.clone(), (bytes, session_key.to_owned()));
        inner.current.insert(session_key.to_owned(), id.clone());
        Ok(ContentKey { id, bytes })
    }

    /// Starts a purge of `session_key`: its keys stop being used for new
    /// content (which gets a fresh key) and are returned, to be recorded in
    /// `session.purged` and then [`Keyring::destroy`]ed.
    pub fn begin_purge(&self, session_key: &str) -> Vec<String> {
        let mut inner = self.inner.lock().expect("keyring lock");
        inner.current.remove(session_key);
        inner
            .live
            .iter()
            .filter(|(_, (_, owner))| owner == session_key)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Destroys keys: tombstone first (synced), then the key file zeroed,
    /// synced and unlinked. Idempotent: a key already gone is skipped.
    pub fn destroy(&self, key_ids: &[String]) -> anyhow::Result<()> {
        anyhow::ensure!(self.writable, "this keyring is read-only");
        for id in key_ids {
            anyhow::ensure!(
                is_key_id(id),
                "{id:?} is not a content key id (32 hex digits)"
            );
            let key_path = self.dir.join(format!("{id}.key"));
            let session_key = self
                .inner
                .lock()
                .expect("keyring lock")
                .live
                .get(id)
                .map(|(_, owner)| owner.clone());
            if !key_path.exists() && session_key.is_none() {
                continue;
            }
            let tombstone = format!("purged content key of session {session_key:?}\n");
            write_durably(&self.dir, &format!("{id}.purged"), tombstone.as_bytes())?;
            if key_path.exists() {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&key_path)
                    .with_context(|| format!("cannot open {}", key_path.display()))?;
                let length = file.metadata()?.len() as usize;
                file.write_all(&vec![0u8; length])?;
                file.sync_all()?;
                drop(file);
                std::fs::remove_file(&key_path)
                    .with_context(|| format!("cannot remove {}", key_path.display()))?;
                crate::private_file::sync_dir(&self.dir)?;
            }
            let mut inner = self.inner.lock().expect("keyring lock");
            inner.live.remove(id);
            inner.current.retain(|_, current| current != id);
        }
        Ok(())
    }

    /// Finishes purges the log records but a crash interrupted: every key
    /// in `purged` that still has a file is destroyed. Returns how many.
    pub fn finish_purges<'a>(
        &self,
        purged: impl Iterator<Item = &'a String>,
    ) -> anyhow::Result<usize> {
        let pending: Vec<String> = {
            let inner = self.inner.lock().expect("keyring lock");
            purged
                .filter(|id| inner.live.contains_key(*id))
                .cloned()
                .collect()
        };
        self.destroy(&pending)?;
        Ok(pending.len())
    }
}

impl ContentKeys for Keyring {
    fn lookup(&self, key_id: &str) -> KeyLookup {
        if let Some((bytes, _)) = self.inner.lock().expect("keyring lock").live.get(key_id) {
            return KeyLookup::Live(*bytes);
        }
        if is_key_id(key_id) && self.dir.join(format!("{key_id}.purged")).exists() {
            return KeyLookup::Purged;
        }
        KeyLookup::Missing(format!(
            "no {key_id}.key in {} (restore the keyring from a backup)",
            self.dir.display()
        ))
    }
}

impl Sealer for Keyring {
    fn seal(&self, event: Event, scope: Option<&str>) -> Result<Event, String> {
        sealed::seal(event, scope, |owner| {
            let key = self.key_for(owner).map_err(|error| format!("{error:#}"))?;
            let mut nonce = [0u8; NONCE_BYTES];
            getrandom::fill(&mut nonce).map_err(|error| format!("no randomness: {error}"))?;
            Ok((key, nonce))
        })
    }
}

fn parse_key_file(bytes: &[u8]) -> anyhow::Result<([u8; KEY_BYTES], String)> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .context("it does not start with the key file header")?;
    anyhow::ensure!(rest.len() >= KEY_BYTES, "it is too short");
    let (key, session_key) = rest.split_at(KEY_BYTES);
    let key: [u8; KEY_BYTES] = key.try_into().expect("split at KEY_BYTES");
    let session_key =
        String::from_utf8(session_key.to_vec()).context("its session key is not UTF-8")?;
    Ok((key, session_key))
}

/// The key id of `<id>.<extension>` in the keyring, if `path` is one.
fn key_id_of(path: &Path, extension: &str) -> Option<String> {
    if path.extension()? != extension {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    is_key_id(stem).then(|| stem.to_owned())
}

fn is_key_id(id: &str) -> bool {
    id.len() == KEY_ID_BYTES * 2 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes `name` in `dir` whole and durably (see `private_file`).
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    crate::private_file::write(&dir.join(name), bytes)
}

#[cfg(test)]
mod tests {
    use clawback_events::event::{MessageAppended, Role};
    use clawback_events::sealed::{ContentState, PURGED};

    use super::*;

    fn message(session: &str, text: &str) -> Event {
        Event::MessageAppended(MessageAppended {
            session_key: session.to_owned(),
            message_id: "m1".to_owned(),
            role: Role::User,
            content: text.to_owned(),
            run_id: None,
            tool_call_id: None,
            origin: None,
        })
    }

    #[test]
    fn sealed_content_reads_back_until_its_session_is_purged() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let sealed = keyring.seal(message("s1", "hello there"), None).unwrap();
        let other = keyring.seal(message("s2", "keep me"), None).unwrap();
        let Event::Sealed(inner) = &sealed else {
            panic!("content is sealed: {sealed:?}")
        };
        let encoded = postcard::to_allocvec(&sealed).unwrap();
        assert!(!encoded.windows(5).any(|window| window == b"hello"));
        assert_eq!(sealed.bare().kind(), "message.appended");
        let read = sealed.read(&keyring);
        assert_eq!(read.content, ContentState::Opened);
        assert_eq!(*read.event, message("s1", "hello there"));

        // A reopened keyring (the next start) reads it too.
        let reopened = Keyring::open(dir.path()).unwrap();
        assert_eq!(sealed.read(&reopened).content, ContentState::Opened);
        let again = reopened.seal(message("s1", "more"), None).unwrap();
        let Event::Sealed(again) = again else {
            panic!()
        };
        assert_eq!(again.key_id, inner.key_id, "one key per session");

        let ids = reopened.begin_purge("s1");
        assert_eq!(ids, vec![inner.key_id.clone()]);
        reopened.destroy(&ids).unwrap();
        assert!(!dir.path().join(format!("{}.key", inner.key_id)).exists());
        let read = sealed.read(&reopened);
        assert_eq!(read.content, ContentState::Purged);
        assert_eq!(*read.event, message("s1", PURGED));
        // Another session is untouched; new content of s1 gets a new key.
        assert_eq!(other.read(&reopened).content, ContentState::Opened);
        let Event::Sealed(fresh) = reopened.seal(message("s1", "new"), None).unwrap() else {
            panic!()
        };
        assert_ne!(fresh.key_id, inner.key_id);
        // A key that was never purged but is gone is "unreadable", not
        // "purged".
        std::fs::remove_file(dir.path().join(format!("{}.key", fresh.key_id))).unwrap();
        let lost = Keyring::open_read_only(dir.path()).unwrap();
        let fresh = Event::Sealed(fresh);
        assert!(matches!(
            fresh.read(&lost).content,
            ContentState::Unreadable(_)
        ));
    }

    #[test]
    fn a_purge_recorded_but_not_carried_out_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let Event::Sealed(sealed) = keyring.seal(message("s1", "text"), None).unwrap() else {
            panic!()
        };
        keyring.seal(message("s2", "other"), None).unwrap();
        // The purge was recorded (the ids are in the state), then the
        // process died before destroying anything.
        let recorded = keyring.begin_purge("s1");
        drop(keyring);
        let restarted = Keyring::open(dir.path()).unwrap();
        assert!(matches!(
            restarted.lookup(&sealed.key_id),
            KeyLookup::Live(_)
        ));
        assert_eq!(restarted.finish_purges(recorded.iter()).unwrap(), 1);
        assert!(matches!(
            restarted.lookup(&sealed.key_id),
            KeyLookup::Purged
        ));
        assert_eq!(
            restarted.finish_purges(recorded.iter()).unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "s2's key and a tombstone"
        );
    }

    #[test]
    fn the_gateway_refuses_a_key_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let Event::Sealed(sealed) = keyring.seal(message("s1", "text"), None).unwrap() else {
            panic!()
        };
        let path = dir.path().join(format!("{}.key", sealed.key_id));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = Keyring::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(refused.contains("chmod 600"), "{refused}");
        // Readers (replay, export) still open it.
        assert!(Keyring::open_read_only(dir.path()).is_ok());
    }

    #[test]
    fn events_without_session_content_are_not_sealed_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path()).unwrap();
        let deleted = Event::SessionDeleted(clawback_events::event::SessionDeleted {
            session_key: "s1".to_owned(),
        });
        assert_eq!(keyring.seal(deleted.clone(), None).unwrap(), deleted);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "no key made"
        );
        let Event::Sealed(mut sealed) = keyring.seal(message("s1", "text"), None).unwrap() else {
            panic!()
        };
        // Moving the ciphertext to another record's skeleton fails to open.
        sealed.skeleton = Box::new(message("s1", ""));
        if let Event::MessageAppended(m) = &mut *sealed.skeleton {
            m.message_id = "m2".to_owned();
        }
        let moved = Event::Sealed(sealed);
        assert!(matches!(
            moved.read(&keyring).content,
            ContentState::Unreadable(_)
        ));
    }
}

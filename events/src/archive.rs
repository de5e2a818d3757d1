//! The portable archive: the log's records in one flat file, independent of
//! any storage engine.
//!
//! Why it exists: an engine's files are the engine's format, and fjall's may
//! change between major versions; clawback promises that logs stay readable
//! for years. An archive is that promise in bytes: the exact record bytes
//! (format version, chain hashes, postcard body), framed and in seq order. It
//! is what `fixtures/` holds, what backups and moves between engines use,
//! and it verifies on its own.
//!
//! ```text
//! magic   8 bytes  "CBARCH\0\x01"  (the last byte is the archive layout version)
//! then, per record, until end of file:
//!   seq   u64 little-endian
//!   len   u32 little-endian
//!   bytes len bytes: one record exactly as `record::encode` wrote it
//! ```

use std::io::{Read, Write};
use std::ops::ControlFlow;

use crate::log::RECORD_BYTES_MAX;
use crate::store::{LogStore, StoreError};

pub const MAGIC: &[u8; 8] = b"CBARCH\0\x01";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a clawback archive (bad magic bytes)")]
    BadMagic,
    #[error("archive is cut off inside the record after seq {after_seq:?}")]
    Truncated { after_seq: Option<u64> },
    #[error(
        "archive record at seq {seq} claims {len} bytes, more than the {RECORD_BYTES_MAX} limit"
    )]
    TooLarge { seq: u64, len: u32 },
    #[error("archive I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Writes records `from..` of `store` to `out`; returns how many.
pub fn write(store: &dyn LogStore, from: u64, out: &mut dyn Write) -> Result<u64, ArchiveError> {
    out.write_all(MAGIC)?;
    let mut written = 0u64;
    let mut failure = None;
    store.scan(from, &mut |seq, bytes| {
        let frame = out
            .write_all(&seq.to_le_bytes())
            .and_then(|()| out.write_all(&(bytes.len() as u32).to_le_bytes()))
            .and_then(|()| out.write_all(bytes));
        match frame {
            Ok(()) => {
                written += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    out.flush()?;
    Ok(written)
}

/// Reads every record of an archive, in file order, calling `visit` with its
/// seq and bytes. Checks framing only; the caller verifies the chain.
pub fn read(
    input: &mut dyn Read,
    visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), ArchiveError> {
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|_| ArchiveError::BadMagic)?;
    if &magic != MAGIC {
        return Err(ArchiveError::BadMagic);
    }
    let mut last_seq = None;
    let mut bytes = Vec::new();
    loop {
        let mut header = [0u8; 12];
        match read_full(input, &mut header)? {
            0 => return Ok(()),
            12 => {}
            _ => {
                return Err(ArchiveError::Truncated {
                    after_seq: last_seq,
                });
            }
        }
        let seq = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
        if len as usize > RECORD_BYTES_MAX {
            return Err(ArchiveError::TooLarge { seq, len });
        }
        bytes.resize(len as usize, 0);
        if read_full(input, &mut bytes)? != bytes.len() {
            return Err(ArchiveError::Truncated {
                after_seq: last_seq,
            });
        }
        last_seq = Some(seq);
        if visit(seq, &bytes).is_break() {
            return Ok(());
        }
    }
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

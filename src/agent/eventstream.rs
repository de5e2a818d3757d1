//! AWS's binary event-stream framing (`application/vnd.amazon.eventstream`),
//! which Bedrock's ConverseStream answers in.
//!
//! A frame is: total length (u32 BE), headers length (u32 BE), CRC32 of
//! those 8 bytes, the headers, the payload, and the CRC32 of everything
//! before it. A header is a name (u8 length + bytes), a type byte and a
//! value (booleans carry none; integers are big-endian; byte arrays and
//! strings carry a u16 length; timestamps are i64 ms; UUIDs 16 bytes).
//!
//! Why our own decoder and not `aws-smithy-eventstream`: that crate needs
//! Rust 1.94.1 (this workspace promises 1.90) and brings
//! `aws-smithy-types` with it; the format is ~100 lines with `crc32fast`.
//!
//! Invariants: bytes are pushed as they arrive and frames come out whole;
//! a frame longer than [`FRAME_BYTES_MAX`] or with headers over
//! [`HEADERS_BYTES_MAX`] is refused from its prelude, before its bytes are
//! buffered; a CRC mismatch, a malformed header or a stream that ends
//! inside a frame is an error, never a panic.

use std::collections::BTreeMap;

/// The largest frame accepted (the reply is capped at 4 MiB anyway).
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;
/// AWS caps a frame's headers at 128 KiB.
pub const HEADERS_BYTES_MAX: usize = 128 * 1024;
/// Prelude (12 bytes) and the message CRC (4).
const OVERHEAD: usize = 16;

/// A header value; only strings matter to Bedrock, the rest are kept as
/// text for the record.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderValue {
    Text(String),
    Other(String),
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub headers: BTreeMap<String, HeaderValue>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.headers.get(name) {
            Some(HeaderValue::Text(text)) => Some(text),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the prelude checksum does not match (got {got:#010x}, computed {computed:#010x})")]
    PreludeCrc { got: u32, computed: u32 },
    #[error("the message checksum does not match (got {got:#010x}, computed {computed:#010x})")]
    MessageCrc { got: u32, computed: u32 },
    #[error("a frame of {0} bytes is outside the accepted 16..={FRAME_BYTES_MAX}")]
    Length(usize),
    #[error("a frame's headers of {0} bytes do not fit it (at most {HEADERS_BYTES_MAX})")]
    HeadersLength(usize),
    #[error("a header is malformed: {0}")]
    Header(String),
    #[error("the stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// Accumulates bytes and yields whole frames.
#[derive(Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is buffered. The prelude is checked as
    /// soon as it is in, so an oversized frame is refused before its body.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.len() < 12 {
            return Ok(None);
        }
        let total = be32(&self.buffer[0..4]) as usize;
        let headers_len = be32(&self.buffer[4..8]) as usize;
        let prelude_crc = be32(&self.buffer[8..12]);
        let computed = crc32fast::hash(&self.buffer[0..8]);
        if computed != prelude_crc {
            return Err(FrameError::PreludeCrc {
                got: prelude_crc,
                computed,
            });
        }
        if !(OVERHEAD..=FRAME_BYTES_MAX).contains(&total) {
            return Err(FrameError::Length(total));
        }
        if headers_len > HEADERS_BYTES_MAX || headers_len > total - OVERHEAD {
            return Err(FrameError::HeadersLength(headers_len));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let frame: Vec<u8> = self.buffer.drain(..total).collect();
        let message_crc = be32(&frame[total - 4..]);
        let computed = crc32fast::hash(&frame[..total - 4]);
        if computed != message_crc {
            return Err(FrameError::MessageCrc {
                got: message_crc,
                computed,
            });
        }
        let headers = headers(&frame[12..12 + headers_len])?;
        let payload = frame[12 + headers_len..total - 4].to_vec();
        Ok(Some(Frame { headers, payload }))
    }

    /// At the end of the stream: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buffer.len()))
        }
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn headers(mut bytes: &[u8]) -> Result<BTreeMap<String, HeaderValue>, FrameError> {
    let mut out = BTreeMap::new();
    let short = || FrameError::Header("it runs past the headers".to_owned());
    while !bytes.is_empty() {
        let name_len = bytes[0] as usize;
        let rest = &bytes[1..];
        if name_len == 0 || rest.len() < name_len + 1 {
            return Err(short());
        }
        let name = std::str::from_utf8(&rest[..name_len])
            .map_err(|_| FrameError::Header("a name is not UTF-8".to_owned()))?
            .to_owned();
        let kind = rest[name_len];
        let rest = &rest[name_len + 1..];
        let fixed = |size: usize| -> Result<(&[u8], &[u8]), FrameError> {
            if rest.len() < size {
                Err(short())
            } else {
                Ok(rest.split_at(size))
            }
        };
        let (value, rest) = match kind {
            0 => (HeaderValue::Other("true".to_owned()), rest),
            1 => (HeaderValue::Other("false".to_owned()), rest),
            2 | 3 | 4 | 5 | 8 => {
                let size = match kind {
                    2 => 1,
                    3 => 2,
                    4 => 4,
                    _ => 8,
                };
                let (raw, rest) = fixed(size)?;
                let mut value: i64 = if raw[0] & 0x80 != 0 { -1 } else { 0 };
                for byte in raw {
                    value = (value << 8) | i64::from(*byte);
                }
                (HeaderValue::Other(value.to_string()), rest)
            }
            6 | 7 => {
                let (len, rest) = fixed(2)?;
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                if rest.len() < len {
                    return Err(short());
                }
                let (raw, rest) = rest.split_at(len);
                let value = if kind == 7 {
                    HeaderValue::Text(
                        std::str::from_utf8(raw)
                            .map_err(|_| {
                                FrameError::Header(format!("the value of {name} is not UTF-8"))
                            })?
                            .to_owned(),
                    )
                } else {
                    HeaderValue::Other(format!("{} bytes", raw.len()))
                };
                (value, rest)
            }
            9 => {
                let (raw, rest) = fixed(16)?;
                let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
                (HeaderValue::Other(hex), rest)
            }
            other => {
                return Err(FrameError::Header(format!(
                    "{name} has the unknown type {other}"
                )));
            }
        };
        out.insert(name, value);
        bytes = rest;
    }
    Ok(out)
}

/// Encodes a frame with string headers: the inverse of the decoder, for
/// tests.
#[cfg(test)]
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = (OVERHEAD + head.len() + payload.len()) as u32;
    let mut frame = Vec::with_capacity(total as usize);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&prelude_crc.to_be_bytes());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(payload);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Vec<u8> {
        encode(
            &[
                (":event-type", "contentBlockDelta"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#,
        )
    }

    #[test]
    fn frames_decode_whole_even_when_split_anywhere() {
        let bytes = [event(), event()].concat();
        for split in 0..bytes.len() {
            let mut decoder = Decoder::default();
            let mut frames = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                decoder.push(part);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(frames.len(), 2, "split at {split}");
            assert_eq!(frames[0].header(":event-type"), Some("contentBlockDelta"));
            assert!(frames[1].payload.starts_with(b"{\"contentBlockIndex\""));
        }
    }

    #[test]
    fn a_known_frame_decodes() {
        // A frame built by hand: no headers, payload "{}": 18 bytes.
        let mut frame = vec![0, 0, 0, 18, 0, 0, 0, 0];
        frame.extend_from_slice(&crc32fast::hash(&frame.clone()).to_be_bytes());
        frame.extend_from_slice(b"{}");
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(frame, encode(&[], b"{}"));
        let mut decoder = Decoder::default();
        decoder.push(&frame);
        assert_eq!(decoder.next_frame().unwrap().unwrap().payload, b"{}");
    }

    #[test]
    fn checksum_mismatches_are_errors_not_panics() {
        let good = event();
        // Any flipped byte is caught by one checksum or the other.
        for index in 0..good.len() {
            let mut bad = good.clone();
            bad[index] ^= 0x01;
            let mut decoder = Decoder::default();
            decoder.push(&bad);
            let result = decoder.next_frame();
            assert!(
                matches!(
                    result,
                    Err(FrameError::PreludeCrc { .. } | FrameError::MessageCrc { .. })
                ),
                "byte {index}: {result:?}"
            );
        }
        let mut decoder = Decoder::default();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        decoder.push(&bad);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::MessageCrc { .. })
        ));
    }

    #[test]
    fn truncated_and_oversized_frames_are_refused() {
        let good = event();
        let mut decoder = Decoder::default();
        decoder.push(&good[..good.len() - 3]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated(good.len() - 3)));

        // A prelude announcing 1 GiB is refused before any body arrives.
        let mut huge = (1u32 << 30).to_be_bytes().to_vec();
        huge.extend_from_slice(&0u32.to_be_bytes());
        huge.extend_from_slice(&crc32fast::hash(&huge.clone()).to_be_bytes());
        let mut decoder = Decoder::default();
        decoder.push(&huge);
        assert_eq!(decoder.next_frame(), Err(FrameError::Length(1 << 30)));

        // Headers that claim more than the frame holds.
        let mut liar = 20u32.to_be_bytes().to_vec();
        liar.extend_from_slice(&10u32.to_be_bytes());
        liar.extend_from_slice(&crc32fast::hash(&liar.clone()).to_be_bytes());
        let mut decoder = Decoder::default();
        decoder.push(&liar);
        assert_eq!(decoder.next_frame(), Err(FrameError::HeadersLength(10)));
    }

    #[test]
    fn malformed_headers_are_errors() {
        // A header whose string length runs past the headers block.
        let mut head = vec![1, b'a', 7, 0, 50, b'x'];
        let total = (16 + head.len()) as u32;
        let mut frame = total.to_be_bytes().to_vec();
        frame.extend_from_slice(&(head.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(&frame.clone()).to_be_bytes());
        frame.append(&mut head);
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        let mut decoder = Decoder::default();
        decoder.push(&frame);
        assert!(matches!(decoder.next_frame(), Err(FrameError::Header(_))));
    }
}

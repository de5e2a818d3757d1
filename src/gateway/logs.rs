//! The gateway's own log: JSON lines in OpenClaw's shape
//! (`{"time","level","subsystem","message",...}`), one file per UTC day
//! under `<state-dir>/logs/`, served to clients by `logs.tail`.
//!
//! Why its own file when the event log exists: the event log is what
//! happened (durable, hash-chained, replayable); this is how the process
//! felt about it (warnings, slow consumers, failures to bind), for an
//! operator running `openclaw logs`. Nothing here is a source of truth.
//!
//! Why a writer thread and a bounded queue: logging must never make a
//! request wait for the disk. When the queue is full, lines are dropped and
//! counted, and the count is written as soon as there is room.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// Lines queued for the writer before new ones are dropped.
const QUEUE_LINES_MAX: usize = 8_192;
/// Daily files kept; older ones are deleted at start.
const FILES_KEPT: usize = 14;
const FILE_PREFIX: &str = "clawback-";
const FILE_SUFFIX: &str = ".log";

pub struct LogFiles {
    dir: PathBuf,
    sender: Mutex<Option<SyncSender<Value>>>,
    dropped: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One `logs.tail` answer.
pub struct Tail {
    pub file: PathBuf,
    pub cursor: u64,
    pub size: u64,
    pub lines: Vec<String>,
    pub truncated: bool,
    pub reset: bool,
}

impl LogFiles {
    pub fn open(dir: PathBuf) -> anyhow::Result<Arc<LogFiles>> {
        std::fs::create_dir_all(&dir)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
        prune(&dir);
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_LINES_MAX);
        let writer_dir = dir.clone();
        let writer = std::thread::Builder::new()
            .name("clawback-logs".to_owned())
            .spawn(move || write_lines(&writer_dir, &receiver))?;
        Ok(Arc::new(LogFiles {
            dir,
            sender: Mutex::new(Some(sender)),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// Queues one line; never blocks.
    pub fn write(&self, level: &str, subsystem: &str, message: &str, fields: Map<String, Value>) {
        let ts_ms = now_ms();
        let mut line = json!({
            "time": crate::timefmt::rfc3339_ms(ts_ms),
            "level": level,
            "subsystem": subsystem,
            "message": message,
        });
        for (key, value) in fields {
            line[key] = value;
        }
        let sender = self.sender.lock().expect("log sender lock");
        let Some(sender) = sender.as_ref() else {
            return;
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let notice = json!({
                "time": crate::timefmt::rfc3339_ms(ts_ms), "level": "warn", "subsystem": "logs",
                "message": format!("{dropped} log lines dropped: the writer fell behind"),
            });
            if sender.try_send(notice).is_err() {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        match sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&self) {
        self.sender.lock().expect("log sender lock").take();
        if let Some(writer) = self.writer.lock().expect("log writer lock").take() {
            let _ = writer.join();
        }
    }

    /// The file `logs.tail` reads: the newest day's.
    pub fn current_file(&self) -> PathBuf {
        newest(&self.dir)
            .unwrap_or_else(|| self.dir.join(file_name(&crate::timefmt::date(now_ms()))))
    }

    /// Up to `limit` whole lines and `max_bytes` bytes: from `cursor` on, or
    /// the end of the file when there is no cursor. A cursor past the end
    /// means the file was replaced (a new day): reading starts over, with
    /// `reset`.
    pub fn tail(&self, cursor: Option<u64>, limit: usize, max_bytes: u64) -> std::io::Result<Tail> {
        let file = self.current_file();
        let mut handle = match std::fs::File::open(&file) {
            Ok(handle) => handle,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Tail {
                    file,
                    cursor: 0,
                    size: 0,
                    lines: Vec::new(),
                    truncated: false,
                    reset: false,
                });
            }
            Err(error) => return Err(error),
        };
        let size = handle.metadata()?.len();
        let reset = cursor.is_some_and(|cursor| cursor > size);
        let from_end = cursor.is_none();
        let start = match cursor {
            Some(cursor) if cursor <= size => cursor,
            Some(_) => 0,
            None => size.saturating_sub(max_bytes),
        };
        let end = size.min(start.saturating_add(max_bytes));
        let mut bytes = vec![0u8; (end - start) as usize];
        handle.seek(SeekFrom::Start(start))?;
        handle.read_exact(&mut bytes)?;
        // Only whole lines: skip a partial first line when starting mid-file
        // from the end, stop at the last newline.
        let mut offset = 0usize;
        if from_end && start > 0 {
            offset = bytes
                .iter()
                .position(|byte| *byte == b'\n')
                .map_or(bytes.len(), |at| at + 1);
        }
        let complete = bytes
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(offset, |at| at + 1)
            .max(offset);
        let text = String::from_utf8_lossy(&bytes[offset..complete]);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut consumed = complete as u64;
        let mut truncated = start + consumed < size || (from_end && start > 0);
        if lines.len() > limit {
            truncated = true;
            if from_end {
                lines.drain(..lines.len() - limit);
            } else {
                // Forward reading: keep the first `limit`, and move the
                // cursor only past them so the next call continues there.
                lines.truncate(limit);
                consumed =
                    offset as u64 + lines.iter().map(|line| line.len() as u64 + 1).sum::<u64>();
            }
        }
        Ok(Tail {
            file,
            cursor: start + consumed,
            size,
            lines,
            truncated,
            reset,
        })
    }
}

fn write_lines(dir: &Path, receiver: &Receiver<Value>) {
    let mut current: Option<(String, std::io::BufWriter<std::fs::File>)> = None;
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(line) = next {
            let date = line["time"].as_str().map_or_else(
                || crate::timefmt::date(now_ms()),
                |time| time[..10].to_owned(),
            );
            if current.as_ref().is_none_or(|(day, _)| *day != date) {
                let path = dir.join(file_name(&date));
                match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                {
                    Ok(file) => current = Some((date, std::io::BufWriter::new(file))),
                    Err(error) => {
                        eprintln!("cannot open the log file {}: {error}", path.display());
                        current = None;
                    }
                }
            }
            if let Some((_, writer)) = current.as_mut() {
                let _ = writeln!(writer, "{line}");
            }
            next = receiver.try_recv().ok();
        }
        if let Some((_, writer)) = current.as_mut() {
            let _ = writer.flush();
        }
    }
}

fn file_name(date: &str) -> String {
    format!("{FILE_PREFIX}{date}{FILE_SUFFIX}")
}

/// Log files, oldest first (the date in the name sorts).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX))
        })
        .collect();
    found.sort();
    found
}

fn newest(dir: &Path) -> Option<PathBuf> {
    files(dir).pop()
}

fn prune(dir: &Path) {
    let all = files(dir);
    for old in all.iter().take(all.len().saturating_sub(FILES_KEPT)) {
        let _ = std::fs::remove_file(old);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Routes `tracing` events into the log files: `subsystem` from the event's
/// `subsystem` field, else the last segment of its target.
pub struct FileLayer(pub Arc<LogFiles>);

/// What reaches the file: clawback's own events from `info` up, and
/// libraries' (hyper, reqwest, fjall) only from `warn` up. Without this a
/// single HTTP call to a provider wrote a dozen trace lines.
fn wanted(metadata: &tracing::Metadata<'_>) -> bool {
    let level = *metadata.level();
    if metadata.target().starts_with("clawback") {
        level <= tracing::Level::INFO
    } else {
        level <= tracing::Level::WARN
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FileLayer {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Decided once per call site, so filtered ones cost nothing after.
        if wanted(metadata) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        wanted(metadata)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        let subsystem = visitor.subsystem.take().unwrap_or_else(|| {
            metadata
                .target()
                .rsplit("::")
                .next()
                .unwrap_or("gateway")
                .to_owned()
        });
        let level = metadata.level().as_str().to_ascii_lowercase();
        self.0
            .write(&level, &subsystem, &visitor.message, visitor.fields);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    subsystem: Option<String>,
    fields: Map<String, Value>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "subsystem" => self.subsystem = Some(value.to_owned()),
            name => {
                self.fields.insert(name.to_owned(), json!(value));
            }
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.fields.insert(field.name().to_owned(), json!(value));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.fields.insert(field.name().to_owned(), json!(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.fields.insert(field.name().to_owned(), json!(value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> (tempfile::TempDir, Arc<LogFiles>) {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogFiles::open(dir.path().join("logs")).unwrap();
        (dir, logs)
    }

    #[test]
    fn lines_are_openclaw_shaped_and_tailed_from_the_end_or_a_cursor() {
        let (_dir, logs) = logs();
        let empty = logs.tail(None, 10, 1000).unwrap();
        assert_eq!((empty.size, empty.lines.len()), (0, 0));
        for index in 0..5 {
            logs.write("info", "gateway", &format!("line {index}"), Map::new());
        }
        logs.close();
        let tail = logs.tail(None, 2, 1_000_000).unwrap();
        assert_eq!(tail.lines.len(), 2);
        assert!(tail.truncated);
        let last: Value = serde_json::from_str(&tail.lines[1]).unwrap();
        assert_eq!(last["message"], "line 4");
        assert_eq!(last["level"], "info");
        assert_eq!(last["subsystem"], "gateway");
        assert!(last["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(tail.cursor, tail.size);

        // Forward from 0, two at a time: every line exactly once.
        let mut cursor = 0;
        let mut seen = Vec::new();
        loop {
            let page = logs.tail(Some(cursor), 2, 1_000_000).unwrap();
            if page.lines.is_empty() {
                break;
            }
            cursor = page.cursor;
            seen.extend(page.lines);
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(cursor, tail.size);
        let past = logs.tail(Some(tail.size + 10), 10, 1_000_000).unwrap();
        assert!(past.reset);
        assert_eq!(past.lines.len(), 5);
        // A byte budget smaller than the file: whole lines only.
        let small = logs.tail(None, 100, 100).unwrap();
        assert!(small.truncated && small.lines.iter().all(|line| line.ends_with('}')));
    }
}

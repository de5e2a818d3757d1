//! The durability promise under SIGKILL: a child process appends from many
//! threads and prints each acknowledged seq; it is killed at a random moment,
//! many times over. After every kill the log must recover, verify, and hold
//! every acknowledged append with the content that was acknowledged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clawback_events::event::Event;
use clawback_events::record;
use clawback_events::store::{FjallStore, LogStore};

use crate::support::binary;

const ROUNDS: u64 = 15;

/// xorshift64*: a tiny seeded generator, so a failing run can be replayed
/// with CLAWBACK_CRASH_SEED.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn sigkill_under_load_never_loses_an_acknowledged_append() {
    let seed = std::env::var("CLAWBACK_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (set CLAWBACK_CRASH_SEED to replay)");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged_total = 0u64;
    let mut previous_next_seq = 0u64;

    for round in 0..ROUNDS {
        let mut child = Command::new(binary())
            .arg("--state-dir")
            .arg(dir.path())
            .args(["debug", "append-load", "--writers", "32"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the appender");
        let stdout = child.stdout.take().expect("stdout");
        let (lines_sender, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });

        let ready = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("appender starts");
        let recovered_at: u64 = ready
            .strip_prefix("ready ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {ready:?}"));
        assert!(
            recovered_at >= previous_next_seq,
            "round {round}: the log shrank to {recovered_at} from {previous_next_seq}"
        );

        // Kill after a random number of acknowledgements (sometimes almost
        // none), bounded in time so a stuck child fails the test.
        let kill_after_acks = random.next() % 3_000;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut acks = Vec::new();
        while (acks.len() as u64) < kill_after_acks && Instant::now() < deadline {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => acks.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("appender exited early"),
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        reader.join().expect("reader");
        // Acks printed before the kill are promises too.
        acks.extend(lines.try_iter());

        let store =
            FjallStore::open(dir.path().join("log")).expect("the log reopens after SIGKILL");
        let report =
            clawback_events::recovery::recover(&store, 0).expect("the log recovers and verifies");
        for line in &acks {
            let mut fields = line.split(' ');
            assert_eq!(fields.next(), Some("ack"), "unexpected line {line:?}");
            let seq: u64 = fields.next().and_then(|f| f.parse().ok()).expect("seq");
            let writer = fields.next().expect("writer");
            let n = fields.next().expect("n");
            let bytes = store.get(seq).expect("read").unwrap_or_else(|| {
                panic!("round {round} (seed {seed}): acknowledged seq {seq} is missing")
            });
            let envelope = record::decode(seq, &bytes).expect("acknowledged record decodes");
            match envelope.body.event {
                Event::MessageAppended(message) => {
                    assert_eq!(
                        message.message_id,
                        format!("w{writer}-n{n}"),
                        "seq {seq} holds another append"
                    )
                }
                other => panic!("seq {seq} holds {}", other.kind()),
            }
        }
        acknowledged_total += acks.len() as u64;
        previous_next_seq = report.next_seq;
        drop(store);
    }
    assert!(
        acknowledged_total > 0,
        "the test acknowledged nothing, so it proved nothing"
    );
    eprintln!("crash test: {ROUNDS} kills, {acknowledged_total} acknowledged appends all present");
}

//! Shared helpers: locating the binary, fresh state dirs, running commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_clawback")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Runs `clawback --state-dir DIR ARGS...` to completion.
pub fn clawback(state_dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("clawback runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A state dir holding the checked-in fixture log.
pub fn state_dir_with_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = fixture("log-v1.cblog");
    let output = clawback(
        dir.path(),
        &["log", "import", fixture.to_str().expect("utf-8 path")],
    );
    assert!(
        output.status.success(),
        "import failed: {}",
        stderr(&output)
    );
    dir
}

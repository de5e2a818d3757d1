//! Progress bars for long work (verify, rebuild, export), drawn on stderr
//! only when it is a terminal, so scripts and tests see clean output.

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(label: &'static str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(label);
    bar
}

/// A callback for `clawback_replay`'s progress reports.
pub fn reporter(bar: &ProgressBar) -> impl FnMut(u64, u64) + '_ {
    move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

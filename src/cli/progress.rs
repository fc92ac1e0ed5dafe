//! The progress indicator of `kpic run`: a bar on stderr with the step
//! being built (`KPI revenue: comparisons`, `writing kpi_results`), the
//! steps done and the time elapsed.
//!
//! In: the build's steps, reported by `exec::run_build_with` through
//! [`crate::exec::BuildProgress`]. Out: drawing on stderr, only when stderr
//! is a terminal and `--quiet` is not given ([`for_stderr`]); otherwise
//! nothing at all, so logs, pipes and tests never see escape codes. The
//! bar is cleared when the build ends, leaving the terminal as it was.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::diagnostics::render::visible;
use crate::exec::{BuildProgress, NoProgress};

/// A progress bar drawn on stderr.
struct Bar(ProgressBar);

impl BuildProgress for Bar {
    fn start(&self, total: usize) {
        self.0.set_length(total as u64);
        // Redrawn on a timer, so the spinner and the elapsed time move
        // during one long statement too.
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    fn step(&self, index: usize, _total: usize, what: &str) {
        self.0.set_position(index as u64);
        // KPI names are `[a-z][a-z0-9_]*`, but a source name could hold
        // anything a YAML key can: never let it drive the terminal.
        self.0.set_message(visible(what));
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// The indicator for this run: a bar when stderr is a terminal and the
/// run is not `--quiet`, nothing otherwise.
pub fn for_stderr(quiet: bool) -> Box<dyn BuildProgress> {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return Box::new(NoProgress);
    }
    let style = ProgressStyle::with_template(
        "{spinner} building [{elapsed_precise}] {bar:24} {pos}/{len} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(style);
    Box::new(Bar(bar))
}

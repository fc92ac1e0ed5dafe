//! `kpic report [--out FILE]`: the self-contained HTML KPI report
//! (built by [`crate::report`]).

use std::path::PathBuf;

use super::{Ctx, Outcome};

#[derive(clap::Args, Debug)]
pub(super) struct ReportArgs {
    /// The HTML file to write (default: <target>/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn report(_ctx: &Ctx, _args: ReportArgs) -> Outcome {
    eprintln!("error: `kpic report` is not built yet");
    Outcome::Failure
}

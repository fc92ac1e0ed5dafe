//! `kpic dbt emit [--out DIR] [--check]`: the output tables as dbt models
//! (built by [`crate::dbt`]).

use std::path::PathBuf;

use super::{Ctx, Outcome};

#[derive(clap::Subcommand, Debug)]
pub(super) enum DbtCommand {
    /// Write the KPI tables as dbt models into the dbt project.
    Emit {
        /// Where to write them (default: <dbt project>/models/kpic).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail when the emitted files are stale instead of writing them.
        #[arg(long)]
        check: bool,
    },
}

pub(super) fn dbt(_ctx: &Ctx, _command: DbtCommand) -> Outcome {
    eprintln!("error: `kpic dbt emit` is not built yet");
    Outcome::Failure
}

//! `kpic import metricflow FILE`: kpic sources and metrics from a dbt
//! semantic layer's `semantic_manifest.json` (built by [`crate::import`]).

use std::path::PathBuf;

use super::{Ctx, Outcome};

#[derive(clap::Subcommand, Debug)]
pub(super) enum ImportCommand {
    /// Sources and metrics from a dbt `semantic_manifest.json`.
    Metricflow {
        /// The semantic manifest (dbt's target/semantic_manifest.json).
        file: PathBuf,
    },
}

pub(super) fn import(_ctx: &Ctx, _command: ImportCommand) -> Outcome {
    eprintln!("error: `kpic import metricflow` is not built yet");
    Outcome::Failure
}

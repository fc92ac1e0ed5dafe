//! `kpic import metricflow FILE`: kpic sources and metrics from a dbt
//! semantic layer's `semantic_manifest.json` (built by [`crate::import`]),
//! written into `<project>/<first model dir>/metricflow/`. Warnings (one per
//! metric left out) go to stderr; exit 1 for a malformed manifest or a file
//! in the way, 2 when the manifest cannot be read or files not written.

use std::path::{Path, PathBuf};

use super::{Ctx, Outcome};
use crate::import::metricflow;

#[derive(clap::Subcommand, Debug)]
pub(super) enum ImportCommand {
    /// Sources and metrics from a dbt `semantic_manifest.json`.
    Metricflow {
        /// The semantic manifest (dbt's target/semantic_manifest.json).
        file: PathBuf,
    },
}

pub(super) fn import(ctx: &Ctx, command: ImportCommand) -> Outcome {
    let ImportCommand::Metricflow { file } = command;
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: cannot read {}: {e}\n  = help: `dbt parse` writes target/semantic_manifest.json in the dbt project",
                file.display()
            );
            return Outcome::Failure;
        }
    };
    let manifest = match metricflow::parse_manifest(&text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: {} is not a semantic manifest kpic can read: {e}",
                file.display()
            );
            return Outcome::ProjectErrors;
        }
    };
    let import = metricflow::translate(&manifest, &file.display().to_string());
    if !ctx.quiet {
        for w in &import.warnings {
            eprintln!("warning: {w}");
        }
    }
    let dir = models_dir(&ctx.root).join(metricflow::IMPORT_DIR);
    let written = match metricflow::write_files(&dir, &import) {
        Ok(w) => w,
        Err(e @ metricflow::WriteError::NotGenerated(_)) => {
            eprintln!("error: {e}");
            return Outcome::ProjectErrors;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Failure;
        }
    };
    if !ctx.quiet {
        for (f, path) in import.files.iter().zip(&written.written) {
            println!(
                "wrote {} ({} sources, {} metrics)",
                shown(&ctx.root, path),
                f.sources,
                f.metrics
            );
        }
        for path in &written.removed {
            println!(
                "removed {} (no longer in the manifest)",
                shown(&ctx.root, path)
            );
        }
        println!(
            "imported {} of {} metrics ({} filtered input helpers){}",
            import.imported.len(),
            manifest.metrics.len(),
            import.helpers.len(),
            if import.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} not imported, see the warnings", import.skipped.len())
            }
        );
    }
    Outcome::Ok
}

/// The project's first model directory (kpic.yml `models`, default `models`).
fn models_dir(root: &Path) -> PathBuf {
    let configured = std::fs::read_to_string(root.join("kpic.yml"))
        .ok()
        .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
        .and_then(|v| match v.get("models")? {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Sequence(list) => list.first()?.as_str().map(str::to_string),
            _ => None,
        });
    root.join(configured.unwrap_or_else(|| "models".into()))
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

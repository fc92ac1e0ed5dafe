//! `kpic dbt emit [--out DIR] [--check] [--as-of DATE]`: the output tables
//! and the scorecard view as dbt models (built by [`crate::dbt::emit`]),
//! written into the dbt project or compared with what is there.

use std::path::{Path, PathBuf};

use super::{Ctx, Outcome, parse_as_of_arg, plan_and_compile, require_project_dir};
use crate::dbt::emit::{AsOfNote, EmittedFile, GENERATED, PROPERTIES_FILE, emit_files};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::model::{AsOf, Relation};

#[derive(clap::Subcommand, Debug)]
pub(super) enum DbtCommand {
    /// Write the KPI tables and the scorecard view as dbt models into the
    /// dbt project.
    Emit {
        /// Where to write them (default: <dbt project>/models/kpic).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail when the emitted files are stale instead of writing them.
        #[arg(long)]
        check: bool,
        /// The date whose period is current (YYYY-MM-DD); by default the
        /// models decide it when dbt runs them (kpic.yml's `as_of`).
        #[arg(long)]
        as_of: Option<String>,
    },
}

pub(super) fn dbt(ctx: &Ctx, command: DbtCommand) -> Outcome {
    match command {
        DbtCommand::Emit { out, check, as_of } => emit(ctx, out, check, as_of),
    }
}

fn emit(ctx: &Ctx, out: Option<PathBuf>, check: bool, as_of: Option<String>) -> Outcome {
    let as_of = match parse_as_of_arg(as_of.as_deref()) {
        Ok(a) => a,
        Err(o) => return o,
    };
    if let Err(o) = require_project_dir(ctx) {
        return o;
    }
    let options = crate::dbt::DbtOptions {
        emit: true,
        ..ctx.dbt_options()
    };
    let mut catalog = crate::exec::DuckDbCatalog::new(&ctx.root, None);
    let (model, diags) = crate::analyze_project_with(&ctx.root, &mut catalog, &options);
    ctx.report(&diags, &model.sources);
    if diags.has_errors() {
        return Outcome::ProjectErrors;
    }
    let Some(dbt) = model.project.config.dbt.clone() else {
        eprintln!(
            "error: no dbt project: set `dbt: {{project_dir: …}}` in kpic.yml or pass --dbt-project DIR"
        );
        return Outcome::Failure;
    };
    // A dbt model reads relations; a local file (path: without table:)
    // has none.
    let mut local = Diagnostics::new();
    for s in &model.project.sources {
        if let Relation::Path { path, table: None } = &s.relation {
            local.push(
                Diagnostic::new(
                    Code::DbtEmitLocalSource,
                    format!(
                        "source `{}` reads a local file, which a dbt model cannot read",
                        s.name.value
                    ),
                )
                .at(path.span, "a local file")
                .with_help(
                    "add `table:` (used instead of `path:` outside DuckDB), or read it with `ref:` or a `sql:` using `{{ ref() }}` / `{{ source() }}`",
                ),
            );
        }
    }
    if local.has_errors() {
        ctx.report(&local, &model.sources);
        return Outcome::ProjectErrors;
    }
    let dialect_name = model.project.config.dialect.value.clone();
    let Some(dialect) = crate::sql::dialect_named(&dialect_name) else {
        eprintln!("error: unknown dialect `{dialect_name}`");
        return Outcome::Failure;
    };
    let (_, compiled) = match plan_and_compile(ctx, &model, dialect.as_ref(), as_of, false) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let note = match as_of.unwrap_or(model.project.config.as_of) {
        AsOf::Date(d) => AsOfNote::Date(d.to_string()),
        AsOf::Latest => AsOfNote::Latest,
        AsOf::Today => AsOfNote::Today,
    };
    let files = emit_files(&model, &compiled, dialect.as_ref(), &dbt, note);
    let dir = match (out, &dbt.project_dir) {
        (Some(o), _) => o,
        (None, Some(p)) => p.join("models").join("kpic"),
        (None, None) => {
            eprintln!(
                "error: kpic.yml's `dbt:` names only a manifest: pass --out DIR (or set `dbt.project_dir`)"
            );
            return Outcome::Failure;
        }
    };
    if check {
        return check_files(ctx, &dir, &files);
    }
    match write_files(&dir, &files) {
        Ok(removed) => {
            ctx.info(&format!(
                "wrote {} dbt models and {PROPERTIES_FILE} for {} into {}{}",
                files.len() - 1,
                dialect.name(),
                dir.display(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(" (removed left-over {})", removed.join(", "))
                }
            ));
            Outcome::Ok
        }
        Err(e) => {
            eprintln!("error: cannot write `{}`: {e}", dir.display());
            Outcome::Failure
        }
    }
}

/// Files kpic generated earlier in `dir` that are no longer emitted.
fn left_over(dir: &Path, files: &[EmittedFile]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql") || n.ends_with(".yml"))
        .filter(|n| !files.iter().any(|f| &f.name == n))
        .filter(|n| std::fs::read_to_string(dir.join(n)).is_ok_and(|t| t.contains(GENERATED)))
        .collect();
    names.sort();
    names
}

fn write_files(dir: &Path, files: &[EmittedFile]) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        let path = dir.join(&f.name);
        // Unchanged files keep their modification time (dbt's partial
        // parsing and file watchers see no change).
        if std::fs::read_to_string(&path).ok().as_deref() != Some(f.text.as_str()) {
            std::fs::write(&path, &f.text)?;
        }
    }
    let removed = left_over(dir, files);
    for n in &removed {
        std::fs::remove_file(dir.join(n))?;
    }
    Ok(removed)
}

fn check_files(ctx: &Ctx, dir: &Path, files: &[EmittedFile]) -> Outcome {
    let mut stale: Vec<String> = Vec::new();
    for f in files {
        match std::fs::read_to_string(dir.join(&f.name)) {
            Ok(t) if t == f.text => {}
            Ok(_) => stale.push(format!("{} (changed)", f.name)),
            Err(_) => stale.push(format!("{} (missing)", f.name)),
        }
    }
    stale.extend(
        left_over(dir, files)
            .into_iter()
            .map(|n| format!("{n} (left over)")),
    );
    if stale.is_empty() {
        ctx.info(&format!(
            "ok: the dbt models in {} are up to date",
            dir.display()
        ));
        return Outcome::Ok;
    }
    let d = Diagnostic::new(
        Code::DbtEmitStale,
        format!(
            "the dbt models in {} are stale: {}",
            dir.display(),
            stale.join(", ")
        ),
    )
    .with_help("run `kpic dbt emit` and commit the files");
    ctx.report(&d.into(), &crate::source::SourceMap::new());
    Outcome::ProjectErrors
}

//! `kpic report [--out FILE]`: builds the output tables as `kpic run`
//! does, then writes the self-contained HTML KPI report (built by
//! [`crate::report`]) from them.

use std::path::PathBuf;

use super::{BuildOptions, Built, Ctx, Outcome, build};

#[derive(clap::Args, Debug)]
pub(super) struct ReportArgs {
    /// The HTML file to write (default: <target>/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The DuckDB database file to build into and read from (default: the
    /// project's, target/kpic.duckdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// The date whose period is current (YYYY-MM-DD, `latest` or `today`).
    #[arg(long)]
    as_of: Option<String>,
    /// DuckDB memory limit (e.g. 2GB).
    #[arg(long)]
    memory_limit: Option<String>,
    /// Give up a build or an explanation that runs longer than this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
}

pub(super) fn report(ctx: &Ctx, args: ReportArgs) -> Outcome {
    if args
        .db
        .as_deref()
        .is_some_and(|p| p.as_os_str() == ":memory:")
    {
        eprintln!(
            "error: `kpic report` reads the tables back from the database: --db must be a file\n  = help: pass --db PATH (or leave it out for the project's database)"
        );
        return Outcome::Failure;
    }
    let built = build(
        ctx,
        &BuildOptions {
            db: args.db.as_deref(),
            as_of: args.as_of.as_deref(),
            select: &[],
            memory_limit: args.memory_limit.as_deref(),
            timeout: args.timeout,
            export: None,
        },
    );
    let Built {
        model,
        plan,
        outcome,
        run_options,
        ..
    } = match built {
        Ok(b) => b,
        Err(o) => return o,
    };
    if run_options.database == ":memory:" {
        eprintln!(
            "error: the project's database is `:memory:`, and `kpic report` reads the tables back from a file\n  = help: pass --db PATH, or set `database:` in kpic.yml"
        );
        return Outcome::Failure;
    }
    // The build resolves a relative database against the project root.
    let database = model.project.root.join(&run_options.database);
    let as_of_label = match (&plan.as_of, outcome.as_of) {
        (crate::plan::AsOfPlan::Date(d), _) => d.to_string(),
        (_, Some(d)) => d,
        (_, None) => "today".to_string(),
    };
    // Explanations re-plan the KPI: they use the as_of the build decided,
    // so the Why sections explain the periods the cards show.
    let as_of = as_of_label
        .parse()
        .ok()
        .map(crate::model::AsOf::Date)
        .or(Some(model.project.config.as_of));
    let timeout = match super::timeout_arg(args.timeout) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let options = crate::report::ReportOptions {
        database,
        as_of,
        as_of_label,
        memory_limit: run_options.memory_limit.clone(),
        timeout,
    };
    // kpi_results as the build returned it; the other tables are read back.
    let report = match crate::report::gather(&model, &options, &outcome.rows) {
        Ok(r) => r,
        Err(d) => {
            ctx.report(&d, &model.sources);
            return super::failure_kind(&d);
        }
    };
    let html = crate::report::html::render(&report);
    let out = args.out.unwrap_or_else(|| {
        ctx.root
            .join(&model.project.config.target_dir)
            .join("report.html")
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        eprintln!("error: cannot create `{}`: {e}", parent.display());
        return Outcome::Failure;
    }
    if let Err(e) = std::fs::write(&out, html) {
        eprintln!("error: cannot write `{}`: {e}", out.display());
        return Outcome::Failure;
    }
    let flagged = report.whys.len();
    ctx.info(&format!(
        "report of {} KPIs as of {} ({flagged} off track or at risk) written to {}",
        report.kpis.len(),
        report.as_of,
        out.display()
    ));
    Outcome::Ok
}

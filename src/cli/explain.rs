//! `kpic explain KPI`: runs [`crate::explain::explain`] and prints the
//! answer as JSON (exactly SPEC §6's object), or as a What / So What /
//! Now What story in text or markdown, numbers formatted per each
//! metric's `format`.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::{Args, ValueEnum};

use super::output::{format_number, metric_format, pct};
use super::{
    Ctx, Outcome, analyze_with_db, bind_in_engine, failure_kind, memory_limit_arg, parse_as_of_arg,
    timeout_arg,
};
use crate::diagnostics::Code;
use crate::diagnostics::render::visible;
use crate::explain::{Baseline, ExplainOptions, Explanation, Notes};
use crate::model::Format;
use crate::semantic::SemanticModel;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum ExplainFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The KPI to explain.
    pub kpi: String,
    /// The period to explain (a label of the KPI's grain; default: the
    /// latest complete period).
    #[arg(long)]
    pub period: Option<String>,
    /// The baseline: `previous`, `last_year` or a period label.
    #[arg(long, default_value = "previous")]
    pub vs: String,
    /// Most dimensions combined in one segment.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Most segments reported.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
    /// The date whose period is current (YYYY-MM-DD, `latest` or `today`).
    #[arg(long)]
    pub as_of: Option<String>,
    /// A DuckDB database holding `table:` sources (read-only).
    #[arg(long)]
    pub db: Option<std::path::PathBuf>,
    /// DuckDB memory limit (default 2GB).
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Give up after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
}

pub fn explain(ctx: &Ctx, args: ExplainArgs) -> Outcome {
    let as_of = match parse_as_of_arg(args.as_of.as_deref()) {
        Ok(a) => a,
        Err(o) => return o,
    };
    if args.depth == 0 || args.top == 0 {
        eprintln!("error: --depth and --top must be at least 1");
        return Outcome::Failure;
    }
    let timeout = match timeout_arg(args.timeout) {
        Ok(t) => t,
        Err(o) => return o,
    };
    // Hygiene warnings about the whole project would bury the answer:
    // explain reports errors only (`kpic check` shows the rest).
    let errors_only = Ctx {
        root: ctx.root.clone(),
        quiet: true,
        color: ctx.color,
        color_stdout: ctx.color_stdout,
    };
    let (model, db_path, inspection) = match analyze_with_db(&errors_only, args.db.as_deref()) {
        Ok(m) => m,
        Err(o) => return o,
    };
    // Type errors (`sum(text)`) point at the measure, as in `run`.
    // (An unknown KPI is reported below, with a did-you-mean.)
    let bind = match model.project.kpi(&args.kpi) {
        Some(_) => bind_in_engine(
            &model,
            std::slice::from_ref(&args.kpi),
            db_path.as_deref(),
            inspection.as_ref(),
        ),
        None => crate::diagnostics::Diagnostics::new(),
    };
    if bind.has_errors() {
        ctx.report(&bind, &model.sources);
        return Outcome::ProjectErrors;
    }
    let options = ExplainOptions {
        kpi: args.kpi.clone(),
        period: args.period.clone(),
        vs: Baseline::parse(&args.vs),
        depth: args.depth,
        top: args.top,
        as_of,
        database: db_path,
        memory_limit: memory_limit_arg(args.memory_limit.as_deref(), &model),
        timeout,
    };
    let (answer, notes) = match crate::explain::explain_on(&model, &options, inspection) {
        Ok(a) => a,
        Err(d) => {
            ctx.report(&d, &model.sources);
            // A KPI, period or baseline that does not exist is a usage
            // error (exit 2), like a bad flag.
            let usage = d
                .iter()
                .filter(|x| x.is_error())
                .all(|x| matches!(x.code, Code::InvalidValue | Code::InvalidReference));
            return if usage {
                Outcome::Failure
            } else {
                failure_kind(&d)
            };
        }
    };
    let text = match args.format {
        ExplainFormat::Json => {
            serde_json::to_string_pretty(&answer).unwrap_or_else(|_| "{}".into())
        }
        ExplainFormat::Text => story(&model, &answer, &notes, false),
        ExplainFormat::Markdown => story(&model, &answer, &notes, true),
    };
    if args.format == ExplainFormat::Json {
        for n in &notes.0 {
            ctx.info(&format!("note: {}", visible(n)));
        }
    }
    let _ = writeln!(std::io::stdout(), "{text}");
    Outcome::Ok
}

fn signed(v: Option<f64>, f: Format) -> String {
    match v {
        Some(x) if x > 0.0 => format!("+{}", format_number(Some(x), f)),
        _ => format_number(v, f),
    }
}

/// What / So What / Now What.
fn story(model: &SemanticModel, a: &Explanation, notes: &Notes, markdown: bool) -> String {
    let kpi = model.project.kpi(&a.kpi);
    let metric = kpi.map(|k| k.metric.value.as_str()).unwrap_or(&a.kpi);
    let f = metric_format(model, metric);
    // Labels, members, owners and plans come from YAML text or data: shown
    // through `visible` (JSON keeps them exact).
    let name = visible(kpi.and_then(|k| k.label.as_deref()).unwrap_or(&a.kpi));
    let mut out = String::new();
    let heading = |out: &mut String, title: &str| {
        if markdown {
            let _ = writeln!(out, "\n## {title}\n");
        } else {
            let _ = writeln!(out, "\n{title}");
        }
    };
    let bullet = if markdown { "- " } else { "  " };
    if markdown {
        let _ = writeln!(
            out,
            "# Why did {name} move? ({} vs {})",
            a.period.label, a.baseline.label
        );
    } else {
        let _ = writeln!(
            out,
            "{name} ({}): {} vs {}",
            a.kpi, a.period.label, a.baseline.label
        );
    }

    heading(&mut out, "What");
    let _ = writeln!(
        out,
        "{bullet}{} in {}, against {} in {}: {} ({}).",
        format_number(a.actual, f),
        a.period.label,
        format_number(a.previous, f),
        a.baseline.label,
        signed(a.change, f),
        pct(a.change_pct)
    );
    let status = a.status.replace('_', " ");
    match a.target {
        Some(t) => {
            let _ = writeln!(
                out,
                "{bullet}Target {}: {status}.",
                format_number(Some(t), f)
            );
        }
        None if a.status == "no_target" => {
            let _ = writeln!(out, "{bullet}No target for this period.");
        }
        None => {
            let _ = writeln!(out, "{bullet}No target for this period ({status}).");
        }
    }
    for n in &notes.0 {
        let _ = writeln!(out, "{bullet}Note: {}.", visible(n));
    }

    heading(&mut out, "So What");
    let attributed: Vec<_> = a.drivers.iter().filter(|d| d.method != "none").collect();
    if !attributed.is_empty() {
        let _ = writeln!(out, "{bullet}Drivers of the change:");
        let mut sorted = attributed.clone();
        sorted.sort_by(|x, y| {
            let key = |d: &&crate::explain::DriverOut| d.contribution.map_or(0.0, f64::abs);
            key(y).total_cmp(&key(x))
        });
        for d in sorted {
            let df = metric_format(model, &d.metric);
            let _ = writeln!(
                out,
                "{}{}: {} → {} ({}), contributed {} ({} of the change, {} split)",
                if markdown { "  - " } else { "    " },
                d.metric,
                format_number(d.previous, df),
                format_number(d.actual, df),
                pct(d.change_pct),
                signed(d.contribution, f),
                d.share_of_change
                    .map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
                d.method
            );
        }
    }
    let shown: Vec<_> = a.drivers.iter().filter(|d| d.method == "none").collect();
    if !shown.is_empty() {
        let _ = writeln!(out, "{bullet}Diagnostic metrics (not attributed):");
        for d in shown {
            let df = metric_format(model, &d.metric);
            let _ = writeln!(
                out,
                "{}{}: {} → {} ({})",
                if markdown { "  - " } else { "    " },
                d.metric,
                format_number(d.previous, df),
                format_number(d.actual, df),
                pct(d.change_pct)
            );
        }
    }
    if a.root_causes.is_empty() {
        let _ = writeln!(
            out,
            "{bullet}No segment stands out: the change is spread across the breakdowns."
        );
    } else {
        let _ = writeln!(
            out,
            "{bullet}Segments that explain the change, most important first:"
        );
        for (i, c) in a.root_causes.iter().enumerate() {
            let segment = c
                .segment
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k} = {}", visible(s)),
                    _ => format!("{k} is NULL"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let segment = if markdown {
                format!("**{segment}**")
            } else {
                segment
            };
            let detail = match (c.mix_effect, c.rate_effect) {
                (Some(mix), Some(rate)) => format!(
                    "; rate effect {}, mix effect {}",
                    signed(Some(rate), f),
                    signed(Some(mix), f)
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{}{}. {segment}: {} → {} ({}), {} of the change{detail}",
                if markdown { "  " } else { "    " },
                i + 1,
                format_number(c.previous, f),
                format_number(c.actual, f),
                signed(c.change, f),
                c.share_of_change
                    .map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
            );
        }
    }

    heading(&mut out, "Now What");
    if let Some(owner) = kpi.and_then(|k| k.owner.as_ref()) {
        let _ = writeln!(out, "{bullet}Owner: {}", visible(&owner.value));
    }
    match &a.action_plan {
        Some(plan) => {
            let _ = writeln!(out, "{bullet}Action plan:");
            if markdown {
                out.push('\n');
            }
            for line in visible(plan.trim_end()).lines() {
                // Markdown: the plan as written, quoted.
                let _ = if markdown {
                    writeln!(out, "> {line}")
                } else {
                    writeln!(out, "    {line}")
                };
            }
        }
        None => {
            let _ = writeln!(
                out,
                "{bullet}No action plan: add `action_plan:` to the KPI so the next reader knows what to do."
            );
        }
    }
    out.trim_end().to_string()
}

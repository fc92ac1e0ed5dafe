//! Explain: why did a KPI move? (SPEC §6)
//!
//! In: an analyzed model and [`ExplainOptions`]. Out: an [`Explanation`]
//! (the JSON object of SPEC §6), printed by the command line.
//!
//! Steps: plan the KPI alone and compile it; in a read-only DuckDB
//! session, materialize its shared steps (period aggregates) and read its
//! kpi_results rows (period values, target, status) and driver values;
//! pick the period and the baseline and their date ranges (like for like
//! when the period is incomplete); run the KPI's grouping-sets query
//! ([`crate::plan::explain`], [`crate::sql::segment_query`]), which reads
//! the KPI's sources again (cheaper than copying a large scan into a
//! temporary table); search the small aggregated result in Rust
//! ([`search::localize`]); attribute the change to drivers
//! ([`attribution`]).

pub mod attribution;
pub mod search;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::exec::{Cell, Session};
use crate::model::period::{label, parse_label, period_end};
use crate::model::{AsOf, Grain};
use crate::plan::{PlanOptions, plan_kpis};
use crate::semantic::SemanticModel;
use crate::sql::dialect::DuckDb;
use crate::sql::{SegmentRanges, plan_to_sql, segment_query};

/// What to compare the period with.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    Previous,
    LastYear,
    /// A period label of the KPI's grain.
    Period(String),
}

impl Baseline {
    pub fn parse(text: &str) -> Baseline {
        match text {
            "previous" => Baseline::Previous,
            "last_year" => Baseline::LastYear,
            other => Baseline::Period(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExplainOptions {
    pub kpi: String,
    /// Period label (default: the latest complete period).
    pub period: Option<String>,
    pub vs: Baseline,
    pub depth: usize,
    pub top: usize,
    pub as_of: Option<AsOf>,
    pub database: Option<PathBuf>,
    pub memory_limit: Option<String>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeriodRef {
    pub label: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriverOut {
    pub metric: String,
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change_pct: Option<f64>,
    pub contribution: Option<f64>,
    pub share_of_change: Option<f64>,
    pub method: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CauseOut {
    /// Dimension (as written in `breakdowns`) → member (null for NULL).
    pub segment: serde_json::Map<String, serde_json::Value>,
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub share_of_change: Option<f64>,
    pub mix_effect: Option<f64>,
    pub rate_effect: Option<f64>,
}

/// The answer: exactly the object of SPEC §6.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Explanation {
    pub kpi: String,
    pub period: PeriodRef,
    pub baseline: PeriodRef,
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub change_pct: Option<f64>,
    pub target: Option<f64>,
    pub status: String,
    pub drivers: Vec<DriverOut>,
    pub root_causes: Vec<CauseOut>,
    pub action_plan: Option<String>,
}

/// Notes for people (not part of the JSON object): why segments are
/// missing, which range was compared.
#[derive(Debug, Clone, Default)]
pub struct Notes(pub Vec<String>);

/// One kpi_results row, as explain needs it.
#[derive(Debug, Clone)]
struct PeriodRow {
    label: String,
    start: NaiveDate,
    end: NaiveDate,
    complete: bool,
    actual: Option<f64>,
    previous: Option<f64>,
    last_year: Option<f64>,
    target: Option<f64>,
    status: String,
}

fn error(code: Code, message: String) -> Diagnostics {
    Diagnostics::from(Diagnostic::new(code, message))
}

/// Explains the KPI's move. The model must have no errors.
pub fn explain(
    model: &SemanticModel,
    options: &ExplainOptions,
) -> Result<(Explanation, Notes), Diagnostics> {
    explain_on(model, options, None)
}

/// [`explain`] on `conn` when given: a connection already open on the
/// project's database (read-only) or in memory, such as the catalog's
/// ([`crate::exec::DuckDbCatalog::into_connection`]), so DuckDB is not
/// opened twice.
pub fn explain_on(
    model: &SemanticModel,
    options: &ExplainOptions,
    conn: Option<duckdb::Connection>,
) -> Result<(Explanation, Notes), Diagnostics> {
    let project = &model.project;
    let kpi_def = project.kpi(&options.kpi).ok_or_else(|| {
        let names: Vec<&str> = project.kpis.iter().map(|k| k.name.value.as_str()).collect();
        let mut d = Diagnostic::new(
            Code::InvalidReference,
            format!("no KPI named `{}`", options.kpi),
        );
        d = match crate::diagnostics::did_you_mean(&options.kpi, names.iter().copied()) {
            Some(h) => d.with_help(format!("did you mean `{h}`?")),
            None => d.with_help(format!("KPIs: {}", names.join(", "))),
        };
        Diagnostics::from(d)
    })?;
    let mut notes = Notes::default();
    let plan = plan_kpis(
        model,
        &PlanOptions {
            as_of: options.as_of,
            select: vec![options.kpi.clone()],
            local_files: true,
        },
    )?;
    let segments = crate::plan::explain::segment_plan(&plan, &options.kpi);
    if let Err(why) = &segments {
        notes.0.push(format!("no segments: {why}"));
    }
    // Scans stay as the pipeline shares them: copying a large scan into a
    // temporary table costs more than the segment query reading the source
    // again (measured by bench/speed.sh).
    let compiled = pipeline(model, &plan);
    let database = crate::exec::project_database(project, options.database.as_deref());
    let mut session = match conn {
        Some(conn) => Session::on(
            conn,
            project,
            options.memory_limit.as_deref(),
            options.timeout,
        )?,
        None => Session::open(
            project,
            database.as_deref(),
            options.memory_limit.as_deref(),
            options.timeout,
        )?,
    };
    session.materialize(&compiled)?;
    let select = |name: &str| -> Result<String, Diagnostics> {
        compiled
            .select_after(name, &session.materialized)
            .map(|q| q.to_string())
            .ok_or_else(|| error(Code::QueryFailed, format!("internal: no step `{name}`")))
    };
    let results_sql = format!(
        "SELECT period, CAST(period_start AS VARCHAR), CAST(period_end AS VARCHAR), is_complete, \
         actual, previous, last_year, target, status FROM ({}) AS r ORDER BY period_start",
        select("kpi_results")?
    );
    let rows: Vec<PeriodRow> = session
        .rows(&results_sql, "kpi_results")?
        .into_iter()
        .filter_map(|r| {
            let date = |c: &Cell| c.text().and_then(|t| t.parse::<NaiveDate>().ok());
            Some(PeriodRow {
                label: r.first()?.text()?.to_string(),
                start: date(r.get(1)?)?,
                end: date(r.get(2)?)?,
                complete: matches!(r.get(3)?, Cell::Bool(true)),
                actual: r.get(4)?.number(),
                previous: r.get(5)?.number(),
                last_year: r.get(6)?.number(),
                target: r.get(7)?.number(),
                status: r.get(8)?.text().unwrap_or("no_data").to_string(),
            })
        })
        .collect();
    let grain = kpi_def.grain;
    let current_index = pick_period(&rows, options.period.as_deref(), grain)?;
    let current = &rows[current_index];
    let as_of = as_of_date(&session, &plan, current)?;
    let (baseline_start, baseline_label) = baseline_of(current, &options.vs, grain)?;
    let baseline_end = period_end(grain, baseline_start);
    // Like for like: an incomplete period is compared with the same number
    // of days of the baseline (SPEC §7).
    let current_range = if current.complete {
        (current.start, current.end)
    } else {
        (current.start, as_of.succ_opt().unwrap_or(as_of))
    };
    let elapsed = (current_range.1 - current_range.0).num_days();
    let baseline_range = if current.complete {
        (baseline_start, baseline_end)
    } else {
        let end = baseline_start + chrono::Duration::days(elapsed);
        (baseline_start, end.min(baseline_end))
    };
    if !current.complete {
        notes.0.push(format!(
            "{} is incomplete: its first {elapsed} days are compared with the same days of {}",
            current.label, baseline_label
        ));
    }
    let baseline_row = rows.iter().find(|r| r.start == baseline_start);
    let previous = match &options.vs {
        Baseline::Previous => current.previous,
        Baseline::LastYear => current.last_year,
        Baseline::Period(_) => baseline_row.and_then(|r| r.actual),
    };

    // Root causes.
    let mut root_causes = Vec::new();
    let mut previous = previous;
    if let Ok(seg) = &segments {
        let ranges = SegmentRanges {
            baseline: baseline_range,
            current: current_range,
        };
        let query = segment_query(seg, &ranges, options.depth, &DuckDb);
        let sql = crate::sql::build::with(
            query.query.clone(),
            compiled.closure_of(&query.deps, &session.materialized),
        )
        .to_string();
        let cells = session.rows(&sql, "the segment query")?;
        let cube = cube_from_rows(seg, &cells);
        // An explicit baseline period of an incomplete period: its value
        // over the same days comes from the segment totals.
        if matches!(options.vs, Baseline::Period(_))
            && !current.complete
            && let Some(total) = cube.rows.iter().find(|r| r.key.iter().all(Option::is_none))
        {
            previous = match cube.shape {
                search::Shape::Additive => Some(total.num0),
                search::Shape::Ratio => (total.den0 != 0.0).then(|| total.num0 / total.den0),
            };
        }
        let causes = search::localize(
            &cube,
            &search::SearchOptions {
                max_depth: options.depth,
                max_causes: options.top,
            },
        );
        root_causes = causes_out(seg, cube.shape, causes);
    }

    // Drivers: values in both ranges, attributed over the identity.
    let node = plan.kpis.iter().find(|k| k.name == options.kpi);
    let mut drivers = Vec::new();
    if let Some(node) = node
        && !node.drivers.is_empty()
    {
        let drv_rows = read_driver_step(&session, &compiled, node)?;
        let find = |start: NaiveDate| drv_rows.iter().find(|(s, _)| *s == start).map(|(_, v)| v);
        // Values of the columns `<prefix><metric>`, by metric.
        let values = |row: Option<&Values>, prefix: &str| -> Values {
            row.into_iter()
                .flatten()
                .filter_map(|(name, v)| Some((name.strip_prefix(prefix)?.to_string(), *v)))
                .collect()
        };
        let row = find(current.start);
        let x1 = values(row, "x1__");
        let x0 = match &options.vs {
            Baseline::Previous => values(row, "x0__"),
            Baseline::LastYear => values(row, "xy__"),
            Baseline::Period(_) => values(find(baseline_start), "x1__"),
        };
        drivers = drivers_out(node, &x1, &x0, current.actual, previous);
    }

    session.close_in_background();
    let change = match (current.actual, previous) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    Ok((
        Explanation {
            kpi: options.kpi.clone(),
            period: PeriodRef {
                label: current.label.clone(),
                start: current.start.to_string(),
                end: current.end.to_string(),
            },
            baseline: PeriodRef {
                label: baseline_label,
                start: baseline_start.to_string(),
                end: baseline_end.to_string(),
            },
            actual: current.actual,
            previous,
            change,
            change_pct: ratio_change(current.actual, previous),
            target: current.target,
            status: current.status.clone(),
            drivers,
            root_causes,
            action_plan: kpi_def.action_plan.clone(),
        },
        notes,
    ))
}

/// The answer's root causes: segments as `{dimension: member}`, values as
/// the KPI computes them (ratios for a ratio KPI).
fn causes_out(
    seg: &crate::plan::explain::SegmentPlan,
    shape: search::Shape,
    causes: Vec<search::RootCause>,
) -> Vec<CauseOut> {
    causes
        .into_iter()
        .map(|c| {
            let mut segment = serde_json::Map::new();
            for (i, member) in &c.key {
                let dim = seg.dims.get(*i).cloned().unwrap_or_default();
                segment.insert(
                    dim,
                    member
                        .clone()
                        .map_or(serde_json::Value::Null, serde_json::Value::String),
                );
            }
            let (actual, previous) = match shape {
                search::Shape::Additive => (Some(c.num1), Some(c.num0)),
                search::Shape::Ratio => (
                    (c.den1 != 0.0).then(|| c.num1 / c.den1),
                    (c.den0 != 0.0).then(|| c.num0 / c.den0),
                ),
            };
            CauseOut {
                segment,
                actual,
                previous,
                change: c.change,
                share_of_change: c.share_of_change,
                mix_effect: c.mix_effect,
                rate_effect: c.rate_effect,
            }
        })
        .collect()
}

/// Each driver's values and its share of the KPI's change `k1 − k0`,
/// split over the KPI's identity (SPEC §7, as kpi_drivers).
fn drivers_out(
    node: &crate::plan::KpiNode,
    x1: &HashMap<String, Option<f64>>,
    x0: &HashMap<String, Option<f64>>,
    k1: Option<f64>,
    k0: Option<f64>,
) -> Vec<DriverOut> {
    let split = node
        .identity
        .as_ref()
        .map(|i| attribution::attribute(i, x1, x0, k1, k0));
    let change = match (k1, k0) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    node.drivers
        .iter()
        .map(|d| {
            let a = x1.get(&d.metric).copied().flatten();
            let b = x0.get(&d.metric).copied().flatten();
            let (contribution, method) = match (&split, d.attributed) {
                (Some(s), true) => (
                    s.contributions.get(&d.metric).copied().flatten(),
                    s.method.to_string(),
                ),
                _ => (None, "none".to_string()),
            };
            DriverOut {
                metric: d.metric.clone(),
                actual: a,
                previous: b,
                change_pct: ratio_change(a, b),
                contribution,
                share_of_change: share(contribution, change),
                method,
            }
        })
        .collect()
}

/// The KPIs' own pipelines, compiled for DuckDB without the member twins
/// of kpi_breakdowns (explain's grouping-sets query replaces them).
fn pipeline(model: &SemanticModel, plan: &crate::plan::Plan) -> crate::sql::CompiledSql {
    let mut pipeline = plan.clone();
    pipeline.aggregates.retain(|a| a.by.is_empty());
    for k in &mut pipeline.kpis {
        k.breakdown = None;
    }
    plan_to_sql(&pipeline, model, &DuckDb)
}

fn ratio_change(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some((a - b) / b),
        _ => None,
    }
}

fn share(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    match (part, whole) {
        (Some(p), Some(w)) if w != 0.0 => Some(p / w),
        _ => None,
    }
}

/// Index of the period to explain: `--period`, or the latest complete one
/// (the latest when none is complete).
fn pick_period(
    rows: &[PeriodRow],
    period: Option<&str>,
    grain: Grain,
) -> Result<usize, Diagnostics> {
    if rows.is_empty() {
        return Err(error(
            Code::QueryFailed,
            "the KPI has no periods: its sources have no rows up to as_of".into(),
        ));
    }
    match period {
        Some(p) => {
            let (g, start) = parse_label(p).ok_or_else(|| {
                Diagnostics::from(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("`--period {p}` is not a period label"),
                    )
                    .with_help(format!(
                        "a {} label looks like `{}`",
                        grain.as_str(),
                        crate::model::period::example_label(grain)
                    )),
                )
            })?;
            if g != grain {
                return Err(Diagnostics::from(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!(
                            "`--period {p}` is a {} label; the KPI's grain is {}",
                            g.as_str(),
                            grain.as_str()
                        ),
                    )
                    .with_help(format!(
                        "a {} label looks like `{}`",
                        grain.as_str(),
                        crate::model::period::example_label(grain)
                    )),
                ));
            }
            rows.iter().position(|r| r.start == start).ok_or_else(|| {
                Diagnostics::from(
                    Diagnostic::new(Code::InvalidValue, format!("the KPI has no period {p}"))
                        .with_help(format!(
                            "its periods run from {} to {}",
                            rows[0].label,
                            rows[rows.len() - 1].label
                        )),
                )
            })
        }
        None => Ok(rows
            .iter()
            .rposition(|r| r.complete)
            .unwrap_or(rows.len() - 1)),
    }
}

/// Start and label of the baseline period.
fn baseline_of(
    current: &PeriodRow,
    vs: &Baseline,
    grain: Grain,
) -> Result<(NaiveDate, String), Diagnostics> {
    let start = match vs {
        Baseline::Previous => crate::model::period::previous_start(grain, current.start),
        Baseline::LastYear => crate::model::period::same_period_last_year(grain, current.start),
        Baseline::Period(p) => {
            let (g, start) = parse_label(p).ok_or_else(|| {
                Diagnostics::from(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("`--vs {p}` is neither `previous`, `last_year` nor a period label"),
                    )
                    .with_help(format!(
                        "a {} label looks like `{}`",
                        grain.as_str(),
                        crate::model::period::example_label(grain)
                    )),
                )
            })?;
            if g != grain {
                return Err(error(
                    Code::InvalidValue,
                    format!(
                        "`--vs {p}` is a {} label; the KPI's grain is {}",
                        g.as_str(),
                        grain.as_str()
                    ),
                ));
            }
            if start == current.start {
                return Err(error(
                    Code::InvalidValue,
                    format!("`--vs {p}` is the period being explained"),
                ));
            }
            Some(start)
        }
    };
    let start = start.ok_or_else(|| {
        error(
            Code::InvalidValue,
            format!(
                "{} has no {} period",
                current.label,
                match vs {
                    Baseline::LastYear => "last-year",
                    _ => "previous",
                }
            ),
        )
    })?;
    Ok((start, label(grain, start)))
}

/// The as_of date the KPI was computed at.
fn as_of_date(
    session: &Session,
    plan: &crate::plan::Plan,
    current: &PeriodRow,
) -> Result<NaiveDate, Diagnostics> {
    let sql = match &plan.as_of {
        crate::plan::AsOfPlan::Date(d) => return Ok(*d),
        crate::plan::AsOfPlan::Today => "SELECT CAST(current_date AS VARCHAR)",
        crate::plan::AsOfPlan::Latest(_) => "SELECT CAST(as_of AS VARCHAR) FROM kpic_params",
    };
    let rows = session.rows(sql, "as_of")?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(|c| c.text())
        .and_then(|t| t.parse::<NaiveDate>().ok())
        .unwrap_or(current.end.pred_opt().unwrap_or(current.end)))
}

/// Values by metric (or by driver-step column), NULL as `None`.
type Values = HashMap<String, Option<f64>>;

/// The rows of the KPI's driver step (`kpic_k_<kpi>_drv`), in period
/// order: each period's start and its values by column name (`k1`, `k0`,
/// `ky`, `x1__m`, `x0__m`, `xy__m`, in the order the renderer writes them).
fn read_driver_step(
    session: &Session,
    compiled: &crate::sql::CompiledSql,
    node: &crate::plan::KpiNode,
) -> Result<Vec<(NaiveDate, Values)>, Diagnostic> {
    let step = format!("kpic_k_{}_drv", node.name);
    let query = compiled
        .select_after(&step, &session.materialized)
        .ok_or_else(|| Diagnostic::new(Code::QueryFailed, format!("internal: no step `{step}`")))?;
    let sql = format!(
        "SELECT CAST(period_start AS VARCHAR) AS __start, * FROM ({query}) AS d ORDER BY period_start"
    );
    let mut names = vec!["k1".to_string(), "k0".into(), "ky".into()];
    for m in crate::sql::driver_step_metrics(node) {
        names.extend(["x1", "x0", "xy"].map(|p| format!("{p}__{m}")));
    }
    // Columns: __start, period_start, then `names`.
    Ok(session
        .rows(&sql, "the driver values")?
        .into_iter()
        .filter_map(|row| {
            let start = row.first()?.text()?.parse::<NaiveDate>().ok()?;
            let values = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), row.get(i + 2).and_then(Cell::number)))
                .collect();
            Some((start, values))
        })
        .collect())
}

/// Adds up the rows of the segment query into a [`search::Cube`].
fn cube_from_rows(seg: &crate::plan::explain::SegmentPlan, cells: &[Vec<Cell>]) -> search::Cube {
    let n = seg.dims.len();
    let m = seg.components;
    let mut sums: HashMap<Vec<Option<search::Member>>, Vec<f64>> = HashMap::new();
    for row in cells {
        if row.len() < 2 * n + 2 * m {
            continue;
        }
        let key: Vec<Option<search::Member>> = (0..n)
            .map(|i| {
                let grouped = row[i].number() == Some(0.0);
                grouped.then(|| row[n + i].text().map(str::to_string))
            })
            .collect();
        let entry = sums.entry(key).or_insert_with(|| vec![0.0; 2 * m]);
        for j in 0..2 * m {
            entry[j] += row[2 * n + j].number().unwrap_or(0.0);
        }
    }
    let shape = match seg.shape {
        crate::plan::explain::SegmentShape::Ratio => search::Shape::Ratio,
        crate::plan::explain::SegmentShape::Additive { .. } => search::Shape::Additive,
    };
    let rows = sums
        .into_iter()
        .map(|(key, v)| {
            let (num0, num1, den0, den1) = match &seg.shape {
                crate::plan::explain::SegmentShape::Ratio => (v[0], v[1], v[2], v[3]),
                crate::plan::explain::SegmentShape::Additive { signs } => {
                    let total = |period: usize| {
                        signs
                            .iter()
                            .enumerate()
                            .map(|(j, s)| s * v[2 * j + period])
                            .sum::<f64>()
                    };
                    (total(0), total(1), 0.0, 0.0)
                }
            };
            search::SegmentRow {
                key,
                num0,
                num1,
                den0,
                den1,
            }
        })
        .collect();
    search::Cube {
        dims: seg.dims.clone(),
        shape,
        rows,
    }
}

/// `kpic check`: warns (KPI256) when a KPI's `decomposition` does not hold
/// on the data: in some period, the identity evaluated on its metrics
/// differs from the KPI's value by more than 0.1%. Reads the data (the
/// KPIs' own pipelines, in a read-only session); a failure to read it is
/// left to `kpic run` to report.
pub fn decomposition_check(
    model: &SemanticModel,
    database: Option<&std::path::Path>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let declared: Vec<&crate::model::Kpi> = model
        .project
        .kpis
        .iter()
        .filter(|k| k.decomposition.is_some() && model.kpis.contains_key(&k.name.value))
        .collect();
    if declared.is_empty() {
        return diags;
    }
    let Ok(plan) = plan_kpis(
        model,
        &PlanOptions {
            as_of: None,
            select: declared.iter().map(|k| k.name.value.clone()).collect(),
            local_files: true,
        },
    ) else {
        return diags;
    };
    let compiled = pipeline(model, &plan);
    let database = crate::exec::project_database(&model.project, database);
    let Ok(mut session) = Session::open(&model.project, database.as_deref(), Some("2GB"), None)
    else {
        return diags;
    };
    if session.materialize(&compiled).is_err() {
        return diags;
    }
    for k in declared {
        let Some(node) = plan.kpis.iter().find(|n| n.name == k.name.value) else {
            continue;
        };
        let (Some(identity), Some(dec)) = (&node.identity, &k.decomposition) else {
            continue;
        };
        let Ok(rows) = read_driver_step(&session, &compiled, node) else {
            continue;
        };
        for (start, values) in rows {
            let value = |name: &str| values.get(name).copied().flatten();
            let Some(kpi_value) = value("k1") else {
                continue;
            };
            let lookup = |m: &str| value(&format!("x1__{m}"));
            let Some(identity_value) = attribution::eval(&identity.expr, &lookup, 0) else {
                continue;
            };
            let gap = (identity_value - kpi_value).abs();
            if gap > 0.001 * kpi_value.abs().max(f64::MIN_POSITIVE) {
                let period = label(k.grain, start);
                diags.push(
                    Diagnostic::new(
                        Code::DecompositionMismatch,
                        format!(
                            "decomposition of KPI `{}` does not hold on the data: in {period} it gives {identity_value}, the metric `{}` is {kpi_value}",
                            k.name.value, k.metric.value
                        ),
                    )
                    .at(dec.span, "this identity")
                    .with_help("drivers are attributed over this identity; make it exact or remove it"),
                );
                break;
            }
        }
    }
    diags
}

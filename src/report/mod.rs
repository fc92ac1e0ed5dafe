//! The HTML KPI report (`kpic report`): one self-contained file, inline
//! CSS and SVG.
//!
//! In: an analyzed model, the DuckDB database a build has just written
//! (`kpic run`'s five output tables) and the kpi_results rows that build
//! returned ([`crate::exec::RunOutcome::rows`]). Out: a [`Report`]
//! ([`gather`]), then the page ([`html::render`]).
//!
//! The numbers come from the tables (kpi_results as the build returned
//! its rows; kpi_definitions, kpi_metrics, kpi_drivers, kpi_breakdowns read
//! back), so the page shows exactly what a BI tool reading the same
//! database would. The model only gives what
//! the tables do not hold: the order of the KPIs as written and the labels
//! and formats of diagnostic metrics. For each KPI that is off track or at
//! risk, [`crate::explain`] answers What / So What / Now What; when it
//! cannot (no breakdowns, an engine error), the section falls back to the
//! kpi_drivers and kpi_breakdowns rows of that period and says why.

pub mod html;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::diagnostics::Diagnostics;
use crate::exec::{Cell, KpiRow, Session};
use crate::explain::{Baseline, DriverOut, ExplainOptions, Explanation};
use crate::model::{AsOf, Format};
use crate::semantic::SemanticModel;

/// Most periods drawn in a trend line or a metric chart (the latest ones).
pub const MAX_POINTS: usize = 24;

/// Most drivers and segments listed under Now What.
const TOP: usize = 5;

#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The database the build wrote.
    pub database: PathBuf,
    /// The as_of the build used (`None`: the project's).
    pub as_of: Option<AsOf>,
    /// The date the build decided, for the page header.
    pub as_of_label: String,
    pub memory_limit: Option<String>,
    pub timeout: Option<Duration>,
}

/// A KPI: its kpi_definitions row and its kpi_results rows.
#[derive(Debug, Clone)]
pub struct KpiReport {
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    pub objective: Option<String>,
    pub rationale: Option<String>,
    pub owner: Option<String>,
    pub metric: String,
    pub grain: String,
    pub direction: String,
    pub format: Format,
    pub tolerance: Option<f64>,
    pub action_plan: Option<String>,
    pub drivers: Vec<String>,
    /// Its kpi_results rows, ordered by period_start.
    pub periods: Vec<KpiRow>,
}

impl KpiReport {
    /// The latest period that has ended.
    pub fn latest_complete(&self) -> Option<&KpiRow> {
        self.periods.iter().rev().find(|p| p.is_complete)
    }

    /// The period containing as_of, when it has not ended.
    pub fn current(&self) -> Option<&KpiRow> {
        self.periods.last().filter(|p| !p.is_complete)
    }

    /// The status the card shows: the current period's (judged on its
    /// projection) while one runs, else the latest complete period's.
    pub fn headline_status(&self) -> &str {
        self.current()
            .or(self.latest_complete())
            .map_or("no_data", |p| p.status.as_str())
    }

    /// The period a Why section explains: the latest complete period when
    /// it is off track or at risk (complete data is firmer), else the
    /// current period when it is. `None`: nothing to explain.
    pub fn flagged_period(&self) -> Option<&KpiRow> {
        let flagged = |p: &&KpiRow| is_flagged(&p.status);
        self.latest_complete()
            .filter(flagged)
            .or(self.current().filter(flagged))
    }
}

pub fn is_flagged(status: &str) -> bool {
    matches!(status, "off_track" | "at_risk")
}

/// One metric at one grain, from kpi_metrics.
#[derive(Debug, Clone)]
pub struct MetricSeries {
    pub metric: String,
    pub label: String,
    pub grain: String,
    pub format: Format,
    /// Ordered by period_start.
    pub points: Vec<MetricPoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub label: String,
    pub value: Option<f64>,
    /// The period has ended by as_of (an incomplete period's value is
    /// partial, drawn apart).
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub struct MetricGroup {
    pub title: String,
    pub series: Vec<MetricSeries>,
}

/// A driver's move over the explained period.
#[derive(Debug, Clone)]
pub struct DriverMove {
    /// The driver's values and split, as explain gives them (and as a
    /// kpi_drivers row holds them).
    pub driver: DriverOut,
    pub label: String,
    pub format: Format,
}

/// A segment that explains the change.
#[derive(Debug, Clone)]
pub struct SegmentMove {
    /// `dimension = member` pairs.
    pub segment: Vec<(String, Option<String>)>,
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub share_of_change: Option<f64>,
}

/// What / So What / Now What of an off-track or at-risk KPI.
#[derive(Debug, Clone)]
pub struct Why {
    pub kpi: String,
    pub period: KpiRow,
    pub baseline_label: Option<String>,
    /// The change explained (explain's, like for like for an incomplete
    /// period; kpi_results' otherwise).
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub change_pct: Option<f64>,
    pub drivers: Vec<DriverMove>,
    pub segments: Vec<SegmentMove>,
    /// Why segments or drivers are missing or come from the tables.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub project: String,
    pub as_of: String,
    pub computed_at: Option<String>,
    pub kpis: Vec<KpiReport>,
    pub metric_groups: Vec<MetricGroup>,
    pub whys: Vec<Why>,
}

/// Reads the output tables back (but kpi_results: `results` are the rows
/// the build returned, ordered by KPI and period_start) and explains every
/// flagged KPI.
pub fn gather(
    model: &SemanticModel,
    options: &ReportOptions,
    results: &[KpiRow],
) -> Result<Report, Diagnostics> {
    let tables = read_tables(model, options)?;
    let kpis = kpi_reports(model, &tables, results);
    let metric_groups = metric_groups(model, &kpis, &tables.metrics);
    let whys = kpis
        .iter()
        .filter_map(|k| {
            k.flagged_period()
                .map(|p| why(model, options, &tables, k, p))
        })
        .collect();
    Ok(Report {
        project: model.project.config.name.clone(),
        as_of: options.as_of_label.clone(),
        computed_at: tables.computed_at.clone(),
        kpis,
        metric_groups,
        whys,
    })
}

/// The rows of the output tables the report reads back.
struct Tables {
    definitions: Vec<BTreeMap<&'static str, Cell>>,
    /// (metric, grain) → points.
    metrics: BTreeMap<(String, String), Vec<MetricPoint>>,
    /// (kpi, period) → driver rows.
    drivers: BTreeMap<(String, String), Vec<DriverMove>>,
    /// (kpi, period) → single-dimension breakdown rows.
    breakdowns: BTreeMap<(String, String), Vec<(String, SegmentMove)>>,
    computed_at: Option<String>,
}

const DEFINITION_COLUMNS: [&str; 14] = [
    "kpi",
    "label",
    "description",
    "objective",
    "rationale",
    "owner",
    "metric",
    "grain",
    "direction",
    "format",
    "tolerance",
    "action_plan",
    "drivers",
    "computed_at",
];

fn read_tables(model: &SemanticModel, options: &ReportOptions) -> Result<Tables, Diagnostics> {
    let session = Session::open(
        &model.project,
        Some(&options.database),
        options.memory_limit.as_deref(),
        options.timeout,
    )?;
    let text = |c: &Cell| c.text().map(str::to_string);
    let definitions: Vec<BTreeMap<&'static str, Cell>> = session
        .rows(
            &format!(
                "SELECT {} FROM kpi_definitions ORDER BY kpi",
                DEFINITION_COLUMNS
                    .iter()
                    .map(|c| match *c {
                        "tolerance" => "CAST(tolerance AS DOUBLE)".to_string(),
                        c => format!("CAST({c} AS VARCHAR)"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "kpi_definitions",
        )?
        .into_iter()
        .map(|row| DEFINITION_COLUMNS.iter().copied().zip(row).collect())
        .collect();
    // A period [start, end) is complete when it ends by as_of: end <= as_of + 1 day.
    let day_after_as_of = options
        .as_of_label
        .parse::<chrono::NaiveDate>()
        .ok()
        .and_then(|d| d.succ_opt());
    let mut metrics: BTreeMap<(String, String), Vec<MetricPoint>> = BTreeMap::new();
    for r in session.rows(
        "SELECT metric, grain, period, CAST(period_end AS VARCHAR), value FROM kpi_metrics \
         ORDER BY metric, grain, period_start",
        "kpi_metrics",
    )? {
        if let [metric, grain, period, end, value] = r.as_slice()
            && let (Some(m), Some(g), Some(p)) = (text(metric), text(grain), text(period))
        {
            let end = end.text().and_then(|e| e.parse::<chrono::NaiveDate>().ok());
            let complete = match (end, day_after_as_of) {
                (Some(e), Some(limit)) => e <= limit,
                _ => true,
            };
            metrics.entry((m, g)).or_default().push(MetricPoint {
                label: p,
                value: value.number(),
                complete,
            });
        }
    }
    let mut drivers: BTreeMap<(String, String), Vec<DriverMove>> = BTreeMap::new();
    for r in session.rows(
        "SELECT kpi, period, driver, actual, previous, change_pct, contribution, \
         share_of_change, method FROM kpi_drivers ORDER BY kpi, period_start, driver",
        "kpi_drivers",
    )? {
        let (Some(kpi), Some(period), Some(driver)) = (
            r.first().and_then(text),
            r.get(1).and_then(text),
            r.get(2).and_then(text),
        ) else {
            continue;
        };
        let n = |i: usize| r.get(i).and_then(Cell::number);
        let (label, format) = metric_label_format(model, &driver);
        drivers.entry((kpi, period)).or_default().push(DriverMove {
            driver: DriverOut {
                metric: driver,
                actual: n(3),
                previous: n(4),
                change_pct: n(5),
                contribution: n(6),
                share_of_change: n(7),
                method: r.get(8).and_then(text).unwrap_or_else(|| "none".into()),
            },
            label,
            format,
        });
    }
    let mut breakdowns: BTreeMap<(String, String), Vec<(String, SegmentMove)>> = BTreeMap::new();
    for r in session.rows(
        "SELECT kpi, period, dimension, CAST(member AS VARCHAR), actual, previous, change, \
         contribution, share_of_change FROM kpi_breakdowns ORDER BY kpi, period_start, dimension, member",
        "kpi_breakdowns",
    )? {
        let (Some(kpi), Some(period), Some(dimension)) = (
            r.first().and_then(text),
            r.get(1).and_then(text),
            r.get(2).and_then(text),
        ) else {
            continue;
        };
        let n = |i: usize| r.get(i).and_then(Cell::number);
        let segment = SegmentMove {
            segment: vec![(dimension.clone(), r.get(3).and_then(text))],
            actual: n(4),
            previous: n(5),
            // The contribution (= change for additive metrics, mix + rate
            // for ratios) is what adds up to the KPI's change.
            change: n(7).or(n(6)),
            share_of_change: n(8),
        };
        breakdowns
            .entry((kpi, period))
            .or_default()
            .push((dimension, segment));
    }
    session.close_in_background();
    let computed_at = definitions
        .iter()
        .find_map(|d| d.get("computed_at").and_then(text));
    Ok(Tables {
        definitions,
        metrics,
        drivers,
        breakdowns,
        computed_at,
    })
}

fn metric_label_format(model: &SemanticModel, metric: &str) -> (String, Format) {
    match model.project.metric(metric) {
        Some(m) => (
            m.label.clone().unwrap_or_else(|| metric.to_string()),
            m.format,
        ),
        None => (metric.to_string(), Format::Number),
    }
}

fn parse_format(text: Option<&str>) -> Format {
    match text {
        Some("currency") => Format::Currency,
        Some("percent") => Format::Percent,
        _ => Format::Number,
    }
}

/// One KPI per kpi_definitions row, in the order the project defines them
/// (KPIs the model does not know, if any, last by name).
fn kpi_reports(model: &SemanticModel, tables: &Tables, results: &[KpiRow]) -> Vec<KpiReport> {
    let position = |name: &str| {
        model
            .project
            .kpis
            .iter()
            .position(|k| k.name.value == name)
            .unwrap_or(usize::MAX)
    };
    let mut kpis: Vec<KpiReport> = tables
        .definitions
        .iter()
        .filter_map(|d| {
            let text = |c: &str| d.get(c).and_then(Cell::text).map(str::to_string);
            let name = text("kpi")?;
            let periods = results.iter().filter(|r| r.kpi == name).cloned().collect();
            Some(KpiReport {
                label: text("label").unwrap_or_else(|| name.clone()),
                description: text("description"),
                objective: text("objective"),
                rationale: text("rationale"),
                owner: text("owner"),
                metric: text("metric").unwrap_or_default(),
                grain: text("grain").unwrap_or_default(),
                direction: text("direction").unwrap_or_default(),
                format: parse_format(d.get("format").and_then(Cell::text)),
                tolerance: d.get("tolerance").and_then(Cell::number),
                action_plan: text("action_plan"),
                drivers: text("drivers")
                    .map(|s| {
                        s.split(',')
                            .map(|x| x.trim().to_string())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                periods,
                name,
            })
        })
        .collect();
    kpis.sort_by(|a, b| {
        position(&a.name)
            .cmp(&position(&b.name))
            .then(a.name.cmp(&b.name))
    });
    kpis
}

/// The diagnostic metrics: each KPI's drivers at its grain, then every
/// other series of kpi_metrics that no card already shows.
fn metric_groups(
    model: &SemanticModel,
    kpis: &[KpiReport],
    metrics: &BTreeMap<(String, String), Vec<MetricPoint>>,
) -> Vec<MetricGroup> {
    let mut shown: BTreeSet<(String, String)> = kpis
        .iter()
        .map(|k| (k.metric.clone(), k.grain.clone()))
        .collect();
    let series = |metric: &str, grain: &str, points: &Vec<MetricPoint>| {
        let (label, format) = metric_label_format(model, metric);
        MetricSeries {
            metric: metric.to_string(),
            label,
            grain: grain.to_string(),
            format,
            points: points.clone(),
        }
    };
    let mut groups = Vec::new();
    for k in kpis {
        let mut group = Vec::new();
        for d in &k.drivers {
            let key = (d.clone(), k.grain.clone());
            if let Some(points) = metrics.get(&key)
                && shown.insert(key)
            {
                group.push(series(d, &k.grain, points));
            }
        }
        if !group.is_empty() {
            groups.push(MetricGroup {
                title: format!("Drivers of {}", k.label),
                series: group,
            });
        }
    }
    let others: Vec<MetricSeries> = metrics
        .iter()
        .filter(|(key, _)| !shown.contains(*key))
        .map(|((m, g), points)| series(m, g, points))
        .collect();
    if !others.is_empty() {
        groups.push(MetricGroup {
            title: "Other inputs".into(),
            series: others,
        });
    }
    groups
}

/// What / So What / Now What of one flagged period: explain's answer, or
/// the tables' rows when explain cannot give one.
fn why(
    model: &SemanticModel,
    options: &ReportOptions,
    tables: &Tables,
    kpi: &KpiReport,
    period: &KpiRow,
) -> Why {
    let explained = crate::explain::explain(
        model,
        &ExplainOptions {
            kpi: kpi.name.clone(),
            period: Some(period.period.clone()),
            vs: Baseline::Previous,
            depth: 3,
            top: TOP,
            as_of: options.as_of,
            database: Some(options.database.clone()),
            memory_limit: options.memory_limit.clone(),
            timeout: options.timeout,
        },
    );
    let key = (kpi.name.clone(), period.period.clone());
    match explained {
        Ok((answer, notes)) => from_explanation(model, kpi, period, answer, notes.0),
        Err(d) => {
            let reason = d
                .iter()
                .find(|x| x.is_error())
                .map_or_else(|| "unknown error".to_string(), |x| x.message.clone());
            let mut drivers = tables.drivers.get(&key).cloned().unwrap_or_default();
            sort_drivers(&mut drivers);
            let mut segments: Vec<SegmentMove> = tables
                .breakdowns
                .get(&key)
                .map(|rows| rows.iter().map(|(_, s)| s.clone()).collect())
                .unwrap_or_default();
            segments.sort_by(|a, b| abs(b.change).total_cmp(&abs(a.change)));
            segments.truncate(TOP);
            Why {
                kpi: kpi.name.clone(),
                period: period.clone(),
                baseline_label: None,
                actual: period.actual,
                previous: period.previous,
                change: period.change,
                change_pct: period.change_pct,
                drivers,
                segments,
                notes: vec![format!(
                    "explain could not run ({reason}); drivers and single-dimension segments are read from kpi_drivers and kpi_breakdowns"
                )],
            }
        }
    }
}

fn abs(v: Option<f64>) -> f64 {
    v.map_or(0.0, f64::abs)
}

/// Attributed drivers first, largest contribution first.
fn sort_drivers(drivers: &mut [DriverMove]) {
    drivers.sort_by(|a, b| {
        let (a, b) = (&a.driver, &b.driver);
        (a.method == "none")
            .cmp(&(b.method == "none"))
            .then(abs(b.contribution).total_cmp(&abs(a.contribution)))
    });
}

fn from_explanation(
    model: &SemanticModel,
    kpi: &KpiReport,
    period: &KpiRow,
    a: Explanation,
    notes: Vec<String>,
) -> Why {
    let mut drivers: Vec<DriverMove> = a
        .drivers
        .into_iter()
        .map(|d| {
            let (label, format) = metric_label_format(model, &d.metric);
            DriverMove {
                driver: d,
                label,
                format,
            }
        })
        .collect();
    sort_drivers(&mut drivers);
    let segments = a
        .root_causes
        .into_iter()
        .map(|c| SegmentMove {
            segment: c
                .segment
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, Some(s)),
                    serde_json::Value::Null => (k, None),
                    other => (k, Some(other.to_string())),
                })
                .collect(),
            actual: c.actual,
            previous: c.previous,
            change: c.change,
            share_of_change: c.share_of_change,
        })
        .collect();
    Why {
        kpi: kpi.name.clone(),
        period: period.clone(),
        baseline_label: Some(a.baseline.label),
        actual: a.actual,
        previous: a.previous,
        change: a.change,
        change_pct: a.change_pct,
        drivers,
        segments,
        notes,
    }
}

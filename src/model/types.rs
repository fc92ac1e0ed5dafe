//! Typed definitions: what a project means, with every string that had a
//! meaning turned into an enum, number, date or parsed SQL expression.

use std::path::PathBuf;

use chrono::NaiveDate;
use sqlparser::ast;

use crate::source::{Span, Spanned};

pub type Name = Spanned<String>;

/// A parsed SQL expression from a definition field.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlExpr {
    pub expr: ast::Expr,
    /// The text after templating, as parsed.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    pub const ALL: [Grain; 5] = [
        Grain::Day,
        Grain::Week,
        Grain::Month,
        Grain::Quarter,
        Grain::Year,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Grain> {
        Grain::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher_is_better",
            Direction::LowerIsBetter => "lower_is_better",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    Leading,
    Lagging,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::Leading => "leading",
            Indicator::Lagging => "lagging",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Number,
    Currency,
    Percent,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Number => "number",
            Format::Currency => "currency",
            Format::Percent => "percent",
        }
    }

    /// A value for people, as `kpic run`, `explain` and the report show
    /// it: thousands separators, `$` for currency, percent for percent,
    /// `–` for NULL.
    pub fn display(self, v: Option<f64>) -> String {
        let Some(v) = v else { return "–".into() };
        if !v.is_finite() {
            return v.to_string();
        }
        let (prefix, digits) = match self {
            Format::Percent => return format!("{:.2}%", v * 100.0),
            Format::Currency => ("$", group_thousands(v.abs(), 0)),
            Format::Number => {
                let decimals = if v.fract() == 0.0 || v.abs() >= 1000.0 {
                    0
                } else {
                    2
                };
                ("", group_thousands(v.abs(), decimals))
            }
        };
        // No `-0`: a negative value that rounds to zero is shown as zero.
        if v < 0.0 && digits.chars().any(|c| c.is_ascii_digit() && c != '0') {
            format!("-{prefix}{digits}")
        } else {
            format!("{prefix}{digits}")
        }
    }
}

/// `v` (non-negative) with `decimals` decimals and thousands separators.
fn group_thousands(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// The date whose period is "current".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The latest time value in the sources the selected KPIs use.
    Latest,
    /// The engine's `current_date`.
    Today,
    Date(NaiveDate),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub dialect: Spanned<String>,
    /// Path of the DuckDB database, relative to the project root, or `:memory:`.
    pub database: String,
    pub target_dir: String,
    pub as_of: AsOf,
    pub memory_limit: Option<String>,
    /// The dbt project whose manifest resolved `ref()`/`source()`
    /// (kpic.yml's `dbt:` or `--dbt-project`).
    pub dbt: Option<std::sync::Arc<crate::dbt::DbtContext>>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub config: Config,
    pub sources: Vec<Source>,
    pub metrics: Vec<Metric>,
    pub kpis: Vec<Kpi>,
    /// Names of definitions that could not be typed (already reported):
    /// references to them are not reported again as unknown.
    pub broken_sources: std::collections::BTreeSet<String>,
    pub broken_metrics: std::collections::BTreeSet<String>,
}

impl Project {
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name.value == name)
    }
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name.value == name)
    }
    pub fn kpi(&self, name: &str) -> Option<&Kpi> {
        self.kpis.iter().find(|k| k.name.value == name)
    }
}

/// Where a source's rows come from.
#[derive(Debug, Clone)]
pub enum Relation {
    /// Local file(s) read by DuckDB; `table` names the warehouse relation
    /// used when compiling for another engine.
    Path {
        path: Spanned<String>,
        table: Option<Spanned<ast::ObjectName>>,
    },
    Table(Spanned<ast::ObjectName>),
    Sql(Spanned<Box<ast::Query>>),
    /// A dbt model, resolved through the manifest (the relation of the same
    /// name until the dbt integration is configured).
    DbtRef(Spanned<ast::ObjectName>),
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: Name,
    pub span: Span,
    pub label: Option<String>,
    pub description: Option<String>,
    pub relation: Relation,
    pub time: Option<SqlExpr>,
    pub dimensions: Vec<Dimension>,
    pub joins: Vec<Join>,
}

#[derive(Debug, Clone)]
pub struct Dimension {
    pub name: Name,
    pub label: Option<String>,
    pub description: Option<String>,
    /// The column of the same name when no `expr` is given.
    pub expr: SqlExpr,
}

#[derive(Debug, Clone)]
pub struct Join {
    pub source: Name,
    pub span: Span,
    pub on: JoinOn,
}

#[derive(Debug, Clone)]
pub enum JoinOn {
    /// `on: customer_id`: the same column on both sides.
    Column(Spanned<String>),
    /// `on: "orders.cust_id = customers.id"`
    Expr(SqlExpr),
}

/// How a measure accumulates over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accumulation {
    /// The period's own rows.
    None,
    /// `window: N days`: the N days ending at the period's end.
    Window { days: u32 },
    /// `window: all`: from the first row of data.
    All,
    /// `to_date: G`: from the start of the G period containing the period start.
    ToDate(Grain),
}

/// Which daily value of a `window`/`to_date` metric stands for a longer
/// period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodAgg {
    /// The value on the period's last day (to date for the current period).
    Last,
    /// The value on the period's first day.
    First,
    /// The mean of the daily values over the period's days (so far).
    Average,
}

impl PeriodAgg {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodAgg::Last => "last",
            PeriodAgg::First => "first",
            PeriodAgg::Average => "average",
        }
    }
}

#[derive(Debug, Clone)]
pub enum MetricKind {
    Measure {
        source: Name,
        measure: SqlExpr,
        filter: Option<SqlExpr>,
        accumulation: Accumulation,
    },
    Derived {
        expr: SqlExpr,
    },
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: Name,
    pub span: Span,
    pub label: Option<String>,
    pub description: Option<String>,
    pub format: Format,
    pub fill_null: Option<f64>,
    pub kind: MetricKind,
    pub period_agg: PeriodAgg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Previous,
    LastYear,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Absolute(f64),
    /// `{change: +15%, vs: last_year}`: `change` as a fraction (0.15).
    Change {
        change: f64,
        vs: Compare,
    },
    /// Per-period values (from `values:` or a target file), keyed by the
    /// period label of the KPI's grain.
    Values(Vec<(String, f64)>),
}

#[derive(Debug, Clone)]
pub struct Kpi {
    pub name: Name,
    pub span: Span,
    pub metric: Name,
    pub label: Option<String>,
    pub description: Option<String>,
    pub objective: Option<String>,
    pub owner: Option<Spanned<String>>,
    pub grain: Grain,
    pub direction: Direction,
    pub indicator: Option<Indicator>,
    pub target: Option<Spanned<Target>>,
    /// A `target` was given but could not be read (reported by `model`):
    /// `target` is `None`, yet the KPI is not one without a target.
    pub target_invalid: bool,
    pub tolerance: f64,
    pub filter: Option<SqlExpr>,
    pub drivers: Option<Vec<Name>>,
    pub decomposition: Option<SqlExpr>,
    pub breakdowns: Vec<Name>,
    pub related: Vec<Name>,
    pub rationale: Option<String>,
    pub measurement: Option<String>,
    pub review: Option<String>,
    pub action_plan: Option<String>,
}

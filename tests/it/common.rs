//! Shared helpers for the integration tests: temporary projects, running the
//! `kpic` binary, reading the DuckDB output tables, and an independent
//! calendar/arithmetic oracle (plain chrono + Rust, no kpic code) used to
//! compute expected values from the same rows a test writes to its CSVs.
//!
//! Nothing here imports the `kpic` crate: expected numbers must never come
//! from the implementation under test.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use chrono::{Datelike, Duration, NaiveDate, Weekday};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// Parses `YYYY-MM-DD` (test literals only).
pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("bad date literal in test: {s:?}: {e}"))
}

pub fn ymd(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

// ---------------------------------------------------------------------------
// Projects and running kpic
// ---------------------------------------------------------------------------

/// A throw-away project directory.
pub struct Project {
    dir: TempDir,
}

impl Project {
    /// A project made of `(relative path, text)` files.
    pub fn new(files: &[(&str, &str)]) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("kpic-it-")
            .tempdir()
            .expect("create temp dir");
        let p = Project { dir };
        for (rel, text) in files {
            p.write(rel, text);
        }
        p
    }

    /// A copy of `fixtures/projects/<name>/` in a temporary directory (so
    /// whatever kpic writes under `target/` never lands in the repository).
    pub fn from_fixture(name: &str) -> Project {
        let src = fixture_dir(name);
        assert!(
            src.is_dir(),
            "fixture project {} does not exist",
            src.display()
        );
        let p = Project::new(&[]);
        copy_dir(&src, p.path());
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn read(&self, rel: &str) -> String {
        let path = self.path().join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// `<project>/target/t.duckdb`, the database every test run writes.
    pub fn db_path(&self) -> PathBuf {
        self.path().join("target").join("t.duckdb")
    }

    /// Runs `kpic --project DIR --color never ARGS...` and returns its output
    /// whatever the exit code.
    pub fn kpic(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpic"));
        cmd.arg("--project")
            .arg(self.path())
            .args(["--color", "never"])
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1");
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot start kpic ({}): {e}", env!("CARGO_BIN_EXE_kpic")))
    }

    /// `kpic run --db <project>/target/t.duckdb [--as-of DATE] [--select NAME...]`,
    /// whatever the exit code.
    pub fn try_run(&self, as_of: Option<&str>, select: &[&str]) -> Output {
        std::fs::create_dir_all(self.path().join("target")).expect("create target dir");
        let db = self.db_path().to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec!["run", "--db", &db];
        if let Some(a) = as_of {
            args.push("--as-of");
            args.push(a);
        }
        for s in select {
            args.push("--select");
            args.push(s);
        }
        self.kpic(&args)
    }

    /// `kpic run --as-of DATE`; asserts exit code 0 and returns the database.
    pub fn run(&self, as_of: &str) -> Db {
        let out = self.try_run(Some(as_of), &[]);
        self.expect_success(&out, &format!("kpic run --as-of {as_of}"));
        self.db()
    }

    /// `kpic run --as-of DATE --select NAME...`; asserts success.
    pub fn run_select(&self, as_of: &str, select: &[&str]) -> Db {
        let out = self.try_run(Some(as_of), select);
        self.expect_success(
            &out,
            &format!("kpic run --as-of {as_of} --select {select:?}"),
        );
        self.db()
    }

    /// `kpic run` without `--as-of` (the project's default `as_of`).
    pub fn run_default_as_of(&self) -> Db {
        let out = self.try_run(None, &[]);
        self.expect_success(&out, "kpic run (default as_of)");
        self.db()
    }

    pub fn expect_success(&self, out: &Output, what: &str) {
        if !out.status.success() {
            panic!(
                "`{what}` failed in {} with {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                self.path().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
            );
        }
    }

    pub fn db(&self) -> Db {
        Db {
            path: self.db_path(),
        }
    }
}

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("projects")
        .join(name)
}

/// Copies a directory tree (skipping `target/`).
pub fn copy_tree(from: &Path, to: &Path) {
    copy_dir(from, to)
}

/// The project's model YAML with a `table: <file stem>` next to every
/// source `path:`, so other engines can compile it (SPEC §3.1: `path` on
/// DuckDB, `table` elsewhere). The engine tests load each file into the
/// table of that name.
pub fn add_tables(p: &Project) {
    fn visit(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit(&path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("read model file");
                let mut out = String::new();
                for line in text.lines() {
                    out.push_str(line);
                    out.push('\n');
                    let trimmed = line.trim_start();
                    if let Some(file) = trimmed.strip_prefix("path: ")
                        && !text.contains("\n    table:")
                    {
                        let indent = &line[..line.len() - trimmed.len()];
                        let stem = Path::new(file.trim())
                            .file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or("data");
                        out.push_str(&format!("{indent}table: {stem}\n"));
                    }
                }
                std::fs::write(&path, out).expect("write model file");
            }
        }
    }
    visit(&p.path().join("models"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read dir {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
        }
    }
}

/// A CSV text from a header and rows of already formatted cells.
pub fn csv_text(header: &str, rows: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from(header);
    s.push('\n');
    for r in rows {
        s.push_str(&r);
        s.push('\n');
    }
    s
}

/// Reads a simple CSV (no quoting) into header + rows of cells.
pub fn read_simple_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .expect("csv has a header")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
        .collect();
    (header, rows)
}

// ---------------------------------------------------------------------------
// Reading the output tables
// ---------------------------------------------------------------------------

/// The DuckDB database written by a run.
pub struct Db {
    pub path: PathBuf,
}

impl Db {
    /// Opens the database read-only (panics with a clear message if absent).
    pub fn conn(&self) -> duckdb::Connection {
        assert!(
            self.path.exists(),
            "kpic exited 0 but wrote no database at {}",
            self.path.display()
        );
        let config = duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .expect("duckdb read-only config");
        duckdb::Connection::open_with_flags(&self.path, config)
            .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", self.path.display()))
    }

    /// All rows of `kpi_results`, ordered by kpi then period_start.
    pub fn results(&self) -> Results {
        let conn = self.conn();
        let sql = "SELECT kpi, period, CAST(period_start AS VARCHAR), CAST(period_end AS VARCHAR), \
                   is_complete, CAST(actual AS DOUBLE), CAST(target AS DOUBLE), \
                   CAST(attainment AS DOUBLE), status, CAST(projected AS DOUBLE), \
                   CAST(previous AS DOUBLE), CAST(change AS DOUBLE), CAST(change_pct AS DOUBLE), \
                   CAST(last_year AS DOUBLE), CAST(yoy_change_pct AS DOUBLE), \
                   CAST(numerator AS DOUBLE), CAST(denominator AS DOUBLE), \
                   CAST(label AS VARCHAR), CAST(metric AS VARCHAR), CAST(grain AS VARCHAR), \
                   CAST(direction AS VARCHAR), CAST(indicator AS VARCHAR), CAST(owner AS VARCHAR) \
                   FROM kpi_results ORDER BY kpi, period_start";
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| {
            panic!(
                "kpi_results cannot be read from {}: {e}",
                self.path.display()
            )
        });
        let rows = stmt
            .query_map([], |r| {
                Ok(ResultRow {
                    kpi: r.get(0)?,
                    period: r.get(1)?,
                    period_start: r.get(2)?,
                    period_end: r.get(3)?,
                    is_complete: r.get(4)?,
                    actual: r.get(5)?,
                    target: r.get(6)?,
                    attainment: r.get(7)?,
                    status: r.get(8)?,
                    projected: r.get(9)?,
                    previous: r.get(10)?,
                    change: r.get(11)?,
                    change_pct: r.get(12)?,
                    last_year: r.get(13)?,
                    yoy_change_pct: r.get(14)?,
                    numerator: r.get(15)?,
                    denominator: r.get(16)?,
                    label: r.get(17)?,
                    metric: r.get(18)?,
                    grain: r.get(19)?,
                    direction: r.get(20)?,
                    indicator: r.get(21)?,
                    owner: r.get(22)?,
                })
            })
            .unwrap_or_else(|e| panic!("query kpi_results: {e}"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("read kpi_results rows: {e}"));
        Results { rows }
    }

    /// All rows of `kpi_metrics`, ordered by metric, grain, period_start.
    pub fn metrics(&self) -> Vec<MetricRow> {
        let conn = self.conn();
        let sql = "SELECT metric, grain, period, CAST(period_start AS VARCHAR), \
                   CAST(period_end AS VARCHAR), CAST(value AS DOUBLE) \
                   FROM kpi_metrics ORDER BY metric, grain, period_start";
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| {
            panic!(
                "kpi_metrics cannot be read from {}: {e}",
                self.path.display()
            )
        });
        stmt.query_map([], |r| {
            Ok(MetricRow {
                metric: r.get(0)?,
                grain: r.get(1)?,
                period: r.get(2)?,
                period_start: r.get(3)?,
                period_end: r.get(4)?,
                value: r.get(5)?,
            })
        })
        .unwrap_or_else(|e| panic!("query kpi_metrics: {e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("read kpi_metrics rows: {e}"))
    }

    /// All rows of `kpi_definitions`, ordered by kpi.
    pub fn definitions(&self) -> Vec<DefinitionRow> {
        let conn = self.conn();
        let text_cols = DEFINITION_TEXT_COLUMNS
            .iter()
            .map(|c| format!("CAST({c} AS VARCHAR)"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {text_cols}, CAST(tolerance AS DOUBLE) FROM kpi_definitions ORDER BY kpi"
        );
        let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| {
            panic!(
                "kpi_definitions cannot be read from {}: {e}",
                self.path.display()
            )
        });
        let n = DEFINITION_TEXT_COLUMNS.len();
        stmt.query_map([], |r| {
            let mut text = Vec::with_capacity(n);
            for i in 0..n {
                text.push(r.get::<_, Option<String>>(i)?);
            }
            Ok(DefinitionRow {
                text,
                tolerance: r.get(n)?,
            })
        })
        .unwrap_or_else(|e| panic!("query kpi_definitions: {e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("read kpi_definitions rows: {e}"))
    }

    /// `column name -> data type` of a table, from information_schema.
    pub fn column_types(&self, table: &str) -> Vec<(String, String)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_name = ? ORDER BY ordinal_position",
            )
            .expect("prepare information_schema query");
        stmt.query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .expect("query information_schema")
        .collect::<Result<Vec<_>, _>>()
        .expect("read information_schema")
    }
}

#[derive(Debug, Clone)]
pub struct ResultRow {
    pub kpi: String,
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub is_complete: Option<bool>,
    pub actual: Option<f64>,
    pub target: Option<f64>,
    pub attainment: Option<f64>,
    pub status: Option<String>,
    pub projected: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub change_pct: Option<f64>,
    pub last_year: Option<f64>,
    pub yoy_change_pct: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub label: Option<String>,
    pub metric: Option<String>,
    pub grain: Option<String>,
    pub direction: Option<String>,
    pub indicator: Option<String>,
    pub owner: Option<String>,
}

impl ResultRow {
    /// A numeric column by name.
    pub fn num(&self, col: &str) -> Option<f64> {
        match col {
            "actual" => self.actual,
            "target" => self.target,
            "attainment" => self.attainment,
            "projected" => self.projected,
            "previous" => self.previous,
            "change" => self.change,
            "change_pct" => self.change_pct,
            "last_year" => self.last_year,
            "yoy_change_pct" => self.yoy_change_pct,
            "numerator" => self.numerator,
            "denominator" => self.denominator,
            other => panic!("test bug: unknown numeric column {other}"),
        }
    }

    /// Asserts a numeric column (1e-9 relative tolerance; None = SQL NULL).
    pub fn check(&self, col: &str, expected: Option<f64>) -> &Self {
        let ctx = format!(
            "kpi_results kpi={} period={} column={col}",
            self.kpi, self.period
        );
        assert_num(&ctx, expected, self.num(col));
        self
    }

    pub fn check_status(&self, expected: &str) -> &Self {
        assert_eq!(
            self.status.as_deref(),
            Some(expected),
            "kpi_results kpi={} period={} column=status",
            self.kpi,
            self.period
        );
        self
    }

    pub fn check_complete(&self, expected: bool) -> &Self {
        assert_eq!(
            self.is_complete,
            Some(expected),
            "kpi_results kpi={} period={} column=is_complete",
            self.kpi,
            self.period
        );
        self
    }

    pub fn check_bounds(&self, start: &str, end: &str) -> &Self {
        assert_eq!(
            (self.period_start.as_str(), self.period_end.as_str()),
            (start, end),
            "kpi_results kpi={} period={} columns=(period_start, period_end)",
            self.kpi,
            self.period
        );
        self
    }
}

/// `kpi_results`, with lookups that fail with readable messages.
pub struct Results {
    pub rows: Vec<ResultRow>,
}

impl Results {
    pub fn kpis(&self) -> Vec<String> {
        let mut k: Vec<String> = self.rows.iter().map(|r| r.kpi.clone()).collect();
        k.dedup();
        k
    }

    /// The rows of one KPI, ordered by period_start (panics if none).
    pub fn kpi(&self, kpi: &str) -> Vec<&ResultRow> {
        let rows: Vec<&ResultRow> = self.rows.iter().filter(|r| r.kpi == kpi).collect();
        assert!(
            !rows.is_empty(),
            "kpi_results has no rows for kpi {kpi:?}; KPIs present: {:?}",
            self.kpis()
        );
        rows
    }

    /// The periods (labels) of one KPI, in order.
    pub fn periods(&self, kpi: &str) -> Vec<String> {
        self.kpi(kpi).iter().map(|r| r.period.clone()).collect()
    }

    /// The row of one KPI and period (panics listing what exists).
    pub fn get(&self, kpi: &str, period: &str) -> &ResultRow {
        let matches: Vec<&ResultRow> = self
            .rows
            .iter()
            .filter(|r| r.kpi == kpi && r.period == period)
            .collect();
        match matches.as_slice() {
            [one] => one,
            [] => panic!(
                "kpi_results has no row kpi={kpi} period={period}; periods of {kpi}: {:?}",
                self.rows
                    .iter()
                    .filter(|r| r.kpi == kpi)
                    .map(|r| r.period.as_str())
                    .collect::<Vec<_>>()
            ),
            many => panic!(
                "kpi_results has {} rows for kpi={kpi} period={period} (expected one)",
                many.len()
            ),
        }
    }

    /// A printable table of one KPI (for assertion messages).
    pub fn dump(&self, kpi: &str) -> String {
        let mut s = String::new();
        for r in self.rows.iter().filter(|r| r.kpi == kpi) {
            let _ = writeln!(
                s,
                "{} {} [{}, {}) complete={:?} actual={:?} target={:?} status={:?} projected={:?} previous={:?} last_year={:?}",
                r.kpi,
                r.period,
                r.period_start,
                r.period_end,
                r.is_complete,
                r.actual,
                r.target,
                r.status,
                r.projected,
                r.previous,
                r.last_year
            );
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct MetricRow {
    pub metric: String,
    pub grain: String,
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub value: Option<f64>,
}

/// Finds the single `kpi_metrics` row of (metric, grain, period).
pub fn metric_row<'a>(
    rows: &'a [MetricRow],
    metric: &str,
    grain: &str,
    period: &str,
) -> &'a MetricRow {
    let matches: Vec<&MetricRow> = rows
        .iter()
        .filter(|r| r.metric == metric && r.grain == grain && r.period == period)
        .collect();
    match matches.as_slice() {
        [one] => one,
        [] => panic!(
            "kpi_metrics has no row metric={metric} grain={grain} period={period}; rows of {metric}: {:?}",
            rows.iter()
                .filter(|r| r.metric == metric)
                .map(|r| format!("{}/{}", r.grain, r.period))
                .collect::<Vec<_>>()
        ),
        many => panic!(
            "kpi_metrics has {} rows for metric={metric} grain={grain} period={period} (expected exactly one)",
            many.len()
        ),
    }
}

pub fn check_metric(
    rows: &[MetricRow],
    metric: &str,
    grain: &str,
    period: &str,
    expected: Option<f64>,
) {
    let row = metric_row(rows, metric, grain, period);
    let ctx = format!("kpi_metrics metric={metric} grain={grain} period={period} column=value");
    assert_num(&ctx, expected, row.value);
}

pub const DEFINITION_TEXT_COLUMNS: [&str; 19] = [
    "kpi",
    "label",
    "description",
    "metric",
    "objective",
    "owner",
    "grain",
    "direction",
    "indicator",
    "format",
    "rationale",
    "measurement",
    "review",
    "action_plan",
    "related",
    "drivers",
    "breakdowns",
    "definition_hash",
    "computed_at",
];

#[derive(Debug, Clone)]
pub struct DefinitionRow {
    text: Vec<Option<String>>,
    pub tolerance: Option<f64>,
}

impl DefinitionRow {
    pub fn get(&self, col: &str) -> Option<&str> {
        let i = DEFINITION_TEXT_COLUMNS
            .iter()
            .position(|c| *c == col)
            .unwrap_or_else(|| panic!("test bug: unknown kpi_definitions column {col}"));
        self.text[i].as_deref()
    }

    pub fn check(&self, col: &str, expected: Option<&str>) -> &Self {
        assert_eq!(
            self.get(col),
            expected,
            "kpi_definitions kpi={:?} column={col}",
            self.get("kpi")
        );
        self
    }
}

pub fn definition<'a>(rows: &'a [DefinitionRow], kpi: &str) -> &'a DefinitionRow {
    let m: Vec<&DefinitionRow> = rows.iter().filter(|r| r.get("kpi") == Some(kpi)).collect();
    match m.as_slice() {
        [one] => one,
        other => panic!(
            "kpi_definitions has {} rows for kpi {kpi:?}; KPIs present: {:?}",
            other.len(),
            rows.iter().map(|r| r.get("kpi")).collect::<Vec<_>>()
        ),
    }
}

// ---------------------------------------------------------------------------
// Number comparison
// ---------------------------------------------------------------------------

pub fn close(expected: f64, actual: f64) -> bool {
    if expected == actual {
        return true;
    }
    let scale = expected.abs().max(actual.abs());
    (expected - actual).abs() <= 1e-9 * scale.max(1e-300) || (expected - actual).abs() < 1e-12
}

/// Asserts `actual` equals `expected` within 1e-9 relative tolerance, both
/// being SQL NULL (None) alike.
#[track_caller]
pub fn assert_num(ctx: &str, expected: Option<f64>, actual: Option<f64>) {
    match (expected, actual) {
        (None, None) => {}
        (Some(e), Some(a)) if close(e, a) => {}
        _ => panic!("{ctx}: expected {expected:?}, got {actual:?}"),
    }
}

/// Division as SQL in kpic: NULL when either side is NULL or the divisor is 0.
pub fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

pub fn sub(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

// ---------------------------------------------------------------------------
// Calendar oracle (SPEC §3.3 period labels, §7 time and periods)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    pub fn name(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }
}

pub fn start_of(g: Grain, date: NaiveDate) -> NaiveDate {
    match g {
        Grain::Day => date,
        Grain::Week => date - Duration::days(date.weekday().num_days_from_monday() as i64),
        Grain::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap(),
        Grain::Quarter => {
            NaiveDate::from_ymd_opt(date.year(), (date.month() - 1) / 3 * 3 + 1, 1).unwrap()
        }
        Grain::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap(),
    }
}

fn add_months(date: NaiveDate, months: i32) -> NaiveDate {
    let total = date.year() * 12 + date.month0() as i32 + months;
    NaiveDate::from_ymd_opt(total.div_euclid(12), total.rem_euclid(12) as u32 + 1, 1).unwrap()
}

/// Exclusive end of the period starting at `start`.
pub fn end_of(g: Grain, start: NaiveDate) -> NaiveDate {
    match g {
        Grain::Day => start + Duration::days(1),
        Grain::Week => start + Duration::days(7),
        Grain::Month => add_months(start, 1),
        Grain::Quarter => add_months(start, 3),
        Grain::Year => add_months(start, 12),
    }
}

pub fn label_of(g: Grain, start: NaiveDate) -> String {
    match g {
        Grain::Day => ymd(start),
        Grain::Week => {
            let w = start.iso_week();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Grain::Month => format!("{:04}-{:02}", start.year(), start.month()),
        Grain::Quarter => format!("{:04}-Q{}", start.year(), (start.month() - 1) / 3 + 1),
        Grain::Year => format!("{:04}", start.year()),
    }
}

pub fn previous_start(g: Grain, start: NaiveDate) -> NaiveDate {
    start_of(g, start - Duration::days(1))
}

/// Start of the same period one year earlier; for weeks, week W of the
/// previous ISO year (None when that year has no such week).
pub fn last_year_start(g: Grain, start: NaiveDate) -> Option<NaiveDate> {
    match g {
        Grain::Week => {
            let w = start.iso_week();
            NaiveDate::from_isoywd_opt(w.year() - 1, w.week(), Weekday::Mon)
        }
        // Day grain: the same calendar day a year earlier (never asked for Feb 29 here).
        Grain::Day => NaiveDate::from_ymd_opt(start.year() - 1, start.month(), start.day()),
        _ => Some(add_months(start, -12)),
    }
}

/// Period starts from the period of `first` to the period of `last`.
pub fn period_starts(g: Grain, first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut s = start_of(g, first);
    let stop = start_of(g, last);
    while s <= stop {
        out.push(s);
        s = end_of(g, s);
    }
    out
}

/// What kpi_results must hold for one period of an additive (sum/count) KPI.
#[derive(Debug, Clone)]
pub struct Expect {
    pub period: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub complete: bool,
    pub actual: f64,
    pub projected: f64,
    pub previous: Option<f64>,
    pub last_year: Option<f64>,
    /// The whole previous / last-year periods (what relative targets use).
    pub previous_whole: Option<f64>,
    pub last_year_whole: Option<f64>,
}

/// Independent model of SPEC §7 for an additive metric: `facts` are the
/// (time, value) contributions of the rows that pass the metric's filter;
/// `first_raw` is the earliest raw time of the source (filters ignored).
pub fn additive(
    g: Grain,
    facts: &[(NaiveDate, f64)],
    first_raw: NaiveDate,
    as_of: NaiveDate,
) -> Vec<Expect> {
    let limit = as_of + Duration::days(1);
    let sum = |from: NaiveDate, to: NaiveDate| -> f64 {
        facts
            .iter()
            .filter(|(t, _)| *t >= from && *t < to && *t < limit)
            .map(|(_, v)| *v)
            .sum()
    };
    let first = start_of(g, first_raw);
    period_starts(g, first_raw, as_of)
        .into_iter()
        .map(|start| {
            let end = end_of(g, start);
            let complete = end <= limit;
            let elapsed = (limit - start).num_days();
            let days = (end - start).num_days();
            let actual = sum(start, if complete { end } else { limit });
            let projected = if complete {
                actual
            } else {
                actual * days as f64 / elapsed as f64
            };
            let like_for_like = |cs: Option<NaiveDate>| -> Option<f64> {
                let cs = cs.filter(|cs| *cs >= first)?;
                let ce = end_of(g, cs);
                let stop = if complete {
                    ce
                } else {
                    (cs + Duration::days(elapsed)).min(ce)
                };
                Some(sum(cs, stop))
            };
            let whole = |cs: Option<NaiveDate>| -> Option<f64> {
                let cs = cs.filter(|cs| *cs >= first)?;
                Some(sum(cs, end_of(g, cs)))
            };
            let ps = Some(previous_start(g, start));
            let ls = last_year_start(g, start);
            Expect {
                period: label_of(g, start),
                start,
                end,
                complete,
                actual,
                projected,
                previous: like_for_like(ps),
                last_year: like_for_like(ls),
                previous_whole: whole(ps),
                last_year_whole: whole(ls),
            }
        })
        .collect()
}

/// Checks every row of `kpi` against the oracle: same periods in the same
/// order, bounds, completeness, actual, projected, previous, change,
/// change_pct, last_year, yoy_change_pct.
pub fn check_additive(results: &Results, kpi: &str, expected: &[Expect]) {
    let rows = results.kpi(kpi);
    let got: Vec<&str> = rows.iter().map(|r| r.period.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|e| e.period.as_str()).collect();
    assert_eq!(
        got, want,
        "kpi_results periods of {kpi} (first period .. period of as_of, no gaps)"
    );
    for (row, e) in rows.iter().zip(expected) {
        row.check_bounds(&ymd(e.start), &ymd(e.end))
            .check_complete(e.complete)
            .check("actual", Some(e.actual))
            .check("projected", Some(e.projected))
            .check("previous", e.previous)
            .check("change", e.previous.map(|p| e.actual - p))
            .check(
                "change_pct",
                div(e.previous.map(|p| e.actual - p), e.previous),
            )
            .check("last_year", e.last_year)
            .check(
                "yoy_change_pct",
                div(e.last_year.map(|l| e.actual - l), e.last_year),
            );
    }
}

/// Finds the oracle row of a period label.
pub fn expect_of<'a>(expected: &'a [Expect], period: &str) -> &'a Expect {
    expected
        .iter()
        .find(|e| e.period == period)
        .unwrap_or_else(|| panic!("test bug: oracle has no period {period}"))
}

/// SPEC §3.3 status rule, from the value status is judged on (projected).
pub fn status_of(
    value: Option<f64>,
    target: Option<f64>,
    higher_is_better: bool,
    tol: f64,
) -> &'static str {
    let Some(v) = value else { return "no_data" };
    let Some(t) = target else { return "no_target" };
    if higher_is_better {
        if v >= t {
            "on_track"
        } else if v >= t * (1.0 - tol) {
            "at_risk"
        } else {
            "off_track"
        }
    } else if v <= t {
        "on_track"
    } else if v <= t * (1.0 + tol) {
        "at_risk"
    } else {
        "off_track"
    }
}

// Self-checks of the oracle itself: these run without kpic.
#[test]
fn oracle_calendar_facts() {
    // ISO weeks across the 2020/2021 boundary; 2020 has 53 ISO weeks, 2019 has 52.
    assert_eq!(label_of(Grain::Week, d("2020-12-28")), "2020-W53");
    assert_eq!(label_of(Grain::Week, d("2021-01-04")), "2021-W01");
    assert_eq!(start_of(Grain::Week, d("2021-01-03")), d("2020-12-28"));
    assert_eq!(last_year_start(Grain::Week, d("2020-12-28")), None);
    assert_eq!(
        last_year_start(Grain::Week, d("2021-01-04")),
        Some(d("2019-12-30"))
    );
    assert_eq!(label_of(Grain::Week, d("2019-12-30")), "2020-W01");
    assert_eq!(start_of(Grain::Week, d("2026-01-01")), d("2025-12-29"));
    assert_eq!(label_of(Grain::Week, d("2025-12-29")), "2026-W01");
    assert_eq!(label_of(Grain::Week, d("2026-01-26")), "2026-W05");
    assert_eq!(label_of(Grain::Quarter, d("2026-02-01")), "2026-Q1");
    assert_eq!(end_of(Grain::Month, d("2024-02-01")), d("2024-03-01"));
    assert_eq!(end_of(Grain::Quarter, d("2025-10-01")), d("2026-01-01"));
    assert_eq!(
        last_year_start(Grain::Month, d("2024-03-01")),
        Some(d("2023-03-01"))
    );
    assert_eq!(
        period_starts(Grain::Month, d("2023-11-20"), d("2024-02-03")).len(),
        4
    );
    assert_eq!(status_of(Some(95.0), Some(100.0), true, 0.1), "at_risk");
    assert_eq!(status_of(Some(100.0), Some(96.0), false, 0.1), "at_risk");
}

// ---------------------------------------------------------------------------
// kpi_breakdowns and kpi_drivers
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct BreakdownRow {
    pub kpi: String,
    pub period: String,
    pub period_start: String,
    pub dimension: String,
    pub member: Option<String>,
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub contribution: Option<f64>,
    pub share_of_change: Option<f64>,
    pub mix_effect: Option<f64>,
    pub rate_effect: Option<f64>,
}

impl BreakdownRow {
    pub fn num(&self, col: &str) -> Option<f64> {
        match col {
            "actual" => self.actual,
            "previous" => self.previous,
            "change" => self.change,
            "contribution" => self.contribution,
            "share_of_change" => self.share_of_change,
            "mix_effect" => self.mix_effect,
            "rate_effect" => self.rate_effect,
            other => panic!("test bug: unknown kpi_breakdowns column {other}"),
        }
    }

    pub fn check(&self, col: &str, expected: Option<f64>) -> &Self {
        let ctx = format!(
            "kpi_breakdowns kpi={} period={} dimension={} member={:?} column={col}",
            self.kpi, self.period, self.dimension, self.member
        );
        assert_num(&ctx, expected, self.num(col));
        self
    }
}

#[derive(Debug, Clone)]
pub struct DriverRow {
    pub kpi: String,
    pub period: String,
    pub period_start: String,
    pub driver: String,
    pub actual: Option<f64>,
    pub previous: Option<f64>,
    pub change_pct: Option<f64>,
    pub contribution: Option<f64>,
    pub share_of_change: Option<f64>,
    pub method: Option<String>,
}

impl DriverRow {
    pub fn num(&self, col: &str) -> Option<f64> {
        match col {
            "actual" => self.actual,
            "previous" => self.previous,
            "change_pct" => self.change_pct,
            "contribution" => self.contribution,
            "share_of_change" => self.share_of_change,
            other => panic!("test bug: unknown kpi_drivers column {other}"),
        }
    }

    pub fn check(&self, col: &str, expected: Option<f64>) -> &Self {
        let ctx = format!(
            "kpi_drivers kpi={} period={} driver={} column={col}",
            self.kpi, self.period, self.driver
        );
        assert_num(&ctx, expected, self.num(col));
        self
    }

    pub fn check_method(&self, expected: &str) -> &Self {
        assert_eq!(
            self.method.as_deref(),
            Some(expected),
            "kpi_drivers kpi={} period={} driver={} column=method",
            self.kpi,
            self.period,
            self.driver
        );
        self
    }
}

impl Db {
    pub fn breakdowns(&self) -> Vec<BreakdownRow> {
        let conn = self.conn();
        let sql = "SELECT kpi, period, CAST(period_start AS VARCHAR), dimension, \
                   CAST(member AS VARCHAR), CAST(actual AS DOUBLE), CAST(previous AS DOUBLE), \
                   CAST(change AS DOUBLE), CAST(contribution AS DOUBLE), \
                   CAST(share_of_change AS DOUBLE), CAST(mix_effect AS DOUBLE), \
                   CAST(rate_effect AS DOUBLE) \
                   FROM kpi_breakdowns ORDER BY kpi, period_start, dimension, member";
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| {
            panic!(
                "kpi_breakdowns cannot be read from {}: {e}",
                self.path.display()
            )
        });
        stmt.query_map([], |r| {
            Ok(BreakdownRow {
                kpi: r.get(0)?,
                period: r.get(1)?,
                period_start: r.get(2)?,
                dimension: r.get(3)?,
                member: r.get(4)?,
                actual: r.get(5)?,
                previous: r.get(6)?,
                change: r.get(7)?,
                contribution: r.get(8)?,
                share_of_change: r.get(9)?,
                mix_effect: r.get(10)?,
                rate_effect: r.get(11)?,
            })
        })
        .unwrap_or_else(|e| panic!("query kpi_breakdowns: {e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("read kpi_breakdowns rows: {e}"))
    }

    pub fn drivers(&self) -> Vec<DriverRow> {
        let conn = self.conn();
        let sql = "SELECT kpi, period, CAST(period_start AS VARCHAR), driver, \
                   CAST(actual AS DOUBLE), CAST(previous AS DOUBLE), CAST(change_pct AS DOUBLE), \
                   CAST(contribution AS DOUBLE), CAST(share_of_change AS DOUBLE), \
                   CAST(method AS VARCHAR) \
                   FROM kpi_drivers ORDER BY kpi, period_start, driver";
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| {
            panic!(
                "kpi_drivers cannot be read from {}: {e}",
                self.path.display()
            )
        });
        stmt.query_map([], |r| {
            Ok(DriverRow {
                kpi: r.get(0)?,
                period: r.get(1)?,
                period_start: r.get(2)?,
                driver: r.get(3)?,
                actual: r.get(4)?,
                previous: r.get(5)?,
                change_pct: r.get(6)?,
                contribution: r.get(7)?,
                share_of_change: r.get(8)?,
                method: r.get(9)?,
            })
        })
        .unwrap_or_else(|e| panic!("query kpi_drivers: {e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("read kpi_drivers rows: {e}"))
    }
}

/// The breakdown rows of one KPI, period and dimension.
pub fn breakdowns_of<'a>(
    rows: &'a [BreakdownRow],
    kpi: &str,
    period: &str,
    dimension: &str,
) -> Vec<&'a BreakdownRow> {
    rows.iter()
        .filter(|r| r.kpi == kpi && r.period == period && r.dimension == dimension)
        .collect()
}

/// The single breakdown row of a member (None = the NULL member).
pub fn breakdown<'a>(
    rows: &'a [BreakdownRow],
    kpi: &str,
    period: &str,
    dimension: &str,
    member: Option<&str>,
) -> &'a BreakdownRow {
    let m: Vec<&BreakdownRow> = breakdowns_of(rows, kpi, period, dimension)
        .into_iter()
        .filter(|r| r.member.as_deref() == member)
        .collect();
    match m.as_slice() {
        [one] => one,
        other => panic!(
            "kpi_breakdowns has {} rows for kpi={kpi} period={period} dimension={dimension} member={member:?}; members there: {:?}",
            other.len(),
            breakdowns_of(rows, kpi, period, dimension)
                .iter()
                .map(|r| r.member.clone())
                .collect::<Vec<_>>()
        ),
    }
}

/// The single driver row of (kpi, period, driver).
pub fn driver<'a>(rows: &'a [DriverRow], kpi: &str, period: &str, name: &str) -> &'a DriverRow {
    let m: Vec<&DriverRow> = rows
        .iter()
        .filter(|r| r.kpi == kpi && r.period == period && r.driver == name)
        .collect();
    match m.as_slice() {
        [one] => one,
        other => panic!(
            "kpi_drivers has {} rows for kpi={kpi} period={period} driver={name}; drivers of {kpi}: {:?}",
            other.len(),
            rows.iter()
                .filter(|r| r.kpi == kpi)
                .map(|r| format!("{}/{}", r.period, r.driver))
                .collect::<Vec<_>>()
        ),
    }
}

/// A real tool of the ecosystem tests, from the variable
/// `tests/tools/setup.sh` exports (`KPIC_DBT_VENV`, `KPIC_CHROMIUM`).
/// `None` means skip the test, unless `KPIC_TOOLS` is set (CI), where a
/// missing tool fails it.
pub fn tool(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ if std::env::var_os("KPIC_TOOLS").is_some() => {
            panic!("{var} is not set but KPIC_TOOLS is: run `eval \"$(tests/tools/setup.sh)\"`")
        }
        _ => {
            eprintln!("skipped: {var} not set (eval \"$(tests/tools/setup.sh)\" sets it)");
            None
        }
    }
}

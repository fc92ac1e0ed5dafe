//! Exec: runs compiled SQL on the embedded DuckDB. The only module that
//! mentions `duckdb::`.
//!
//! In: a [`CompiledSql`] and [`RunOptions`]. Out: the output tables,
//! replaced in one transaction (a failure rolls back and leaves the old
//! tables intact), and the KPI rows read back for printing. Also the
//! [`DuckDbCatalog`] that reads the schemas of local files for `check`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use duckdb::{AccessMode, Config, Connection};

mod session;

pub use session::{Cell, Session};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::model::{Project, Relation, Source};
use crate::semantic::{Catalog, Column};
use crate::sql::CompiledSql;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The database file, or `:memory:`.
    pub database: String,
    /// DuckDB memory limit, e.g. `2GB`.
    pub memory_limit: Option<String>,
    /// Interrupt the build after this long.
    pub timeout: Option<Duration>,
}

/// What a build reports while it runs, for a progress indicator. exec
/// calls it; the command line draws it (exec prints nothing). Every
/// method has an empty default.
pub trait BuildProgress {
    /// The build's statements start: `total` steps (BEGIN and COMMIT
    /// included).
    fn start(&self, _total: usize) {}
    /// Step `index` (0-based) of `total` starts; `what` says what it
    /// computes, for people (`KPI revenue: comparisons`).
    fn step(&self, _index: usize, _total: usize, _what: &str) {}
    /// The build ended (committed, failed or timed out).
    fn finish(&self) {}
}

/// No progress reporting.
pub struct NoProgress;

impl BuildProgress for NoProgress {}

/// The file format of [`Export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// CSV with a header row (DuckDB's `COPY … (FORMAT csv, HEADER)`).
    Csv,
    /// Parquet (DuckDB's `COPY … (FORMAT parquet)`), with the tables' types.
    Parquet,
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Parquet => "parquet",
        }
    }
}

/// Writes every output table and view, once committed, as
/// `dir/<name>.<extension>`.
#[derive(Debug, Clone)]
pub struct Export {
    pub dir: PathBuf,
    pub format: ExportFormat,
}

/// One kpi_results row, as printed by `kpic run`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KpiRow {
    pub kpi: String,
    pub label: Option<String>,
    pub metric: String,
    pub grain: String,
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub is_complete: bool,
    pub actual: Option<f64>,
    pub target: Option<f64>,
    pub attainment: Option<f64>,
    pub status: String,
    pub projected: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub change_pct: Option<f64>,
    pub last_year: Option<f64>,
    pub yoy_change_pct: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub direction: String,
    pub indicator: Option<String>,
    pub owner: Option<String>,
}

fn configure(conn: &Connection, root: &Path, memory_limit: Option<&str>) -> duckdb::Result<()> {
    // Relative `path:`s resolve against the project, wherever kpic runs.
    let root = root.to_string_lossy().replace('\'', "''");
    conn.execute_batch(&format!("SET file_search_path = '{root}'"))?;
    if let Some(limit) = memory_limit {
        conn.execute_batch(&format!(
            "SET memory_limit = '{}'",
            limit.replace('\'', "''")
        ))?;
    }
    Ok(())
}

fn database_path(root: &Path, database: &str) -> Option<PathBuf> {
    (database != ":memory:").then(|| root.join(database))
}

fn open(root: &Path, options: &RunOptions) -> Result<Connection, Diagnostic> {
    let fail = |e: String| {
        Diagnostic::new(
            Code::Database,
            format!(
                "cannot open the DuckDB database `{}`: {e}",
                options.database
            ),
        )
        .with_help("check the path and that no other process is writing to it")
    };
    let conn = match database_path(root, &options.database) {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
            }
            Connection::open(&path)
        }
        None => Connection::open_in_memory(),
    }
    .map_err(|e| fail(e.to_string()))?;
    configure(&conn, root, options.memory_limit.as_deref()).map_err(|e| {
        Diagnostic::new(Code::Database, format!("cannot configure DuckDB: {e}"))
            .with_help("a memory limit looks like `2GB` or `512MB`")
    })?;
    Ok(conn)
}

/// What the watchdog of [`watched`] shares with the work it bounds.
#[derive(Default)]
struct Watch {
    /// Set by the watchdog once the timeout has passed.
    fired: AtomicBool,
    /// The step the work is running (the work sets it, see [`Watch::enter`]).
    running: AtomicUsize,
    /// The step that was running when the timeout passed.
    fired_at: AtomicUsize,
}

impl Watch {
    /// The work starts step `step`.
    fn enter(&self, step: usize) {
        self.running.store(step, Ordering::SeqCst);
    }

    /// Whether the timeout has passed.
    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Runs `f` on the connection; once `timeout` has passed, the watchdog
/// records which step `f` was running and interrupts the connection's
/// query. Returns `f`'s result and, if the timeout passed, that step.
///
/// DuckDB clears a pending interrupt when the next query starts, so an
/// interrupt that lands between two statements is lost (and one that lands
/// while a statement writes its result may only stop the next one): work
/// made of several statements must check [`Watch::fired`] before each.
fn watched<T>(
    conn: &Connection,
    timeout: Option<Duration>,
    f: impl FnOnce(&Watch) -> T,
) -> (T, Option<usize>) {
    let watch = Arc::new(Watch::default());
    let Some(timeout) = timeout else {
        return (f(&watch), None);
    };
    let handle = conn.interrupt_handle();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watch_in = watch.clone();
    let watcher = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
            let running = watch_in.running.load(Ordering::SeqCst);
            watch_in.fired_at.store(running, Ordering::SeqCst);
            watch_in.fired.store(true, Ordering::SeqCst);
            handle.interrupt();
        }
    });
    let out = f(&watch);
    let _ = done_tx.send(());
    let _ = watcher.join();
    let fired_at = watch.fired().then(|| watch.fired_at.load(Ordering::SeqCst));
    (out, fired_at)
}

/// Runs `f` (one statement) on the connection, interrupting it after
/// `timeout`; the flag says whether the timeout passed.
fn with_timeout<T>(
    conn: &Connection,
    timeout: Option<Duration>,
    f: impl FnOnce() -> T,
) -> (T, bool) {
    let (out, fired_at) = watched(conn, timeout, |_| f());
    (out, fired_at.is_some())
}

/// Runs `statements` in one transaction: BEGIN is step 0, the statements
/// steps 1..=n, COMMIT step n + 1. On a failure, or once the watchdog has
/// fired, rolls back and returns the step and the engine's message.
fn run_in_transaction(
    conn: &Connection,
    statements: &[crate::sql::BuildStatement],
    watch: &Watch,
    progress: &dyn Fn(usize),
) -> Result<(), (usize, String)> {
    let rollback = |step: usize, e: String| {
        let _ = conn.execute_batch("ROLLBACK");
        Err((step, e))
    };
    progress(0);
    watch.enter(0);
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| (0, e.to_string()))?;
    for (i, st) in statements.iter().enumerate() {
        // The watchdog's interrupt may have been lost between two
        // statements (see `watched`): never start another statement once
        // the timeout has passed.
        if watch.fired() {
            return rollback(i + 1, "timed out".into());
        }
        progress(i + 1);
        watch.enter(i + 1);
        if let Err(e) = conn.execute_batch(&st.sql) {
            return rollback(i + 1, e.to_string());
        }
    }
    let commit = statements.len() + 1;
    if watch.fired() {
        return rollback(commit, "timed out".into());
    }
    progress(commit);
    watch.enter(commit);
    conn.execute_batch("COMMIT")
        .map_err(|e| (commit, e.to_string()))
}

/// Checks joins, then replaces the output tables and views in one
/// transaction.
pub fn run_build(
    project: &Project,
    compiled: &CompiledSql,
    options: &RunOptions,
) -> Result<RunOutcome, Diagnostics> {
    run_build_with(project, compiled, options, &NoProgress, None)
}

/// [`run_build`], reporting each step to `progress` and, once the new
/// tables are committed, writing them out as `export` says (on the same
/// connection, so a `:memory:` database can be exported too). A failed
/// export leaves the committed tables in place and is a KPI401.
pub fn run_build_with(
    project: &Project,
    compiled: &CompiledSql,
    options: &RunOptions,
    progress: &dyn BuildProgress,
    export: Option<&Export>,
) -> Result<RunOutcome, Diagnostics> {
    let conn = open(&project.root, options).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::new();
    for c in &compiled.checks {
        if c.check.keys.is_empty() {
            continue;
        }
        let sql = c.query.to_string();
        let found: duckdb::Result<Option<Vec<String>>> = conn.prepare(&sql).and_then(|mut st| {
            let mut rows = st.query([])?;
            match rows.next()? {
                Some(row) => {
                    let mut key = Vec::new();
                    for i in 0..c.check.keys.len() {
                        key.push(row.get::<_, Option<String>>(i)?.unwrap_or_default());
                    }
                    Ok(Some(key))
                }
                None => Ok(None),
            }
        });
        match found {
            Ok(Some(key)) => diags.push(
                Diagnostic::new(
                    Code::JoinFanOut,
                    format!(
                        "join from `{}` to `{}` duplicates rows: key {} = {} appears more than once in `{}`",
                        c.check.source,
                        c.check.joined,
                        c.check.keys.join(", "),
                        key.join(", "),
                        c.check.joined
                    ),
                )
                .at(c.check.span, "this join must be many-to-one")
                .with_help("join on a key that is unique in the joined source, or deduplicate it with a `sql:` source"),
            ),
            Ok(None) => {}
            Err(e) => diags.push(
                Diagnostic::new(Code::QueryFailed, format!("checking the join from `{}` to `{}` failed: {e}", c.check.source, c.check.joined))
                    .at(c.check.span, "this join"),
            ),
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let statements = build_statements(compiled);
    // Steps: 0 is BEGIN, 1..=n the statements, n + 1 the COMMIT.
    let label_of = |step: usize| match step {
        0 => "transaction",
        s if s > statements.len() => "commit",
        s => statements[s - 1].label.as_str(),
    };
    let total = statements.len() + 2;
    let descriptions: Vec<String> = (0..total)
        .map(|step| describe_step(project, label_of(step)))
        .collect();
    progress.start(total);
    let report = |step: usize| progress.step(step, total, &descriptions[step]);
    let (result, fired_at) = watched(&conn, options.timeout, |watch| {
        run_in_transaction(&conn, &statements, watch, &report)
    });
    progress.finish();
    if let Err((failed, e)) = result {
        // On a timeout, name the step that was running when it passed:
        // DuckDB may only notice the interrupt in a later statement.
        let label = label_of(fired_at.unwrap_or(failed));
        // Say whose SQL was running: the KPI a per-KPI step belongs to, the
        // KPIs whose rows an output statement writes, or the KPIs that read
        // a shared scan or aggregate (a timeout there is the usual case on
        // large data).
        let kpi = kpi_of_step(project, label);
        let output = compiled.outputs.iter().find(|o| o.table == label);
        let what = match (label, kpi, output) {
            ("transaction", _, _) => "starting the transaction".to_string(),
            ("commit", _, _) => "committing the new tables".to_string(),
            (_, Some(k), _) => format!("building `{label}` (KPI `{}`)", k.name.value),
            (_, None, Some(o)) => {
                let mut kpis: Vec<String> = o
                    .deps
                    .iter()
                    .filter_map(|d| kpi_of_step(project, d))
                    .map(|k| k.name.value.clone())
                    .collect();
                kpis.dedup();
                format!("building `{label}`{}", kpi_list("rows of", &kpis))
            }
            (_, None, None) => format!(
                "building `{label}`{}",
                kpi_list("read by", &kpis_reading(project, compiled, label))
            ),
        };
        let (code, message) = if fired_at.is_some() {
            (
                Code::Timeout,
                format!("{what} took longer than the timeout"),
            )
        } else {
            (
                Code::QueryFailed,
                format!("{what} failed: {}", first_lines(&e)),
            )
        };
        let mut d = Diagnostic::new(code, message).with_help(
            "the previous output tables are unchanged; run `kpic compile` to read the SQL",
        );
        if let Some(k) = kpi {
            d = d.at(k.name.span, "while computing this KPI");
        } else if let Some(span) = source_of_step(project, label) {
            d = d.at(span, "while reading this source");
        }
        return Err(d.into());
    }
    if let Some(export) = export {
        export_outputs(&conn, compiled, export).map_err(Diagnostics::from)?;
    }
    let rows = read_results(&conn).map_err(|e| {
        Diagnostics::from(Diagnostic::new(
            Code::QueryFailed,
            format!("reading kpi_results back failed: {e}"),
        ))
    })?;
    // The as_of the build used (decided in the engine for `latest`).
    let as_of = conn
        .query_row("SELECT CAST(as_of AS VARCHAR) FROM kpic_params", [], |r| {
            r.get(0)
        })
        .ok();
    Ok(RunOutcome { rows, as_of })
}

/// What a successful build wrote.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub rows: Vec<KpiRow>,
    /// The as_of date decided in the engine (`as_of: latest`).
    pub as_of: Option<String>,
}

/// The statements of `kpic run`, in one transaction: the shared steps
/// (scans, aggregates) as temporary tables, then each KPI step an output
/// table reads (`kpic_k_<kpi>_vals`, `_cmp`, `_drv`, `kpic_kb_<kpi>_eff`) as
/// a temporary table of its own, then the five output tables over them.
///
/// [`CompiledSql::build_statements`] inlines every KPI's steps as CTEs into
/// the output statements, so a timeout or an engine error while computing
/// one KPI could only be reported as "building `kpi_results`": the issue
/// asks that the error say which KPI's SQL was running. One statement per
/// KPI step gives the failing statement a KPI's name. The queries are the
/// same (each step with the steps it needs as CTEs, as `select_after`
/// renders them); a step several outputs read (`_cmp`) is now computed
/// once instead of once per output, and the output statements are unions
/// of small tables.
fn build_statements(compiled: &CompiledSql) -> Vec<crate::sql::BuildStatement> {
    use crate::sql::BuildStatement;
    let (mut statements, mut materialized) = compiled.setup_statements();
    let read_by_outputs: std::collections::BTreeSet<&str> = compiled
        .outputs
        .iter()
        .flat_map(|o| o.deps.iter().map(String::as_str))
        .collect();
    // `named` lists a step after the steps it reads, so a later step reads
    // the earlier ones' tables.
    for n in compiled
        .named
        .iter()
        .filter(|n| !n.shared && read_by_outputs.contains(n.name.as_str()))
    {
        let Some(q) = compiled.select_after(&n.name, &materialized) else {
            continue;
        };
        // Step names are `kpic_k_<kpi>_<step>`: KPI names are
        // `[a-z][a-z0-9_]*`, so the name needs no quoting.
        statements.push(BuildStatement {
            label: n.name.clone(),
            sql: format!("CREATE OR REPLACE TEMPORARY TABLE {} AS {q:#}", n.name),
        });
        materialized.insert(n.name.clone());
    }
    for o in &compiled.outputs {
        let Some(q) = compiled.select_after(&o.table, &materialized) else {
            continue;
        };
        statements.push(BuildStatement {
            label: o.table.clone(),
            sql: format!("CREATE OR REPLACE TABLE {} AS {q:#}", o.table),
        });
    }
    // Views over the output tables, in the same transaction: a reader sees
    // the old tables and view or the new ones.
    for v in &compiled.views {
        let view = crate::sql::Dialect::create_view(
            &crate::sql::dialect::DuckDb,
            &v.table,
            v.query.clone(),
        );
        statements.push(BuildStatement {
            label: v.table.clone(),
            sql: format!("{view:#}"),
        });
    }
    statements
}

/// A build step for people: `KPI revenue: comparisons`, `scanning orders`,
/// `writing kpi_results`.
fn describe_step(project: &Project, label: &str) -> String {
    match label {
        "transaction" => return "starting the transaction".into(),
        "commit" => return "committing the new tables".into(),
        _ => {}
    }
    if crate::sql::OUTPUT_TABLES.contains(&label) {
        return format!("writing {label}");
    }
    if crate::sql::OUTPUT_VIEWS.contains(&label) {
        return format!("creating view {label}");
    }
    if let Some(k) = kpi_of_step(project, label) {
        let name = &k.name.value;
        let (members, rest) = match label.strip_prefix("kpic_kb_") {
            Some(rest) => ("breakdown ", rest),
            None => ("", label.trim_start_matches("kpic_k_")),
        };
        let part = rest.get(name.len() + 1..).unwrap_or(rest);
        let part = match part {
            "vals" => "values and targets",
            "cmp" => "comparisons",
            "drv" => "drivers",
            "eff" => "effects",
            other => other,
        };
        return format!("KPI {name}: {members}{part}");
    }
    if let Some(source) = label.strip_prefix("kpic_scan_") {
        return format!("scanning {source}");
    }
    if label.starts_with("kpic_agg_") || label.starts_with("kpic_win_") {
        return format!("aggregating {}", label.trim_start_matches("kpic_"));
    }
    label.to_string()
}

/// Writes every output table and view as `export.dir/<name>.<ext>` with
/// DuckDB's `COPY`, from the committed tables.
fn export_outputs(
    conn: &Connection,
    compiled: &CompiledSql,
    export: &Export,
) -> Result<(), Diagnostic> {
    let fail = |e: String| {
        Diagnostic::new(
            Code::Database,
            format!(
                "the new tables are written, but exporting them to `{}` failed: {e}",
                export.dir.display()
            ),
        )
        .with_help("check that the directory can be created and written")
    };
    std::fs::create_dir_all(&export.dir).map_err(|e| fail(e.to_string()))?;
    let options = match export.format {
        ExportFormat::Csv => "FORMAT csv, HEADER",
        ExportFormat::Parquet => "FORMAT parquet",
    };
    let names = compiled
        .outputs
        .iter()
        .chain(&compiled.views)
        .map(|o| o.table.as_str());
    for name in names {
        let path = export
            .dir
            .join(format!("{name}.{}", export.format.extension()));
        let target = path.to_string_lossy().replace('\'', "''");
        // Output names are kpic's own (`kpi_results`, …): no quoting needed.
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM {name}) TO '{target}' ({options})"
        ))
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The KPI a per-KPI step belongs to: `kpic_k_<kpi>_<step>` or
/// `kpic_kb_<kpi>_<step>`. KPI names may contain `_` (and one may be a
/// prefix of another), so the longest KPI name followed by `_` wins.
fn kpi_of_step<'p>(project: &'p Project, label: &str) -> Option<&'p crate::model::Kpi> {
    let rest = label
        .strip_prefix("kpic_kb_")
        .or_else(|| label.strip_prefix("kpic_k_"))?;
    project
        .kpis
        .iter()
        .filter(|k| {
            rest.strip_prefix(k.name.value.as_str())
                .is_some_and(|tail| tail.starts_with('_'))
        })
        .max_by_key(|k| k.name.value.len())
}

/// The KPIs whose steps read `label` (a shared scan or aggregate),
/// directly or through other steps, sorted.
fn kpis_reading(project: &Project, compiled: &CompiledSql, label: &str) -> Vec<String> {
    let deps: std::collections::HashMap<&str, &[String]> = compiled
        .named
        .iter()
        .map(|n| (n.name.as_str(), n.deps.as_slice()))
        .collect();
    let reads = |from: &str| {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for d in deps.get(n).copied().unwrap_or_default() {
                if d == label {
                    return true;
                }
                if seen.insert(d.as_str()) {
                    stack.push(d);
                }
            }
        }
        false
    };
    let mut kpis = std::collections::BTreeSet::new();
    for n in &compiled.named {
        if let Some(k) = kpi_of_step(project, &n.name)
            && !kpis.contains(&k.name.value)
            && reads(&n.name)
        {
            kpis.insert(k.name.value.clone());
        }
    }
    kpis.into_iter().collect()
}

/// `` (read by KPI `a`) ``, `` (read by KPIs `a`, `b`) `` (at most five
/// names, then "and N more"), or nothing when there is no KPI.
fn kpi_list(how: &str, names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(5).map(|n| format!("`{n}`")).collect();
    let list = match names.len().saturating_sub(5) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    };
    match names.len() {
        0 => String::new(),
        1 => format!(" ({how} KPI {list})"),
        _ => format!(" ({how} KPIs {list})"),
    }
}

fn source_of_step(project: &Project, label: &str) -> Option<crate::source::Span> {
    project
        .sources
        .iter()
        .filter(|s| {
            label.contains(&format!("_{}_", s.name.value))
                || label.ends_with(&format!("_{}", s.name.value))
        })
        .max_by_key(|s| s.name.value.len())
        .map(|s| s.name.span)
}

fn read_results(conn: &Connection) -> duckdb::Result<Vec<KpiRow>> {
    let mut st = conn.prepare(
        "SELECT kpi, label, metric, grain, period, CAST(period_start AS VARCHAR), CAST(period_end AS VARCHAR), \
         is_complete, actual, target, attainment, status, projected, previous, change, change_pct, last_year, \
         yoy_change_pct, numerator, denominator, direction, indicator, owner \
         FROM kpi_results ORDER BY kpi, period_start",
    )?;
    let rows = st.query_map([], |r| {
        Ok(KpiRow {
            kpi: r.get(0)?,
            label: r.get(1)?,
            metric: r.get(2)?,
            grain: r.get(3)?,
            period: r.get(4)?,
            period_start: r.get(5)?,
            period_end: r.get(6)?,
            is_complete: r.get(7)?,
            actual: r.get(8)?,
            target: r.get(9)?,
            attainment: r.get(10)?,
            status: r.get(11)?,
            projected: r.get(12)?,
            previous: r.get(13)?,
            change: r.get(14)?,
            change_pct: r.get(15)?,
            last_year: r.get(16)?,
            yoy_change_pct: r.get(17)?,
            numerator: r.get(18)?,
            denominator: r.get(19)?,
            direction: r.get(20)?,
            indicator: r.get(21)?,
            owner: r.get(22)?,
        })
    })?;
    rows.collect()
}

/// A connection for reading schemas and binding queries without writing:
/// the database file read-only when it exists (so `table:` sources in it
/// can be described), an in-memory database otherwise.
pub fn inspection_connection(root: &Path, database: Option<&Path>) -> Option<Connection> {
    let file = database
        .filter(|p| p.is_file())
        .and_then(|p| open_read_only(p).ok());
    let conn = file.or_else(|| Connection::open_in_memory().ok())?;
    configure(&conn, root, Some("1GB")).ok()?;
    Some(conn)
}

/// The database file a project uses, `None` for `:memory:`.
pub fn project_database(project: &Project, override_path: Option<&Path>) -> Option<PathBuf> {
    match override_path {
        Some(p) => Some(p.to_path_buf()),
        None => database_path(&project.root, &project.config.database),
    }
}

/// Reads the schemas of sources through DuckDB: local files, `sql:`
/// sources, and tables of the project's DuckDB database when it exists.
pub struct DuckDbCatalog {
    root: PathBuf,
    database: Option<PathBuf>,
    /// Opened at the first lookup (the project's database is known then).
    conn: Option<Option<Connection>>,
}

impl DuckDbCatalog {
    /// `database` overrides the project's database file (`run --db`).
    pub fn new(root: &Path, database: Option<&Path>) -> DuckDbCatalog {
        DuckDbCatalog {
            root: root.to_path_buf(),
            database: database.map(Path::to_path_buf),
            conn: None,
        }
    }

    /// The connection the lookups used (opened read-only on the project's
    /// database, or in memory), for the next stage to reuse: opening
    /// DuckDB again costs milliseconds `explain` counts.
    pub fn into_connection(self) -> Option<Connection> {
        self.conn.flatten()
    }
}

impl Catalog for DuckDbCatalog {
    fn describe(
        &mut self,
        project: &Project,
        source: &Source,
    ) -> Result<Option<Vec<Column>>, Diagnostic> {
        if self.conn.is_none() {
            let database = project_database(project, self.database.as_deref());
            self.conn = Some(inspection_connection(&self.root, database.as_deref()));
        }
        let Some(Some(conn)) = &self.conn else {
            return Ok(None);
        };
        let (relation, span) = match &source.relation {
            Relation::Path { path, .. } => {
                let dialect = crate::sql::dialect::DuckDb;
                let rel = crate::sql::Dialect::file_relation(&dialect, &path.value, "t");
                (rel.to_string(), path.span)
            }
            // A `sql:` or table source may name warehouse tables kpic cannot
            // see here; describe it when possible, trust it otherwise.
            Relation::Sql(q) => (format!("({}) AS t", q.value), q.span),
            Relation::Table(t) | Relation::DbtRef(t) => (format!("{} AS t", t.value), t.span),
        };
        let sql = format!("DESCRIBE SELECT * FROM {relation}");
        let result: duckdb::Result<Vec<Column>> = conn.prepare(&sql).and_then(|mut st| {
            st.query_map([], |r| {
                Ok(Column {
                    name: r.get(0)?,
                    data_type: r.get(1)?,
                })
            })?
            .collect()
        });
        match (result, &source.relation) {
            (Ok(cols), _) => Ok(Some(cols)),
            (Err(e), Relation::Path { path, .. }) if e.to_string().contains("No files found") => {
                Err(Diagnostic::new(
                    Code::PathNotFound,
                    format!(
                        "source `{}`: no file matches `{}`",
                        source.name.value, path.value
                    ),
                )
                .at(span, "this pattern matches no file")
                .with_help("paths and globs are relative to the project directory"))
            }
            (Err(e), Relation::Path { .. }) => Err(Diagnostic::new(
                Code::SchemaUnreadable,
                format!(
                    "cannot read the columns of source `{}`: {e}",
                    source.name.value
                ),
            )
            .at(span, "this file")
            .with_help("check that the file is valid CSV, Parquet or JSON")),
            (Err(_), _) => Ok(None),
        }
    }
}

/// Opens a database read-only (for `kpic explain` and tests).
pub fn open_read_only(path: &Path) -> duckdb::Result<Connection> {
    Connection::open_with_flags(path, Config::default().access_mode(AccessMode::ReadOnly)?)
}

/// The engine's message without its list of candidate functions.
fn first_lines(e: &str) -> String {
    let cut = e.find("\n\tCandidate").unwrap_or(e.len());
    e[..cut].trim_end().to_string()
}

/// Binds every aggregate of a compiled build in DuckDB without reading the
/// data: each scan becomes an empty temporary table, then each aggregate
/// column is prepared over it. A failure becomes a KPI402 at the metric's
/// measure (or at the KPI filter that only that column uses), so type
/// errors such as `sum(status)` surface in `kpic check` with a position.
/// `conn` is an inspection connection ([`inspection_connection`]); the
/// empty tables are dropped again.
pub fn type_check(
    project: &Project,
    plan: &crate::plan::Plan,
    compiled: &CompiledSql,
    conn: &Connection,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let mut created = Vec::new();
    let mut broken_scans = Vec::new();
    for n in compiled
        .named
        .iter()
        .filter(|n| n.name.starts_with("kpic_scan_"))
    {
        let Some(q) = compiled.standalone_named(&n.name) else {
            continue;
        };
        let sql = format!(
            "CREATE TEMP TABLE {} AS SELECT * FROM ({q}) AS t LIMIT 0",
            n.name
        );
        let made = conn.execute_batch(&sql);
        if made.is_ok() {
            created.push(n.name.clone());
        }
        if let Err(e) = made {
            broken_scans.push(n.name.clone());
            let source = n.name.trim_start_matches("kpic_scan_");
            // A warehouse table may not exist here yet: only local files
            // are known to be wrong.
            let local = project
                .source(source)
                .is_some_and(|s| matches!(s.relation, Relation::Path { .. }));
            if !local {
                continue;
            }
            let mut d = Diagnostic::new(
                Code::QueryFailed,
                format!(
                    "source `{source}` cannot be read: {}",
                    first_lines(&e.to_string())
                ),
            )
            .with_help("check the source's time, dimension and join expressions");
            if let Some(s) = project.source(source) {
                d = d.at(s.name.span, "this source");
            }
            diags.push(d);
        }
    }
    let mut reported = std::collections::BTreeSet::new();
    for p in &compiled.probes {
        if broken_scans.contains(&p.scan) {
            continue;
        }
        let Err(e) = conn.prepare(&p.query.to_string()) else {
            continue;
        };
        let Some((metric, context)) = p.column.split_once("__") else {
            continue;
        };
        if !reported.insert((metric.to_string(), context.to_string())) {
            continue;
        }
        let message = first_lines(&e.to_string());
        let unfiltered_ok = context != "all"
            && compiled.probes.iter().any(|q| {
                q.column == format!("{metric}__all") && conn.prepare(&q.query.to_string()).is_ok()
            });
        let filter_text = context
            .strip_prefix('f')
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| plan.filter_contexts.get(i));
        let kpi_filter = filter_text
            .filter(|_| unfiltered_ok)
            .and_then(|text| {
                project
                    .kpis
                    .iter()
                    .filter_map(|k| k.filter.as_ref())
                    .find(|f| &f.text == text)
            })
            .map(|f| f.span);
        let d = match (kpi_filter, project.metric(metric)) {
            (Some(span), _) => Diagnostic::new(
                Code::QueryFailed,
                format!("a KPI filter does not type-check with metric `{metric}`: {message}"),
            )
            .at(span, "this filter"),
            (None, Some(m)) => {
                let span = match &m.kind {
                    crate::model::MetricKind::Measure { measure, .. } => measure.span,
                    _ => m.name.span,
                };
                Diagnostic::new(
                    Code::QueryFailed,
                    format!("metric `{metric}` does not type-check: {message}"),
                )
                .at(span, "the engine rejects this measure (or its filter)")
                .with_help("check the column types: e.g. sum() needs a number")
            }
            (None, None) => continue,
        };
        diags.push(d);
    }
    // The connection may serve the next stage (explain's session).
    for name in created {
        let _ = conn.execute_batch(&format!("DROP TABLE IF EXISTS {name}"));
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::BuildStatement;

    fn statement(label: &str, sql: &str) -> BuildStatement {
        BuildStatement {
            label: label.into(),
            sql: sql.into(),
        }
    }

    /// DuckDB forgets an interrupt that arrives between two statements
    /// (every query starts by clearing it), so a timeout that passes there
    /// would let the whole build run on. Here the watchdog has fired and
    /// interrupted before the first statement: nothing may run.
    #[test]
    fn a_timeout_between_statements_stops_the_build() {
        let conn = Connection::open_in_memory().unwrap();
        let watch = Watch::default();
        watch.fired.store(true, Ordering::SeqCst);
        conn.interrupt_handle().interrupt();
        let statements = [
            statement("one", "CREATE TABLE one AS SELECT 1 AS x"),
            statement("two", "CREATE TABLE two AS SELECT 2 AS x"),
        ];
        let result = run_in_transaction(&conn, &statements, &watch, &|_| {});
        assert_eq!(result.map_err(|(step, _)| step), Err(1));
        let created: i64 = conn
            .query_row(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('one', 'two')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(created, 0, "the transaction was rolled back");
    }

    /// The step reported is the one running when the timeout passed, not
    /// the one in which DuckDB noticed the interrupt.
    #[test]
    fn the_watchdog_records_the_running_step() {
        let conn = Connection::open_in_memory().unwrap();
        let (_, fired_at) = watched(&conn, Some(Duration::from_millis(20)), |watch| {
            watch.enter(3);
            let start = std::time::Instant::now();
            while !watch.fired() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        assert_eq!(fired_at, Some(3));
        let (_, fired_at) = watched(&conn, Some(Duration::from_secs(10)), |watch| {
            watch.enter(1);
        });
        assert_eq!(fired_at, None);
    }
}

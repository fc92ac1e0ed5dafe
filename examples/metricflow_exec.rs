//! METRICFLOW benchmark, execution side (bench/README.md, section
//! "MetricFlow"): the ~20 metrics of bench/metricflow/generate.py, grouped
//! by month and by month and channel, computed by the SQL MetricFlow
//! generates for them and by kpic, on the same data and the same engine.
//!
//! Goal (from the issue): kpic at least 20× faster than MetricFlow's SQL on
//! the whole set at 10M rows, and faster on every single metric kind.
//!
//! ```sh
//! bench/metricflow.sh [--sizes 1M,10M]        # setup, projects, MetricFlow's SQL, both benches
//! # or, once bench/metricflow.sh has written the projects and MetricFlow's SQL:
//! cargo build --release && cargo run --release --example metricflow_exec -- [ARGS]
//! ```
//!
//! Per size N (rows of `orders`):
//! 1. Writes (once per size) `DIR/<size>/orders.parquet` with DuckDB from
//!    `range()` and `hash()` of the row number: one row per order,
//!    2024-01-01..2026-06-30 (912 days), N/10 customers, 5 channels, 3
//!    devices, 10 countries, 3 statuses, log-normal amounts, a 10 %
//!    discount on a fifth of the orders.
//! 2. Writes the kpic projects `DIR/<size>/kpic/<set>/`: the set's models
//!    from `PROJECTS/exec/kpic/<set>/models` (one KPI per metric, grain
//!    month, breakdowns [channel]) with the source's path set to the
//!    Parquet file, `as_of: 2026-06-30`; and `kpic compile --dialect
//!    duckdb` of each (the standalone `kpi_metrics.sql`,
//!    `kpi_breakdowns.sql`, and `build.sql` for `--profile`).
//! 3. Checks, before timing, on the whole set: MetricFlow's values (its
//!    SQL by month, and by month and channel) against kpic's `kpi_metrics`
//!    (metric × month) and `kpi_breakdowns` (`actual` of each KPI ×
//!    month × channel) written by `kpic run`, every value within 1e-9
//!    relative; and kpic's compiled SELECTs against `kpic run`'s tables.
//!    A difference stops the benchmark (unless `--keep-going`, which
//!    still prints every difference).
//! 4. Times R rounds, each set in turn (the whole set, then each kind):
//!    - MF month, MF month × channel: MetricFlow's SQL (from `mf query
//!      --explain`, written by bench/metricflow.sh into
//!      `PROJECTS/exec/mf_sql/`), each on a fresh in-memory connection of
//!      this process (the bundled DuckDB kpic links, memory_limit 2GB like
//!      kpic's default, default threads), every row fetched. The dbt
//!      relations it reads are set up first, untimed: `mf_bench.main.orders`
//!      a view over the Parquet file (dbt's default materialization) and
//!      `mf_bench.main.metricflow_time_spine` a table of the data's days.
//!    - kpic SQL: kpic's standalone `kpi_metrics.sql` and
//!      `kpi_breakdowns.sql` on one fresh connection, every row fetched
//!      (the closest kpic form of "metrics by month, and by month and
//!      channel").
//!    - kpic run: `kpic --project P --quiet run --memory-limit 2GB`, the
//!      release binary as a user runs it: all five output tables
//!      (kpi_results, kpi_metrics, kpi_breakdowns, kpi_drivers,
//!      kpi_definitions) into target/kpic.duckdb, wall clock spawn to exit.
//!
//!    Every timed result is checked against step 3's values too.
//! 5. Prints medians, the ratios MetricFlow / kpic, and PASS or FAIL. It
//!    exits 0 whether the goals pass or not, 1 when a check fails, 2 when
//!    something fails to run.
//! 6. `--profile`: replays each set's `build.sql` (what `kpic run`
//!    executes) statement by statement, prints the slowest statements and
//!    the heaviest operators of the slowest (DuckDB's profiler), and the
//!    heaviest operators of MetricFlow's SQL for the set.
//!
//! `--compile-inproc PROJECT [--repeat R]` is the compile benchmark's
//! kpic-in-process side (bench/metricflow/compile_bench.py): loads the
//! project once, then plans and renders the SQL text of every output table
//! and build.sql for each of kpic's 8 dialects, R times; prints JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use duckdb::Connection;
use duckdb::types::{TimeUnit, ValueRef};

const GOAL_WHOLE: f64 = 20.0;
const GOAL_SIZE: u64 = 10_000_000;
/// Bump when the generated data changes, so old files are rewritten.
const GENERATOR_VERSION: u32 = 1;
/// kpic's default DuckDB memory limit (`kpic run --memory-limit`), for
/// every side unless `--memory-limit` says otherwise.
const MEMORY_LIMIT: &str = "2GB";
static SETTINGS: std::sync::OnceLock<(String, PathBuf)> = std::sync::OnceLock::new();

/// (memory limit, DuckDB's spill directory) of every connection.
fn settings() -> &'static (String, PathBuf) {
    SETTINGS.get_or_init(|| {
        (
            MEMORY_LIMIT.to_string(),
            target_dir().join("mf_bench/duckdb_tmp"),
        )
    })
}
const TOLERANCE: f64 = 1e-9;
const AS_OF: &str = "2026-06-30";

#[path = "bench_common/mod.rs"]
mod bench_common;
use bench_common::*;

type Error = Box<dyn std::error::Error>;

struct Args {
    sizes: Vec<u64>,
    dir: Option<PathBuf>,
    projects: Option<PathBuf>,
    repeat: usize,
    kpic: Option<PathBuf>,
    sets: Option<Vec<String>>,
    profile: bool,
    keep_going: bool,
    memory_limit: String,
}

const USAGE: &str = "usage: metricflow_exec [--sizes 1M,10M] [--repeat R] [--dir DIR] [--projects DIR] [--kpic PATH]
                       [--sets all,sum,...] [--profile] [--keep-going] [--memory-limit SIZE]
       metricflow_exec --compile-inproc PROJECT [--repeat R]
  --sizes LIST    rows of orders, comma-separated (default 1M,10M; 1000000, 500K also work)
  --repeat R      timed rounds (default 3); the medians are reported. 0: one round,
                  in which the whole set's times are the check's (for 10M and more)
  --dir DIR       data and kpic projects per size (default: <target dir>/mf_bench)
  --projects DIR  bench/metricflow/generate.py's output, with MetricFlow's SQL in
                  exec/mf_sql/ (default: DIR/projects)
  --kpic PATH     the kpic binary (default: the release kpic next to this example)
  --sets LIST     only these sets (default: all of exec/sets.json: the whole set, then each kind)
  --profile       afterwards, where kpic's and MetricFlow's time goes (DuckDB's profiler)
  --keep-going    time even when the check finds differences (they are printed)
  --memory-limit  DuckDB's memory limit of every side (default 2GB, kpic run's default)";

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![1_000_000, 10_000_000],
        dir: None,
        projects: None,
        repeat: 3,
        kpic: None,
        sets: None,
        profile: false,
        keep_going: false,
        memory_limit: MEMORY_LIMIT.to_string(),
    };
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = split_flag(&a);
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(|s| {
                        parse_count(s)
                            .filter(|n| *n >= 1_000)
                            .ok_or_else(|| format!("--sizes: not a count of at least 1K: {s}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--repeat" => {
                let v = value()?;
                args.repeat = v
                    .parse()
                    .ok()
                    .ok_or_else(|| format!("--repeat: not a count: {v}"))?;
            }
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--projects" => args.projects = Some(PathBuf::from(value()?)),
            "--kpic" => args.kpic = Some(PathBuf::from(value()?)),
            "--sets" => args.sets = Some(value()?.split(',').map(str::to_string).collect()),
            "--profile" => args.profile = true,
            "--keep-going" => args.keep_going = true,
            "--memory-limit" => args.memory_limit = value()?,
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    Ok(args)
}

/// A fresh in-memory connection, configured like kpic's (it spills, when
/// it must, into the benchmark's directory, not the current one).
fn connection() -> duckdb::Result<Connection> {
    let (limit, tmp) = settings();
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "SET memory_limit = '{limit}'; SET temp_directory = {}",
        sql_string(tmp)
    ))?;
    Ok(conn)
}

// --- data ---------------------------------------------------------------

/// The SELECT that writes `orders`. Column k of row i comes from DuckDB's
/// `hash(16 i + k)`, so the file is the same on every run (for one DuckDB
/// version, which is part of the stamp). Row 0 is on the last day and row
/// 1 on the first, so every side sees the same first and last month.
fn orders_sql(rows: u64) -> String {
    let u = |j: u32| format!("((hash(i * 16 + {j}) % 1000003) + 0.5) / 1000003");
    let customers = (rows / 10).max(1);
    let pick = |uexpr: &str, items: &[(&str, f64)]| {
        let mut acc = 0.0;
        let mut parts = Vec::new();
        for (name, w) in &items[..items.len() - 1] {
            acc += w;
            parts.push(format!("WHEN {uexpr} < {acc:.4} THEN '{name}'"));
        }
        format!(
            "CASE {} ELSE '{}' END",
            parts.join(" "),
            items[items.len() - 1].0
        )
    };
    format!(
        "WITH a AS (
           SELECT i,
             CASE WHEN i = 0 THEN 911 WHEN i = 1 THEN 0 ELSE least(911, CAST(floor({u0} * 912) AS INTEGER)) END AS day,
             {u1} AS u_cust, {u2} AS u_ch, {u3} AS u_dev, {u4} AS u_co, {u5} AS u_st,
             sqrt(-2 * ln({u6})) * cos(2 * pi() * {u7}) AS z, {u8} AS u_disc
           FROM range({rows}) AS t(i)
         ), b AS (
           SELECT *, round(greatest(1.0, 60 * exp(0.7 * z)), 2) AS amount FROM a
         )
         SELECT i + 1 AS order_id,
           CAST(DATE '2024-01-01' + day AS DATE) AS ordered_at,
           1 + CAST(floor(u_cust * {customers}) AS BIGINT) AS customer_id,
           {channel} AS channel, {device} AS device, {country} AS country, {status} AS status,
           amount,
           CASE WHEN u_disc < 0.2 THEN round(amount * 0.1, 2) ELSE 0.0 END AS discount
         FROM b",
        u0 = u(0),
        u1 = u(1),
        u2 = u(2),
        u3 = u(3),
        u4 = u(4),
        u5 = u(5),
        u6 = u(6),
        u7 = u(7),
        u8 = u(8),
        channel = pick(
            "u_ch",
            &[
                ("web", 0.35),
                ("app", 0.25),
                ("email", 0.15),
                ("search", 0.15),
                ("social", 0.10)
            ]
        ),
        device = pick(
            "u_dev",
            &[("desktop", 0.45), ("mobile", 0.45), ("tablet", 0.10)]
        ),
        country = pick(
            "u_co",
            &[
                ("US", 0.30),
                ("DE", 0.12),
                ("FR", 0.10),
                ("GB", 0.10),
                ("ES", 0.08),
                ("IT", 0.08),
                ("NL", 0.07),
                ("SE", 0.05),
                ("PL", 0.05),
                ("JP", 0.05)
            ]
        ),
        status = pick(
            "u_st",
            &[("completed", 0.82), ("refunded", 0.06), ("cancelled", 0.12)]
        ),
    )
}

fn ensure_data(dir: &Path, rows: u64) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("orders.parquet");
    let stamp_file = dir.join("orders.stamp");
    let conn = connection()?;
    let version: String = conn.query_row("SELECT version()", [], |r| r.get(0))?;
    let stamp = format!("rows={rows} generator={GENERATOR_VERSION} duckdb={version}\n");
    if file.is_file() && std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(&stamp) {
        return Ok(file);
    }
    let start = Instant::now();
    conn.execute_batch(&format!(
        "COPY ({}) TO {} (FORMAT parquet)",
        orders_sql(rows),
        sql_string(&file)
    ))?;
    std::fs::write(&stamp_file, stamp)?;
    println!(
        "wrote {} ({} rows, {:.1} MB) in {:.1} s",
        file.display(),
        rows,
        std::fs::metadata(&file)?.len() as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(file)
}

// --- projects -------------------------------------------------------------

struct SetInfo {
    name: String,
    metrics: Vec<String>,
}

struct ExecSpec {
    sets: Vec<SetInfo>,
    first_day: String,
    last_day: String,
    database: String,
}

fn read_spec(projects: &Path) -> Result<ExecSpec, Error> {
    let path = projects.join("exec/sets.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (run bench/metricflow.sh first)", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let mut sets = Vec::new();
    if let Some(obj) = json["sets"].as_object() {
        for (name, list) in obj {
            let metrics = list
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            sets.push(SetInfo {
                name: name.clone(),
                metrics,
            });
        }
    }
    let s = |k: &str| json[k].as_str().unwrap_or_default().to_string();
    Ok(ExecSpec {
        sets,
        first_day: s("first_day"),
        last_day: s("last_day"),
        database: s("database"),
    })
}

fn copy_dir(from: &Path, to: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target, path)?;
        } else {
            let text = std::fs::read_to_string(entry.path())?;
            std::fs::write(
                target,
                text.replace("__ORDERS_PATH__", &path.to_string_lossy()),
            )?;
        }
    }
    Ok(())
}

/// The set's kpic project over `data`, and its compiled DuckDB SQL.
struct KpicProject {
    dir: PathBuf,
    metrics_sql: String,
    breakdowns_sql: String,
    build_sql: String,
}

fn write_project(
    kpic: &Path,
    projects: &Path,
    dir: &Path,
    set: &str,
    data: &Path,
) -> Result<KpicProject, Error> {
    let dir = dir.join("kpic").join(set);
    let _ = std::fs::remove_dir_all(dir.join("models"));
    copy_dir(
        &projects.join("exec/kpic").join(set).join("models"),
        &dir.join("models"),
        data,
    )?;
    std::fs::write(
        dir.join("kpic.yml"),
        format!(
            "name: mf_exec_{set}\nmodels: [models]\nwarehouse:\n  dialect: duckdb\n  database: target/kpic.duckdb\nas_of: {AS_OF}\n"
        ),
    )?;
    let out = dir.join("target/compiled");
    let status = Command::new(kpic)
        .arg("--project")
        .arg(&dir)
        .args(["--quiet", "compile", "--dialect", "duckdb", "--out"])
        .arg(&out)
        .status()?;
    if !status.success() {
        return Err(format!("kpic compile failed for {}", dir.display()).into());
    }
    let read = |f: &str| std::fs::read_to_string(out.join("duckdb").join(f));
    Ok(KpicProject {
        metrics_sql: read("kpi_metrics.sql")?,
        breakdowns_sql: read("kpi_breakdowns.sql")?,
        build_sql: read("build.sql")?,
        dir,
    })
}

// --- values -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Num(f64),
    Text(String),
}

fn date_text(days: i64) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
    d.to_string()
}

fn to_val(v: ValueRef<'_>) -> Val {
    match v {
        ValueRef::Null => Val::Null,
        ValueRef::Boolean(b) => Val::Num(if b { 1.0 } else { 0.0 }),
        ValueRef::TinyInt(x) => Val::Num(x as f64),
        ValueRef::SmallInt(x) => Val::Num(x as f64),
        ValueRef::Int(x) => Val::Num(x as f64),
        ValueRef::BigInt(x) => Val::Num(x as f64),
        ValueRef::HugeInt(x) => Val::Num(x as f64),
        ValueRef::UTinyInt(x) => Val::Num(x as f64),
        ValueRef::USmallInt(x) => Val::Num(x as f64),
        ValueRef::UInt(x) => Val::Num(x as f64),
        ValueRef::UBigInt(x) => Val::Num(x as f64),
        ValueRef::Float(x) => Val::Num(x as f64),
        ValueRef::Double(x) => Val::Num(x),
        ValueRef::Decimal(d) => Val::Num(d.to_string().parse().unwrap_or(f64::NAN)),
        ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Date32(d) => Val::Text(date_text(d as i64)),
        ValueRef::Timestamp(unit, x) => {
            let micros = match unit {
                TimeUnit::Second => x * 1_000_000,
                TimeUnit::Millisecond => x * 1_000,
                TimeUnit::Microsecond => x,
                TimeUnit::Nanosecond => x / 1_000,
            };
            Val::Text(date_text(micros.div_euclid(86_400_000_000)))
        }
        other => Val::Text(format!("{other:?}")),
    }
}

/// All rows of `sql` as columns + values.
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Val>>,
}

fn fetch(conn: &Connection, sql: &str) -> Result<Table, Error> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    let mut columns = Vec::new();
    while let Some(row) = rows.next()? {
        if columns.is_empty() {
            let st = row.as_ref();
            columns = (0..st.column_count())
                .map(|i| st.column_name(i).map(|s| s.to_string()).unwrap_or_default())
                .collect();
        }
        out.push(
            (0..columns.len())
                .map(|i| row.get_ref(i).map(to_val).unwrap_or(Val::Null))
                .collect(),
        );
    }
    Ok(Table { columns, rows: out })
}

/// (metric, month[, channel]) -> value.
type Values = BTreeMap<(String, String, String), Option<f64>>;

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Num(x) => Some(*x),
        _ => None,
    }
}

fn text(v: &Val) -> String {
    match v {
        Val::Text(t) => t.clone(),
        Val::Num(x) => x.to_string(),
        Val::Null => "NULL".into(),
    }
}

/// MetricFlow's result: a month column, maybe `order__channel`, one column per metric.
fn mf_values(t: &Table, metrics: &[String]) -> Result<Values, Error> {
    let col = |name: &str| t.columns.iter().position(|c| c == name);
    let month = col("metric_time__month").ok_or("MetricFlow's SQL has no metric_time__month")?;
    let channel = col("order__channel");
    let mut out = Values::new();
    for m in metrics {
        let Some(i) = col(m) else {
            if t.rows.is_empty() {
                continue;
            }
            return Err(format!("MetricFlow's SQL has no column {m}").into());
        };
        for r in &t.rows {
            let ch = channel.map(|c| text(&r[c])).unwrap_or_default();
            out.insert((m.clone(), text(&r[month]), ch), num(&r[i]));
        }
    }
    Ok(out)
}

fn kpic_metric_values(t: &Table, metrics: &[String]) -> Values {
    let col = |name: &str| t.columns.iter().position(|c| c == name).unwrap_or(0);
    let (m, g, p, v) = (
        col("metric"),
        col("grain"),
        col("period_start"),
        col("value"),
    );
    let mut out = Values::new();
    for r in &t.rows {
        let metric = text(&r[m]);
        if text(&r[g]) == "month" && metrics.contains(&metric) {
            out.insert((metric, text(&r[p]), String::new()), num(&r[v]));
        }
    }
    out
}

fn kpic_breakdown_values(t: &Table, metrics: &[String]) -> Values {
    let col = |name: &str| t.columns.iter().position(|c| c == name).unwrap_or(0);
    let (k, p, d, mem, a) = (
        col("kpi"),
        col("period_start"),
        col("dimension"),
        col("member"),
        col("actual"),
    );
    let mut out = Values::new();
    for r in &t.rows {
        let metric = text(&r[k]).trim_start_matches("kpi_").to_string();
        if text(&r[d]) == "channel" && metrics.contains(&metric) {
            out.insert((metric, text(&r[p]), text(&r[mem])), num(&r[a]));
        }
    }
    out
}

#[derive(Default)]
struct Agreement {
    compared: usize,
    max_rel: f64,
    /// MetricFlow has no row or NULL where kpic has 0 (an empty group: kpic
    /// fills sums and counts with 0, SPEC §7).
    empty_as_zero: usize,
    diffs: Vec<String>,
}

fn compare(reference: &Values, other: &Values, what: &str) -> Agreement {
    let mut a = Agreement::default();
    let keys: std::collections::BTreeSet<_> = reference.keys().chain(other.keys()).collect();
    for key in keys {
        let (x, y) = (reference.get(key), other.get(key));
        let label = || {
            format!(
                "{what}: {} {}{}",
                key.0,
                key.1,
                if key.2.is_empty() {
                    String::new()
                } else {
                    format!(" {}", key.2)
                }
            )
        };
        match (x.copied().flatten(), y.copied().flatten()) {
            (Some(p), Some(q)) => {
                a.compared += 1;
                let scale = p.abs().max(q.abs());
                let rel = if scale == 0.0 {
                    0.0
                } else {
                    (p - q).abs() / scale
                };
                a.max_rel = a.max_rel.max(rel);
                if rel > TOLERANCE || p.is_nan() != q.is_nan() {
                    a.diffs.push(format!("{}: {p} vs {q}", label()));
                }
            }
            (None, None) if x.is_some() && y.is_some() => a.compared += 1,
            (None, Some(q)) if q.abs() == 0.0 => a.empty_as_zero += 1,
            (Some(p), None) if p.abs() == 0.0 => a.empty_as_zero += 1,
            (p, q) => a.diffs.push(format!(
                "{}: {} vs {}",
                label(),
                p.map_or("none".into(), |v| v.to_string()),
                q.map_or("none".into(), |v| v.to_string())
            )),
        }
    }
    a
}

// --- sides --------------------------------------------------------------

/// A fresh connection with MetricFlow's dbt relations over `data`.
fn mf_connection(spec: &ExecSpec, data: &Path) -> Result<Connection, Error> {
    let conn = connection()?;
    let db = &spec.database;
    conn.execute_batch(&format!(
        "ATTACH ':memory:' AS {db};
         CREATE VIEW {db}.main.orders AS SELECT * FROM read_parquet({});
         CREATE TABLE {db}.main.metricflow_time_spine AS
           SELECT CAST(range AS DATE) AS date_day
           FROM range(DATE '{}', DATE '{}' + INTERVAL 1 DAY, INTERVAL 1 DAY);",
        sql_string(data),
        spec.first_day,
        spec.last_day
    ))?;
    Ok(conn)
}

fn time_mf(spec: &ExecSpec, data: &Path, sql: &str) -> Result<(f64, Table), Error> {
    let conn = mf_connection(spec, data)?;
    let start = Instant::now();
    let t = fetch(&conn, sql).map_err(|e| format!("MetricFlow's SQL: {e}"))?;
    Ok((start.elapsed().as_secs_f64(), t))
}

fn time_kpic_sql(p: &KpicProject) -> Result<(f64, Table, Table), Error> {
    let conn = connection()?;
    conn.execute_batch(&format!("SET file_search_path = {}", sql_string(&p.dir)))?;
    let start = Instant::now();
    let m = fetch(&conn, &p.metrics_sql)?;
    let b = fetch(&conn, &p.breakdowns_sql)?;
    Ok((start.elapsed().as_secs_f64(), m, b))
}

fn time_kpic_run(kpic: &Path, p: &KpicProject) -> Result<f64, Error> {
    let start = Instant::now();
    let out = Command::new(kpic)
        .arg("--project")
        .arg(&p.dir)
        .args(["--quiet", "run", "--memory-limit", &settings().0])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "kpic run failed in {}:\n{}",
            p.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(secs)
}

fn kpic_run_tables(p: &KpicProject) -> Result<(Table, Table), Error> {
    let conn = Connection::open_with_flags(
        p.dir.join("target/kpic.duckdb"),
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    Ok((
        fetch(&conn, "SELECT * FROM kpi_metrics")?,
        fetch(&conn, "SELECT * FROM kpi_breakdowns")?,
    ))
}

// --- the benchmark --------------------------------------------------------

struct Reference {
    month: Values,
    channel: Values,
}

fn restrict(v: &Values, metrics: &[String]) -> Values {
    v.iter()
        .filter(|(k, _)| metrics.contains(&k.0))
        .map(|(k, x)| (k.clone(), *x))
        .collect()
}

/// Prints an agreement; true when it has no difference.
fn report(a: &Agreement, what: &str, verbose: bool) -> bool {
    if verbose || !a.diffs.is_empty() {
        println!(
            "  {what}: {} values compared, max relative difference {:.1e}{}{}",
            a.compared,
            a.max_rel,
            if a.empty_as_zero > 0 {
                format!(
                    ", {} empty groups (MetricFlow no row/NULL, kpic 0)",
                    a.empty_as_zero
                )
            } else {
                String::new()
            },
            if a.diffs.is_empty() {
                ": equal".to_string()
            } else {
                format!(": {} DIFFERENCES", a.diffs.len())
            }
        );
    }
    for d in a.diffs.iter().take(12) {
        println!("    {d}");
    }
    if a.diffs.len() > 12 {
        println!("    … and {} more", a.diffs.len() - 12);
    }
    a.diffs.is_empty()
}

#[derive(Default, Clone)]
struct Times {
    mf_month: Vec<f64>,
    mf_channel: Vec<f64>,
    kpic_sql: Vec<f64>,
    kpic_run: Vec<f64>,
}

struct SizeResult {
    label: String,
    rows: u64,
    sets: Vec<(String, usize, Times)>,
    checked: bool,
}

fn mf_sql(projects: &Path, set: &str, grouping: &str) -> Result<String, Error> {
    let p = projects
        .join("exec/mf_sql")
        .join(format!("{set}.{grouping}.sql"));
    std::fs::read_to_string(&p).map_err(|e| {
        format!(
            "{}: {e} (bench/metricflow.sh writes MetricFlow's SQL)",
            p.display()
        )
        .into()
    })
}

fn run_size(
    args: &Args,
    kpic: &Path,
    projects: &Path,
    spec: &ExecSpec,
    rows: u64,
) -> Result<SizeResult, Error> {
    let label = size_label(rows);
    println!("\n=== {label} orders ===");
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| target_dir().join("mf_bench"))
        .join(&label);
    let data = ensure_data(&dir, rows)?;
    let sets: Vec<&SetInfo> = spec
        .sets
        .iter()
        .filter(|s| args.sets.as_ref().is_none_or(|l| l.contains(&s.name)))
        .collect();
    let mut prepared = Vec::new();
    for s in &sets {
        let p = write_project(kpic, projects, &dir, &s.name, &data)?;
        let month = mf_sql(projects, &s.name, "month")?;
        let channel = mf_sql(projects, &s.name, "month_channel")?;
        prepared.push((s, p, month, channel));
    }

    // The check, on the whole set (timed or not).
    let whole = spec
        .sets
        .iter()
        .find(|s| s.name == "all")
        .ok_or("exec/sets.json has no set `all`")?;
    let whole_project;
    let (s0, p0, month0, channel0) = match prepared.iter().find(|p| p.0.name == "all") {
        Some((s, p, m, c)) => (**s, p, m.clone(), c.clone()),
        None => {
            whole_project = write_project(kpic, projects, &dir, "all", &data)?;
            (
                whole,
                &whole_project,
                mf_sql(projects, "all", "month")?,
                mf_sql(projects, "all", "month_channel")?,
            )
        }
    };
    println!(
        "check ({}: {} metrics), before timing:",
        s0.name,
        s0.metrics.len()
    );
    let check_run = time_kpic_run(kpic, p0)?;
    let (km, kb) = kpic_run_tables(p0)?;
    let reference = Reference {
        month: kpic_metric_values(&km, &s0.metrics),
        channel: kpic_breakdown_values(&kb, &s0.metrics),
    };
    let (check_m, mf_m) = time_mf(spec, &data, &month0)?;
    let (check_c, mf_c) = time_mf(spec, &data, &channel0)?;
    let (check_sql, sm, sb) = time_kpic_sql(p0)?;
    println!(
        "  (the check's times: MF {check_m:.3}+{check_c:.3} s, kpic SQL {check_sql:.3} s, kpic run {check_run:.3} s)"
    );
    let mut ok = true;
    ok &= report(
        &compare(
            &reference.month,
            &mf_values(&mf_m, &s0.metrics)?,
            "by month, kpic run kpi_metrics vs MetricFlow",
        ),
        "by month (kpic run's kpi_metrics vs MetricFlow)",
        true,
    );
    ok &= report(
        &compare(
            &reference.channel,
            &mf_values(&mf_c, &s0.metrics)?,
            "by month and channel, kpic run kpi_breakdowns vs MetricFlow",
        ),
        "by month and channel (kpic run's kpi_breakdowns vs MetricFlow)",
        true,
    );
    ok &= report(
        &compare(
            &reference.month,
            &kpic_metric_values(&sm, &s0.metrics),
            "kpi_metrics.sql vs kpic run",
        ),
        "kpic's compiled kpi_metrics.sql vs kpic run",
        true,
    );
    ok &= report(
        &compare(
            &reference.channel,
            &kpic_breakdown_values(&sb, &s0.metrics),
            "kpi_breakdowns.sql vs kpic run",
        ),
        "kpic's compiled kpi_breakdowns.sql vs kpic run",
        true,
    );
    if !ok && !args.keep_going {
        return Err(
            "the check failed: MetricFlow and kpic disagree (see above); \
                    --keep-going times them anyway"
                .into(),
        );
    }

    let mut times: Vec<Times> = vec![Times::default(); prepared.len()];
    for round in 1..=args.repeat.max(1) {
        let mut line = format!("round {round}:");
        for (i, (s, p, month, channel)) in prepared.iter().enumerate() {
            if args.repeat == 0 && s.name == "all" {
                // --repeat 0: the whole set's one round is the check's
                times[i].mf_month.push(check_m);
                times[i].mf_channel.push(check_c);
                times[i].kpic_sql.push(check_sql);
                times[i].kpic_run.push(check_run);
                line.push_str(&format!(
                    " all (the check's) MF {check_m:.3}+{check_c:.3} kpic SQL {check_sql:.3} run {check_run:.3} |"
                ));
                continue;
            }
            let (a, tm) = time_mf(spec, &data, month)?;
            let (b, tc) = time_mf(spec, &data, channel)?;
            let (c, sm, sb) = time_kpic_sql(p)?;
            let d = time_kpic_run(kpic, p)?;
            // every timed result is checked against the reference
            let (rm, rc) = (
                restrict(&reference.month, &s.metrics),
                restrict(&reference.channel, &s.metrics),
            );
            let (km, kb) = kpic_run_tables(p)?;
            let what = format!("round {round}, set {}", s.name);
            let mut good = true;
            good &= report(
                &compare(&rm, &mf_values(&tm, &s.metrics)?, "MF month"),
                &format!("{what}, MetricFlow by month"),
                false,
            );
            good &= report(
                &compare(&rc, &mf_values(&tc, &s.metrics)?, "MF month×channel"),
                &format!("{what}, MetricFlow by month and channel"),
                false,
            );
            good &= report(
                &compare(&rm, &kpic_metric_values(&sm, &s.metrics), "kpic SQL"),
                &format!("{what}, kpi_metrics.sql"),
                false,
            );
            good &= report(
                &compare(&rc, &kpic_breakdown_values(&sb, &s.metrics), "kpic SQL"),
                &format!("{what}, kpi_breakdowns.sql"),
                false,
            );
            good &= report(
                &compare(&rm, &kpic_metric_values(&km, &s.metrics), "kpic run"),
                &format!("{what}, kpic run kpi_metrics"),
                false,
            );
            good &= report(
                &compare(&rc, &kpic_breakdown_values(&kb, &s.metrics), "kpic run"),
                &format!("{what}, kpic run kpi_breakdowns"),
                false,
            );
            if !good && !args.keep_going {
                return Err(format!("{what}: results differ (see above)").into());
            }
            ok &= good;
            line.push_str(&format!(
                " {} MF {:.3}+{:.3} kpic SQL {c:.3} run {d:.3} |",
                s.name, a, b
            ));
            times[i].mf_month.push(a);
            times[i].mf_channel.push(b);
            times[i].kpic_sql.push(c);
            times[i].kpic_run.push(d);
        }
        println!("{}", line.trim_end_matches(" |"));
    }
    let result = SizeResult {
        label,
        rows,
        sets: prepared
            .iter()
            .zip(times)
            .map(|((s, ..), t)| (s.name.clone(), s.metrics.len(), t))
            .collect(),
        checked: ok,
    };
    print_size(&result, args.repeat.max(1));
    if args.profile {
        for (s, p, month, _) in &prepared {
            profile(spec, &data, s, p, month)?;
        }
    }
    Ok(result)
}

fn print_size(r: &SizeResult, repeat: usize) {
    println!(
        "\n{} orders, medians of {repeat} rounds, seconds. MF = MetricFlow's SQL (month, month × channel); \
         kpic SQL = kpi_metrics.sql + kpi_breakdowns.sql; kpic run = the CLI, all five tables",
        r.label
    );
    let hdr = format!(
        "{:<20} {:>3} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>9} {:>9} | {}",
        "set",
        "n",
        "MF month",
        "MF m×ch",
        "MF total",
        "kpic SQL",
        "kpic run",
        "MF/run",
        "MF/SQL",
        "goal"
    );
    println!("{hdr}");
    println!("{}", "-".repeat(hdr.chars().count()));
    for (name, n, t) in &r.sets {
        let (a, b, c, d) = (
            median(&t.mf_month),
            median(&t.mf_channel),
            median(&t.kpic_sql),
            median(&t.kpic_run),
        );
        let (r_run, r_sql) = ((a + b) / d, (a + b) / c);
        let goal = if name == "all" {
            let v = if r_run >= GOAL_WHOLE { "PASS" } else { "FAIL" };
            if r.rows >= GOAL_SIZE {
                format!("≥ {GOAL_WHOLE}×: {v}")
            } else {
                format!("≥ {GOAL_WHOLE}× at 10M ({v} here)")
            }
        } else {
            // Per kind: kpic run (five tables) and kpic's compiled SQL for
            // the same outputs (metric × month, metric × month × channel).
            let verdict = |x: f64| if x > 1.0 { "PASS" } else { "FAIL" };
            format!("faster: run {} SQL {}", verdict(r_run), verdict(r_sql))
        };
        println!(
            "{name:<20} {n:>3} | {a:>8.3} {b:>8.3} {:>8.3} | {c:>8.3} {d:>8.3} | {r_run:>8.1}× {r_sql:>8.1}× | {goal}",
            a + b
        );
    }
}

// --- profile --------------------------------------------------------------

fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with("--")) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn statement_label(sql: &str) -> String {
    let s = sql.trim();
    for prefix in [
        "CREATE OR REPLACE TEMPORARY TABLE ",
        "CREATE OR REPLACE TABLE ",
        "CREATE TEMPORARY TABLE ",
        "CREATE TABLE ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest.split_whitespace().next().unwrap_or("?").to_string();
        }
    }
    s.chars().take(60).collect()
}

fn profiled(conn: &Connection, sql: &str, file: &Path) -> Result<f64, Error> {
    conn.execute_batch(&format!(
        "PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = {};",
        sql_string(file)
    ))?;
    let start = Instant::now();
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    drop(rows);
    drop(stmt);
    conn.execute_batch("PRAGMA disable_profiling;")?;
    Ok(secs)
}

fn profile(
    spec: &ExecSpec,
    data: &Path,
    s: &SetInfo,
    p: &KpicProject,
    mf_month: &str,
) -> Result<(), Error> {
    println!(
        "\n--- profile, set {} ({}) ---",
        s.name,
        s.metrics.join(", ")
    );
    let stmts = statements(&p.build_sql);
    let conn = connection()?;
    conn.execute_batch(&format!("SET file_search_path = {}", sql_string(&p.dir)))?;
    let mut timed = Vec::new();
    for sql in &stmts {
        let start = Instant::now();
        conn.execute_batch(sql)
            .map_err(|e| format!("{}: {e}", statement_label(sql)))?;
        timed.push((start.elapsed().as_secs_f64(), statement_label(sql)));
    }
    drop(conn);
    let total: f64 = timed.iter().map(|t| t.0).sum();
    let mut order: Vec<usize> = (0..timed.len()).collect();
    order.sort_by(|a, b| timed[*b].0.total_cmp(&timed[*a].0));
    println!(
        "kpic's build.sql replayed: {} statements, {total:.3} s; the slowest:",
        stmts.len()
    );
    for &i in order.iter().take(5) {
        println!("  {:>8.3} s  {}", timed[i].0, timed[i].1);
    }
    // The slowest statement again, profiled (after the ones before it).
    let slow = order[0];
    let conn = connection()?;
    conn.execute_batch(&format!("SET file_search_path = {}", sql_string(&p.dir)))?;
    for sql in &stmts[..slow] {
        conn.execute_batch(sql)?;
    }
    let file = std::env::temp_dir().join(format!("kpic_mf_profile_{}.json", std::process::id()));
    let secs = profiled(&conn, stmts[slow].trim().trim_end_matches(';'), &file)?;
    println!(
        "heaviest operators of {} ({secs:.3} s, DuckDB's profiler):",
        timed[slow].1
    );
    for line in top_operators(&file, 6) {
        println!("  {line}");
    }
    drop(conn);
    let conn = mf_connection(spec, data)?;
    let secs = profiled(&conn, mf_month, &file)?;
    println!("heaviest operators of MetricFlow's SQL by month ({secs:.3} s):");
    for line in top_operators(&file, 6) {
        println!("  {line}");
    }
    let _ = std::fs::remove_file(&file);
    Ok(())
}

// --- compile in process ---------------------------------------------------

fn compile_inproc(dir: &Path, repeat: usize) -> Result<(), Error> {
    let mut loads = Vec::new();
    let mut totals = Vec::new();
    let mut per: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    // Where each dialect's time goes: plan, SQL AST, printed text.
    let mut phases: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    let mut bytes = 0usize;
    for _ in 0..repeat {
        let start = Instant::now();
        let mut catalog = kpic::exec::DuckDbCatalog::new(dir, None);
        let (model, diags) = kpic::analyze_project(dir, &mut catalog);
        if diags.has_errors() {
            return Err(kpic_error(&diags));
        }
        loads.push(start.elapsed().as_secs_f64());
        bytes = 0;
        for name in kpic::sql::DIALECTS {
            let t = Instant::now();
            let dialect = kpic::sql::dialect_named(name).ok_or("unknown dialect")?;
            let options = kpic::plan::PlanOptions {
                as_of: None,
                select: Vec::new(),
                local_files: dialect.name() == "duckdb",
            };
            let plan = kpic::plan::plan_kpis(&model, &options).map_err(|d| kpic_error(&d))?;
            let refused = kpic::sql::dialect_problems(&model, dialect.as_ref());
            if refused.has_errors() {
                return Err(kpic_error(&refused));
            }
            let planned = t.elapsed().as_secs_f64();
            let compiled = kpic::sql::plan_to_sql(&plan, &model, dialect.as_ref());
            let rendered = t.elapsed().as_secs_f64();
            let mut standalone_bytes = 0;
            for table in kpic::sql::OUTPUT_TABLES {
                if let Some(mut q) = compiled.standalone(table) {
                    dialect.finish_standalone(&mut q);
                    standalone_bytes += format!("{q:#}").len();
                }
            }
            let standalone = t.elapsed().as_secs_f64();
            let script = compiled.build_script(dialect.as_ref()).len();
            let total = t.elapsed().as_secs_f64();
            bytes += standalone_bytes + script;
            per.entry(name).or_default().push(total);
            let phase = phases.entry(name).or_default();
            phase.push(serde_json::json!({
                "plan": planned,
                "sql": rendered - planned,
                "standalone_text": standalone - rendered,
                "standalone_bytes": standalone_bytes,
                "build_script_text": total - standalone,
                "build_script_bytes": script,
            }));
        }
        totals.push(start.elapsed().as_secs_f64());
    }
    let json = serde_json::json!({
        "load": loads,
        "total": totals,
        "dialects": per,
        "phases": phases,
        "sql_bytes": bytes,
    });
    println!("{json}");
    Ok(())
}

// --- main -----------------------------------------------------------------

fn run(args: Args) -> Result<bool, Error> {
    let kpic = find_kpic(args.kpic.as_deref())?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| target_dir().join("mf_bench"));
    let _ = SETTINGS.set((args.memory_limit.clone(), dir.join("duckdb_tmp")));
    let projects = args
        .projects
        .clone()
        .unwrap_or_else(|| dir.join("projects"));
    let spec = read_spec(&projects)?;
    let version: String = connection()?.query_row("SELECT version()", [], |r| r.get(0))?;
    println!(
        "kpic: {}\nMetricFlow's SQL and kpic both run on the bundled DuckDB {version} (memory_limit {}, default threads)",
        kpic.display(),
        settings().0
    );
    let mut results = Vec::new();
    for &n in &args.sizes {
        results.push(run_size(&args, &kpic, &projects, &spec, n)?);
    }
    println!("\n=== summary: MetricFlow's SQL / kpic run (medians) ===");
    let mut all_ok = true;
    for r in &results {
        let ratio = |name: &str| {
            r.sets.iter().find(|s| s.0 == name).map(|(_, _, t)| {
                (median(&t.mf_month) + median(&t.mf_channel)) / median(&t.kpic_run)
            })
        };
        if let Some(x) = ratio("all") {
            println!(
                "{:>4}: whole set {x:.1}× (goal ≥ {GOAL_WHOLE}× at 10M: {})",
                r.label,
                if r.rows < GOAL_SIZE {
                    "not this size".to_string()
                } else if x >= GOAL_WHOLE {
                    "PASS".into()
                } else {
                    "FAIL".into()
                }
            );
        }
        // Per kind: kpic run (five tables), and kpic's compiled SQL for the
        // same outputs as MetricFlow's two queries (kpi_metrics.sql +
        // kpi_breakdowns.sql).
        let every_kind_faster = |kpic_side: fn(&Times) -> &Vec<f64>| {
            let slower: Vec<String> = r
                .sets
                .iter()
                .filter(|s| s.0 != "all")
                .filter_map(|(name, _, t)| {
                    let x = (median(&t.mf_month) + median(&t.mf_channel)) / median(kpic_side(t));
                    (x <= 1.0).then(|| format!("{name} ({x:.2}×)"))
                })
                .collect();
            if slower.is_empty() {
                "PASS".to_string()
            } else {
                format!("FAIL: {}", slower.join(", "))
            }
        };
        println!(
            "      every kind faster (kpic run, five tables): {}",
            every_kind_faster(|t| &t.kpic_run)
        );
        println!(
            "      every kind faster (kpic's SQL for the same outputs): {}",
            every_kind_faster(|t| &t.kpic_sql)
        );
        all_ok &= r.checked;
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--compile-inproc") {
        let dir = argv.get(1).map(PathBuf::from);
        let repeat = argv
            .iter()
            .position(|a| a == "--repeat")
            .and_then(|i| argv.get(i + 1))
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let Some(dir) = dir else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        return match compile_inproc(&dir, repeat) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("the check found differences (printed above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if e.to_string().contains("the check failed")
                || e.to_string().contains("results differ")
            {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

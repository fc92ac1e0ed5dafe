//! SPEED benchmark of `kpic explain` (bench/README.md, section "Speed").
//!
//! Goal: `explain` over 10 million rows with 5 breakdown dimensions takes
//! at most 2× the time of one plain `GROUP BY` scan of the same rows in the
//! same engine, measured side by side in one run.
//!
//! ```sh
//! bench/speed.sh [--rows N] [--dir DIR] [--repeat R] [--kpic PATH] [--phases] [--sql FILE]
//! # or (`cargo run --example` does not rebuild the kpic binary it times):
//! cargo build --release && cargo run --release --example explain_speed -- [ARGS]
//! ```
//!
//! 1. Writes (once per row count) `DIR/data/events.parquet` with DuckDB:
//!    N rows, `day` over 2026-01-01..2026-02-28, dimensions `a`..`e`
//!    (10, 8, 12, 6 and 5 members, hashed from the row number so the file
//!    is not sorted by them), a heavy-tailed `value`, and a planted cause:
//!    February rows with `a = 'a3' AND c = 'c7'` (1/120 of the rows) are
//!    halved.
//! 2. Writes a kpic project in DIR (`kpic.yml`, `models/speed.yml`) with the
//!    KPI `speed_kpi` = `sum(value)` by month, breakdowns `[a, b, c, d, e]`.
//! 3. Runs the 5-key GROUP BY once untimed (the file is then in the OS page
//!    cache for every side alike), then times R rounds, in this order:
//!    - reference only: `SELECT a, sum(value) … GROUP BY a`;
//!    - BASELINE (the goal's): `SELECT a, b, c, d, e, sum(value) … GROUP BY
//!      a, b, c, d, e`, every row fetched, on a fresh in-memory DuckDB
//!      connection of this process (the same bundled DuckDB kpic links),
//!      opening the connection included;
//!    - the same BASELINE as a process of its own (this binary with
//!      `--baseline-process FILE`): start, open DuckDB, query, fetch, exit;
//!    - explain in process: `kpic::explain::explain_on` on the catalog's
//!      connection, as the CLI calls it, analysis included;
//!    - EXPLAIN: `kpic --project DIR --quiet explain speed_kpi --period
//!      2026-02 --vs previous --format json`, the release binary as a user
//!      runs it, wall clock including process start and exit; its JSON is
//!      checked (the first root cause must be `{"a": "a3", "c": "c7"}`, a
//!      warning is printed otherwise).
//!
//!    It prints the medians and two ratios, each with PASS or FAIL against
//!    the 2× goal: explain in process / BASELINE in process, and the CLI
//!    run / the BASELINE process (like with like: both pay process start,
//!    DuckDB's start and the first touch of memory). It exits 0 either way (a measurement, not a
//!    test), and non-zero only when something fails to run.
//! 4. Optional diagnosis: `--phases` replays explain's SQL steps here and
//!    times each (see [`phases`]); `--sql FILE` times any statements, e.g.
//!    a candidate rewrite, against the same file and settings.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use duckdb::Connection;

const GOAL_RATIO: f64 = 2.0;
/// Bump when the generated data changes, so old files are rewritten.
const GENERATOR_VERSION: u32 = 2;
const KPI: &str = "speed_kpi";
/// The planted cause, as `root_causes[0].segment` must report it.
const CAUSE: [(&str, &str); 2] = [("a", "a3"), ("c", "c7")];
/// kpic's default DuckDB memory limit (src/cli/explain.rs: `--memory-limit`
/// defaults to 2GB; src/exec/mod.rs `configure` applies it). kpic sets no
/// thread count, so both sides use DuckDB's default (all cores).
const MEMORY_LIMIT: &str = "2GB";

#[path = "bench_common/mod.rs"]
mod bench_common;
use bench_common::*;

type Error = Box<dyn std::error::Error>;

struct Args {
    rows: u64,
    dir: Option<PathBuf>,
    repeat: usize,
    kpic: Option<PathBuf>,
    phases: bool,
    sql: Option<PathBuf>,
}

const USAGE: &str =
    "usage: explain_speed [--rows N] [--dir DIR] [--repeat R] [--kpic PATH] [--phases] [--sql FILE]
  --rows N     rows of the generated table (default 10000000; 10_000_000 and 10M also work)
  --dir DIR    where the data and the kpic project go (default: <target dir>/explain_speed)
  --repeat R   timed rounds (default 3); the medians are reported
  --kpic PATH  the kpic binary (default: the release kpic next to this example,
               else $CARGO_TARGET_DIR/release/kpic, else ~/.cache/kpic-target/release/kpic)
  --phases     afterwards, time (median of R) the SQL steps explain runs, replayed
               here, and alternatives (see `phases` in the source)
  --sql FILE   afterwards, time (median of R) each `;`-terminated statement of FILE,
               run in order on one connection configured like kpic's; `{file}` in
               the SQL stands for the quoted path of the data file";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rows: 10_000_000,
        dir: None,
        repeat: 3,
        kpic: None,
        phases: false,
        sql: None,
    };
    let mut it = std::env::args().skip(1);
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
            "--rows" => {
                let v = value()?;
                args.rows = parse_count(&v)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--rows: not a positive count: {v}"))?;
            }
            "--repeat" => {
                let v = value()?;
                args.repeat = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--repeat: not a positive count: {v}"))?;
            }
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--kpic" => args.kpic = Some(PathBuf::from(value()?)),
            "--phases" => args.phases = true,
            "--sql" => args.sql = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    Ok(args)
}

/// A fresh in-memory connection, configured like kpic's (see MEMORY_LIMIT).
fn connection() -> duckdb::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&format!("SET memory_limit = '{MEMORY_LIMIT}'"))?;
    Ok(conn)
}

/// The table: one row per event, nothing sorted by the dimensions.
///
/// Column k of row i is derived from DuckDB's `hash(8 i + k)`, so the file
/// is the same on every run and the columns are independent. (Salting as
/// `hash(i, 'a')` is not: the salts share the low bits that `% 10`, `% 8`
/// … read, and the 5-key cube had 1,800 of its 28,800 cells.) `value` is
/// log-normal (σ = 1) times per-member weights of `a` and `b`, so some
/// members and segments are much larger than others. The planted cause:
/// February rows of a3 ∧ c7 (1/120 of each month's rows) are halved.
fn generate(data: &Path, rows: u64) -> Result<(), Error> {
    let file = data.join("events.parquet");
    let meta = data.join("events.meta");
    let stamp = format!("rows={rows} generator={GENERATOR_VERSION}\n");
    if file.is_file() && std::fs::read_to_string(&meta).ok().as_deref() == Some(stamp.as_str()) {
        println!("data:     reusing {}", file.display());
        return Ok(());
    }
    std::fs::create_dir_all(data)?;
    let _ = std::fs::remove_file(&meta);
    let tmp = data.join("events.parquet.tmp");
    let start = Instant::now();
    print!("data:     writing {rows} rows to {} ... ", file.display());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let conn = connection()?;
    conn.execute_batch(&format!(
        "COPY (
           WITH k AS (
             SELECT i,
                    CAST(hash(i * 8 + 0) % 59 AS INTEGER) AS k_day,
                    CAST(hash(i * 8 + 1) % 10 AS INTEGER) + 1 AS k_a,
                    CAST(hash(i * 8 + 2) % 8 AS INTEGER) + 1 AS k_b,
                    CAST(hash(i * 8 + 3) % 12 AS INTEGER) + 1 AS k_c,
                    CAST(hash(i * 8 + 4) % 6 AS INTEGER) + 1 AS k_d,
                    CAST(hash(i * 8 + 5) % 5 AS INTEGER) + 1 AS k_e,
                    (CAST(hash(i * 8 + 6) % 1000000 AS DOUBLE) + 0.5) / 1000000 AS u1,
                    (CAST(hash(i * 8 + 7) % 1000000 AS DOUBLE) + 0.5) / 1000000 AS u2
             FROM range({rows}) AS t(i)
           )
           SELECT DATE '2026-01-01' + k_day AS day,
                  concat('a', k_a) AS a, concat('b', k_b) AS b, concat('c', k_c) AS c,
                  concat('d', k_d) AS d, concat('e', k_e) AS e,
                  round(10.0 * (0.5 + 0.15 * k_a) * (0.6 + 0.1 * k_b)
                        * exp(sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))
                        * CASE WHEN k_a = 3 AND k_c = 7 AND k_day >= 31 THEN 0.5 ELSE 1.0 END,
                        4) AS value
           FROM k
         ) TO {} (FORMAT parquet)",
        sql_string(&tmp)
    ))?;
    drop(conn);
    std::fs::rename(&tmp, &file)?;
    std::fs::write(&meta, stamp)?;
    println!("{:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn write_project(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir.join("models"))?;
    std::fs::write(
        dir.join("kpic.yml"),
        "name: speed\nmodels: [models]\nas_of: 2026-02-28\n",
    )?;
    std::fs::write(
        dir.join("models/speed.yml"),
        "sources:\n\
         \x20 - name: events\n\
         \x20   path: data/events.parquet\n\
         \x20   time: day\n\
         \x20   dimensions: [a, b, c, d, e]\n\
         metrics:\n\
         \x20 - name: total\n\
         \x20   source: events\n\
         \x20   measure: sum(value)\n\
         kpis:\n\
         \x20 - name: speed_kpi\n\
         \x20   metric: total\n\
         \x20   grain: month\n\
         \x20   breakdowns: [a, b, c, d, e]\n",
    )?;
    Ok(())
}

/// One plain GROUP BY scan on a fresh connection, every row fetched.
/// Returns (seconds, rows fetched).
fn baseline(file: &Path, keys: &str) -> Result<(f64, u64), Error> {
    let start = Instant::now();
    let conn = connection()?;
    let mut st = conn.prepare(&format!(
        "SELECT {keys}, sum(value) FROM read_parquet({}) GROUP BY {keys}",
        sql_string(file)
    ))?;
    let mut rows = st.query([])?;
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        let _: Option<f64> = row.get(keys.split(',').count())?;
        n += 1;
    }
    drop(rows);
    drop(st);
    drop(conn);
    Ok((start.elapsed().as_secs_f64(), n))
}

struct ExplainRun {
    seconds: f64,
    first_cause: Option<serde_json::Value>,
    causes: usize,
}

fn explain(kpic: &Path, dir: &Path) -> Result<ExplainRun, Error> {
    let start = Instant::now();
    let out = Command::new(kpic)
        .arg("--project")
        .arg(dir)
        .args(["--quiet", "--color", "never", "explain", KPI])
        .args([
            "--period", "2026-02", "--vs", "previous", "--format", "json",
        ])
        .output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "kpic explain failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "kpic explain printed no JSON object ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let causes = json["root_causes"].as_array();
    Ok(ExplainRun {
        seconds,
        first_cause: causes.and_then(|c| c.first()).map(|c| c["segment"].clone()),
        causes: causes.map_or(0, Vec::len),
    })
}

/// Runs `sql` and fetches every row; (seconds, rows).
fn timed(conn: &Connection, sql: &str) -> Result<(f64, u64), Error> {
    let start = Instant::now();
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok((start.elapsed().as_secs_f64(), n))
}

/// `--sql FILE`: times the statements of FILE, R times in order on one
/// connection each round (so temporary tables carry over within a round).
fn sql_file(file: &Path, path: &Path, repeat: usize) -> Result<(), Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--sql {}: {e}", path.display()))?
        .replace("{file}", &sql_string(file));
    let statements: Vec<String> = text
        .split(';')
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect();
    let mut times = vec![Vec::new(); statements.len()];
    let mut counts = vec![0u64; statements.len()];
    for _ in 0..repeat {
        let conn = connection()?;
        for (i, st) in statements.iter().enumerate() {
            let (t, n) = timed(&conn, st).map_err(|e| format!("{e}\nin: {st}"))?;
            times[i].push(t);
            counts[i] = n;
        }
    }
    println!();
    println!("{} (medians of {repeat}, seconds):", path.display());
    for (i, st) in statements.iter().enumerate() {
        let label: String = st.split_whitespace().collect::<Vec<_>>().join(" ");
        let label: String = label.chars().take(70).collect();
        println!(
            "  {:>7.3}  ({}) {} rows  {label}",
            median(&times[i]),
            fmt_times(&times[i]),
            counts[i]
        );
    }
    Ok(())
}

/// `--phases`: where explain's time goes. Replays, on one connection of
/// this process, the SQL `kpic explain` runs for this project, step by
/// step, then alternatives on fresh connections. The SQL is copied from
/// `kpic compile` (build.sql: kpic_scan_events, kpic_agg_events_month) and
/// src/sql/render/segments.rs (the segment query: leaves GROUP BY range and
/// the 5 members, then 26 grouping sets = every set of at most 3 of the 5
/// dimensions, explain's default `--depth 3`) as of the benchmark's
/// writing; it is an approximation that kpic's changes do not update.
fn phases(file: &Path, repeat: usize) -> Result<(), Error> {
    let f = sql_string(file);
    let scan = format!(
        "CREATE OR REPLACE TEMPORARY TABLE kpic_scan_events AS SELECT CAST(events.\"day\" AS DATE) \
         AS __kpic_day, events.a AS a, events.b AS b, events.c AS c, events.d AS d, events.e AS e, \
         events.\"value\" AS \"value\" FROM read_parquet({f}) AS events \
         WHERE CAST(events.\"day\" AS DATE) <= CAST('2026-02-28' AS DATE)"
    );
    let month = "CREATE OR REPLACE TEMPORARY TABLE kpic_agg_events_month AS SELECT \
         CAST(date_trunc('month', __kpic_day) AS DATE) AS period_start, \
         CAST(sum(\"value\") AS DOUBLE) AS total__all, CAST(sum(\"value\") FILTER (WHERE \
         date_diff('day', CAST(date_trunc('month', __kpic_day) AS DATE), __kpic_day) < \
         (date_diff('day', CAST(date_trunc('month', CAST('2026-02-28' AS DATE)) AS DATE), \
         CAST('2026-02-28' AS DATE)) + 1)) AS DOUBLE) AS total__all__lfl FROM kpic_scan_events \
         GROUP BY CAST(date_trunc('month', __kpic_day) AS DATE)";
    let results = "SELECT period_start, total__all, lag(total__all) OVER (ORDER BY period_start) \
         FROM kpic_agg_events_month ORDER BY period_start";
    let within = |lo: &str, hi: &str| {
        format!("__kpic_day >= CAST('{lo}' AS DATE) AND __kpic_day < CAST('{hi}' AS DATE)")
    };
    let cur = within("2026-02-01", "2026-03-01");
    let base = within("2026-01-01", "2026-02-01");
    let rows_of = |from: &str| {
        format!(
            "SELECT s.*, CASE WHEN {cur} THEN 1 ELSE 0 END AS __kpic_cur, \
             CAST(a AS VARCHAR) AS __kpic_d0, CAST(b AS VARCHAR) AS __kpic_d1, \
             CAST(c AS VARCHAR) AS __kpic_d2, CAST(d AS VARCHAR) AS __kpic_d3, \
             CAST(e AS VARCHAR) AS __kpic_d4 FROM {from} AS s WHERE ({base}) OR ({cur})"
        )
    };
    let keys = "__kpic_cur, __kpic_d0, __kpic_d1, __kpic_d2, __kpic_d3, __kpic_d4";
    let leaves_of = |from: &str| {
        format!(
            "SELECT {keys}, CAST(sum(\"value\") AS DOUBLE) AS c0 FROM ({}) AS r GROUP BY {keys}",
            rows_of(from)
        )
    };
    let mut sets = vec![String::new()];
    for i in 0..5 {
        sets.push(format!("__kpic_d{i}"));
        for j in i + 1..5 {
            sets.push(format!("__kpic_d{i}, __kpic_d{j}"));
            for k in j + 1..5 {
                sets.push(format!("__kpic_d{i}, __kpic_d{j}, __kpic_d{k}"));
            }
        }
    }
    let cube_of = |from: &str| {
        let g: Vec<String> = (0..5)
            .map(|i| format!("grouping(__kpic_d{i}) AS g{i}"))
            .collect();
        let d: Vec<String> = (0..5).map(|i| format!("__kpic_d{i} AS d{i}")).collect();
        format!(
            "SELECT {}, {}, sum(c0) FILTER (WHERE __kpic_cur = 0) AS c0_0, \
             sum(c0) FILTER (WHERE __kpic_cur = 1) AS c0_1 FROM ({}) AS l \
             GROUP BY GROUPING SETS ({})",
            g.join(", "),
            d.join(", "),
            leaves_of(from),
            sets.iter()
                .map(|s| format!("({s})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    // Proposed leaves: the baseline's 5 keys, no range key; the sum over
    // both ranges and the current range's sum (the baseline range's is
    // their difference: every row kept is in one of the two ranges).
    let lean_leaves_of = |from: &str| {
        format!(
            "SELECT a AS __kpic_d0, b AS __kpic_d1, c AS __kpic_d2, d AS __kpic_d3, \
             e AS __kpic_d4, CAST(sum(\"value\") AS DOUBLE) AS c0_all, \
             CAST(sum(CASE WHEN {cur} THEN \"value\" ELSE 0 END) AS DOUBLE) AS c0_1 \
             FROM {from} AS s WHERE ({base}) OR ({cur}) GROUP BY ALL"
        )
    };
    let lean_cube_of = |from: &str| {
        let g: Vec<String> = (0..5)
            .map(|i| format!("grouping(__kpic_d{i}) AS g{i}"))
            .collect();
        let d: Vec<String> = (0..5).map(|i| format!("__kpic_d{i} AS d{i}")).collect();
        format!(
            "SELECT {}, {}, sum(c0_all) - sum(c0_1) AS c0_0, sum(c0_1) AS c0_1 FROM ({}) AS l \
             GROUP BY GROUPING SETS ({})",
            g.join(", "),
            d.join(", "),
            lean_leaves_of(from),
            sets.iter()
                .map(|s| format!("({s})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let parquet_scan = format!(
        "(SELECT CAST(\"day\" AS DATE) AS __kpic_day, a, b, c, d, e, \"value\" \
         FROM read_parquet({f}) WHERE CAST(\"day\" AS DATE) <= CAST('2026-02-28' AS DATE))"
    );
    // Proposed month aggregate: per day first (59 groups), then per month,
    // so date_trunc/date_diff run once per day instead of once per row.
    let lean_month = format!(
        "SELECT CAST(date_trunc('month', __kpic_day) AS DATE) AS period_start, \
         CAST(sum(v) AS DOUBLE) AS total__all, CAST(sum(v) FILTER (WHERE date_diff('day', \
         CAST(date_trunc('month', __kpic_day) AS DATE), __kpic_day) < (date_diff('day', \
         CAST(date_trunc('month', CAST('2026-02-28' AS DATE)) AS DATE), \
         CAST('2026-02-28' AS DATE)) + 1)) AS DOUBLE) AS total__all__lfl \
         FROM (SELECT __kpic_day, sum(\"value\") AS v FROM {parquet_scan} AS s GROUP BY __kpic_day) \
         AS days GROUP BY 1"
    );

    // (label, SQL, fresh connection?): explain's steps share one
    // connection, in explain's order; each alternative gets a fresh one.
    let steps: Vec<(&str, String, bool)> = vec![
        ("1 scan -> temp table (all rows, 5 VARCHAR)", scan, true),
        ("2 month aggregate over the temp table", month.into(), false),
        ("3 kpi_results (tiny)", results.into(), false),
        (
            "4 segment query over the temp table",
            cube_of("kpic_scan_events"),
            false,
        ),
        (
            "  4a its leaves alone",
            leaves_of("kpic_scan_events"),
            false,
        ),
        (
            "A segment query as is over read_parquet",
            cube_of(&parquet_scan),
            true,
        ),
        ("  Aa its leaves alone", leaves_of(&parquet_scan), true),
        (
            "B month aggregate as is over read_parquet",
            month.replace(
                "FROM kpic_scan_events",
                &format!("FROM {parquet_scan} AS s"),
            ),
            true,
        ),
        (
            "C month aggregate per day, then per month",
            lean_month,
            true,
        ),
        (
            "D segment query, 5-key leaves, read_parquet",
            lean_cube_of(&parquet_scan),
            true,
        ),
        ("  Da its leaves alone", lean_leaves_of(&parquet_scan), true),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    let mut counts = vec![0u64; steps.len()];
    for _ in 0..repeat {
        let mut conn = connection()?;
        for (i, (_, sql, fresh)) in steps.iter().enumerate() {
            if *fresh {
                conn = connection()?;
            }
            let (t, n) = timed(&conn, sql)?;
            times[i].push(t);
            counts[i] = n;
        }
    }
    println!();
    println!("phases (SQL replayed in this process; medians of {repeat}, seconds):");
    for (i, (label, _, _)) in steps.iter().enumerate() {
        println!(
            "  {label:<44} {:>7.3}   ({}) {} rows",
            median(&times[i]),
            fmt_times(&times[i]),
            counts[i]
        );
    }
    let sum = |ix: &[usize]| -> f64 { ix.iter().map(|&i| median(&times[i])).sum() };
    println!(
        "  explain's steps 1-4                           {:>7.3}",
        sum(&[0, 1, 2, 3])
    );
    println!(
        "  proposed C + 3 + D                            {:>7.3}",
        sum(&[8, 2, 9])
    );
    Ok(())
}

/// The same explain through the library, in this process: the engine
/// work (analysis, the KPI's pipeline, the segment query, the search)
/// under the same conditions as the baseline (a warm process, a fresh
/// DuckDB instance), without the CLI's process start and exit.
fn explain_in_process(dir: &Path) -> Result<ExplainRun, Error> {
    let start = Instant::now();
    let mut catalog = kpic::exec::DuckDbCatalog::new(dir, None);
    let (model, diags) = kpic::analyze_project(dir, &mut catalog);
    // As the CLI does: the catalog's DuckDB connection serves the session.
    let conn = catalog.into_connection();
    if diags.has_errors() {
        return Err("the speed project has errors".into());
    }
    let options = kpic::explain::ExplainOptions {
        kpi: KPI.to_string(),
        period: Some("2026-02".into()),
        vs: kpic::explain::Baseline::Previous,
        depth: 3,
        top: 10,
        as_of: None,
        database: None,
        memory_limit: Some(MEMORY_LIMIT.into()),
        timeout: None,
    };
    let (answer, _) = kpic::explain::explain_on(&model, &options, conn).map_err(|d| {
        format!(
            "explain failed: {:?}",
            d.iter().map(|x| x.message.clone()).collect::<Vec<_>>()
        )
    })?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ExplainRun {
        seconds,
        first_cause: answer
            .root_causes
            .first()
            .map(|c| serde_json::Value::Object(c.segment.clone())),
        causes: answer.root_causes.len(),
    })
}

fn run(args: Args) -> Result<(), Error> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| target_dir().join("explain_speed"));
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let kpic = find_kpic(args.kpic.as_deref())?;
    let data = dir.join("data");
    let file = data.join("events.parquet");

    let conn = connection()?;
    let version: String = conn.query_row("SELECT version()", [], |r| r.get(0))?;
    drop(conn);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    println!("kpic explain speed benchmark");
    let built = std::fs::metadata(&kpic)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Local>::from(t)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into());
    println!("kpic:     {} (built {built})", kpic.display());
    println!("project:  {}", dir.display());
    println!(
        "engine:   DuckDB {version}, memory_limit {MEMORY_LIMIT} on both sides, default threads; \
         {cores} cores, load average {load}"
    );

    generate(&data, args.rows)?;
    write_project(&dir)?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "rows:     {} ({:.1} MB parquet), 5 dimensions (10 × 8 × 12 × 6 × 5 members)",
        args.rows,
        size as f64 / 1e6
    );

    const KEYS5: &str = "a, b, c, d, e";
    // Untimed: brings the file into the OS page cache for every side alike.
    let (warm, groups5) = baseline(&file, KEYS5)?;
    println!("warm-up:  GROUP BY a, b, c, d, e in {warm:.3} s ({groups5} groups), not counted");

    let mut base1 = Vec::new();
    let mut base5 = Vec::new();
    let mut base5_process = Vec::new();
    let mut expl = Vec::new();
    let mut lib = Vec::new();
    let mut first_cause = None;
    // explain closes its DuckDB session on a background thread after it
    // answers; the pause keeps that work out of the next measurement.
    let settle = || std::thread::sleep(std::time::Duration::from_millis(500));
    // Untimed: the library's first explain in this process.
    explain_in_process(&dir)?;
    settle();
    for round in 1..=args.repeat {
        let (t1, _) = baseline(&file, "a")?;
        let (t5, _) = baseline(&file, KEYS5)?;
        let p5 = baseline_process(&file)?;
        let l = explain_in_process(&dir)?;
        settle();
        let e = explain(&kpic, &dir)?;
        println!(
            "round {round}:  GROUP BY a {t1:.3} s | GROUP BY a, b, c, d, e {t5:.3} s \
             (as a process {p5:.3} s) | explain in process {:.3} s | CLI {:.3} s \
             ({} root causes)",
            l.seconds, e.seconds, e.causes
        );
        base1.push(t1);
        base5.push(t5);
        base5_process.push(p5);
        expl.push(e.seconds);
        lib.push(l.seconds);
        if first_cause.is_none() {
            first_cause = Some(e.first_cause);
        }
        if l.first_cause != first_cause.clone().flatten() {
            println!("WARNING:  the library and the CLI disagree on the first root cause");
        }
    }

    let expected: serde_json::Map<String, serde_json::Value> = CAUSE
        .iter()
        .map(|(d, m)| (d.to_string(), serde_json::Value::String(m.to_string())))
        .collect();
    let expected = serde_json::Value::Object(expected);
    match first_cause.flatten() {
        Some(found) if found == expected => {
            println!("check:    root_causes[0].segment = {found} (the planted cause)")
        }
        Some(found) => println!(
            "WARNING:  root_causes[0].segment = {found}, expected the planted cause {expected}"
        ),
        None => println!("WARNING:  no root causes; expected the planted cause {expected}"),
    }

    let (m1, m5, me, ml) = (median(&base1), median(&base5), median(&expl), median(&lib));
    let mp = median(&base5_process);
    let (ratio, cli_ratio) = (ml / m5, me / mp);
    println!();
    println!(
        "medians of {} rounds, seconds (every round in parentheses):",
        args.repeat
    );
    println!(
        "  baseline   GROUP BY a, b, c, d, e    {m5:>7.3}   ({}) <- in process",
        fmt_times(&base5)
    );
    println!(
        "  baseline   the same, as a process    {mp:>7.3}   ({}) <- start, open, query, fetch, exit",
        fmt_times(&base5_process)
    );
    println!(
        "  reference  GROUP BY a                {m1:>7.3}   ({})",
        fmt_times(&base1)
    );
    println!(
        "  explain    (in process, library)     {ml:>7.3}   ({})",
        fmt_times(&lib)
    );
    println!(
        "  explain    (whole CLI run)           {me:>7.3}   ({})",
        fmt_times(&expl)
    );
    println!(
        "ratio:    explain / GROUP BY a, b, c, d, e = {ratio:.2} in process, {cli_ratio:.2} as \
         processes (CLI / baseline process); vs GROUP BY a: {:.2}",
        ml / m1
    );
    let verdict = |r: f64| if r <= GOAL_RATIO { "PASS" } else { "FAIL" };
    println!(
        "goal:     explain ≤ {GOAL_RATIO}× the 5-key GROUP BY: {} in process, {} as processes",
        verdict(ratio),
        verdict(cli_ratio)
    );
    if args.phases {
        phases(&file, args.repeat)?;
    }
    if let Some(sql) = &args.sql {
        sql_file(&file, sql, args.repeat)?;
    }
    Ok(())
}

/// The fresh-process baseline: `explain_speed --baseline-process FILE`
/// runs the 5-key GROUP BY once, fetching every row, and exits; the parent
/// times the whole process, as it times the kpic CLI.
fn baseline_process_mode() -> Option<ExitCode> {
    let mut it = std::env::args().skip(1);
    if it.next().as_deref() != Some("--baseline-process") {
        return None;
    }
    let file = PathBuf::from(it.next()?);
    Some(match baseline(&file, "a, b, c, d, e") {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Wall clock of [`baseline_process_mode`] in a child process.
fn baseline_process(file: &Path) -> Result<f64, Error> {
    let start = Instant::now();
    let status = Command::new(std::env::current_exe()?)
        .arg("--baseline-process")
        .arg(file)
        .status()?;
    if !status.success() {
        return Err(format!("the baseline process failed ({status})").into());
    }
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> ExitCode {
    if let Some(code) = baseline_process_mode() {
        return code;
    }
    let args = match parse_args() {
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

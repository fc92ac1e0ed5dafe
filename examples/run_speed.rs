//! RUN SPEED benchmark of `kpic run` (bench/README.md, section "Run speed").
//!
//! Goal: `kpic run` on the example's KPIs takes at most 1.2× the time of a
//! hand-written SQL that computes the same `kpi_results`, measured side by
//! side in one run, at 1M, 10M and 50M fact rows.
//!
//! ```sh
//! bench/run_speed.sh [--sizes 1M,10M,50M] [--repeat R] [--dir DIR] [--kpic PATH] [--phases] [--sql FILE]
//! # or (`cargo run --example` does not rebuild the kpic binary it times):
//! cargo build --release && cargo run --release --example run_speed -- [ARGS]
//! ```
//!
//! Per size N:
//! 1. Writes (once per size) `DIR/<size>/data/{orders,sessions,customers,
//!    support_tickets}.parquet` with DuckDB from `range()` and `hash()`:
//!    the example's four sources (fixtures/generate_example.py) with the
//!    same column names and types, in the example's proportions, N being
//!    the rows of `sessions`, the largest table (orders 0.959 N, customers
//!    0.365 N, support_tickets 0.105 N), 2024-01-01..2026-06-21 like the
//!    example (customers from 2023-01-01).
//! 2. Writes the kpic project `DIR/<size>/`: the repository's kpic.yml,
//!    macros/ and models/ copied, with two edits: the sources' `path:`es
//!    point at the Parquet files, and the revenue targets (growth.yml's
//!    quarterly `values`, targets.csv's revenue_ytd rows) are multiplied by
//!    orders / 256,059 (the example's order count), so statuses stay as
//!    varied as the example's. Every KPI, metric, filter, window, quantile,
//!    ratio and target of the example applies.
//! 3. Checks the hand-written SQL (bench/run/handwritten.sql): its result
//!    must equal the `kpi_results` that `kpic run` wrote, every KPI and
//!    period, all 23 columns (numbers within 1e-9 relative), and so must the
//!    rows kpic's library returns in process. A mismatch stops the
//!    benchmark (a wrong baseline is worthless).
//! 4. Times R rounds, each in this order:
//!    - HAND-WRITTEN in process: a fresh in-memory DuckDB connection of this
//!      process (the bundled DuckDB kpic links; memory_limit 2GB like
//!      kpic's default, default threads like kpic), the statements of the
//!      file in order, every row of the last one fetched;
//!    - the same as a process of its own (this binary with
//!      `--handwritten-process`): start, open a DuckDB file, run the
//!      statements, store the result as table `kpi_results`, exit;
//!    - KPIC in process: kpic's library as the CLI calls it (load, check,
//!      plan, compile, bind, build), with an in-memory database;
//!    - KPIC CLI: `kpic --project DIR/<size> --quiet run`, the release
//!      binary as a user runs it (writes `target/kpic.duckdb`, prints the
//!      table), wall clock from spawn to exit.
//!
//!    It prints the medians and two ratios, each with PASS or FAIL against
//!    the 1.2× goal: kpic in process / hand-written in process, and kpic
//!    CLI / hand-written process. It exits 0 either way (a measurement, not
//!    a test), and non-zero only when something fails to run or the check
//!    fails.
//! 5. Optional diagnosis: `--phases` replays the statements `kpic run`
//!    executes (from kpic's own compiler, so it follows kpic's changes),
//!    times each, the standalone `kpi_results` SELECT of `kpic compile`, and
//!    the hand-written statements, and prints the heaviest operators of the
//!    slowest kpic statements (DuckDB's profiler); `--sql FILE` checks and
//!    times another hand-written SQL (same placeholders) against the same
//!    data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use duckdb::Connection;

const GOAL_RATIO: f64 = 1.2;
/// Bump when the generated data changes, so old files are rewritten.
const GENERATOR_VERSION: u32 = 1;
/// kpic's default DuckDB memory limit (`kpic run --memory-limit` defaults
/// to 2GB); kpic sets no thread count, so both sides use DuckDB's default.
const MEMORY_LIMIT: &str = "2GB";
/// The example's row counts (fixtures/data/README.md): the generated tables
/// keep these proportions, `sessions` being the largest.
const EXAMPLE_SESSIONS: f64 = 267_023.0;
const EXAMPLE_ORDERS: f64 = 256_059.0;
const EXAMPLE_CUSTOMERS: f64 = 97_477.0;
const EXAMPLE_TICKETS: f64 = 28_136.0;
/// The sources, with the example's CSV file and the time column.
const SOURCES: [(&str, &str); 4] = [
    ("orders", "ordered_at"),
    ("sessions", "started_at"),
    ("customers", "signup_date"),
    ("support_tickets", "opened_at"),
];
/// Relative tolerance of the check.
const TOLERANCE: f64 = 1e-9;
/// kpi_results' columns (SPEC §5) and whether each is a number.
const COLUMNS: [(&str, bool); 23] = [
    ("kpi", false),
    ("label", false),
    ("metric", false),
    ("grain", false),
    ("period", false),
    ("period_start", false),
    ("period_end", false),
    ("is_complete", false),
    ("actual", true),
    ("target", true),
    ("attainment", true),
    ("status", false),
    ("projected", true),
    ("previous", true),
    ("change", true),
    ("change_pct", true),
    ("last_year", true),
    ("yoy_change_pct", true),
    ("numerator", true),
    ("denominator", true),
    ("direction", false),
    ("indicator", false),
    ("owner", false),
];

#[path = "bench_common/mod.rs"]
mod bench_common;
use bench_common::*;

type Error = Box<dyn std::error::Error>;

struct Args {
    sizes: Vec<u64>,
    dir: Option<PathBuf>,
    repeat: usize,
    kpic: Option<PathBuf>,
    phases: bool,
    sql: Option<PathBuf>,
}

const USAGE: &str = "usage: run_speed [--sizes 1M,10M,50M] [--repeat R] [--dir DIR] [--kpic PATH] [--phases] [--sql FILE]
  --sizes LIST  rows of the largest fact table (sessions), comma-separated
                (default 1M,10M,50M; 1000000, 1_000_000, 500K also work)
  --repeat R    timed rounds (default 3); the medians are reported
  --dir DIR     where the data and the kpic projects go (default: <target dir>/run_speed)
  --kpic PATH   the kpic binary (default: the release kpic next to this example,
                else $CARGO_TARGET_DIR/release/kpic, else ~/.cache/kpic-target/release/kpic)
  --phases      afterwards, time (median of R) each statement kpic run executes,
                replayed here, kpic's standalone kpi_results SELECT and the
                hand-written statements, and show the slowest operators
  --sql FILE    afterwards, check and time (median of R) another hand-written SQL
                with the placeholders of bench/run/handwritten.sql";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![1_000_000, 10_000_000, 50_000_000],
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
            "--sizes" => {
                let v = value()?;
                args.sizes = v
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

/// The repository (the example project's definitions and the hand-written SQL).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn default_sql() -> PathBuf {
    repo().join("bench/run/handwritten.sql")
}

/// A fresh in-memory connection, configured like kpic's (see MEMORY_LIMIT).
fn connection() -> duckdb::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&format!("SET memory_limit = '{MEMORY_LIMIT}'"))?;
    Ok(conn)
}

/// Rows of each generated table for N sessions.
struct Sizes {
    sessions: u64,
    orders: u64,
    customers: u64,
    tickets: u64,
}

impl Sizes {
    fn new(n: u64) -> Sizes {
        let scaled = |example: f64| (n as f64 * example / EXAMPLE_SESSIONS).round() as u64;
        Sizes {
            sessions: n,
            orders: scaled(EXAMPLE_ORDERS),
            customers: scaled(EXAMPLE_CUSTOMERS),
            tickets: scaled(EXAMPLE_TICKETS),
        }
    }

    fn rows(&self, table: &str) -> u64 {
        match table {
            "orders" => self.orders,
            "sessions" => self.sessions,
            "customers" => self.customers,
            _ => self.tickets,
        }
    }

    /// The factor applied to the revenue targets: orders / the example's.
    fn revenue_scale(&self) -> f64 {
        self.orders as f64 / EXAMPLE_ORDERS
    }
}

/// The SELECT that writes one generated table. Column k of row i comes
/// from DuckDB's `hash(64 i + k)` of the row number, so the files are the
/// same on every run (for one DuckDB version: its version is part of the
/// data's stamp) and not sorted by any column but the customers' ids.
///
/// Facts span 903 days from 2024-01-01 (to 2026-06-21, a Sunday, like the
/// example) with 30 % growth a year (the day of a row is drawn from the
/// exponential density by its inverse CDF); row 0 is on the last day and
/// row 1 on the first, so as_of and the first periods are the example's.
/// Customers sign up from 2023-01-01, 28 % more a year, in id order; an
/// order's or ticket's customer is drawn among those who signed up before
/// its day. Shares of channels, devices, countries, statuses, plans,
/// segments and priorities, the log-normal amounts, load times and
/// resolution hours (and their yearly trends) follow the example's
/// generator; the planted story is a cancellation of 88 % of the mobile
/// paid-search orders from 2026-04-01 (the example's conversion break,
/// as lost revenue).
fn generator_sql(table: &str, sizes: &Sizes) -> String {
    let u = |j: u32| format!("((hash(i * 64 + {j}) % 1000003) + 0.5) / 1000003");
    let z = |j: u32| format!("(sqrt(-2 * ln({})) * cos(2 * pi() * {}))", u(j), u(j + 1));
    let growth = "(ln(1.30) / 365.25)";
    let day = |j: u32| {
        format!(
            "CASE WHEN i = 0 THEN 902 WHEN i = 1 THEN 0 ELSE least(902, CAST(floor(ln(1 + {} * (exp({growth} * 903) - 1)) / {growth}) AS INTEGER)) END",
            u(j)
        )
    };
    let cgrowth = "(ln(1.28) / 365.25)";
    let c = sizes.customers;
    // Customers 1..M signed up before the fact's day (day + 365 days after
    // 2023-01-01); one of them, uniformly.
    let customer = |j: u32| {
        format!(
            "1 + CAST(floor({} * floor({c} * (exp({cgrowth} * (day + 365)) - 1) / (exp({cgrowth} * 1268) - 1))) AS BIGINT)",
            u(j)
        )
    };
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
    let ts = |j: u32| {
        format!(
            "CAST(DATE '2024-01-01' + day AS TIMESTAMP) + to_seconds(CAST(hash(i * 64 + {j}) % 86400 AS BIGINT))"
        )
    };
    match table {
        "orders" => {
            let amount = "round(greatest(4.99, 80 * exp(0.55 * z) * power(1.03, day / 365.25) \
                 * CASE device WHEN 'desktop' THEN 1.08 WHEN 'mobile' THEN 0.93 ELSE 1.0 END), 2)";
            format!(
                "WITH a AS (
                   SELECT i, {day} AS day, {u_ch} AS u_ch, {u_dev} AS u_dev, {u_co} AS u_co,
                          {u_st} AS u_st, {z} AS z, {u_disc} AS u_disc, {u_cut} AS u_cut
                   FROM range({rows}) AS t(i)
                 ), b AS (
                   SELECT *, {channel} AS channel, {device} AS device FROM a
                 ), c AS (
                   SELECT *, {amount} AS amount FROM b
                 )
                 SELECT i + 1 AS order_id, {ts} AS ordered_at, {customer} AS customer_id,
                   channel, device, {country} AS country_code,
                   CASE WHEN day >= 821 AND device = 'mobile' AND channel = 'paid_search' AND u_cut < 0.88 THEN 'cancelled'
                        WHEN u_st < 0.041 THEN 'refunded' WHEN u_st < 0.066 THEN 'cancelled'
                        ELSE 'completed' END AS status,
                   amount,
                   CASE WHEN u_disc < 0.2 THEN round(amount * (0.05 * (1 + floor(u_disc * 20))), 2) END AS discount
                 FROM c",
                day = day(0),
                u_ch = u(2),
                u_dev = u(3),
                u_co = u(4),
                u_st = u(5),
                z = z(6),
                u_disc = u(8),
                u_cut = u(9),
                rows = sizes.orders,
                channel = pick(
                    "u_ch",
                    &[
                        ("organic", 0.264),
                        ("paid_search", 0.383),
                        ("social", 0.065),
                        ("email", 0.176),
                        ("referral", 0.112)
                    ]
                ),
                device = pick(
                    "u_dev",
                    &[("desktop", 0.486), ("mobile", 0.446), ("tablet", 0.068)]
                ),
                ts = ts(1),
                customer = customer(10),
                country = pick(
                    "u_co",
                    &[
                        ("us", 0.462),
                        ("gb", 0.170),
                        ("de", 0.141),
                        ("fr", 0.098),
                        ("ca", 0.129)
                    ]
                ),
            )
        }
        "sessions" => format!(
            "WITH a AS (
               SELECT i, {day} AS day, {u_ch} AS u_ch, {u_dev} AS u_dev, {u_co} AS u_co,
                      {z} AS z, {u_conv} AS u_conv
               FROM range({rows}) AS t(i)
             ), b AS (
               SELECT *, {device} AS device FROM a
             )
             SELECT i + 1 AS session_id, {ts} AS started_at, {channel} AS channel, device,
               {country} AS country_code,
               CAST(round(CASE device WHEN 'desktop' THEN 950 WHEN 'mobile' THEN 1500 ELSE 1250 END
                          * power(0.85, day / 365.25) * exp(0.55 * z)) AS BIGINT) AS load_ms,
               CAST(u_conv < 0.038 AS BIGINT) AS converted,
               CAST(25 AS BIGINT) AS sample_weight
             FROM b",
            day = day(0),
            u_ch = u(2),
            u_dev = u(3),
            u_co = u(4),
            z = z(5),
            u_conv = u(7),
            rows = sizes.sessions,
            device = pick(
                "u_dev",
                &[("desktop", 0.40), ("mobile", 0.52), ("tablet", 0.08)]
            ),
            ts = ts(1),
            channel = pick(
                "u_ch",
                &[
                    ("organic", 0.31),
                    ("paid_search", 0.33),
                    ("social", 0.14),
                    ("email", 0.12),
                    ("referral", 0.10)
                ]
            ),
            country = pick(
                "u_co",
                &[
                    ("us", 0.44),
                    ("gb", 0.17),
                    ("de", 0.15),
                    ("fr", 0.11),
                    ("ca", 0.13)
                ]
            ),
        ),
        "customers" => format!(
            "WITH a AS (
               SELECT i,
                 CASE WHEN i = {c} - 1 THEN 1267
                      ELSE least(1267, CAST(floor(ln(1 + ((i + 0.5) / {c}) * (exp({cgrowth} * 1268) - 1)) / {cgrowth}) AS INTEGER))
                 END AS cday,
                 {u_seg} AS u_seg, {u_plan} AS u_plan
               FROM range({c}) AS t(i)
             )
             SELECT i + 1 AS customer_id, DATE '2023-01-01' + cday AS signup_date,
               CASE WHEN u_seg < 0.72 THEN {smb}
                    WHEN u_seg < 0.93 THEN {mid}
                    ELSE {ent} END AS plan,
               CASE WHEN u_seg < 0.72 THEN 'smb' WHEN u_seg < 0.93 THEN 'mid_market' ELSE 'enterprise' END AS segment
             FROM a",
            u_seg = u(0),
            u_plan = u(1),
            smb = pick(
                "u_plan",
                &[("free", 0.70), ("pro", 0.28), ("enterprise", 0.02)]
            ),
            mid = pick(
                "u_plan",
                &[("free", 0.35), ("pro", 0.55), ("enterprise", 0.10)]
            ),
            ent = pick(
                "u_plan",
                &[("free", 0.10), ("pro", 0.35), ("enterprise", 0.55)]
            ),
        ),
        _ => format!(
            "WITH a AS (
               SELECT i, {day} AS day, {u_p} AS u_p, {z} AS z FROM range({rows}) AS t(i)
             ), b AS (
               SELECT *, {priority} AS priority FROM a
             )
             SELECT i + 1 AS ticket_id, {ts} AS opened_at, {customer} AS customer_id, priority,
               round(greatest(0.1, CASE priority WHEN 'low' THEN 40 WHEN 'normal' THEN 22 WHEN 'high' THEN 10 ELSE 5 END
                                   * power(0.88, day / 365.25) * exp(0.6 * z)), 1) AS resolution_hours
             FROM b",
            day = day(0),
            u_p = u(2),
            z = z(3),
            rows = sizes.tickets,
            priority = pick(
                "u_p",
                &[
                    ("low", 0.30),
                    ("normal", 0.42),
                    ("high", 0.18),
                    ("urgent", 0.10)
                ]
            ),
            ts = ts(1),
            customer = customer(5),
        ),
    }
}

/// Writes the four Parquet files of size N into `data` unless the stamp
/// says they are already there; checks that their schemas equal the
/// example's CSV files' (as DuckDB reads them for kpic).
fn generate(data: &Path, sizes: &Sizes, version: &str) -> Result<(), Error> {
    let meta = data.join("data.meta");
    let stamp = format!(
        "sessions={} generator={GENERATOR_VERSION} duckdb={version}\n",
        sizes.sessions
    );
    let all_there = SOURCES
        .iter()
        .all(|(t, _)| data.join(format!("{t}.parquet")).is_file());
    if all_there && std::fs::read_to_string(&meta).ok().as_deref() == Some(stamp.as_str()) {
        println!("data:     reusing {}", data.display());
        return Ok(());
    }
    std::fs::create_dir_all(data)?;
    let _ = std::fs::remove_file(&meta);
    let conn = connection()?;
    for (table, _) in SOURCES {
        let file = data.join(format!("{table}.parquet"));
        let tmp = data.join(format!("{table}.parquet.tmp"));
        let start = Instant::now();
        print!(
            "data:     writing {} rows to {} ... ",
            sizes.rows(table),
            file.display()
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        conn.execute_batch(&format!(
            "COPY ({}) TO {} (FORMAT parquet)",
            generator_sql(table, sizes),
            sql_string(&tmp)
        ))?;
        std::fs::rename(&tmp, &file)?;
        println!("{:.1} s", start.elapsed().as_secs_f64());
        let schema = |relation: String| -> Result<Vec<(String, String)>, Error> {
            let mut st = conn.prepare(&format!("DESCRIBE SELECT * FROM {relation}"))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<duckdb::Result<_>>()?)
        };
        let ours = schema(format!("read_parquet({})", sql_string(&file)))?;
        let example = repo().join(format!("fixtures/data/{table}.csv.gz"));
        let theirs = schema(format!("read_csv_auto({})", sql_string(&example)))?;
        if ours != theirs {
            return Err(format!(
                "{table}: generated columns {ours:?} differ from the example's {theirs:?}"
            )
            .into());
        }
    }
    std::fs::write(&meta, stamp)?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The kpic project in `dir` (see the module docs, step 2), and the
/// quarterly plan as a CSV for the hand-written SQL.
fn write_project(dir: &Path, scale: f64) -> Result<(), Error> {
    let root = repo();
    let models = dir.join("models");
    if models.exists() {
        std::fs::remove_dir_all(&models)?;
    }
    copy_dir(&root.join("models"), &models)?;
    let macros = dir.join("macros");
    if macros.exists() {
        std::fs::remove_dir_all(&macros)?;
    }
    copy_dir(&root.join("macros"), &macros)?;
    std::fs::copy(root.join("kpic.yml"), dir.join("kpic.yml"))?;

    let sources = models.join("sources.yml");
    let mut text = std::fs::read_to_string(&sources)?;
    for (table, _) in SOURCES {
        let from = format!("path: fixtures/data/{table}.csv.gz");
        if text.matches(&from).count() != 1 {
            return Err(format!(
                "models/sources.yml has no single `{from}`: update examples/run_speed.rs"
            )
            .into());
        }
        text = text.replace(&from, &format!("path: data/{table}.parquet"));
    }
    std::fs::write(&sources, text)?;

    // growth.yml: the quarterly plan, `YYYY-Qn: number` lines.
    let growth = models.join("kpis/growth.yml");
    let mut plan = Vec::new();
    let mut out = String::new();
    for line in std::fs::read_to_string(&growth)?.lines() {
        let trimmed = line.trim();
        if let Some((period, value)) = trimmed.split_once(':')
            && period.len() == 7
            && period.as_bytes()[4] == b'-'
            && period.as_bytes()[5] == b'Q'
            && let Ok(v) = value.trim().parse::<f64>()
        {
            let scaled = (v * scale).round();
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}{period}: {scaled}\n"));
            plan.push(format!("{period},{scaled}"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if plan.len() != 8 {
        return Err(format!(
            "models/kpis/growth.yml: expected the 8 quarters of quarterly_revenue's plan, found {}",
            plan.len()
        )
        .into());
    }
    std::fs::write(&growth, out)?;

    let fixtures = dir.join("fixtures/data");
    std::fs::create_dir_all(&fixtures)?;
    let mut targets = String::new();
    for (i, line) in std::fs::read_to_string(root.join("fixtures/data/targets.csv"))?
        .lines()
        .enumerate()
    {
        let fields: Vec<&str> = line.split(',').collect();
        match fields.as_slice() {
            [period, value, "revenue_ytd"] if i > 0 => {
                let v: f64 = value.parse()?;
                targets.push_str(&format!("{period},{},revenue_ytd\n", (v * scale).round()));
            }
            _ => {
                targets.push_str(line);
                targets.push('\n');
            }
        }
    }
    std::fs::write(fixtures.join("targets.csv"), targets)?;
    std::fs::write(
        fixtures.join("quarterly_plan.csv"),
        format!("period,target\n{}\n", plan.join("\n")),
    )?;
    Ok(())
}

/// The statements of a hand-written SQL file, placeholders filled for the
/// project in `dir`: full-line `--` comments dropped, a statement ends with
/// a `;` at the end of a line.
fn handwritten(path: &Path, dir: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for (table, _) in SOURCES {
        let file = dir.join(format!("data/{table}.parquet"));
        text = text.replace(
            &format!("{{{table}}}"),
            &format!("read_parquet({})", sql_string(&file)),
        );
    }
    text = text
        .replace(
            "{targets}",
            &sql_string(&dir.join("fixtures/data/targets.csv")),
        )
        .replace(
            "{quarterly_plan}",
            &sql_string(&dir.join("fixtures/data/quarterly_plan.csv")),
        );
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            let st = current.trim().trim_end_matches(';').trim().to_string();
            if !st.is_empty() {
                statements.push(st);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_string());
    }
    if statements.is_empty() {
        return Err(format!("{}: no statements", path.display()).into());
    }
    Ok(statements)
}

/// Runs the statements on `conn`; fetches (and counts) the rows of the last.
fn run_statements(conn: &Connection, statements: &[String]) -> Result<u64, Error> {
    let (last, setup) = statements.split_last().expect("at least one statement");
    for st in setup {
        conn.execute_batch(st)
            .map_err(|e| format!("{e}\nin: {}", first_line(st)))?;
    }
    let mut st = conn.prepare(last)?;
    let mut rows = st.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn first_line(sql: &str) -> String {
    sql.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(80)
        .collect()
}

/// The hand-written SQL on a fresh in-memory connection of this process,
/// opening it included; (seconds, rows).
fn handwritten_in_process(statements: &[String]) -> Result<(f64, u64), Error> {
    let start = Instant::now();
    let conn = connection()?;
    let n = run_statements(&conn, statements)?;
    drop(conn);
    Ok((start.elapsed().as_secs_f64(), n))
}

/// `run_speed --handwritten-process DIR SQL`: the hand-written SQL as an
/// analyst's job runs it, storing its result as table `kpi_results` in
/// `DIR/target/handwritten.duckdb` (in one transaction, like kpic), then
/// exiting. The parent times the whole process, as it times the kpic CLI.
fn handwritten_process_mode() -> Option<ExitCode> {
    let mut it = std::env::args().skip(1);
    if it.next().as_deref() != Some("--handwritten-process") {
        return None;
    }
    let dir = PathBuf::from(it.next()?);
    let sql = PathBuf::from(it.next()?);
    let run = || -> Result<(), Error> {
        let statements = handwritten(&sql, &dir)?;
        let target = dir.join("target");
        std::fs::create_dir_all(&target)?;
        let conn = Connection::open(target.join("handwritten.duckdb"))?;
        conn.execute_batch(&format!("SET memory_limit = '{MEMORY_LIMIT}'"))?;
        let (last, setup) = statements.split_last().expect("at least one statement");
        conn.execute_batch("BEGIN TRANSACTION")?;
        for st in setup {
            conn.execute_batch(st)?;
        }
        conn.execute_batch(&format!("CREATE OR REPLACE TABLE kpi_results AS {last}"))?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    };
    Some(match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

/// GNU time (Debian package `time`): the peak resident memory of a child
/// process (`%M`, KiB), which std cannot read without `unsafe`. Where it is
/// missing the benchmark times without measuring memory.
const GNU_TIME: &str = "/usr/bin/time";

/// A child process's wall time and, with GNU time, its peak resident
/// memory (max RSS) in MiB.
struct Measured {
    seconds: f64,
    peak_mib: Option<f64>,
}

/// Runs `cmd` to completion (stdout and stderr captured), measured. Fails
/// with its stderr when it exits non-zero.
fn measured(mut cmd: Command, what: &str) -> Result<Measured, Error> {
    let rss_file = std::env::temp_dir().join(format!("kpic-bench-rss-{}", std::process::id()));
    let mut command = if Path::new(GNU_TIME).exists() {
        let mut wrapped = Command::new(GNU_TIME);
        wrapped
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    } else {
        std::mem::replace(&mut cmd, Command::new("true"))
    };
    let start = Instant::now();
    let out = command.output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let peak_mib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.trim().lines().last()?.trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0);
    let _ = std::fs::remove_file(&rss_file);
    Ok(Measured { seconds, peak_mib })
}

fn handwritten_process(dir: &Path, sql: &Path) -> Result<Measured, Error> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--handwritten-process").arg(dir).arg(sql);
    measured(cmd, "the hand-written process")
}

/// `kpic run` as a user runs it: the release binary, the project's
/// database file (DuckDB's memory limit at kpic's default, 2GB), the table
/// printed (captured here).
fn kpic_cli(kpic: &Path, dir: &Path) -> Result<Measured, Error> {
    let mut cmd = Command::new(kpic);
    cmd.arg("--project")
        .arg(dir)
        .args(["--quiet", "--color", "never", "run"]);
    measured(cmd, "kpic run")
}

/// `kpic run` through the library, in this process, as the CLI calls it
/// (load and check with the catalog's DuckDB connection, plan, compile,
/// bind the aggregates in DuckDB, build), into an in-memory database like
/// the hand-written side. (seconds, kpi_results rows).
fn kpic_in_process(dir: &Path) -> Result<(f64, Vec<kpic::exec::KpiRow>), Error> {
    let start = Instant::now();
    let mut catalog = kpic::exec::DuckDbCatalog::new(dir, None);
    let (model, diags) = kpic::analyze_project(dir, &mut catalog);
    let conn = catalog.into_connection();
    if diags.has_errors() {
        return Err(kpic_error(&diags));
    }
    let options = kpic::plan::PlanOptions {
        as_of: None,
        select: Vec::new(),
        local_files: true,
    };
    // The CLI plans and compiles once to bind, once to run.
    let plan = kpic::plan::plan_kpis(&model, &options).map_err(|d| kpic_error(&d))?;
    let compiled = kpic::sql::plan_to_sql(&plan, &model, &kpic::sql::dialect::DuckDb);
    if let Some(conn) = &conn {
        let bind = kpic::exec::type_check(&model.project, &plan, &compiled, conn);
        if bind.has_errors() {
            return Err(kpic_error(&bind));
        }
    }
    drop(conn);
    let plan = kpic::plan::plan_kpis(&model, &options).map_err(|d| kpic_error(&d))?;
    let compiled = kpic::sql::plan_to_sql(&plan, &model, &kpic::sql::dialect::DuckDb);
    let run_options = kpic::exec::RunOptions {
        database: ":memory:".into(),
        memory_limit: Some(MEMORY_LIMIT.into()),
        timeout: None,
    };
    let outcome = kpic::exec::run_build(&model.project, &compiled, &run_options)
        .map_err(|d| kpic_error(&d))?;
    Ok((start.elapsed().as_secs_f64(), outcome.rows))
}

// --- the check ----------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(Option<String>),
    Num(Option<f64>),
}

type Table = BTreeMap<(String, String), Vec<Cell>>;

/// `SELECT` of kpi_results' 23 columns, texts as VARCHAR and numbers as
/// DOUBLE, from `relation`.
fn normalized(relation: &str) -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|(c, num)| {
            let ty = if *num { "DOUBLE" } else { "VARCHAR" };
            format!("CAST(\"{c}\" AS {ty}) AS \"{c}\"")
        })
        .collect();
    format!("SELECT {} FROM {relation}", cols.join(", "))
}

fn read_table(conn: &Connection, sql: &str) -> Result<Table, Error> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    let mut table = Table::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(COLUMNS.len());
        for (i, (_, num)) in COLUMNS.iter().enumerate() {
            cells.push(if *num {
                Cell::Num(row.get(i)?)
            } else {
                Cell::Text(row.get(i)?)
            });
        }
        let key = match (&cells[0], &cells[4]) {
            (Cell::Text(Some(k)), Cell::Text(Some(p))) => (k.clone(), p.clone()),
            _ => return Err("a kpi_results row without kpi or period".into()),
        };
        if table.insert(key.clone(), cells).is_some() {
            return Err(format!("two kpi_results rows for {key:?}").into());
        }
    }
    Ok(table)
}

/// The hand-written result, normalized, on a fresh connection.
fn handwritten_table(statements: &[String]) -> Result<Table, Error> {
    let conn = connection()?;
    let (last, setup) = statements.split_last().expect("at least one statement");
    for st in setup {
        conn.execute_batch(st)
            .map_err(|e| format!("{e}\nin: {}", first_line(st)))?;
    }
    read_table(&conn, &normalized(&format!("({last}) AS handwritten")))
}

fn kpic_rows_table(rows: &[kpic::exec::KpiRow]) -> Table {
    let text = |s: &str| Cell::Text(Some(s.to_string()));
    let opt = |s: &Option<String>| Cell::Text(s.clone());
    rows.iter()
        .map(|r| {
            let cells = vec![
                text(&r.kpi),
                opt(&r.label),
                text(&r.metric),
                text(&r.grain),
                text(&r.period),
                text(&r.period_start),
                text(&r.period_end),
                text(if r.is_complete { "true" } else { "false" }),
                Cell::Num(r.actual),
                Cell::Num(r.target),
                Cell::Num(r.attainment),
                text(&r.status),
                Cell::Num(r.projected),
                Cell::Num(r.previous),
                Cell::Num(r.change),
                Cell::Num(r.change_pct),
                Cell::Num(r.last_year),
                Cell::Num(r.yoy_change_pct),
                Cell::Num(r.numerator),
                Cell::Num(r.denominator),
                text(&r.direction),
                opt(&r.indicator),
                opt(&r.owner),
            ];
            ((r.kpi.clone(), r.period.clone()), cells)
        })
        .collect()
}

struct Agreement {
    rows: usize,
    cells: usize,
    max_rel: f64,
}

/// Every row and column of `theirs` against `ours` (`kpic`'s); numbers
/// within TOLERANCE relative. Err lists the first differences.
fn compare(kpic: &Table, other: &Table, what: &str) -> Result<Agreement, Error> {
    let mut problems = Vec::new();
    let mut cells = 0;
    let mut max_rel: f64 = 0.0;
    for key in kpic.keys().filter(|k| !other.contains_key(*k)) {
        problems.push(format!("{key:?}: in kpic's kpi_results, not in {what}"));
    }
    for key in other.keys().filter(|k| !kpic.contains_key(*k)) {
        problems.push(format!("{key:?}: in {what}, not in kpic's kpi_results"));
    }
    for (key, a) in kpic {
        let Some(b) = other.get(key) else { continue };
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            cells += 1;
            let same = match (x, y) {
                (Cell::Num(Some(x)), Cell::Num(Some(y))) => {
                    let scale = x.abs().max(y.abs());
                    let rel = if scale == 0.0 {
                        0.0
                    } else {
                        (x - y).abs() / scale
                    };
                    max_rel = max_rel.max(rel);
                    rel <= TOLERANCE
                }
                _ => x == y,
            };
            if !same {
                problems.push(format!(
                    "{} {} {}: kpic {x:?}, {what} {y:?}",
                    key.0, key.1, COLUMNS[i].0
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(Agreement {
            rows: kpic.len(),
            cells,
            max_rel,
        })
    } else {
        let n = problems.len();
        problems.truncate(12);
        Err(format!(
            "{what} differs from kpic's kpi_results in {n} places, e.g.:\n  {}",
            problems.join("\n  ")
        )
        .into())
    }
}

/// Runs kpic (CLI) and the hand-written SQL once each and compares their
/// kpi_results, and kpic's in-process rows. Also the untimed warm-up of
/// both sides (the files are then in the OS page cache for every side).
fn check(kpic: &Path, dir: &Path, statements: &[String], what: &str) -> Result<(), Error> {
    let cli = kpic_cli(kpic, dir)?.seconds;
    let theirs = {
        let db = kpic::exec::open_read_only(&dir.join("target/kpic.duckdb"))?;
        read_table(
            &db,
            &format!("{} ORDER BY kpi, period_start", normalized("kpi_results")),
        )?
    };
    let start = Instant::now();
    let ours = handwritten_table(statements)?;
    let hand = start.elapsed().as_secs_f64();
    let (lib, rows) = kpic_in_process(dir)?;
    let a = compare(&theirs, &ours, what)?;
    compare(&theirs, &kpic_rows_table(&rows), "kpic in process")?;
    println!(
        "check:    {what} = kpic's kpi_results: {} rows × {} columns, {} values \
         (largest relative difference {:.1e}; in process too)",
        a.rows,
        COLUMNS.len(),
        a.cells,
        a.max_rel
    );
    println!(
        "warm-up:  kpic CLI {cli:.3} s, hand-written {hand:.3} s, kpic in process {lib:.3} s, not counted"
    );
    Ok(())
}

// --- timing ---------------------------------------------------------------

/// The issue's memory goal: `kpic run` succeeds within its DuckDB memory
/// limit. DuckDB's limit bounds its buffer pool, not the process: the
/// reading is the whole process's peak (binary, allocator, query state
/// outside the pool), reported against the limit for a sense of scale.
fn memory_verdict(peak_mib: Option<f64>) -> &'static str {
    match peak_mib {
        None => "not measured (install GNU time: apt-get install time)",
        Some(m) if m <= 2048.0 => "within 2GB",
        Some(_) => "above 2GB (the process; DuckDB's pool is capped at the limit)",
    }
}

fn verdict(r: f64) -> &'static str {
    if r <= GOAL_RATIO { "PASS" } else { "FAIL" }
}

struct Medians {
    label: String,
    hand: f64,
    hand_process: f64,
    lib: f64,
    cli: f64,
    /// The largest peak resident memory over the rounds, MiB (GNU time).
    cli_peak_mib: Option<f64>,
    hand_process_peak_mib: Option<f64>,
}

/// The larger of two optional readings.
fn max_reading(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn fmt_mib(m: Option<f64>) -> String {
    m.map_or_else(|| "n/a".to_string(), |m| format!("{m:.0} MiB"))
}

fn time_size(
    kpic: &Path,
    dir: &Path,
    sql: &Path,
    statements: &[String],
    repeat: usize,
    label: &str,
) -> Result<Medians, Error> {
    let (mut hand, mut hand_process, mut lib, mut cli) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cli_peak, mut hand_peak) = (None, None);
    for round in 1..=repeat {
        let (h, _) = handwritten_in_process(statements)?;
        let hp = handwritten_process(dir, sql)?;
        let (l, _) = kpic_in_process(dir)?;
        let c = kpic_cli(kpic, dir)?;
        println!(
            "round {round}:  hand-written {h:.3} s (as a process {:.3} s, peak {}) | kpic in process \
             {l:.3} s | kpic CLI {:.3} s (peak {})",
            hp.seconds,
            fmt_mib(hp.peak_mib),
            c.seconds,
            fmt_mib(c.peak_mib)
        );
        cli_peak = max_reading(cli_peak, c.peak_mib);
        hand_peak = max_reading(hand_peak, hp.peak_mib);
        let (hp, c) = (hp.seconds, c.seconds);
        hand.push(h);
        hand_process.push(hp);
        lib.push(l);
        cli.push(c);
    }
    let m = Medians {
        label: label.to_string(),
        hand: median(&hand),
        hand_process: median(&hand_process),
        lib: median(&lib),
        cli: median(&cli),
        cli_peak_mib: cli_peak,
        hand_process_peak_mib: hand_peak,
    };
    println!("medians of {repeat} rounds, seconds (every round in parentheses):");
    println!(
        "  hand-written  in process        {:>8.3}   ({})",
        m.hand,
        fmt_times(&hand)
    );
    println!(
        "  hand-written  as a process      {:>8.3}   ({}) <- start, open a file, query, store kpi_results, exit",
        m.hand_process,
        fmt_times(&hand_process)
    );
    println!(
        "  kpic run      in process        {:>8.3}   ({})",
        m.lib,
        fmt_times(&lib)
    );
    println!(
        "  kpic run      CLI               {:>8.3}   ({}) <- start, … five tables into target/kpic.duckdb, exit",
        m.cli,
        fmt_times(&cli)
    );
    println!(
        "memory:   peak resident memory (max RSS, GNU time) of kpic CLI {}, of the hand-written \
         process {}; DuckDB memory_limit {MEMORY_LIMIT} on both: {}",
        fmt_mib(m.cli_peak_mib),
        fmt_mib(m.hand_process_peak_mib),
        memory_verdict(m.cli_peak_mib)
    );
    let (ratio, cli_ratio) = (m.lib / m.hand, m.cli / m.hand_process);
    println!(
        "ratio:    kpic / hand-written = {ratio:.2} in process, {cli_ratio:.2} as processes \
         (kpic CLI / hand-written process)"
    );
    println!(
        "goal:     kpic ≤ {GOAL_RATIO}× the hand-written SQL: {} in process, {} as processes",
        verdict(ratio),
        verdict(cli_ratio)
    );
    Ok(m)
}

// --- diagnosis --------------------------------------------------------------

/// A connection configured like `kpic run`'s (relative paths resolve
/// against the project).
fn kpic_like_connection(dir: &Path) -> Result<Connection, Error> {
    let conn = connection()?;
    conn.execute_batch(&format!("SET file_search_path = {}", sql_string(dir)))?;
    Ok(conn)
}

/// What a build statement computes, by its label.
fn category(label: &str) -> &'static str {
    let by = label.ends_with("__by");
    if label.starts_with("join check") {
        "join checks (fan-out of many-to-one joins)"
    } else if label.starts_with("kpic_scan_") {
        "scans: each source copied into a temp table"
    } else if label == "kpic_params" {
        "as_of"
    } else if label.starts_with("kpic_agg_") && by {
        "period aggregates per breakdown member (__by)"
    } else if label.starts_with("kpic_agg_") {
        "period aggregates"
    } else if label.starts_with("kpic_win_") && by {
        "window/to_date metrics per breakdown member (__by)"
    } else if label.starts_with("kpic_win_") {
        "window/to_date metrics"
    } else if label.starts_with("kpi_") {
        "output tables"
    } else {
        "other"
    }
}

/// `--phases`: where kpic run's time goes, on this size.
fn phases(dir: &Path, statements: &[String], repeat: usize) -> Result<(), Error> {
    let mut catalog = kpic::exec::DuckDbCatalog::new(dir, None);
    let (model, diags) = kpic::analyze_project(dir, &mut catalog);
    drop(catalog);
    if diags.has_errors() {
        return Err(kpic_error(&diags));
    }
    let options = kpic::plan::PlanOptions {
        as_of: None,
        select: Vec::new(),
        local_files: true,
    };
    let plan = kpic::plan::plan_kpis(&model, &options).map_err(|d| kpic_error(&d))?;
    let compiled = kpic::sql::plan_to_sql(&plan, &model, &kpic::sql::dialect::DuckDb);
    // As run_build: the join checks, then the statements in one transaction.
    let mut steps: Vec<(String, String)> = compiled
        .checks
        .iter()
        .filter(|c| !c.check.keys.is_empty())
        .map(|c| {
            (
                format!("join check {} -> {}", c.check.source, c.check.joined),
                c.query.to_string(),
            )
        })
        .collect();
    steps.push(("BEGIN".into(), "BEGIN TRANSACTION".into()));
    steps.extend(
        compiled
            .build_statements()
            .into_iter()
            .map(|s| (s.label, s.sql)),
    );
    steps.push(("COMMIT".into(), "COMMIT".into()));
    let standalone = compiled
        .standalone("kpi_results")
        .map(|q| q.to_string())
        .ok_or("no standalone kpi_results query")?;

    let mut times = vec![Vec::new(); steps.len()];
    let mut counts = vec![0usize; steps.len()];
    let mut alone = Vec::new();
    let mut hand = vec![Vec::new(); statements.len()];
    for _ in 0..repeat {
        let conn = kpic_like_connection(dir)?;
        for (i, (label, sql)) in steps.iter().enumerate() {
            let start = Instant::now();
            counts[i] = if label.starts_with("join check") {
                let mut st = conn.prepare(sql)?;
                let mut rows = st.query([])?;
                let mut n = 0;
                while rows.next()?.is_some() {
                    n += 1;
                }
                n
            } else {
                conn.execute(sql, []).map_err(|e| format!("{label}: {e}"))?
            };
            times[i].push(start.elapsed().as_secs_f64());
        }
        drop(conn);
        let conn = kpic_like_connection(dir)?;
        let start = Instant::now();
        let mut st = conn.prepare(&standalone)?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        alone.push(start.elapsed().as_secs_f64());
        drop(rows);
        drop(st);
        drop(conn);
        let conn = connection()?;
        for (i, sql) in statements.iter().enumerate() {
            let start = Instant::now();
            let mut st = conn.prepare(sql)?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            hand[i].push(start.elapsed().as_secs_f64());
        }
    }
    let total: f64 = times.iter().map(|t| median(t)).sum();
    println!();
    println!(
        "phases:   kpic run's statements replayed here (medians of {repeat}, seconds; rows written):"
    );
    for (i, (label, _)) in steps.iter().enumerate() {
        let m = median(&times[i]);
        if label == "BEGIN" || (label == "COMMIT" && m < 0.001) {
            continue;
        }
        println!(
            "  {m:>8.3} {:>4.0}%  {label:<40} {:>10}",
            100.0 * m / total,
            counts[i]
        );
    }
    let mut by_category: BTreeMap<&str, f64> = BTreeMap::new();
    for (i, (label, _)) in steps.iter().enumerate() {
        *by_category.entry(category(label)).or_default() += median(&times[i]);
    }
    let mut cats: Vec<_> = by_category.into_iter().collect();
    cats.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("  by kind:");
    for (cat, t) in cats {
        println!("  {t:>8.3} {:>4.0}%  {cat}", 100.0 * t / total);
    }
    println!("  {total:>8.3} 100%  in all");
    println!(
        "  {:>8.3}        kpic's standalone kpi_results SELECT (`kpic compile`'s kpi_results.sql), \
         alone on a fresh connection",
        median(&alone)
    );
    println!("hand-written statements (medians of {repeat}, seconds):");
    let mut hand_total = 0.0;
    for (i, sql) in statements.iter().enumerate() {
        let m = median(&hand[i]);
        hand_total += m;
        println!("  {m:>8.3}  {}", first_line(sql));
    }
    println!("  {hand_total:>8.3}  in all");

    // The slowest kpic statements under DuckDB's profiler.
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by(|a, b| median(&times[*b]).total_cmp(&median(&times[*a])));
    let slowest: Vec<usize> = order.into_iter().take(3).collect();
    let profile = dir.join("target/run_speed_profile.json");
    let conn = kpic_like_connection(dir)?;
    println!("slowest kpic statements, heaviest operators (DuckDB profiler, one run):");
    for (i, (label, sql)) in steps.iter().enumerate() {
        let profiled = slowest.contains(&i) && !label.starts_with("join check");
        if profiled {
            conn.execute_batch(&format!(
                "PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = {}",
                sql_string(&profile)
            ))?;
        }
        if label.starts_with("join check") {
            let mut st = conn.prepare(sql)?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
        } else {
            conn.execute_batch(sql)?;
        }
        if profiled {
            conn.execute_batch("PRAGMA disable_profiling")?;
            println!("  {label}:");
            for line in top_operators(&profile, 5) {
                println!("    {line}");
            }
        }
    }
    let _ = std::fs::remove_file(&profile);
    Ok(())
}

/// `--sql FILE`: checks another hand-written SQL and times it (median of R)
/// against the file's own hand-written SQL, both in process.
fn other_sql(
    kpic: &Path,
    dir: &Path,
    file: &Path,
    statements: &[String],
    repeat: usize,
) -> Result<(), Error> {
    let other = handwritten(file, dir)?;
    println!();
    check(kpic, dir, &other, &file.display().to_string())?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        a.push(handwritten_in_process(statements)?.0);
        b.push(handwritten_in_process(&other)?.0);
    }
    println!(
        "--sql:    {} {:.3} s ({}) against bench/run/handwritten.sql {:.3} s ({}), in process",
        file.display(),
        median(&b),
        fmt_times(&b),
        median(&a),
        fmt_times(&a)
    );
    Ok(())
}

fn run(args: Args) -> Result<(), Error> {
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| target_dir().join("run_speed"));
    std::fs::create_dir_all(&base)?;
    let base = std::fs::canonicalize(&base)?;
    let kpic = find_kpic(args.kpic.as_deref())?;
    let sql = std::path::absolute(default_sql())?;
    let extra = match &args.sql {
        Some(p) => Some(std::path::absolute(p)?),
        None => None,
    };
    // In-memory DuckDB spills into `.tmp` under the current directory:
    // keep that out of the repository.
    std::env::set_current_dir(&base)?;

    let conn = connection()?;
    let version: String = conn.query_row("SELECT version()", [], |r| r.get(0))?;
    drop(conn);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    let built = std::fs::metadata(&kpic)
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Local>::from(t)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into());
    println!("kpic run speed benchmark");
    println!("kpic:     {} (built {built})", kpic.display());
    println!("baseline: {}", sql.display());
    println!("dir:      {}", base.display());
    println!(
        "engine:   DuckDB {version}, memory_limit {MEMORY_LIMIT} on every side, default threads; \
         {cores} cores, load average {load}"
    );

    let mut results = Vec::new();
    for &n in &args.sizes {
        let label = size_label(n);
        let sizes = Sizes::new(n);
        let dir = base.join(&label);
        println!();
        println!(
            "== {label}: sessions {} rows (the largest table), orders {}, customers {}, support_tickets {}",
            sizes.sessions, sizes.orders, sizes.customers, sizes.tickets
        );
        generate(&dir.join("data"), &sizes, &version)?;
        write_project(&dir, sizes.revenue_scale())?;
        let bytes: u64 = SOURCES
            .iter()
            .filter_map(|(t, _)| std::fs::metadata(dir.join(format!("data/{t}.parquet"))).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "project:  {} ({:.0} MB of Parquet; revenue targets × {:.3})",
            dir.display(),
            bytes as f64 / 1e6,
            sizes.revenue_scale()
        );
        let statements = handwritten(&sql, &dir)?;
        check(&kpic, &dir, &statements, "the hand-written SQL")?;
        results.push(time_size(
            &kpic,
            &dir,
            &sql,
            &statements,
            args.repeat,
            &label,
        )?);
        if args.phases {
            phases(&dir, &statements, args.repeat)?;
        }
        if let Some(file) = &extra {
            other_sql(&kpic, &dir, file, &statements, args.repeat)?;
        }
    }

    println!();
    println!(
        "summary (medians of {} rounds, seconds; goal: kpic ≤ {GOAL_RATIO}× the hand-written SQL)",
        args.repeat
    );
    println!(
        "  {:<6} {:>12} {:>10} {:>7} {:>6}   {:>12} {:>10} {:>7} {:>6}   {:>10}",
        "size",
        "hand-written",
        "kpic",
        "ratio",
        "",
        "hand process",
        "kpic CLI",
        "ratio",
        "",
        "kpic peak"
    );
    for m in &results {
        let (r, c) = (m.lib / m.hand, m.cli / m.hand_process);
        println!(
            "  {:<6} {:>12.3} {:>10.3} {:>7.2} {:>6}   {:>12.3} {:>10.3} {:>7.2} {:>6}   {:>10}",
            m.label,
            m.hand,
            m.lib,
            r,
            verdict(r),
            m.hand_process,
            m.cli,
            c,
            verdict(c),
            fmt_mib(m.cli_peak_mib)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Some(code) = handwritten_process_mode() {
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

//! Nothing lost (issue 5): a killed or failed `kpic run` leaves the previous
//! output tables intact and readable.
//!
//! SPEC §5: `kpic run` replaces the five output tables atomically, "a reader
//! sees the old tables or the new ones, never a mix or a partial table; a
//! failed run leaves the old ones intact". kpic builds everything in one
//! DuckDB transaction (`exec::run_build`); these tests hold it to that from
//! the outside, on generated data large enough (about a million rows per
//! source, written at test time) that a run lasts about a second:
//!
//! - [`killed_runs_leave_old_or_new_tables`]: `kpic run` is SIGKILLed at
//!   seeded random moments (and, in some rounds, right when DuckDB writes
//!   its commit); every time, the five tables must read back whole and be
//!   exactly the previous run's or exactly the next complete run's, and the
//!   next `kpic run` must succeed.
//! - [`readers_never_see_a_partial_write`]: a reader opens the database
//!   read-only in a loop while `kpic run` rewrites it.
//! - [`failed_runs_name_the_step_and_keep_previous_tables`] and
//!   [`timeout_names_the_kpi_whose_sql_was_running`]: failures in the engine
//!   and `--timeout` exit non-zero, say which step (and which KPI) failed,
//!   and leave the tables as they were.
//!
//! A **fingerprint** of the five tables (and the kpi_scorecard view over
//! them, which must follow them: its columns come from duckdb_columns(),
//! its rows from reading it) is, per table, its columns and
//! types, its row count and an order-independent checksum of its rows
//! computed in DuckDB (`sum(hash(row))`); reading it reads every row and
//! every column. The only thing left out is `kpi_definitions.computed_at`,
//! the wall-clock time of the run: two complete runs of the same inputs
//! differ there and nowhere else. So that a mix of two runs cannot go
//! unnoticed for lack of that column, every round changes both the data and
//! the KPI definitions' texts, and the tests check that each of the five
//! tables differs between consecutive runs.
//!
//! The random rounds use a fixed seed (printed; `KPIC_CRASH_SEED=N`
//! replays another). Which moment a kill lands on depends on the machine,
//! so the delays are spread over the run's own measured phases (read from
//! `/proc`: when kpic opens the database for writing, when DuckDB's
//! write-ahead log appears), and the test counts where the kills landed and
//! fails if too few landed inside the write: it cannot pass by never
//! hitting the window. Linux only (`/proc`; `Child::kill` is SIGKILL on
//! Unix).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{expect_code, stderr};
use crate::common::Project;

/// The five output tables and the `kpi_scorecard` view over them (issue
/// 6): a reader must see the view of the same run as the tables, never a
/// missing or half-replaced one.
const TABLES: [&str; 6] = [
    "kpi_results",
    "kpi_metrics",
    "kpi_breakdowns",
    "kpi_drivers",
    "kpi_definitions",
    "kpi_scorecard",
];

const DEFAULT_SEED: u64 = 20_260_515;

/// The seed of a test's random choices, printed so a failure can be
/// replayed with `KPIC_CRASH_SEED`.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("KPIC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!("{test}: seed {seed} (KPIC_CRASH_SEED={seed} replays it)");
    seed
}

/// splitmix64: small, deterministic, good enough to spread delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------
// The generated project
// ---------------------------------------------------------------------------

/// Writes `data/orders.parquet`: `rows` orders over 2023-2024, every column
/// a hash of the row number and `seed` (a new seed is new data). Amounts
/// are whole numbers, so sums are exact whatever order DuckDB adds them in
/// and two runs over the same data give bit-identical tables.
fn write_orders(dir: &Path, seed: u64, rows: u64) {
    write_parquet(
        &dir.join("data/orders.parquet"),
        &format!(
            "SELECT i AS order_id, \
               DATE '2023-01-01' + CAST(hash(i, {seed}, 1) % 730 AS INTEGER) AS ordered_at, \
               CAST(hash(i, {seed}, 2) % 40000 AS INTEGER) AS customer_id, \
               ['web', 'app', 'partner', 'email'][1 + CAST(hash(i, {seed}, 3) % 4 AS INTEGER)] AS channel, \
               ['desktop', 'mobile', 'tablet'][1 + CAST(hash(i, {seed}, 4) % 3 AS INTEGER)] AS device, \
               'C' || CAST(hash(i, {seed}, 5) % 25 AS VARCHAR) AS country, \
               CASE WHEN hash(i, {seed}, 6) % 20 < 17 THEN 'completed' \
                    WHEN hash(i, {seed}, 6) % 20 < 19 THEN 'refunded' ELSE 'cancelled' END AS status, \
               CAST(5 + hash(i, {seed}, 7) % 300 AS DOUBLE) AS amount \
             FROM range({rows}) AS r(i)"
        ),
    );
}

fn write_sessions(dir: &Path, rows: u64) {
    write_parquet(
        &dir.join("data/sessions.parquet"),
        &format!(
            "SELECT i AS session_id, \
               DATE '2023-01-01' + CAST(hash(i, 11) % 730 AS INTEGER) AS started_at, \
               ['web', 'app', 'partner', 'email'][1 + CAST(hash(i, 13) % 4 AS INTEGER)] AS channel, \
               ['desktop', 'mobile', 'tablet'][1 + CAST(hash(i, 14) % 3 AS INTEGER)] AS device, \
               CAST(100 + hash(i, 15) % 4000 AS DOUBLE) AS load_ms \
             FROM range({rows}) AS r(i)"
        ),
    );
}

fn write_parquet(path: &Path, select: &str) {
    copy_to(path, select, "FORMAT parquet");
}

/// `COPY (select) TO path (options)`, in an in-memory DuckDB of the test's.
fn copy_to(path: &Path, select: &str, options: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = duckdb::Connection::open_in_memory().expect("in-memory DuckDB");
    let target = path.to_str().unwrap().replace('\'', "''");
    conn.execute_batch(&format!("COPY ({select}) TO '{target}' ({options})"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

const SOURCES_AND_METRICS: &str = "\
sources:
  - name: orders
    path: data/orders.parquet
    time: ordered_at
    dimensions: [channel, device, country, status]
  - name: sessions
    path: data/sessions.parquet
    time: started_at
    dimensions: [channel, device]
metrics:
  - name: revenue
    source: orders
    measure: sum(amount)
    filter: status = 'completed'
  - name: orders
    source: orders
    measure: count(*)
    filter: status = 'completed'
  - name: buyers
    source: orders
    measure: count(distinct customer_id)
  - name: sessions
    source: sessions
    measure: count(*)
  - name: conversion_rate
    expr: orders / sessions
  - name: aov
    expr: revenue / orders
  - name: p90_load_ms
    source: sessions
    measure: quantile_cont(load_ms, 0.9)
";

/// Five KPIs at four grains, with breakdowns and drivers, so that every
/// output table has rows; `generation` is written into a description, so
/// kpi_definitions changes with it.
fn kpis(generation: u64) -> String {
    format!(
        "\
kpis:
  - name: revenue_monthly
    metric: revenue
    description: Net revenue, generation {generation}.
    grain: month
    target: {{change: +10%, vs: last_year}}
    drivers: [sessions, conversion_rate, aov]
    decomposition: sessions * conversion_rate * aov
    breakdowns: [channel, device, country]
    owner: growth
    action_plan: Review the funnel.
  - name: aov_weekly
    metric: aov
    grain: week
    target: 150
    breakdowns: [channel, device, country]
    owner: growth
    action_plan: Review pricing.
  - name: buyers_quarterly
    metric: buyers
    grain: quarter
    target: {{change: +5%, vs: previous}}
    breakdowns: [country, status]
    owner: growth
    action_plan: Review retention.
  - name: conversion_daily
    metric: conversion_rate
    grain: day
    target: 0.5
    breakdowns: [channel, device]
    owner: growth
    action_plan: Review checkout.
  - name: load_monthly
    metric: p90_load_ms
    grain: month
    direction: lower_is_better
    target: 3500
    breakdowns: [channel, device]
    owner: web
    action_plan: Review the CDN.
"
    )
}

const KPI_NAMES: [&str; 5] = [
    "revenue_monthly",
    "aov_weekly",
    "buyers_quarterly",
    "conversion_daily",
    "load_monthly",
];

/// The project the tests run: `orders` and `sessions` rows of generated
/// data, generation 0. Its database is `target/t.duckdb` ([`Project::db_path`]).
fn big_project(orders: u64, sessions: u64) -> Project {
    let p = Project::new(&[
        (
            "kpic.yml",
            "name: crash\nas_of: 2024-12-15\nwarehouse:\n  database: target/t.duckdb\n",
        ),
        ("models/models.yml", SOURCES_AND_METRICS),
        ("models/kpis.yml", &kpis(0)),
    ]);
    write_orders(p.path(), 0, orders);
    write_sessions(p.path(), sessions);
    std::fs::create_dir_all(p.path().join("target")).unwrap();
    p
}

/// New data and new definitions: a complete run changes all five tables.
fn next_generation(p: &Project, generation: u64, orders: u64) {
    write_orders(p.path(), generation, orders);
    p.write("models/kpis.yml", &kpis(generation));
}

// ---------------------------------------------------------------------------
// Fingerprints
// ---------------------------------------------------------------------------

/// One table: columns with types, row count, order-independent checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TablePrint {
    columns: String,
    rows: i64,
    checksum: String,
}

type Print = Vec<TablePrint>;

fn open_read_only(db: &Path) -> duckdb::Result<duckdb::Connection> {
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?;
    duckdb::Connection::open_with_flags(db, config)
}

/// Opens `db` read-only and fingerprints the five tables.
fn fingerprint(db: &Path) -> Result<Print, String> {
    let conn = open_read_only(db).map_err(|e| format!("cannot open read-only: {e}"))?;
    fingerprint_on(&conn)
}

/// Reads all five tables on one connection (one snapshot: a read-only
/// connection sees the database as it was when opened).
fn fingerprint_on(conn: &duckdb::Connection) -> Result<Print, String> {
    TABLES
        .iter()
        .map(|t| {
            let columns: Option<String> = conn
                .query_row(
                    &format!(
                        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) \
                         FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = '{t}'"
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| format!("{t}: columns: {e}"))?;
            let columns = columns.ok_or_else(|| format!("{t}: the table does not exist"))?;
            let except = if *t == "kpi_definitions" || *t == "kpi_scorecard" {
                " EXCLUDE (computed_at)"
            } else {
                ""
            };
            let (rows, checksum) = conn
                .query_row(
                    &format!(
                        "SELECT count(*), CAST(coalesce(sum(hash(t)), 0) AS VARCHAR) \
                         FROM (SELECT *{except} FROM {t}) AS t"
                    ),
                    [],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(|e| format!("{t}: rows: {e}"))?;
            Ok(TablePrint {
                columns,
                rows,
                checksum,
            })
        })
        .collect()
}

/// Per table, whether `seen` is the old one, the new one, or neither.
fn compare(seen: &Print, old: &Print, new: &Print) -> String {
    TABLES
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let what = match (seen[i] == old[i], seen[i] == new[i]) {
                (true, _) => "old".to_string(),
                (false, true) => "new".to_string(),
                (false, false) => format!("NEITHER ({} rows)", seen[i].rows),
            };
            format!("{t}: {what}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Test precondition: every table changed between two complete runs, so a
/// mix of the two would be seen.
fn assert_all_tables_changed(old: &Print, new: &Print, ctx: &str) {
    for (i, t) in TABLES.iter().enumerate() {
        assert_ne!(
            old[i], new[i],
            "{ctx}: test bug: {t} is the same before and after a new generation, \
             so a mix of old and new tables could go unnoticed"
        );
    }
}

// ---------------------------------------------------------------------------
// Running and watching kpic
// ---------------------------------------------------------------------------

/// `kpic --project P --color never run --format csv`, started, not awaited;
/// stdout is dropped, stderr goes to `P/run.stderr`.
fn spawn_run(p: &Project) -> Child {
    let err = std::fs::File::create(p.path().join("run.stderr")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kpic"))
        .arg("--project")
        .arg(p.path())
        .args(["--color", "never", "run", "--format", "csv"])
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start kpic ({}): {e}", env!("CARGO_BIN_EXE_kpic")))
}

fn run_stderr(p: &Project) -> String {
    std::fs::read_to_string(p.path().join("run.stderr")).unwrap_or_default()
}

fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// Whether process `pid` has `db` open read-write. kpic opens the database
/// read-write only in `exec::run_build`, for the transaction that replaces
/// the tables (its schema inspection before that opens it read-only), so
/// this tells a kill that landed inside the write from one before it.
fn holds_for_writing(pid: u32, db: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        if std::fs::read_link(fd.path()).ok().as_deref() != Some(db) {
            return false;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            // O_ACCMODE == O_RDWR
            .is_some_and(|flags| flags & 0o3 == 0o2)
    })
}

/// When, in a complete run, kpic opened the database for writing, when the
/// write-ahead log appeared (DuckDB writes it at the commit), and when the
/// process ended.
#[derive(Debug, Clone, Copy)]
struct Phases {
    writing: Option<Duration>,
    wal: Option<Duration>,
    end: Duration,
}

impl Phases {
    fn show(&self) -> String {
        format!(
            "writes from {:?}, log at {:?}, ends at {:?}",
            self.writing, self.wal, self.end
        )
    }
}

/// A complete `kpic run`, watched every 2 ms.
fn watched_run(p: &Project, db: &Path) -> (ExitStatus, Phases) {
    let mut child = spawn_run(p);
    let start = Instant::now();
    let (mut writing, mut wal) = (None, None);
    let wal_path = wal_of(db);
    // A log left by a killed run is replayed and removed when kpic opens
    // the database: only a log that appears after being absent is this
    // run's commit.
    let mut absent = false;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let end = start.elapsed();
            return (status, Phases { writing, wal, end });
        }
        if writing.is_none() && holds_for_writing(child.id(), db) {
            writing = Some(start.elapsed());
        }
        match wal_path.exists() {
            false => absent = true,
            true if absent && wal.is_none() => wal = Some(start.elapsed()),
            true => {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Where a kill landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Landed {
    /// The run had already exited (successfully) when the kill came.
    Finished,
    /// Killed while kpic did not hold the database for writing: before the
    /// write (the old tables stay) or after it (the new ones are there).
    NotWriting,
    /// Killed while kpic held the database for writing, before the commit.
    DuringWrite,
    /// Killed while the write-ahead log existed: during or after the
    /// commit, before DuckDB folded it into the database at close.
    DuringCommit,
}

// ---------------------------------------------------------------------------
// 1. SIGKILL at random moments
// ---------------------------------------------------------------------------

/// Kills `kpic run` with SIGKILL at seeded random moments of its write, then
/// checks that the five tables read back whole and are all the previous
/// complete run's or all the next complete run's, and that the next
/// `kpic run` succeeds (a kill leaves no lock or write-ahead log that breaks
/// it). Each round first changes the data and the definitions, so old and
/// new differ in every table.
#[test]
fn killed_runs_leave_old_or_new_tables() {
    const ORDERS: u64 = 800_000;
    const MAX_ROUNDS: u64 = 14;
    const BUDGET: Duration = Duration::from_secs(45);
    let seed = seed("killed_runs_leave_old_or_new_tables");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let p = big_project(ORDERS, 600_000);
    let db = p.db_path();
    let (status, mut phases) = watched_run(&p, &db);
    assert!(
        status.success(),
        "the first kpic run failed:\n{}",
        run_stderr(&p)
    );
    let db = db.canonicalize().unwrap();
    eprintln!("first complete run: {}", phases.show());
    let mut old = fingerprint(&db).expect("the first run's tables read back");
    let mut tally: Vec<(Landed, &str)> = Vec::new();
    let mut round = 0;
    while round < MAX_ROUNDS && (round < 6 || started.elapsed() < BUDGET) {
        round += 1;
        next_generation(&p, round, ORDERS);
        // Every third round (the first, fourth, …: at least two of the six
        // a slow machine fits in the budget) waits for the write-ahead log
        // (the commit) and kills within the time from the commit to the end
        // of the last complete run, more often early in it; the others draw
        // a delay spread over the whole write, starting a little before
        // kpic opens the database. (Drawn at random, no round at all waited
        // for the commit in about one seeded run in eleven.)
        let at_commit = round % 3 == 1;
        let (from, to, spread) = if at_commit {
            let tail = phases.end.saturating_sub(phases.wal.unwrap_or(phases.end));
            (Duration::ZERO, tail, rng.unit().powi(2))
        } else {
            let from = phases.writing.unwrap_or(Duration::ZERO).mul_f64(0.7);
            (from, phases.end.mul_f64(1.05), rng.unit())
        };
        let delay = from + to.saturating_sub(from).mul_f64(spread);
        let ctx = format!(
            "seed {seed}, round {round}, kill {delay:?} after {}",
            if at_commit {
                "the commit began"
            } else {
                "the start"
            }
        );
        let wal = wal_of(&db);
        // A complete run folds the log into the database when it closes it,
        // so a log found at the kill is this run's commit (unless one was
        // already there).
        let stale_wal = wal.exists();
        let mut child = spawn_run(&p);
        let start = Instant::now();
        if at_commit && !stale_wal {
            while !wal.exists() && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        std::thread::sleep(delay);
        let landed = match child.try_wait().unwrap() {
            Some(status) => {
                assert!(
                    status.success(),
                    "{ctx}: the run ended by itself but failed:\n{}",
                    run_stderr(&p)
                );
                Landed::Finished
            }
            None => {
                let landed = if wal.exists() && !stale_wal {
                    Landed::DuringCommit
                } else if holds_for_writing(child.id(), &db) {
                    Landed::DuringWrite
                } else {
                    Landed::NotWriting
                };
                child.kill().unwrap();
                child.wait().unwrap();
                landed
            }
        };
        let killed_after = start.elapsed();
        // What a reader finds after the kill, before anything else runs.
        let seen = fingerprint(&db).unwrap_or_else(|e| {
            panic!("{ctx}: after a kill ({landed:?}) the tables cannot be read: {e}")
        });
        // The next complete run must succeed; its tables are the "new" ones.
        let (status, next) = watched_run(&p, &db);
        assert!(
            status.success(),
            "{ctx}: the run after a kill ({landed:?}) failed:\n{}",
            run_stderr(&p)
        );
        phases = next;
        let new = fingerprint(&db).unwrap_or_else(|e| panic!("{ctx}: new tables: {e}"));
        assert_all_tables_changed(&old, &new, &ctx);
        let outcome = if seen == old {
            "old"
        } else if seen == new {
            "new"
        } else {
            panic!(
                "{ctx}: after a kill ({landed:?}, {killed_after:?} into the run) the tables are \
                 neither all the previous run's nor all the next run's: {}",
                compare(&seen, &old, &new)
            )
        };
        assert!(
            landed != Landed::Finished || outcome == "new",
            "{ctx}: a run that completed left the old tables"
        );
        eprintln!(
            "round {round}: {landed:?} after {killed_after:?} -> {outcome} tables; next run {}",
            phases.show()
        );
        tally.push((landed, outcome));
        old = new;
    }
    let count = |l: Landed| tally.iter().filter(|(x, _)| *x == l).count();
    let inside = count(Landed::DuringWrite) + count(Landed::DuringCommit);
    eprintln!(
        "{round} rounds in {:?}: {} finished, {} before or after the write, {} during the \
         write, {} during the commit; {} left the old tables, {} the new",
        started.elapsed(),
        count(Landed::Finished),
        count(Landed::NotWriting),
        count(Landed::DuringWrite),
        count(Landed::DuringCommit),
        tally.iter().filter(|(_, o)| *o == "old").count(),
        tally.iter().filter(|(_, o)| *o == "new").count(),
    );
    // The test is only worth something if kills landed inside the write.
    assert!(
        inside * 2 >= tally.len(),
        "seed {seed}: only {inside} of {} kills landed while kpic held the database for \
         writing; the delays no longer fit this machine's runs",
        tally.len()
    );
    assert!(
        count(Landed::DuringCommit) >= 1,
        "seed {seed}: no kill landed while DuckDB's write-ahead log existed"
    );
}

// ---------------------------------------------------------------------------
// 2. A reader during the write
// ---------------------------------------------------------------------------

/// Is this DuckDB error the file lock another process holds?
fn is_lock_conflict(message: &str) -> bool {
    message.contains("Could not set lock") || message.contains("Conflicting lock")
}

/// What DuckDB allows: one process may hold a database file for writing,
/// or any number of processes may hold it read-only, never both (DuckDB
/// locks the file; <https://duckdb.org/docs/stable/connect/concurrency>).
/// So a reader in another process cannot look at the tables *during* a
/// write at all: while `kpic run` holds the file, opening it read-only is
/// refused ("Could not set lock"), and while a reader holds it, `kpic run`
/// cannot start its write and fails with KPI401 and exit 2, its tables
/// untouched. This test runs a reader thread that opens the database
/// read-only in a loop (pausing a few milliseconds between reads, as a
/// dashboard would) and reads all five tables, while the main thread runs
/// `kpic run` for three new generations of data, retrying a run the reader
/// locked out. It checks exactly that: every read that got in sees one
/// complete generation (old or new, never a mix or part), readers never go
/// back to an older generation, reads are refused while kpic writes, and
/// a refused `kpic run` leaves the tables as they were.
#[test]
fn readers_never_see_a_partial_write() {
    const ORDERS: u64 = 500_000;
    const GENERATIONS: u64 = 3;
    let seed = seed("readers_never_see_a_partial_write");
    let p = big_project(ORDERS, 400_000);
    let db = p.db_path();
    let out = p.kpic(&["run", "--format", "csv"]);
    expect_code(&out, 0, "first kpic run");
    let mut generations = vec![fingerprint(&db).expect("first tables")];

    #[derive(Default)]
    struct Seen {
        /// When each read began, and what it saw.
        reads: Vec<(Instant, Print)>,
        refused: usize,
        errors: Vec<String>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // DuckDB's file locks are POSIX locks, which belong to the process:
    // closing one connection of this process drops the lock another
    // connection of it holds. The reader thread and the main thread's own
    // reads therefore take turns (`one_reader`), so that a `kpic run` can
    // never start writing under a read of this process.
    let one_reader = Arc::new(Mutex::new(()));
    let reader = {
        let (seen, stop, db) = (seen.clone(), stop.clone(), db.clone());
        let one_reader = one_reader.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(seed ^ 0x5EED);
            while !stop.load(Ordering::SeqCst) {
                let began = Instant::now();
                let turn = one_reader.lock().unwrap();
                let result = open_read_only(&db)
                    .map_err(|e| e.to_string())
                    .and_then(|conn| fingerprint_on(&conn));
                drop(turn);
                let mut s = seen.lock().unwrap();
                match result {
                    Ok(print) => s.reads.push((began, print)),
                    Err(e) if is_lock_conflict(&e) => s.refused += 1,
                    Err(e) => s.errors.push(e),
                }
                drop(s);
                std::thread::sleep(Duration::from_micros(2_000 + rng.below(18_000)));
            }
        })
    };

    let mut writer_refused = 0;
    let mut written_at = Vec::new();
    for generation in 1..=GENERATIONS {
        next_generation(&p, generation, ORDERS);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let out = p.kpic(&["run", "--format", "csv"]);
            if out.status.success() {
                break;
            }
            let err = stderr(&out);
            assert!(
                out.status.code() == Some(2) && err.contains("KPI401") && is_lock_conflict(&err),
                "seed {seed}, generation {generation}: kpic run failed other than by the \
                 reader's lock:\n{err}"
            );
            writer_refused += 1;
            // The refused run changed nothing.
            assert_eq!(
                fingerprint_while_reading(&db, &one_reader),
                *generations.last().unwrap(),
                "seed {seed}: a run refused by the lock changed the tables"
            );
            assert!(
                attempts < 60,
                "seed {seed}: kpic run was locked out {attempts} times in a row"
            );
        }
        written_at.push(Instant::now());
        let new = fingerprint_while_reading(&db, &one_reader);
        assert_all_tables_changed(
            generations.last().unwrap(),
            &new,
            &format!("seed {seed}, generation {generation}"),
        );
        generations.push(new);
        // Let the reader see this generation before the next write.
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();

    let seen = seen.lock().unwrap();
    assert!(
        seen.errors.is_empty(),
        "seed {seed}: reads failed other than by the lock: {:?}",
        seen.errors
    );
    let mut last = 0;
    let mut per_generation = vec![0; generations.len()];
    for (i, (began, print)) in seen.reads.iter().enumerate() {
        let Some(g) = generations.iter().position(|g| g == print) else {
            let tables: Vec<String> = TABLES
                .iter()
                .enumerate()
                .map(
                    |(t, name)| match generations.iter().position(|g| g[t] == print[t]) {
                        Some(g) => format!("{name}: generation {g}"),
                        None => format!("{name}: NO generation ({} rows)", print[t].rows),
                    },
                )
                .collect();
            panic!(
                "seed {seed}: read {i} saw tables of no complete run: {}",
                tables.join(", ")
            );
        };
        assert!(
            g >= last,
            "seed {seed}: read {i} went back from generation {last} to {g}"
        );
        // A read that began after a run exited sees at least that run's
        // tables.
        let done = written_at.iter().filter(|w| **w < *began).count();
        assert!(
            g >= done,
            "seed {seed}: read {i} saw generation {g}, begun after generation {done} was written"
        );
        last = g;
        per_generation[g] += 1;
    }
    eprintln!(
        "{} reads ({per_generation:?} per generation), {} refused by kpic's lock; \
         kpic run refused {writer_refused} times by the reader's lock",
        seen.reads.len(),
        seen.refused
    );
    assert!(
        per_generation.iter().filter(|n| **n > 0).count() >= 2,
        "seed {seed}: the reader saw fewer than two generations: {per_generation:?}"
    );
    assert!(
        seen.refused > 0,
        "seed {seed}: no read was refused, so no read was tried during a write"
    );
}

/// A fingerprint read by the main thread while the reader thread runs:
/// in turn with it (see `one_reader` in the test).
fn fingerprint_while_reading(db: &Path, one_reader: &Mutex<()>) -> Print {
    let _turn = one_reader.lock().unwrap();
    fingerprint(db).unwrap_or_else(|e| panic!("read {}: {e}", db.display()))
}

// ---------------------------------------------------------------------------
// 3. Failed runs
// ---------------------------------------------------------------------------

/// Asserts a failed run's exit code and diagnostic, and that the tables
/// are unchanged.
fn assert_failed(
    out: &std::process::Output,
    code: i32,
    needles: &[&str],
    db: &Path,
    before: &Print,
    what: &str,
) {
    expect_code(out, code, what);
    let err = stderr(out);
    for needle in needles {
        assert!(
            err.contains(needle),
            "`{what}`: stderr should contain {needle:?}:\n{err}"
        );
    }
    assert!(
        out.stdout.is_empty(),
        "`{what}`: a failed run printed on stdout"
    );
    let after = fingerprint(db).unwrap_or_else(|e| panic!("`{what}`: tables unreadable: {e}"));
    assert!(
        after == *before,
        "`{what}`: the previous tables changed: {}",
        compare(&after, before, before)
    );
}

/// Every KPI of the project named in backquotes in `err`.
fn kpis_named(err: &str) -> Vec<&'static str> {
    KPI_NAMES
        .iter()
        .copied()
        .filter(|k| err.contains(&format!("`{k}`")))
        .collect()
}

/// Failures only the engine sees, and a timeout: each exits non-zero
/// (SPEC §4: KPI402, a query the engine rejected, is a project error, exit
/// 1; KPI405, a timeout, an environment failure, exit 2), names the step
/// that failed and the KPIs whose SQL it was, points at the definition,
/// and leaves the previous tables as they were; the next good run works.
#[test]
fn failed_runs_name_the_step_and_keep_previous_tables() {
    const ORDERS: u64 = 300_000;
    let p = big_project(ORDERS, 200_000);
    let db = p.db_path();
    let good = |what: &str| {
        let out = p.kpic(&["run", "--format", "csv"]);
        expect_code(&out, 0, what);
        fingerprint(&db).expect("tables after a good run")
    };
    let before = good("first kpic run");

    // A source file that breaks mid-way: one row, two thirds into a CSV, has
    // a date that is not one. DuckDB's sniffer and `kpic check` see the
    // first rows only; the run fails while scanning.
    let parquet = p.path().join("data/orders.parquet");
    copy_to(
        &p.path().join("data/orders.csv"),
        &format!(
            "SELECT order_id, CASE WHEN order_id = {} THEN 'notadate' ELSE CAST(ordered_at AS VARCHAR) END \
             AS ordered_at, customer_id, channel, device, country, status, amount \
             FROM read_parquet('{}') ORDER BY order_id",
            ORDERS * 2 / 3,
            parquet.display()
        ),
        "HEADER",
    );
    let models = p.read("models/models.yml");
    p.write(
        "models/models.yml",
        &models.replace("path: data/orders.parquet", "path: data/orders.csv"),
    );
    expect_code(
        &p.kpic(&["check"]),
        0,
        "kpic check (a bad row deep in the file)",
    );
    let out = p.kpic(&["run", "--format", "csv"]);
    assert_failed(
        &out,
        1,
        &[
            "error[KPI402]: building `kpic_scan_orders`",
            "notadate",
            "while reading this source",
            "models/models.yml:2:",
        ],
        &db,
        &before,
        "kpic run with a bad row mid-file",
    );
    // The scan feeds every KPI over orders: all four are named.
    assert_eq!(
        kpis_named(&stderr(&out)),
        [
            "revenue_monthly",
            "aov_weekly",
            "buyers_quarterly",
            "conversion_daily"
        ],
        "{}",
        stderr(&out)
    );
    p.write("models/models.yml", &models);

    // A type error only the engine sees: `coupon` is text, and a measure
    // casts it to an integer. The cast binds (so `kpic check` passes) and
    // fails on the one row, deep in the data, that is not a number.
    write_parquet(
        &p.path().join("data/coupons.parquet"),
        &format!(
            "SELECT i AS coupon_id, DATE '2023-01-01' + CAST(i % 700 AS INTEGER) AS used_on, \
             CASE WHEN i = {} THEN 'n/a' ELSE CAST(i % 50 AS VARCHAR) END AS coupon \
             FROM range({ORDERS}) AS r(i)",
            ORDERS * 3 / 4
        ),
    );
    p.write(
        "models/coupons.yml",
        "sources:\n  - name: coupons\n    path: data/coupons.parquet\n    time: used_on\n\
         metrics:\n  - name: coupon_value\n    source: coupons\n    measure: sum(cast(coupon AS INTEGER))\n\
         kpis:\n  - name: coupon_kpi\n    metric: coupon_value\n    grain: month\n    target: 100\n\
         \x20   owner: growth\n    action_plan: Review coupons.\n",
    );
    expect_code(
        &p.kpic(&["check"]),
        0,
        "kpic check (a cast that fails on one row)",
    );
    let out = p.kpic(&["run", "--format", "csv"]);
    assert_failed(
        &out,
        1,
        &[
            "error[KPI402]: building `kpic_",
            "coupons",
            "(read by KPI `coupon_kpi`)",
            "n/a",
            "models/coupons.yml:2:",
        ],
        &db,
        &before,
        "kpic run with a cast that fails on the data",
    );
    std::fs::remove_file(p.path().join("models/coupons.yml")).unwrap();

    // Tiny timeouts: the build is stopped in its first statements, which
    // read the sources for every KPI (or, on a busy machine, while it
    // starts its transaction). Several values, because DuckDB forgets an
    // interrupt that arrives between two statements: kpic used to lose such
    // a timeout and run the build to the end (exit 0 with `--timeout
    // 0.001`); now it checks the clock before every statement.
    for timeout in ["0.000001", "0.0001", "0.001", "0.005", "0.02", "0.05"] {
        let what = format!("kpic run --timeout {timeout}");
        let out = p.kpic(&["run", "--format", "csv", "--timeout", timeout]);
        assert_failed(
            &out,
            2,
            &[
                "error[KPI405]: ",
                "took longer than the timeout",
                "the previous output tables are unchanged",
            ],
            &db,
            &before,
            &what,
        );
        let err = stderr(&out);
        if !err.contains("starting the transaction took longer") {
            assert!(
                err.contains("error[KPI405]: building `kpic_")
                    && err.contains("while reading this source")
                    && !kpis_named(&err).is_empty(),
                "{what}: the timeout should name the step and the KPIs whose SQL was running:\n{err}"
            );
        }
    }

    // Nothing was left behind: the same inputs give the same tables.
    assert_eq!(
        good("kpic run after the failures"),
        before,
        "a good run after the failures"
    );
}

/// SPEC §4 `--timeout` and the issue: "a query that runs too long can be
/// bounded, and the error says which KPI's SQL was running". Here one
/// KPI's own SQL dominates the run: a day-grain KPI broken down by 80
/// members over 22 years of sparse data (its member-by-day spine has
/// about 640,000 rows, its source only 30,000). The run is timed once,
/// then run with timeouts at 30 %, 50 % and 70 % of that time. Every run
/// that is stopped exits 2 with KPI405, says what was running and leaves
/// the previous tables as they were; one stopped inside `slow_daily`'s SQL
/// (at least one of the three must be) names the step and the KPI and
/// points at its definition. (Before kpic built each KPI's steps as
/// statements of their own, such a timeout said only "building
/// `kpi_breakdowns`".)
#[test]
fn timeout_names_the_kpi_whose_sql_was_running() {
    let p = Project::new(&[
        (
            "kpic.yml",
            "name: slow\nas_of: 2024-06-30\nwarehouse:\n  database: target/t.duckdb\n",
        ),
        (
            "models/models.yml",
            "sources:\n  - name: events\n    path: data/events.parquet\n    time: happened_on\n    dimensions: [bucket]\n\
             metrics:\n  - name: events\n    source: events\n    measure: count(*)\n\
             kpis:\n  - name: monthly_events\n    metric: events\n    grain: month\n    target: 100\n    owner: ops\n    action_plan: Act.\n\
             \x20 - name: slow_daily\n    metric: events\n    grain: day\n    target: 5\n    breakdowns: [bucket]\n    owner: ops\n    action_plan: Act.\n",
        ),
    ]);
    write_parquet(
        &p.path().join("data/events.parquet"),
        "SELECT i AS event_id, DATE '2002-07-01' + CAST(hash(i, 1) % 8000 AS INTEGER) AS happened_on, \
         'b' || CAST(hash(i, 2) % 80 AS VARCHAR) AS bucket FROM range(30000) AS r(i)",
    );
    std::fs::create_dir_all(p.path().join("target")).unwrap();
    let db = p.db_path();
    let start = Instant::now();
    let out = p.kpic(&["run", "--format", "csv"]);
    let full = start.elapsed();
    expect_code(&out, 0, "first kpic run");
    let before = fingerprint(&db).expect("first tables");
    eprintln!("complete run: {full:?}");
    let mut named = 0;
    for fraction in [0.3, 0.5, 0.7] {
        let timeout = format!("{:.3}", full.as_secs_f64() * fraction);
        let what = format!("kpic run --timeout {timeout}");
        let out = p.kpic(&["run", "--format", "csv", "--timeout", &timeout]);
        if out.status.success() {
            // This run was faster than the first; the tables are the same.
            eprintln!("{what}: completed");
            assert_eq!(fingerprint(&db).unwrap(), before, "{what}");
            continue;
        }
        assert_failed(
            &out,
            2,
            &["error[KPI405]: ", "took longer than the timeout"],
            &db,
            &before,
            &what,
        );
        let err = stderr(&out);
        eprintln!("{what}: {}", err.lines().next().unwrap_or(""));
        if err.contains("(KPI `slow_daily`) took longer than the timeout") {
            assert!(
                err.contains("models/models.yml:17:") && err.contains("while computing this KPI"),
                "{what}: the error should point at slow_daily's definition:\n{err}"
            );
            named += 1;
        } else {
            // Stopped elsewhere (the machine was slower or faster than in
            // the first run): the message still says what was running — a
            // step by name (with the KPIs it computes for, reads for or
            // writes the rows of, when it has any), or the transaction's
            // start or commit — and names no other KPI than the project's.
            let first = err.lines().next().unwrap_or("");
            assert!(
                first.starts_with("error[KPI405]: building `")
                    || first.starts_with("error[KPI405]: starting the transaction")
                    || first.starts_with("error[KPI405]: committing the new tables"),
                "{what}: the error should say what was running:\n{err}"
            );
            if let Some((_, kpis)) = first.split_once(" KPI ").or(first.split_once(" KPIs ")) {
                assert!(
                    kpis.contains("`slow_daily`") || kpis.contains("`monthly_events`"),
                    "{what}: {err}"
                );
            }
        }
    }
    assert!(
        named >= 1,
        "no timeout stopped the run inside slow_daily's own SQL, which takes most of the run"
    );
}

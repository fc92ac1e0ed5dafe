//! BI-ready outputs (issue 6, point 5; the progress indicator of point 7):
//!
//! - the `kpi_scorecard` view equals, KPI by KPI and column by column, what
//!   the test picks itself from `kpi_definitions` and `kpi_results` (the
//!   latest complete row and the latest row of each KPI), also for a KPI
//!   without a complete period and for a current period that is complete;
//!   it is readable by a BI tool that attaches the database read-only;
//! - docs/tables.md lists exactly the columns and types of the built tables
//!   and view (so the documentation cannot go stale);
//! - `kpic compile` emits `kpi_scorecard.sql` and creates the view in
//!   build.sql after the tables, for every dialect; DuckDB's build.sql run
//!   by DuckDB gives the same view as `kpic run`;
//! - `kpic run --out DIR [--out-format csv|parquet]` writes every table and
//!   the view, and DuckDB reads the files back equal to the database's;
//! - the progress indicator draws on a terminal only, and never with
//!   `--quiet` or when stderr is not a terminal.
//!
//! A reader during writes also reads the view: tests/it/crash.rs
//! fingerprints kpi_scorecard with the five tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use duckdb::types::Value;

use crate::cli::{assert_same_rows, dump_query, dump_table, expect_code, open_read_only, s};
use crate::common::Project;
use crate::dialects::example_project;

const TABLES: [&str; 5] = [
    "kpi_results",
    "kpi_metrics",
    "kpi_breakdowns",
    "kpi_drivers",
    "kpi_definitions",
];
const SCORECARD: &str = "kpi_scorecard";
const AS_OF: &str = "2026-06-21";

/// Every row of a query as column → value maps.
fn rows(conn: &duckdb::Connection, query: &str) -> Vec<BTreeMap<String, Value>> {
    let mut st = conn
        .prepare(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut rows = st.query([]).unwrap();
    let names: Vec<String> = rows.as_ref().unwrap().column_names();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        out.push(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), r.get::<_, Value>(i).unwrap()))
                .collect(),
        );
    }
    out
}

/// Columns of a relation in order, with DuckDB's type names.
fn columns(conn: &duckdb::Connection, relation: &str) -> Vec<(String, String)> {
    dump_query(conn, &format!("SELECT * FROM {relation}")).0
}

/// The scorecard the test expects, from the two tables: per definition
/// row, its columns, then `complete_<c>` from the KPI's complete row with
/// the latest start and `current_<c>` from its row with the latest start.
fn expected_scorecard(
    conn: &duckdb::Connection,
    scorecard_columns: &[String],
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let results = rows(conn, "SELECT * FROM kpi_results");
    let date = |v: &Value| match v {
        Value::Date32(d) => *d,
        other => panic!("period_start is not a date: {other:?}"),
    };
    let mut out = BTreeMap::new();
    for def in rows(conn, "SELECT * FROM kpi_definitions") {
        let kpi = match &def["kpi"] {
            Value::Text(t) => t.clone(),
            other => panic!("kpi {other:?}"),
        };
        let own: Vec<&BTreeMap<String, Value>> = results
            .iter()
            .filter(|r| r["kpi"] == Value::Text(kpi.clone()))
            .collect();
        let latest = |complete_only: bool| {
            own.iter()
                .filter(|r| !complete_only || r["is_complete"] == Value::Boolean(true))
                .max_by_key(|r| date(&r["period_start"]))
                .copied()
        };
        let (complete, current) = (latest(true), latest(false));
        let mut row = BTreeMap::new();
        for c in scorecard_columns {
            let value = if let Some(col) = c.strip_prefix("complete_") {
                complete.map_or(Value::Null, |r| r[col].clone())
            } else if let Some(col) = c.strip_prefix("current_") {
                current.map_or(Value::Null, |r| r[col].clone())
            } else {
                def[c].clone()
            };
            row.insert(c.clone(), value);
        }
        out.insert(kpi, row);
    }
    out
}

/// The view as a map kpi → row.
fn scorecard(
    conn: &duckdb::Connection,
    relation: &str,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for row in rows(conn, &format!("SELECT * FROM {relation}")) {
        let kpi = match &row["kpi"] {
            Value::Text(t) => t.clone(),
            other => panic!("kpi {other:?}"),
        };
        assert!(out.insert(kpi.clone(), row).is_none(), "two rows for {kpi}");
    }
    out
}

fn assert_scorecard_is_right(conn: &duckdb::Connection, what: &str) {
    let names: Vec<String> = columns(conn, SCORECARD).into_iter().map(|c| c.0).collect();
    let expected = expected_scorecard(conn, &names);
    let actual = scorecard(conn, SCORECARD);
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: one scorecard row per KPI of kpi_definitions"
    );
    for (kpi, want) in &expected {
        for (c, v) in want {
            assert_eq!(&actual[kpi][c], v, "{what}: kpi_scorecard.{c} of KPI {kpi}");
        }
    }
}

/// The example project's scorecard (monthly, quarterly and weekly KPIs;
/// the latest week, 2026-W25, ends on as_of, so it is both the current
/// and the latest complete period).
#[test]
fn scorecard_is_the_latest_complete_and_current_period_of_each_kpi() {
    let p = example_project();
    let db = p.run(AS_OF);
    let conn = db.conn();
    assert_scorecard_is_right(&conn, "example");
    let card = scorecard(&conn, SCORECARD);
    assert!(card.len() >= 3, "the example has several KPIs");
    // The example has an incomplete current period (June, Q2) and a
    // complete one (week 25): both cases are covered.
    let complete_flags: Vec<&Value> = card.values().map(|r| &r["current_is_complete"]).collect();
    assert!(
        complete_flags.contains(&&Value::Boolean(true)),
        "{complete_flags:?}"
    );
    assert!(
        complete_flags.contains(&&Value::Boolean(false)),
        "{complete_flags:?}"
    );
    for (kpi, row) in &card {
        if row["current_is_complete"] == Value::Boolean(true) {
            assert_eq!(row["current_period"], row["complete_period"], "{kpi}");
        } else {
            assert_ne!(row["current_period"], row["complete_period"], "{kpi}");
            assert_ne!(row["complete_period"], Value::Null, "{kpi}");
        }
    }
    // Spot check against the data itself: the monthly revenue KPI's current
    // period is June 2026 (the month of as_of), its latest complete May.
    let monthly: Vec<&BTreeMap<String, Value>> = card
        .values()
        .filter(|r| r["grain"] == Value::Text("month".into()))
        .collect();
    assert!(!monthly.is_empty(), "the example has a monthly KPI");
    for r in monthly {
        assert_eq!(r["current_period"], Value::Text("2026-06".into()));
        assert_eq!(r["complete_period"], Value::Text("2026-05".into()));
    }
    drop(conn);

    // A BI tool that attaches the file read-only under another name reads
    // the view (its tables resolve in the attached database).
    let bi = duckdb::Connection::open_in_memory().unwrap();
    bi.execute_batch(&format!(
        "ATTACH '{}' AS kpis (READ_ONLY)",
        s(&db.path).replace('\'', "''")
    ))
    .unwrap();
    assert_eq!(scorecard(&bi, "kpis.kpi_scorecard"), card);
}

/// A KPI whose data starts in the current period has no complete period:
/// its `complete_*` columns are NULL and its `current_*` columns are set.
#[test]
fn scorecard_of_a_kpi_without_a_complete_period() {
    let mut rows = Vec::new();
    for day in 1..=10 {
        rows.push(format!("2024-03-{day:02},{}", day * 10));
    }
    for day in 1..=31 {
        rows.push(format!("2024-01-{day:02},{day}"));
    }
    let p = Project::new(&[
        (
            "data/new.csv",
            &crate::common::csv_text("day,amount", rows[..10].to_vec()),
        ),
        (
            "data/old.csv",
            &crate::common::csv_text("day,amount", rows[10..].to_vec()),
        ),
        (
            "models/m.yml",
            "\
sources:
  - {name: fresh, path: data/new.csv, time: day}
  - {name: old, path: data/old.csv, time: day}
metrics:
  - {name: fresh_amount, source: fresh, measure: sum(amount)}
  - {name: old_amount, source: old, measure: sum(amount)}
kpis:
  - {name: fresh_kpi, metric: fresh_amount, grain: month, target: 1000, owner: ops}
  - {name: old_kpi, metric: old_amount, grain: month, target: 400}
",
        ),
        ("kpic.yml", "name: t\nmodels: [models]\n"),
    ]);
    let db = p.run("2024-03-10");
    let conn = db.conn();
    assert_scorecard_is_right(&conn, "fresh and old");
    let card = scorecard(&conn, SCORECARD);
    let fresh = &card["fresh_kpi"];
    for (c, v) in fresh {
        if c.starts_with("complete_") {
            assert_eq!(v, &Value::Null, "fresh_kpi.{c}");
        }
    }
    assert_eq!(fresh["current_period"], Value::Text("2024-03".into()));
    assert_eq!(fresh["current_actual"], Value::Double(550.0));
    // 550 over 10 of March's 31 days, projected to the month.
    assert_eq!(
        fresh["current_projected"],
        Value::Double(550.0 * 31.0 / 10.0)
    );
    assert_eq!(fresh["owner"], Value::Text("ops".into()));
    let old = &card["old_kpi"];
    assert_eq!(old["complete_period"], Value::Text("2024-02".into()));
    assert_eq!(old["complete_actual"], Value::Double(0.0));
    assert_eq!(old["complete_previous"], Value::Double(496.0));
    assert_eq!(old["complete_status"], Value::Text("off_track".into()));
}

// ---------------------------------------------------------------------------
// docs/tables.md
// ---------------------------------------------------------------------------

/// `## name` sections of docs/tables.md and the `| `column` | TYPE |` rows
/// of their tables.
fn documented_columns() -> BTreeMap<String, Vec<(String, String)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tables.md");
    let text = std::fs::read_to_string(&path).expect("read docs/tables.md");
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            let name = title.split_whitespace().next().unwrap_or_default();
            section = Some(name.to_string());
            continue;
        }
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
        let column = cells[0].trim_end_matches('`').to_string();
        let ty = cells[1].to_string();
        let name = section
            .clone()
            .unwrap_or_else(|| panic!("docs/tables.md: column {column} outside a section"));
        out.entry(name).or_default().push((column, ty));
    }
    out
}

#[test]
fn documented_columns_are_the_built_columns() {
    let documented = documented_columns();
    let mut expected_names: Vec<&str> = TABLES.to_vec();
    expected_names.push(SCORECARD);
    expected_names.sort();
    assert_eq!(
        documented.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_names,
        "docs/tables.md has one section per table and view"
    );
    // A project with ratio KPIs, breakdowns and drivers (every table has
    // rows, though the schema does not depend on it).
    let p = example_project();
    let db = p.run(AS_OF);
    let conn = db.conn();
    for (name, cols) in &documented {
        assert_eq!(
            &columns(&conn, name),
            cols,
            "docs/tables.md lists other columns or types for {name} than `kpic run` builds"
        );
    }
    // The compiled view names the same columns (kpic compile's SELECT).
    let compiled = p.path().join("compiled-doc");
    let out = p.kpic(&["compile", "--out", s(&compiled)]);
    expect_code(&out, 0, "kpic compile");
    let sql = std::fs::read_to_string(compiled.join("duckdb/kpi_scorecard.sql")).unwrap();
    let via_compile = columns(&conn, &format!("({})", sql.trim().trim_end_matches(';')));
    assert_eq!(via_compile, documented[SCORECARD]);
}

// ---------------------------------------------------------------------------
// compile
// ---------------------------------------------------------------------------

/// Every dialect: `kpi_scorecard.sql` is one SELECT reading only the
/// output tables, and build.sql creates the view after the last output
/// table (and, where there is one, before the COMMIT).
#[test]
fn compile_emits_the_scorecard_for_every_dialect() {
    let p = example_project();
    for dialect in kpic::sql::DIALECTS {
        let out_dir = p.path().join("compiled-all");
        let out = p.kpic(&[
            "compile",
            "--dialect",
            dialect,
            "--as-of",
            AS_OF,
            "--out",
            s(&out_dir),
        ]);
        expect_code(&out, 0, &format!("kpic compile --dialect {dialect}"));
        let dir = out_dir.join(dialect);
        let parser = kpic::sql::dialect_named(dialect).unwrap().parser();
        let select = std::fs::read_to_string(dir.join("kpi_scorecard.sql"))
            .unwrap_or_else(|e| panic!("{dialect}: no kpi_scorecard.sql: {e}"));
        let stmts = sqlparser::parser::Parser::parse_sql(parser.as_ref(), &select)
            .unwrap_or_else(|e| panic!("{dialect}: kpi_scorecard.sql does not parse: {e}"));
        assert_eq!(stmts.len(), 1, "{dialect}");
        let mut read = Vec::new();
        let _ = sqlparser::ast::visit_relations(&stmts[0], |r| {
            read.push(r.to_string().trim_matches(['"', '`']).to_ascii_lowercase());
            std::ops::ControlFlow::<()>::Continue(())
        });
        read.sort();
        read.dedup();
        assert_eq!(read, ["kpi_definitions", "kpi_results"], "{dialect}");

        let build = std::fs::read_to_string(dir.join("build.sql")).unwrap();
        let stmts = sqlparser::parser::Parser::parse_sql(parser.as_ref(), &build)
            .unwrap_or_else(|e| panic!("{dialect}: build.sql does not parse: {e}"));
        let texts: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        let is_view = |st: &sqlparser::ast::Statement| {
            matches!(st, sqlparser::ast::Statement::CreateView(v)
                if v.name.to_string().to_ascii_lowercase().contains("kpi_scorecard"))
        };
        let view = stmts
            .iter()
            .position(is_view)
            .unwrap_or_else(|| panic!("{dialect}: build.sql creates no kpi_scorecard view"));
        let last_table = stmts
            .iter()
            .rposition(|st| {
                !is_view(st)
                    && st
                        .to_string()
                        .to_ascii_lowercase()
                        .contains("kpi_definitions")
            })
            .unwrap();
        assert!(
            view > last_table,
            "{dialect}: the view comes after the tables"
        );
        if let Some(commit) = texts.iter().position(|t| t == "COMMIT") {
            assert!(
                view < commit,
                "{dialect}: the view is created inside the transaction"
            );
        }
    }
}

/// DuckDB's build.sql, run by DuckDB itself, creates the same view as
/// `kpic run` (the compiled script and the run share the view's SQL).
#[test]
fn compiled_duckdb_build_creates_the_same_scorecard() {
    let p = example_project();
    let db = p.run(AS_OF);
    let out_dir = p.path().join("compiled-duck");
    let out = p.kpic(&["compile", "--as-of", AS_OF, "--out", s(&out_dir)]);
    expect_code(&out, 0, "kpic compile");
    let build = std::fs::read_to_string(out_dir.join("duckdb/build.sql")).unwrap();
    let other = p.path().join("target/compiled.duckdb");
    let conn = duckdb::Connection::open(&other).unwrap();
    conn.execute_batch(&format!(
        "SET file_search_path = '{}'",
        s(p.path()).replace('\'', "''")
    ))
    .unwrap();
    conn.execute_batch(&build)
        .expect("build.sql runs on DuckDB");
    assert_scorecard_is_right(&conn, "compiled build.sql");
    let without_time = "SELECT * EXCLUDE (computed_at, definition_hash) FROM kpi_scorecard";
    let from_run = dump_query(&db.conn(), without_time);
    let from_script = dump_query(&conn, without_time);
    assert_same_rows(
        "kpi_scorecard of build.sql vs kpic run",
        &from_run,
        &from_script,
    );
}

// ---------------------------------------------------------------------------
// run --out
// ---------------------------------------------------------------------------

/// `SELECT * FROM read_csv(...)` with the table's own column types, so
/// the comparison is of values, not of CSV type sniffing.
fn read_csv_as(conn: &duckdb::Connection, file: &Path, relation: &str) -> String {
    let types: Vec<String> = columns(conn, relation)
        .iter()
        .map(|(c, t)| format!("'{c}': '{t}'"))
        .collect();
    format!(
        "SELECT * FROM read_csv('{}', header = true, columns = {{{}}})",
        s(file).replace('\'', "''"),
        types.join(", ")
    )
}

#[test]
fn run_out_writes_every_table_and_the_scorecard_as_csv_and_parquet() {
    let p = example_project();
    let db = p.db_path();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut names: Vec<&str> = TABLES.to_vec();
    names.push(SCORECARD);
    for (format, flag) in [
        ("csv", None),
        ("csv", Some("csv")),
        ("parquet", Some("parquet")),
    ] {
        let dir = p.path().join(format!("out-{format}-{}", flag.is_some()));
        let mut args = vec!["run", "--db", s(&db), "--as-of", AS_OF, "--out", s(&dir)];
        if let Some(f) = flag {
            args.extend(["--out-format", f]);
        }
        let out = p.kpic(&args);
        expect_code(
            &out,
            0,
            &format!("kpic run --out DIR --out-format {flag:?}"),
        );
        // The KPI table still goes to stdout.
        assert!(String::from_utf8_lossy(&out.stdout).contains("2026"));
        let mut written: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        let mut want: Vec<String> = names.iter().map(|n| format!("{n}.{format}")).collect();
        want.sort();
        assert_eq!(written, want, "--out {format}");
        let conn = open_read_only(&db);
        for name in &names {
            let file = dir.join(format!("{name}.{format}"));
            let read = match format {
                "csv" => read_csv_as(&conn, &file, name),
                _ => format!("SELECT * FROM read_parquet('{}')", s(&file)),
            };
            let table = dump_table(&db, name);
            let from_file = dump_query(&conn, &read);
            assert!(!table.1.is_empty(), "{name} has rows in the example");
            assert_same_rows(
                &format!("{name}.{format} vs the database"),
                &table,
                &from_file,
            );
        }
    }
    // --out-format without --out is a usage error.
    let out = p.kpic(&["run", "--db", s(&db), "--out-format", "parquet"]);
    expect_code(&out, 2, "kpic run --out-format parquet (no --out)");
}

/// A directory that cannot be created: exit 2, and the tables are still
/// written (the export runs after the commit).
#[test]
fn run_out_into_an_unwritable_place_fails_after_the_commit() {
    let p = example_project();
    let blocker = p.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let db = p.db_path();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let out = p.kpic(&[
        "run",
        "--db",
        s(&db),
        "--as-of",
        AS_OF,
        "--out",
        s(&blocker.join("sub")),
    ]);
    expect_code(&out, 2, "kpic run --out <under a file>");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KPI401") && err.contains("a-file"), "{err}");
    let conn = open_read_only(&db);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM kpi_scorecard", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0, "the tables were committed before the export");
}

// ---------------------------------------------------------------------------
// Progress indicator
// ---------------------------------------------------------------------------

const ESC: char = '\u{1b}';

/// Off a terminal (stderr captured, as in CI and pipes) a run draws no
/// progress: no escape code and no bar on stderr.
#[test]
fn no_progress_when_stderr_is_not_a_terminal() {
    let p = example_project();
    let out = p.kpic(&["run", "--as-of", AS_OF, "--format", "csv"]);
    expect_code(&out, 0, "kpic run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(ESC), "escape codes on stderr:\n{err:?}");
    assert!(
        !err.contains("building ["),
        "a progress bar on stderr:\n{err}"
    );
    assert!(
        err.contains("KPIs as of"),
        "the summary line is still printed:\n{err}"
    );
}

/// `kpic run` in a pseudo-terminal (util-linux `script`), stdout sent to
/// a file so the terminal holds stderr only. Returns what the terminal
/// showed.
fn run_in_terminal(p: &Project, extra: &[&str]) -> String {
    let kpic = env!("CARGO_BIN_EXE_kpic");
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let mut cmd = vec![
        quote(kpic),
        "--project".into(),
        quote(s(p.path())),
        "--color".into(),
        "never".into(),
    ];
    cmd.extend(extra.iter().map(|a| quote(a)));
    cmd.extend(["run", "--as-of", AS_OF, "--format", "csv"].map(String::from));
    let stdout_file = p.path().join("stdout.csv");
    let line = format!("{} > {}", cmd.join(" "), quote(s(&stdout_file)));
    let typescript = p.path().join("typescript");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, s(&typescript)])
        .env("TERM", "xterm-256color")
        .output()
        .expect("run `script` (util-linux)");
    assert!(
        out.status.success(),
        "kpic run in a terminal failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&std::fs::read(&typescript).unwrap_or_default())
    );
    // stdout went to the file: the CSV has no escape codes either.
    let csv = std::fs::read_to_string(&stdout_file).unwrap();
    assert!(csv.starts_with("kpi,") && !csv.contains(ESC), "{csv:?}");
    String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned()
}

#[test]
fn progress_is_drawn_on_a_terminal_and_not_with_quiet() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux `script` is needed to give kpic a terminal");
    }
    let p = example_project();
    let shown = run_in_terminal(&p, &[]);
    assert!(
        shown.contains("building [") && shown.contains(ESC),
        "no progress bar on the terminal:\n{shown:?}"
    );
    assert!(
        shown.contains("KPI ") || shown.contains("writing kpi_") || shown.contains("scanning "),
        "the bar names no step:\n{shown:?}"
    );
    let quiet = run_in_terminal(&p, &["--quiet"]);
    assert!(
        !quiet.contains("building [") && !quiet.contains(ESC),
        "--quiet still drew progress:\n{quiet:?}"
    );
}

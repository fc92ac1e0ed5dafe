//! Differential tests on real engines (issue 4): for PostgreSQL, Spark SQL
//! (`databricks`) and ClickHouse (chdb), every project — the example, the
//! fixture projects and every execution-test project — is
//!
//! 1. run by kpic on DuckDB (`kpic run --as-of D`), the reference;
//! 2. compiled for the engine (`kpic compile --dialect X --as-of D`);
//! 3. loaded into the engine: each source's local file, read by DuckDB
//!    exactly as kpic reads it (`read_csv_auto`, …) and written as Parquet,
//!    becomes the table the source names in `table:`;
//! 4. built there by running `build.sql`, and every output table read back
//!    and compared with DuckDB's, row by row, numbers within 1e-9
//!    relative.
//!
//! The engines are driven by `tests/engines/engine.py` (one process per
//! engine for all projects: Spark starts once). The tests need
//! `KPIC_PYTHON` (the virtualenv of `tests/engines/setup.sh`) and, for
//! Postgres, `KPIC_PG_DSN`; without them each test prints why it is
//! skipped — unless `KPIC_ENGINES` is set (`.ci/run` sets it), where a
//! missing engine fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cli::{expect_code, kpic_in, s};
use crate::common::Project;
use crate::dialects::{engine_python, engine_script, example_project, skip_or_fail};

const OUTPUTS: &[&str] = &[
    "kpi_results",
    "kpi_metrics",
    "kpi_breakdowns",
    "kpi_drivers",
    "kpi_definitions",
    "kpi_scorecard",
];

/// Columns that identify a row of each output table (rows are compared in
/// this order).
fn key_columns(table: &str) -> &'static [&'static str] {
    match table {
        "kpi_results" => &["kpi", "period_start"],
        "kpi_metrics" => &["metric", "grain", "period_start"],
        "kpi_breakdowns" => &["kpi", "period_start", "dimension", "member"],
        "kpi_drivers" => &["kpi", "period_start", "driver"],
        _ => &["kpi"],
    }
}

/// Columns that legitimately differ between engines: when the build ran,
/// and the hash of the definition compiled for that engine.
const NOT_COMPARED: &[&str] = &["computed_at", "definition_hash"];

/// Every project of the engine tests with the `as_of` it is built at
/// (`None`: none is given, so the engine finds the latest date itself, as
/// a scheduled build does).
fn projects() -> Vec<(String, Project, Option<String>)> {
    let mut all = vec![
        (
            "example".to_string(),
            example_project(),
            Some("2026-06-21".to_string()),
        ),
        (
            "example_as_of_in_the_engine".to_string(),
            example_project(),
            None,
        ),
    ];
    for (name, as_of) in [
        ("monthly_orders", "2024-03-31"),
        ("orders_customers", "2024-03-31"),
        ("iso_weeks", "2021-01-10"),
    ] {
        all.push((name.into(), Project::from_fixture(name), Some(as_of.into())));
    }
    all.push((
        "quantile_members".into(),
        crate::dialects::quantile_members_project(),
        Some("2024-03-13".into()),
    ));
    all.extend(
        crate::execute::execution_projects()
            .into_iter()
            .map(|(n, p, a)| (n, p, Some(a.to_string()))),
    );
    all
}

/// One project prepared for an engine: its work directory (manifest,
/// Parquet files, build.sql) and DuckDB's output tables.
struct Prepared {
    name: String,
    workdir: PathBuf,
    expected: BTreeMap<String, Table>,
    _project: Project,
}

#[derive(Debug, Clone)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// Sources of a project with a local file and a table: (path, table).
fn file_tables(p: &Project) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![p.path().join("models")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if !path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
                continue;
            };
            for src in doc
                .get("sources")
                .and_then(|s| s.as_sequence())
                .into_iter()
                .flatten()
            {
                let file = src.get("path").and_then(|v| v.as_str());
                let table = src.get("table").and_then(|v| v.as_str());
                if let (Some(f), Some(t)) = (file, table) {
                    found.push((f.to_string(), t.to_string()));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn reader(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    let f = if lower.ends_with(".parquet") {
        "read_parquet"
    } else if lower.ends_with(".json") || lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        "read_json_auto"
    } else {
        "read_csv_auto"
    };
    format!("{f}('{}')", path.replace('\'', "''"))
}

fn prepare(name: &str, p: Project, as_of: Option<&str>, dialect: &str, root: &Path) -> Prepared {
    let workdir = root.join(name);
    std::fs::create_dir_all(&workdir).unwrap();
    // The reference: kpic on DuckDB.
    let db = workdir.join("reference.duckdb");
    let as_of_args: Vec<&str> = as_of.map(|a| vec!["--as-of", a]).unwrap_or_default();
    let mut run = vec!["run", "--quiet", "--db", s(&db)];
    run.extend(&as_of_args);
    let out = kpic_in(p.path(), &run);
    expect_code(&out, 0, &format!("{name}: kpic run {as_of_args:?}"));
    let conn = duckdb::Connection::open(&db).unwrap();
    let expected = OUTPUTS
        .iter()
        .map(|t| (t.to_string(), duckdb_table(&conn, t)))
        .collect();
    // The engine's SQL.
    let compiled = workdir.join("compiled");
    let mut compile = vec!["compile", "--dialect", dialect, "--out", s(&compiled)];
    compile.extend(&as_of_args);
    let out = kpic_in(p.path(), &compile);
    expect_code(
        &out,
        0,
        &format!("{name}: kpic compile --dialect {dialect}"),
    );
    std::fs::copy(
        compiled.join(dialect).join("build.sql"),
        workdir.join("build.sql"),
    )
    .unwrap();
    // The sources' data, as DuckDB reads it.
    let data = duckdb::Connection::open_in_memory().unwrap();
    let mut tables = Vec::new();
    for (file, table) in file_tables(&p) {
        let parquet = workdir.join(format!("{table}.parquet"));
        let source = p.path().join(&file);
        data.execute_batch(&format!(
            "COPY (SELECT * FROM {}) TO '{}' (FORMAT parquet)",
            reader(s(&source)),
            s(&parquet)
        ))
        .unwrap_or_else(|e| panic!("{name}: export {file}: {e}"));
        tables.push(serde_json::json!({"name": table, "parquet": s(&parquet)}));
    }
    let manifest = serde_json::json!({
        "tables": tables,
        "script": "build.sql",
        "outputs": OUTPUTS,
    });
    std::fs::write(
        workdir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    Prepared {
        name: name.to_string(),
        workdir,
        expected,
        _project: p,
    }
}

/// A DuckDB output table with values as the engine driver writes them
/// (dates and timestamps as ISO text).
fn duckdb_table(conn: &duckdb::Connection, table: &str) -> Table {
    let described: Vec<(String, String)> = conn
        .prepare(&format!("DESCRIBE {table}"))
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let select: Vec<String> = described
        .iter()
        .map(|(c, ty)| {
            if ty == "DATE" || ty.starts_with("TIMESTAMP") {
                format!("CAST(\"{c}\" AS VARCHAR)")
            } else {
                format!("\"{c}\"")
            }
        })
        .collect();
    let mut st = conn
        .prepare(&format!("SELECT {} FROM {table}", select.join(", ")))
        .unwrap();
    let n = described.len();
    let rows = st
        .query_map([], |row| {
            use duckdb::types::ValueRef;
            (0..n)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Boolean(b) => Value::Bool(b),
                        ValueRef::Double(f) => serde_json::json!(f),
                        ValueRef::Float(f) => serde_json::json!(f64::from(f)),
                        ValueRef::Int(i) => serde_json::json!(i),
                        ValueRef::BigInt(i) => serde_json::json!(i),
                        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                        other => panic!("{table}: unexpected DuckDB value {other:?}"),
                    })
                })
                .collect::<Result<Vec<_>, duckdb::Error>>()
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    Table {
        columns: described.into_iter().map(|(c, _)| c).collect(),
        rows,
    }
}

/// Runs the driver for `engine` over every prepared project.
fn run_engine(engine: &str, python: &Path, prepared: &[Prepared]) {
    let mut cmd = Command::new(python);
    cmd.arg(engine_script()).arg(engine);
    for p in prepared {
        cmd.arg(&p.workdir);
    }
    let out = cmd.output().expect("start tests/engines/engine.py");
    let mut failures = Vec::new();
    for p in prepared {
        let error = p.workdir.join("out").join("error.txt");
        if let Ok(text) = std::fs::read_to_string(&error) {
            failures.push(format!("{}: {text}", p.name));
            continue;
        }
        for table in OUTPUTS {
            let path = p.workdir.join("out").join(format!("{table}.json"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                failures.push(format!("{}: no {table} read back", p.name));
                continue;
            };
            let json: Value = serde_json::from_str(&text).unwrap();
            let actual = Table {
                columns: json["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_ascii_lowercase())
                    .collect(),
                rows: json["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().clone())
                    .collect(),
            };
            if let Err(why) = compare(table, &p.expected[*table], &actual) {
                failures.push(format!("{} {table}: {why}", p.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{engine} differs from DuckDB:\n{}\n--- driver stderr ---\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        _ => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => {
                x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
            }
            _ => false,
        },
    }
}

fn sort_key(t: &Table, table: &str, row: &[Value]) -> Vec<String> {
    key_columns(table)
        .iter()
        .map(|k| {
            let i = t.columns.iter().position(|c| c == k).unwrap_or(0);
            match &row[i] {
                Value::String(s) => s.clone(),
                Value::Null => "\u{0}".into(),
                other => other.to_string(),
            }
        })
        .collect()
}

fn compare(table: &str, expected: &Table, actual: &Table) -> Result<(), String> {
    if expected.columns != actual.columns {
        return Err(format!(
            "columns {:?}, DuckDB has {:?}",
            actual.columns, expected.columns
        ));
    }
    if expected.rows.len() != actual.rows.len() {
        return Err(format!(
            "{} rows, DuckDB has {}",
            actual.rows.len(),
            expected.rows.len()
        ));
    }
    let sorted = |t: &Table| {
        let mut rows = t.rows.clone();
        rows.sort_by_key(|r| sort_key(t, table, r));
        rows
    };
    for (e, a) in sorted(expected).iter().zip(sorted(actual)) {
        for (i, column) in expected.columns.iter().enumerate() {
            if NOT_COMPARED.contains(&column.as_str()) {
                continue;
            }
            if !same_value(&e[i], &a[i]) {
                return Err(format!(
                    "row {:?}: {column} = {} (DuckDB: {})",
                    sort_key(expected, table, e),
                    a[i],
                    e[i]
                ));
            }
        }
    }
    Ok(())
}

fn differential(engine: &str, dialect: &str, needs: &[&str]) {
    let what = format!("{engine} differential test");
    let python = match engine_python() {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&what, &why),
    };
    for var in needs {
        if std::env::var_os(var).is_none() {
            return skip_or_fail(&what, &format!("{var} is not set (tests/engines/setup.sh)"));
        }
    }
    let root = tempfile::Builder::new()
        .prefix(&format!("kpic-{engine}-"))
        .tempdir()
        .unwrap();
    let prepared: Vec<Prepared> = projects()
        .into_iter()
        .map(|(name, p, as_of)| prepare(&name, p, as_of.as_deref(), dialect, root.path()))
        .collect();
    run_engine(engine, &python, &prepared);
}

#[test]
fn postgres_builds_the_same_tables_as_duckdb() {
    differential("postgres", "postgres", &["KPIC_PG_DSN"]);
}

#[test]
fn spark_builds_the_same_tables_as_duckdb() {
    differential("spark", "databricks", &[]);
}

#[test]
fn clickhouse_builds_the_same_tables_as_duckdb() {
    differential("clickhouse", "clickhouse", &[]);
}

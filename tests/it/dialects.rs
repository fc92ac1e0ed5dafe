//! Every dialect (SPEC §4 `compile --dialect D`) on the example project and
//! on every test project: the compile succeeds, every emitted file
//! re-parses with sqlparser's matching dialect and with the independent
//! sqlglot parser (a warning or an opaque-command fallback fails), and the
//! example's build.sql is snapshotted — DuckDB's in full (compile.rs), the
//! others as a diff against DuckDB's so reviews stay small.
//!
//! sqlglot runs through `tests/engines/engine.py parse` with the
//! virtualenv python in `KPIC_PYTHON` (`.ci/run` sets it up). Without it the
//! sqlglot half is skipped with a message, unless `KPIC_ENGINES` is set
//! (CI), where a missing parser is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{expect_code, kpic_in, s, stderr};
use crate::common::Project;

/// The dialects other than DuckDB, with sqlparser's dialect for each.
pub const DIALECTS: &[&str] = &[
    "postgres",
    "snowflake",
    "bigquery",
    "databricks",
    "redshift",
    "trino",
    "clickhouse",
];

const AS_OF: &str = "2026-06-21";

/// [`DIALECTS`], or those named in `KPIC_DIALECTS` (comma-separated; for
/// quick local loops while working on one dialect).
pub fn dialects() -> Vec<&'static str> {
    match std::env::var("KPIC_DIALECTS") {
        Ok(only) => DIALECTS
            .iter()
            .copied()
            .filter(|d| only.split(',').any(|o| o.trim() == *d))
            .collect(),
        Err(_) => DIALECTS.to_vec(),
    }
}

/// sqlparser's dialect for an engine, as kpic declares it (Redshift's is
/// sqlparser's Redshift dialect with GROUPING SETS enabled; Trino has none
/// in sqlparser and uses the generic one — sqlglot is the strict check).
fn sqlparser_dialect(name: &str) -> Box<dyn sqlparser::dialect::Dialect> {
    kpic::sql::dialect_named(name)
        .unwrap_or_else(|| panic!("no dialect {name}"))
        .parser()
}

/// Refusals kpic makes on purpose (KPI301 at the metric): the engine cannot
/// compute the aggregate the project uses. (dialect, what the message
/// names). Redshift requires every PERCENTILE_CONT/MEDIAN of a query to
/// order by the same expression, and kpic computes each quantile twice per
/// aggregate query (the period and its like-for-like days).
const KNOWN_REFUSALS: &[(&str, &str)] = &[("redshift", "PERCENTILE_CONT")];

/// The repository's example project, copied (kpic writes under target/).
pub fn example_project() -> Project {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new(&[]);
    for dir in ["models", "macros", "fixtures/data"] {
        crate::common::copy_tree(&root.join(dir), &p.path().join(dir));
    }
    std::fs::copy(root.join("kpic.yml"), p.path().join("kpic.yml")).expect("copy kpic.yml");
    p
}

/// Every project the dialect tests compile: the example and the fixture
/// projects (their sources name both a local `path` and a `table`).
fn projects() -> Vec<(String, Project)> {
    let mut all = vec![("example".to_string(), example_project())];
    for name in ["monthly_orders", "orders_customers", "iso_weeks"] {
        all.push((name.to_string(), Project::from_fixture(name)));
    }
    all.extend(
        crate::execute::execution_projects()
            .into_iter()
            .map(|(n, p, _)| (n, p)),
    );
    all
}

/// `kpic compile --dialect D [--as-of]` into a fresh directory; the files.
fn compile(p: &Project, dialect: &str, as_of: Option<&str>) -> (PathBuf, Vec<PathBuf>) {
    let out_dir = p.path().join("compiled-test");
    let mut args = vec!["compile", "--dialect", dialect, "--out", s(&out_dir)];
    if let Some(a) = as_of {
        args.extend(["--as-of", a]);
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kpic_in(p.path(), &args);
    let refused = out.status.code() == Some(1)
        && stderr(&out).contains("KPI301")
        && KNOWN_REFUSALS
            .iter()
            .any(|(d, why)| *d == dialect && stderr(&out).contains(why));
    if refused {
        eprintln!("{dialect} refuses (KPI301, known): {}", stderr(&out));
        return (out_dir, vec![]);
    }
    expect_code(&out, 0, &format!("kpic compile --dialect {dialect}"));
    let dir = out_dir.join(dialect);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        6,
        "five SELECTs and build.sql in {}",
        dir.display()
    );
    (dir, files)
}

fn assert_sqlparser_parses(dialect: &str, files: &[PathBuf]) {
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        if let Err(e) =
            sqlparser::parser::Parser::parse_sql(sqlparser_dialect(dialect).as_ref(), &text)
        {
            panic!(
                "{} does not re-parse with sqlparser's {dialect} dialect: {e}",
                f.display()
            );
        }
    }
}

/// The virtualenv python of the engine tests, or why there is none.
pub fn engine_python() -> Result<PathBuf, String> {
    let python = std::env::var_os("KPIC_PYTHON")
        .ok_or("KPIC_PYTHON is not set (run `eval \"$(tests/engines/setup.sh)\"`)")?;
    Ok(PathBuf::from(python))
}

/// Skips (printing why) or, when `KPIC_ENGINES` is set, fails.
pub fn skip_or_fail(what: &str, why: &str) {
    if std::env::var_os("KPIC_ENGINES").is_some() {
        panic!("{what}: {why} (KPIC_ENGINES is set, so nothing may be skipped)");
    }
    eprintln!("skipped {what}: {why}");
}

pub fn engine_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/engine.py")
}

fn assert_sqlglot_parses(dialect: &str, files: &[PathBuf]) {
    let python = match engine_python() {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&format!("sqlglot parse of {dialect}"), &why),
    };
    let mut cmd = Command::new(python);
    cmd.arg(engine_script()).arg("parse").arg(dialect);
    cmd.args(files);
    let out = cmd.output().expect("run tests/engines/engine.py");
    assert!(
        out.status.success(),
        "sqlglot does not parse the {dialect} SQL cleanly:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_dialect_compiles_and_reparses_every_project() {
    for (name, p) in projects() {
        for dialect in dialects() {
            for as_of in [Some(AS_OF), None] {
                let (_, files) = compile(&p, dialect, as_of);
                if files.is_empty() {
                    continue;
                }
                eprintln!("{name}: {dialect}, as_of {as_of:?}");
                assert_sqlparser_parses(dialect, &files);
                assert_sqlglot_parses(dialect, &files);
            }
        }
    }
}

/// A SQL text cut into lines at clause keywords and commas, so that a diff
/// of two dialects' SQL shows the constructs that differ.
fn lines_for_diff(sql: &str) -> String {
    let mut out = sql.to_string();
    for kw in [
        " FROM ",
        " WHERE ",
        " GROUP BY ",
        " LEFT OUTER JOIN ",
        " INNER JOIN ",
        " UNION ALL ",
        " ORDER BY ",
        " WITH ",
        "), ",
    ] {
        out = out.replace(kw, &format!("\n{}", kw.trim_start()));
    }
    out.replace(", ", ",\n")
}

#[test]
fn example_build_sql_diffs_against_duckdb() {
    let p = example_project();
    let (_, duck) = compile(&p, "duckdb", Some(AS_OF));
    let duck_build =
        std::fs::read_to_string(duck.iter().find(|f| f.ends_with("build.sql")).unwrap()).unwrap();
    let base = lines_for_diff(&duck_build);
    for dialect in dialects() {
        let (_, files) = compile(&p, dialect, Some(AS_OF));
        if files.is_empty() {
            continue; // a known refusal (printed by `compile`)
        }
        let text =
            std::fs::read_to_string(files.iter().find(|f| f.ends_with("build.sql")).unwrap())
                .unwrap();
        let diff = similar::TextDiff::from_lines(&base, &lines_for_diff(&text))
            .unified_diff()
            .context_radius(1)
            .header("duckdb", dialect)
            .to_string();
        insta::assert_snapshot!(format!("example_build_sql_{dialect}_vs_duckdb"), diff);
    }
}

#[test]
fn path_only_sources_are_refused_for_other_engines() {
    let p = Project::new(&[
        (
            "models/m.yml",
            "sources:\n  - name: orders\n    path: data/orders.csv\n    time: day\nmetrics:\n  - name: n\n    source: orders\n    measure: count(*)\nkpis:\n  - name: k\n    metric: n\n    grain: month\n",
        ),
        ("data/orders.csv", "day\n2026-01-01\n"),
    ]);
    for dialect in DIALECTS {
        let out = kpic_in(p.path(), &["compile", "--dialect", dialect]);
        expect_code(
            &out,
            1,
            &format!("compile a path-only source for {dialect}"),
        );
        let err = stderr(&out);
        assert!(
            err.contains("KPI302") && err.contains("table:"),
            "{dialect}:\n{err}"
        );
        assert!(
            err.contains("models/m.yml:3"),
            "the error points at the path:\n{err}"
        );
    }
}

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
    let mut all = vec![
        ("example".to_string(), example_project()),
        ("quantile_members".to_string(), quantile_members_project()),
    ];
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
        7,
        "five SELECTs, the kpi_scorecard view's and build.sql in {}",
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

/// `--dialect all` (and a comma-separated list) compiles the dialects in
/// one process, in parallel: the files must be byte for byte those of one
/// `compile --dialect D` per dialect.
#[test]
fn compile_all_dialects_at_once_equals_one_by_one() {
    let p = example_project();
    let all_dir = p.path().join("compiled-all");
    let out = kpic_in(
        p.path(),
        &[
            "compile",
            "--dialect",
            "all",
            "--out",
            s(&all_dir),
            "--as-of",
            AS_OF,
        ],
    );
    expect_code(&out, 0, "kpic compile --dialect all");
    for dialect in std::iter::once(&"duckdb").chain(DIALECTS) {
        let (one_dir, files) = compile(&p, dialect, Some(AS_OF));
        for f in files {
            let name = f.file_name().expect("file name");
            let together = std::fs::read_to_string(all_dir.join(dialect).join(name))
                .unwrap_or_else(|e| panic!("--dialect all wrote no {dialect}/{name:?}: {e}"));
            let alone = std::fs::read_to_string(one_dir.join(name)).expect("read");
            assert!(
                together == alone,
                "{dialect}/{name:?} differs between --dialect all and --dialect {dialect}"
            );
        }
    }

    let list_dir = p.path().join("compiled-list");
    let out = kpic_in(
        p.path(),
        &[
            "compile",
            "--dialect",
            "trino, postgres,trino",
            "--out",
            s(&list_dir),
        ],
    );
    expect_code(&out, 0, "kpic compile --dialect 'trino, postgres,trino'");
    let mut written: Vec<String> = std::fs::read_dir(&list_dir)
        .expect("read the list's out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["postgres", "trino"]);

    let out = kpic_in(p.path(), &["compile", "--dialect", "postgres,nonsense"]);
    expect_code(&out, 2, "kpic compile --dialect postgres,nonsense");
    assert!(
        stderr(&out).contains("unknown dialect `nonsense`"),
        "stderr:\n{}",
        stderr(&out)
    );
}

/// One dialect refusing the project fails `--dialect all` (exit 1, the
/// error reported once), while the dialects that compile are written.
#[test]
fn compile_all_reports_the_dialects_that_refuse() {
    let p = Project::new(&[
        (
            "models/m.yml",
            "sources:\n  - name: orders\n    path: data/orders.csv\n    time: day\nmetrics:\n  - name: n\n    source: orders\n    measure: count(*)\nkpis:\n  - name: k\n    metric: n\n    grain: month\n",
        ),
        ("data/orders.csv", "day\n2026-01-01\n"),
    ]);
    let out_dir = p.path().join("out");
    let out = kpic_in(
        p.path(),
        &["compile", "--dialect", "all", "--out", s(&out_dir)],
    );
    expect_code(&out, 1, "kpic compile --dialect all (path-only sources)");
    let err = stderr(&out);
    assert_eq!(
        err.matches("error[KPI302]").count(),
        1,
        "the engines' identical KPI302 is reported once:\n{err}"
    );
    let refused: Vec<&str> = DIALECTS
        .iter()
        .copied()
        .filter(|d| *d != "duckdb")
        .collect();
    assert!(
        err.contains(&format!("nothing written for {}", refused.join(", "))),
        "the refusing dialects are named:\n{err}"
    );
    assert!(out_dir.join("duckdb").join("build.sql").is_file());
    assert!(!out_dir.join("postgres").exists());
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

/// DuckDB with Redshift's rule that every sort-based aggregate of a query
/// orders by the same expression: the translate pass splits grouped
/// queries per ordering, and the real engine runs the split queries.
struct OneOrderingDuckDb;

impl kpic::sql::Dialect for OneOrderingDuckDb {
    fn name(&self) -> &'static str {
        "duckdb"
    }

    fn as_dyn(&self) -> &dyn kpic::sql::Dialect {
        self
    }

    fn sort_order(&self, call: &sqlparser::ast::Function) -> Option<String> {
        let name = kpic::semantic::aggregates::function_name(call);
        let sort_based = ["quantile_cont", "quantile", "median", "percentile_cont"];
        if !sort_based.contains(&name.as_str()) {
            return None;
        }
        // DuckDB keeps `FILTER (WHERE …)`: the rows ordered are the
        // argument's where the filter holds.
        let filter = call.filter.as_ref().map(|f| f.to_string());
        kpic::sql::dialect::translate::arguments(call)
            .map(|(ordered, _)| format!("{ordered} {}", filter.unwrap_or_default()))
    }
}

/// A table's rows, each a list of values.
type Rows = Vec<Vec<duckdb::types::Value>>;

/// Every output table of `project` built with `dialect`'s SQL in a fresh
/// DuckDB file, its rows sorted (run times and hashes of the SQL left
/// out); and the build statements.
fn tables_built_with(
    project: &Project,
    dialect: &dyn kpic::sql::Dialect,
    database: &Path,
) -> (Vec<(String, Rows)>, String) {
    let root = project.path();
    let mut catalog = kpic::exec::DuckDbCatalog::new(root, None);
    let (model, diags) = kpic::analyze_project(root, &mut catalog);
    assert!(!diags.has_errors(), "{}: {diags:?}", root.display());
    let options = kpic::plan::PlanOptions {
        as_of: None,
        select: vec![],
        local_files: true,
    };
    let plan = kpic::plan::plan_kpis(&model, &options).expect("plan");
    let compiled = kpic::sql::plan_to_sql(&plan, &model, dialect);
    let run = kpic::exec::RunOptions {
        database: s(database).to_string(),
        memory_limit: None,
        timeout: None,
    };
    kpic::exec::run_build(&model.project, &compiled, &run)
        .unwrap_or_else(|e| panic!("{}: {e:?}", root.display()));
    let conn = kpic::exec::open_read_only(database).expect("open the built database");
    let tables = kpic::sql::OUTPUT_TABLES
        .iter()
        .map(|t| {
            let sql = format!(
                "SELECT COLUMNS(lambda c: c NOT IN ('computed_at', 'definition_hash')) \
                 FROM {t} ORDER BY ALL"
            );
            let mut st = conn
                .prepare(&sql)
                .unwrap_or_else(|e| panic!("read {t}: {e}"));
            let rows = st
                .query_map([], |row| {
                    let n = row.as_ref().column_count();
                    (0..n)
                        .map(|i| row.get::<_, duckdb::types::Value>(i))
                        .collect()
                })
                .and_then(|rows| rows.collect::<Result<Vec<Vec<_>>, _>>())
                .unwrap_or_else(|e| panic!("read {t}: {e}"));
            (t.to_string(), rows)
        })
        .collect();
    let sql = compiled
        .build_statements()
        .iter()
        .map(|st| st.sql.clone())
        .collect::<Vec<_>>()
        .join("\n");
    (tables, sql)
}

/// Quantiles of two columns, filtered and windowed, by breakdown members
/// that are NULL on some rows: each grouped query has several orderings,
/// and a NULL member of one dimension must not meet another dimension's.
pub fn quantile_members_project() -> Project {
    let mut rows = Vec::new();
    let devices = ["mobile", "", "desktop"];
    let channels = ["", "ads", "seo", "mail"];
    for day in 0..75u32 {
        let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
            + chrono::Duration::days(i64::from(day));
        for k in 0..(3 + day % 5) {
            let device = devices[((day + k) % 3) as usize];
            let channel = channels[((day * 7 + k) % 4) as usize];
            let load = 100 + (day * 37 + k * 101) % 900;
            let ttfb = 10 + (day * 13 + k * 29) % 300;
            rows.push(format!("{date},{device},{channel},{load},{ttfb}"));
        }
    }
    let csv = crate::common::csv_text("day,device,channel,load_ms,ttfb_ms", rows);
    Project::new(&[
        (
            "models/m.yml",
            "\
sources:
  - name: s
    path: data/s.csv
    table: s
    time: day
    dimensions: [device, channel]
metrics:
  - {name: p90_load, source: s, measure: \"quantile_cont(load_ms, 0.9)\"}
  - {name: median_ttfb, source: s, measure: median(ttfb_ms)}
  - {name: p75_ads, source: s, measure: \"quantile_cont(load_ms, 0.75)\", filter: \"channel = 'ads'\"}
  - {name: p50_7d, source: s, measure: median(load_ms), window: 7 days}
kpis:
  - {name: load, metric: p90_load, grain: week, breakdowns: [device, channel], drivers: [median_ttfb, p75_ads]}
  - {name: load_month, metric: p90_load, grain: month, breakdowns: [device, channel]}
  - {name: ttfb, metric: median_ttfb, grain: month, breakdowns: [channel, device]}
  - {name: rolling, metric: p50_7d, grain: week, breakdowns: [device]}
",
        ),
        ("data/s.csv", &csv),
        ("kpic.yml", "name: q\nmodels: [models]\nas_of: 2024-03-13\n"),
    ])
}

/// Splitting grouped queries per sort ordering (what Redshift gets)
/// changes no number: on every project, DuckDB runs the split SQL and the
/// unsplit SQL to the same tables. The example's quantile KPIs are split
/// (the test fails if nothing was).
#[test]
fn queries_split_per_sort_ordering_give_the_same_tables() {
    let mut splits = 0;
    for (name, project) in projects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (plain, _) = tables_built_with(
            &project,
            &kpic::sql::dialect::DuckDb,
            &dir.path().join("plain.duckdb"),
        );
        let (split, sql) = tables_built_with(
            &project,
            &OneOrderingDuckDb,
            &dir.path().join("split.duckdb"),
        );
        if sql.contains("kpic_part1") {
            splits += 1;
        } else if name == "example" || name == "quantile_members" {
            panic!("the example's quantiles were not split:\n{sql}");
        }
        for ((table, a), (_, b)) in plain.iter().zip(&split) {
            assert_eq!(
                a.len(),
                b.len(),
                "{name}: {table} has other rows when split"
            );
            for (ra, rb) in a.iter().zip(b) {
                let same = ra.iter().zip(rb).all(|(x, y)| match (x, y) {
                    // Parallel sums add in any order: the last bits differ.
                    (duckdb::types::Value::Double(x), duckdb::types::Value::Double(y)) => {
                        (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
                    }
                    _ => x == y,
                });
                assert!(same, "{name}: {table} differs when split:\n{ra:?}\n{rb:?}");
            }
        }
    }
    eprintln!("{splits} projects had split queries");
}

/// Redshift gives each sort ordering a query of its own, but one measure
/// with two orderings cannot be split: refused at the metric (KPI301, exit
/// 1), while engines without the rule compile it.
#[test]
fn one_measure_with_two_sort_orderings_is_refused_for_redshift() {
    let p = Project::new(&[(
        "models/m.yml",
        "sources:\n  - name: s\n    table: s\n    time: day\nmetrics:\n  - name: gap\n    source: s\n    measure: median(a) - median(b)\nkpis:\n  - name: k\n    metric: gap\n    grain: month\n",
    )]);
    let out = kpic_in(p.path(), &["compile", "--dialect", "redshift"]);
    expect_code(&out, 1, "compile median(a) - median(b) for redshift");
    let err = stderr(&out);
    assert!(
        err.contains("KPI301") && err.contains("models/m.yml:8") && err.contains("gap"),
        "{err}"
    );
    let out = kpic_in(p.path(), &["compile", "--dialect", "postgres"]);
    expect_code(&out, 0, "compile median(a) - median(b) for postgres");
}

//! Command-line tests (SPEC §4, §5): exit codes (0 ok, 1 project errors,
//! 2 usage or environment failure), what goes to stdout (data only) and to
//! stderr (diagnostics), the files `compile` and `run` write, and the
//! guarantee that a failed run leaves the previous output tables intact.
//!
//! Every test works in its own temporary directory, usually on a project
//! scaffolded by `kpic init`, and runs the real binary with `--color never`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use duckdb::types::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers (also used by compile.rs)
// ---------------------------------------------------------------------------

/// Runs `kpic --color never ARGS...` in `cwd`, whatever the exit code.
pub fn kpic_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpic"))
        .args(["--color", "never"])
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot start kpic ({}): {e}", env!("CARGO_BIN_EXE_kpic")))
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
pub fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "`{what}`: expected exit code {code}, got {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        out.status,
        stderr(out),
        stdout(out),
    );
}

/// Diagnostics must never reach stdout.
pub fn assert_no_diagnostics_on_stdout(out: &Output, what: &str) {
    let text = stdout(out);
    for marker in ["warning[", "error[", "error:", "warning:", " --> "] {
        assert!(
            !text.contains(marker),
            "`{what}`: stdout carries a diagnostic ({marker:?}); diagnostics belong on stderr\n--- stdout ---\n{text}"
        );
    }
}

/// A project scaffolded by `kpic init` at `<tmp>/proj`; commands run with
/// `--project <tmp>/proj` from `<tmp>` (not from inside the project).
pub struct InitProject {
    pub tmp: TempDir,
    pub dir: PathBuf,
}

impl InitProject {
    pub fn new() -> InitProject {
        let tmp = tempfile::Builder::new()
            .prefix("kpic-cli-")
            .tempdir()
            .expect("create temp dir");
        let dir = tmp.path().join("proj");
        let out = kpic_in(tmp.path(), &["init", s(&dir)]);
        expect_code(&out, 0, "kpic init proj");
        InitProject { tmp, dir }
    }

    /// `kpic --color never --project <proj> ARGS...`, run from `<tmp>`.
    pub fn kpic(&self, args: &[&str]) -> Output {
        let mut all = vec!["--project", s(&self.dir)];
        all.extend_from_slice(args);
        kpic_in(self.tmp.path(), &all)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("read {rel} of the init project: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Replaces exactly one occurrence of `from` in a project file.
    pub fn replace_once(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(
            text.matches(from).count(),
            1,
            "test bug: {from:?} should occur once in {rel} of the init project"
        );
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// A database path outside the project, in the test's temp dir.
    pub fn db(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// Opens a DuckDB file read-only.
pub fn open_read_only(path: &Path) -> duckdb::Connection {
    assert!(path.exists(), "no database at {}", path.display());
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("read-only config");
    duckdb::Connection::open_with_flags(path, config)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()))
}

/// Column names and types, then every row (ORDER BY ALL) of a query.
pub type Dump = (Vec<(String, String)>, Vec<Vec<Value>>);

pub fn dump_query(conn: &duckdb::Connection, query: &str) -> Dump {
    let mut describe = conn
        .prepare(&format!("DESCRIBE {query}"))
        .unwrap_or_else(|e| panic!("DESCRIBE {query}: {e}"));
    let columns: Vec<(String, String)> = describe
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let n = columns.len();
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM ({query}) ORDER BY ALL"))
        .unwrap_or_else(|e| panic!("query {query}: {e}"));
    let rows: Vec<Vec<Value>> = stmt
        .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("read rows of {query}: {e}"));
    (columns, rows)
}

pub fn dump_table(db: &Path, table: &str) -> Dump {
    dump_query(&open_read_only(db), &format!("SELECT * FROM {table}"))
}

/// Compares two dumps column by column; DOUBLE/FLOAT within 1e-9 relative.
pub fn assert_same_rows(what: &str, expected: &Dump, actual: &Dump) {
    assert_eq!(expected.0, actual.0, "{what}: columns and types differ");
    assert_eq!(
        expected.1.len(),
        actual.1.len(),
        "{what}: row counts differ"
    );
    for (i, (e, a)) in expected.1.iter().zip(&actual.1).enumerate() {
        for (c, (ev, av)) in e.iter().zip(a).enumerate() {
            let ok = match (ev, av) {
                (Value::Double(x), Value::Double(y)) => close(*x, *y),
                (Value::Float(x), Value::Float(y)) => close(f64::from(*x), f64::from(*y)),
                _ => ev == av,
            };
            assert!(
                ok,
                "{what}: row {i} column {} differs: expected {ev:?}, got {av:?}\nexpected row: {e:?}\nactual row:   {a:?}",
                expected.0[c].0
            );
        }
    }
}

fn close(x: f64, y: f64) -> bool {
    if x.is_nan() || y.is_nan() {
        return x.is_nan() && y.is_nan();
    }
    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The KPIs of the init project: (name, label or name), from its kpis.yml.
fn init_kpis(p: &InitProject) -> Vec<(String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(&p.read("models/kpis.yml")).unwrap();
    let kpis = doc["kpis"].as_sequence().expect("kpis.yml has a kpis list");
    assert!(!kpis.is_empty(), "the init project defines KPIs");
    kpis.iter()
        .map(|k| {
            let name = k["name"].as_str().unwrap().to_string();
            let label = k["label"].as_str().unwrap_or(&name).to_string();
            (name, label)
        })
        .collect()
}

const RESULT_COLUMNS: [&str; 23] = [
    "kpi",
    "label",
    "metric",
    "grain",
    "period",
    "period_start",
    "period_end",
    "is_complete",
    "actual",
    "target",
    "attainment",
    "status",
    "projected",
    "previous",
    "change",
    "change_pct",
    "last_year",
    "yoy_change_pct",
    "numerator",
    "denominator",
    "direction",
    "indicator",
    "owner",
];

fn column_names(dump: &Dump) -> Vec<&str> {
    dump.0.iter().map(|(n, _)| n.as_str()).collect()
}

/// Row count and sum(actual) of kpi_results.
fn count_and_sum(db: &Path) -> (i64, Option<f64>) {
    let conn = open_read_only(db);
    conn.query_row(
        "SELECT count(*), CAST(sum(actual) AS DOUBLE) FROM kpi_results",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------

/// §4 `kpic init DIR`: a project that runs as is and prints its KPI table.
#[test]
fn init_creates_a_project_that_runs() {
    let p = InitProject::new();
    for rel in ["kpic.yml", "models/kpis.yml"] {
        assert!(p.path(rel).is_file(), "kpic init wrote no {rel}");
    }
    let db = p.db("init.duckdb");
    let out = p.kpic(&["run", "--db", s(&db)]);
    expect_code(&out, 0, "kpic run on the init project");
    assert_no_diagnostics_on_stdout(&out, "kpic run");
    let text = stdout(&out);
    for (name, label) in init_kpis(&p) {
        assert!(
            text.contains(&label) || text.contains(&name),
            "the KPI table does not name KPI {name} (label {label:?}):\n{text}"
        );
    }
    // The table has one line per KPI (its latest period), not per period.
    let (_, rows) = dump_table(&db, "kpi_results");
    assert!(rows.len() > init_kpis(&p).len());
    assert!(
        text.lines().count() < rows.len(),
        "`run --format table` prints one row per KPI, not every period:\n{text}"
    );
}

/// `kpic init` with the default directory (the current one, or --project).
#[test]
fn init_into_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = kpic_in(tmp.path(), &["init"]);
    expect_code(&out, 0, "kpic init (current directory)");
    assert!(tmp.path().join("kpic.yml").is_file());
    assert!(
        stdout(&out).trim().is_empty(),
        "init prints its message on stderr"
    );
    let out = kpic_in(tmp.path(), &["check"]);
    expect_code(&out, 0, "kpic check in the new project");
}

/// §4: init never overwrites a project: exit 2, every file untouched.
#[test]
fn init_refuses_an_existing_project() {
    let p = InitProject::new();
    // The user has edited the project and run it.
    p.write(
        "models/kpis.yml",
        &format!("# edited by the team\n{}", p.read("models/kpis.yml")),
    );
    std::fs::remove_file(p.path("README.md")).unwrap();
    let before = tree(&p.dir);

    let out = kpic_in(p.tmp.path(), &["init", s(&p.dir)]);
    expect_code(&out, 2, "kpic init into an existing project");
    assert!(!stderr(&out).trim().is_empty(), "init says why it refuses");
    assert!(stdout(&out).trim().is_empty());
    assert!(
        tree(&p.dir) == before,
        "kpic init changed files of an existing project"
    );

    // Only a kpic.yml of the user's: still refused, nothing written.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kpic.yml"), "name: mine\n").unwrap();
    let out = kpic_in(tmp.path(), &["init", "."]);
    expect_code(&out, 2, "kpic init over a user's kpic.yml");
    let after = tree(tmp.path());
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        vec![Path::new("kpic.yml")],
        "kpic init wrote files although it refused"
    );
    assert_eq!(after[Path::new("kpic.yml")], b"name: mine\n");
}

// ---------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------

/// §4: exit 0 on a valid project (warnings are fine and go to stderr).
#[test]
fn check_ok_project_exits_0() {
    let p = InitProject::new();
    let out = p.kpic(&["check"]);
    expect_code(&out, 0, "kpic check on the init project");
    assert!(
        stdout(&out).trim().is_empty(),
        "check (human) prints diagnostics on stderr only; stdout: {}",
        stdout(&out)
    );
}

/// Breaks the init project: the `metric:` of one KPI names an unknown
/// metric. Returns (line, column) of the bad name in models/kpis.yml.
fn break_with_unknown_metric(p: &InitProject) -> (usize, usize) {
    let kpis = init_kpis(p);
    let text = p.read("models/kpis.yml");
    // The metric of the last KPI.
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let metric = doc["kpis"][kpis.len() - 1]["metric"]
        .as_str()
        .unwrap()
        .to_string();
    let needle = format!("metric: {metric}\n");
    let idx = text.rfind(&needle).expect("test bug: metric line");
    let broken = format!(
        "{}metric: zz_no_such_metric\n{}",
        &text[..idx],
        &text[idx + needle.len()..]
    );
    p.write("models/kpis.yml", &broken);
    let line = text[..idx].matches('\n').count() + 1;
    let line_start = text[..idx].rfind('\n').map_or(0, |i| i + 1);
    let col = idx - line_start + "metric: ".len() + 1;
    (line, col)
}

/// §4: exit 1 with `error[KPI203]` and `--> file:line:col` on stderr.
#[test]
fn check_unknown_metric_exits_1_with_location() {
    let p = InitProject::new();
    let (line, col) = break_with_unknown_metric(&p);
    let out = p.kpic(&["check"]);
    expect_code(&out, 1, "kpic check with an unknown metric");
    let err = stderr(&out);
    assert!(err.contains("error[KPI203]"), "stderr:\n{err}");
    let location = format!("--> models/kpis.yml:{line}:{col}");
    assert!(
        err.contains(&location),
        "stderr should point at {location}:\n{err}"
    );
    assert!(err.contains("zz_no_such_metric"), "stderr:\n{err}");
    assert_no_diagnostics_on_stdout(&out, "kpic check");
}

/// §4: a missing project directory is an environment failure (2).
#[test]
fn check_nonexistent_project_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = kpic_in(tmp.path(), &["--project", "no/such/dir", "check"]);
    expect_code(&out, 2, "kpic check --project no/such/dir");
    assert!(!stderr(&out).trim().is_empty());
    assert!(stdout(&out).trim().is_empty());
}

/// §4: an unknown flag is a usage error (2), for every command.
#[test]
fn unknown_flag_exits_2() {
    let p = InitProject::new();
    for args in [
        &["check", "--no-such-flag"][..],
        &["run", "--no-such-flag"],
        &["compile", "--no-such-flag"],
        &["list", "--format", "yaml"],
        &["check", "--format", "xml"],
        &["run", "--format", "xml"],
    ] {
        let out = p.kpic(args);
        expect_code(&out, 2, &format!("kpic {}", args.join(" ")));
        assert!(!stderr(&out).trim().is_empty());
        assert!(stdout(&out).trim().is_empty());
    }
    let out = p.kpic(&["no-such-command"]);
    expect_code(&out, 2, "kpic no-such-command");
}

/// §4: `check --format json` prints one JSON document and nothing else.
#[test]
fn check_json_ok_project() {
    let p = InitProject::new();
    let out = p.kpic(&["check", "--format", "json"]);
    expect_code(&out, 0, "kpic check --format json");
    let text = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}):\n{text}"));
    let diags = v["diagnostics"].as_array().expect("diagnostics array");
    assert_eq!(v["errors"].as_u64(), Some(0), "{text}");
    let warnings = diags.iter().filter(|d| d["severity"] == "warning").count() as u64;
    assert_eq!(v["warnings"].as_u64(), Some(warnings), "{text}");
    for d in diags {
        assert!(
            d["code"].as_str().is_some_and(|c| c.starts_with("KPI")),
            "diagnostic without a KPIxxx code: {d}"
        );
    }
}

#[test]
fn check_json_unknown_metric() {
    let p = InitProject::new();
    let (line, col) = break_with_unknown_metric(&p);
    let out = p.kpic(&["check", "--format", "json"]);
    expect_code(&out, 1, "kpic check --format json (unknown metric)");
    let text = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}):\n{text}"));
    assert!(v["errors"].as_u64().unwrap() >= 1, "{text}");
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "KPI203")
        .unwrap_or_else(|| panic!("no KPI203 diagnostic:\n{text}"));
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "models/kpis.yml");
    assert_eq!(d["line"].as_u64(), Some(line as u64), "{d}");
    assert_eq!(d["column"].as_u64(), Some(col as u64), "{d}");
}

/// `check --explain-code KPI203` documents the code (exit 0, on stdout).
#[test]
fn check_explain_code() {
    let tmp = tempfile::tempdir().unwrap();
    let out = kpic_in(tmp.path(), &["check", "--explain-code", "KPI203"]);
    expect_code(&out, 0, "kpic check --explain-code KPI203");
    let text = stdout(&out);
    assert!(text.contains("KPI203"), "{text}");
    assert!(
        text.to_lowercase().contains("metric"),
        "KPI203 (unknown metric) doc should talk about metrics:\n{text}"
    );
    assert!(
        text.trim().lines().count() >= 2,
        "a doc, not a title:\n{text}"
    );

    let out = kpic_in(tmp.path(), &["check", "--explain-code", "KPI999"]);
    assert_ne!(out.status.code(), Some(0), "an unknown code is an error");
    assert!(!stderr(&out).trim().is_empty());
}

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

#[test]
fn list_json() {
    let p = InitProject::new();
    let out = p.kpic(&["list", "--format", "json"]);
    expect_code(&out, 0, "kpic list --format json");
    let text = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}):\n{text}"));
    let names = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} array:\n{text}"))
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("sources"), ["orders", "sessions", "customers"]);
    let kpis: Vec<String> = init_kpis(&p).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names("kpis"), kpis);

    let doc: serde_yaml::Value = serde_yaml::from_str(&p.read("models/metrics.yml")).unwrap();
    let metrics = doc["metrics"].as_sequence().unwrap();
    let listed = v["metrics"].as_array().unwrap();
    assert_eq!(listed.len(), metrics.len());
    for (m, l) in metrics.iter().zip(listed) {
        let expected_kind = if m.get("expr").is_some() {
            "derived"
        } else {
            "measure"
        };
        assert_eq!(l["name"].as_str(), m["name"].as_str(), "{l}");
        assert_eq!(l["kind"], expected_kind, "{l}");
    }
    let kind_of = |name: &str| {
        listed
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["kind"].as_str().unwrap().to_string())
    };
    assert_eq!(kind_of("revenue").as_deref(), Some("measure"));
    assert_eq!(kind_of("conversion_rate").as_deref(), Some("derived"));
    assert_eq!(kind_of("aov").as_deref(), Some("derived"));
}

// ---------------------------------------------------------------------------
// compile
// ---------------------------------------------------------------------------

const COMPILED_SELECTS: [&str; 5] = [
    "kpi_results",
    "kpi_metrics",
    "kpi_breakdowns",
    "kpi_drivers",
    "kpi_definitions",
];

/// Every compiled file re-parses: one query per SELECT file, the whole
/// build script too.
pub fn assert_compiled_sql_parses(dir: &Path) {
    use sqlparser::ast::Statement;
    use sqlparser::dialect::DuckDbDialect;
    use sqlparser::parser::Parser;
    for table in COMPILED_SELECTS {
        let path = dir.join(format!("{table}.sql"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let stmts = Parser::parse_sql(&DuckDbDialect {}, &text)
            .unwrap_or_else(|e| panic!("{} does not re-parse: {e}", path.display()));
        assert_eq!(stmts.len(), 1, "{} holds one statement", path.display());
        assert!(
            matches!(stmts[0], Statement::Query(_)),
            "{} is a SELECT",
            path.display()
        );
    }
    let path = dir.join("build.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    let stmts = Parser::parse_sql(&DuckDbDialect {}, &text)
        .unwrap_or_else(|e| panic!("build.sql does not re-parse: {e}"));
    for table in COMPILED_SELECTS {
        assert!(
            stmts.iter().any(|st| matches!(st,
                Statement::CreateTable(ct) if ct.name.to_string() == table)),
            "build.sql creates no table {table}"
        );
    }
}

#[test]
fn compile_writes_target_compiled_duckdb() {
    let p = InitProject::new();
    let out = p.kpic(&["compile"]);
    expect_code(&out, 0, "kpic compile");
    assert!(
        stdout(&out).trim().is_empty(),
        "compile prints nothing on stdout"
    );
    let dir = p.path("target/compiled/duckdb");
    for f in [
        "kpi_results.sql",
        "kpi_metrics.sql",
        "kpi_definitions.sql",
        "build.sql",
    ] {
        assert!(
            dir.join(f).is_file(),
            "compile wrote no {}",
            dir.join(f).display()
        );
    }
    assert_compiled_sql_parses(&dir);

    // Same with an explicit dialect and --as-of.
    let out = p.kpic(&["compile", "--dialect", "duckdb", "--as-of", "2026-03-31"]);
    expect_code(&out, 0, "kpic compile --dialect duckdb --as-of 2026-03-31");
    let results = std::fs::read_to_string(dir.join("kpi_results.sql")).unwrap();
    assert!(results.contains("2026-03-31"), "--as-of is not in the SQL");
    assert_compiled_sql_parses(&dir);
}

#[test]
fn compile_out_dir() {
    let p = InitProject::new();
    let out_dir = p.tmp.path().join("sql-out");
    let out = p.kpic(&["compile", "--out", s(&out_dir)]);
    expect_code(&out, 0, "kpic compile --out DIR");
    assert_compiled_sql_parses(&out_dir.join("duckdb"));
    assert!(
        !p.path("target/compiled").exists(),
        "compile --out also wrote target/compiled"
    );
}

#[test]
fn compile_path_only_sources_for_another_engine_and_unknown_dialects() {
    let p = InitProject::new();
    let out_dir = p.tmp.path().join("sql-out");
    // The init project's sources are local files only: a project error
    // (exit 1) pointing at each `path:`, and nothing written.
    let out = p.kpic(&["compile", "--dialect", "snowflake", "--out", s(&out_dir)]);
    expect_code(
        &out,
        1,
        "kpic compile --dialect snowflake (path-only sources)",
    );
    assert!(stderr(&out).contains("KPI302"), "stderr:\n{}", stderr(&out));
    assert!(stdout(&out).trim().is_empty());
    assert!(
        !out_dir.join("snowflake").join("build.sql").exists(),
        "no SQL is written when the project cannot be compiled"
    );

    let out = p.kpic(&["compile", "--dialect", "nonsense"]);
    expect_code(&out, 2, "kpic compile --dialect nonsense");
    assert!(stderr(&out).contains("KPI301"), "stderr:\n{}", stderr(&out));
    assert!(stdout(&out).trim().is_empty());
}

// ---------------------------------------------------------------------------
// run: formats, --out, --select, --as-of, --db
// ---------------------------------------------------------------------------

#[test]
fn run_csv_prints_kpi_results() {
    let p = InitProject::new();
    let db = p.db("r.duckdb");
    let out = p.kpic(&["run", "--db", s(&db), "--format", "csv"]);
    expect_code(&out, 0, "kpic run --format csv");
    assert_no_diagnostics_on_stdout(&out, "kpic run --format csv");
    let text = stdout(&out);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let table = dump_table(&db, "kpi_results");
    assert_eq!(
        header,
        column_names(&table),
        "CSV header = kpi_results columns"
    );
    assert_eq!(header, RESULT_COLUMNS, "kpi_results columns (SPEC §5)");
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("stdout is not clean CSV ({e}):\n{text}"));
    assert_eq!(
        rows.len(),
        table.1.len(),
        "CSV has every row of kpi_results"
    );
    let kpis: std::collections::BTreeSet<&str> = rows.iter().map(|r| &r[0]).collect();
    let expected: std::collections::BTreeSet<String> =
        init_kpis(&p).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        kpis,
        expected.iter().map(String::as_str).collect(),
        "every KPI has rows"
    );
}

#[test]
fn run_json_prints_an_array() {
    let p = InitProject::new();
    let db = p.db("r.duckdb");
    let out = p.kpic(&["run", "--db", s(&db), "--format", "json"]);
    expect_code(&out, 0, "kpic run --format json");
    let text = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}):\n{text}"));
    let arr = v.as_array().expect("a JSON array");
    let table = dump_table(&db, "kpi_results");
    assert_eq!(arr.len(), table.1.len());
    for row in arr {
        let obj = row.as_object().expect("rows are objects");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = RESULT_COLUMNS.to_vec();
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want, "JSON row keys = kpi_results columns");
    }
}

#[test]
fn run_out_writes_kpi_results_csv() {
    let p = InitProject::new();
    let db = p.db("r.duckdb");
    let dir = p.tmp.path().join("exports");
    let out = p.kpic(&["run", "--db", s(&db), "--out", s(&dir)]);
    expect_code(&out, 0, "kpic run --out DIR");
    let path = dir.join("kpi_results.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("run --out wrote no {}: {e}", path.display()));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, RESULT_COLUMNS);
    let n = reader.records().count();
    assert_eq!(n, dump_table(&db, "kpi_results").1.len());
    // The table still goes to stdout.
    let (name, label) = init_kpis(&p).remove(0);
    assert!(stdout(&out).contains(&label) || stdout(&out).contains(&name));
}

#[test]
fn run_select_one_kpi() {
    let p = InitProject::new();
    let kpis = init_kpis(&p);
    let (chosen, _) = kpis.last().unwrap().clone();
    let db = p.db("r.duckdb");
    let out = p.kpic(&[
        "run",
        "--db",
        s(&db),
        "--select",
        &chosen,
        "--format",
        "csv",
    ]);
    expect_code(&out, 0, &format!("kpic run --select {chosen}"));
    let text = stdout(&out);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(
            &r[0], chosen,
            "--select {chosen} printed a row of another KPI"
        );
    }
    let conn = open_read_only(&db);
    let mut stmt = conn
        .prepare("SELECT DISTINCT kpi FROM kpi_results ORDER BY kpi")
        .unwrap();
    let in_db: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        in_db,
        vec![chosen.as_str()],
        "kpi_results after --select {chosen}"
    );
}

#[test]
fn run_select_unknown_kpi_exits_1() {
    let p = InitProject::new();
    let db = p.db("r.duckdb");
    let out = p.kpic(&["run", "--db", s(&db), "--select", "nosuch"]);
    expect_code(&out, 1, "kpic run --select nosuch");
    assert!(stderr(&out).contains("nosuch"), "stderr:\n{}", stderr(&out));
    assert!(stdout(&out).trim().is_empty());
}

#[test]
fn run_bad_as_of_exits_2() {
    let p = InitProject::new();
    let db = p.db("r.duckdb");
    let out = p.kpic(&["run", "--db", s(&db), "--as-of", "notadate"]);
    expect_code(&out, 2, "kpic run --as-of notadate");
    assert!(!stderr(&out).trim().is_empty());
    assert!(stdout(&out).trim().is_empty());
    assert!(!db.exists(), "a usage error wrote a database");
}

/// `--db PATH` is relative to the current directory, not to the project.
#[test]
fn run_db_relative_to_current_directory() {
    let p = InitProject::new();
    let cwd = p.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = kpic_in(
        &cwd,
        &[
            "--project",
            s(&p.dir),
            "run",
            "--db",
            "out.duckdb",
            "--format",
            "csv",
        ],
    );
    expect_code(&out, 0, "kpic run --db out.duckdb (from another directory)");
    let db = cwd.join("out.duckdb");
    assert!(db.is_file(), "no database at <cwd>/out.duckdb");
    assert!(
        !p.path("out.duckdb").exists(),
        "--db was resolved against the project"
    );
    assert!(
        !p.path("target/kpic.duckdb").exists(),
        "--db given, yet the default database was written"
    );
    let (_, rows) = dump_table(&db, "kpi_results");
    let text = stdout(&out);
    assert_eq!(
        rows.len(),
        csv::Reader::from_reader(text.as_bytes()).records().count()
    );
}

/// Without --db, the database is the project's (kpic.yml `warehouse.database`,
/// target/kpic.duckdb in the init project), resolved against the project.
#[test]
fn run_default_db_is_in_the_project() {
    let p = InitProject::new();
    let out = p.kpic(&["run"]);
    expect_code(&out, 0, "kpic run");
    assert!(p.path("target/kpic.duckdb").is_file());
    assert!(!p.tmp.path().join("target").exists());
}

// ---------------------------------------------------------------------------
// A failed run leaves the previous tables intact (§5)
// ---------------------------------------------------------------------------

const OUTPUT_TABLES: [&str; 5] = [
    "kpi_results",
    "kpi_metrics",
    "kpi_breakdowns",
    "kpi_drivers",
    "kpi_definitions",
];

struct Snapshot {
    count_sum: (i64, Option<f64>),
    tables: Vec<Dump>,
}

fn snapshot(db: &Path) -> Snapshot {
    Snapshot {
        count_sum: count_and_sum(db),
        tables: OUTPUT_TABLES.iter().map(|t| dump_table(db, t)).collect(),
    }
}

fn assert_unchanged(before: &Snapshot, db: &Path, what: &str) {
    let after = snapshot(db);
    assert_eq!(
        before.count_sum, after.count_sum,
        "{what}: kpi_results (count, sum(actual)) changed"
    );
    for (i, t) in OUTPUT_TABLES.iter().enumerate() {
        assert!(
            before.tables[i] == after.tables[i],
            "{what}: table {t} changed"
        );
    }
}

/// A first successful run; returns the database and its snapshot.
fn good_run(p: &InitProject) -> (PathBuf, Snapshot) {
    let db = p.db("keep.duckdb");
    let out = p.kpic(&["run", "--db", s(&db)]);
    expect_code(&out, 0, "first kpic run");
    let snap = snapshot(&db);
    assert!(snap.count_sum.0 > 0, "the first run wrote rows");
    (db, snap)
}

fn assert_failed_in_engine(out: &Output, what: &str) {
    let code = out.status.code();
    assert!(
        code == Some(1) || code == Some(2),
        "`{what}` should fail with 1 or 2, got {}\n--- stderr ---\n{}",
        out.status,
        stderr(out)
    );
    let err = stderr(out);
    assert!(
        err.contains("error[KPI4"),
        "`{what}`: stderr should name a KPI4xx execution error:\n{err}"
    );
    assert_no_diagnostics_on_stdout(out, what);
}

/// Rewrites one column of the init project's orders.csv into a new file,
/// points the `orders` source at it.
fn corrupt_orders(p: &InitProject, column: &str, value: impl Fn(usize, &str) -> String) {
    let mut reader = csv::Reader::from_path(p.path("fixtures/data/orders.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("orders.csv has no {column} column"));
    let mut w = csv::Writer::from_path(p.path("fixtures/data/orders_bad.csv")).unwrap();
    w.write_record(&header).unwrap();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.unwrap();
        let row: Vec<String> = rec
            .iter()
            .enumerate()
            .map(|(i, v)| if i == col { value(n, v) } else { v.to_string() })
            .collect();
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    p.replace_once(
        "models/sources.yml",
        "path: fixtures/data/orders.csv",
        "path: fixtures/data/orders_bad.csv",
    );
}

/// The orders file's `amount` becomes text, so `sum(amount - discount)`
/// cannot bind. (kpic now binds every aggregate before building, so this
/// fails with KPI402 before the transaction starts; either way the tables
/// must survive.)
#[test]
fn failed_run_text_amount_keeps_previous_tables() {
    let p = InitProject::new();
    let (db, before) = good_run(&p);
    corrupt_orders(&p, "amount", |_, _| "abc".to_string());
    let out = p.kpic(&["run", "--db", s(&db)]);
    assert_failed_in_engine(&out, "kpic run with a text amount");
    assert_unchanged(&before, &db, "after a failed run (text amount)");
}

/// One order row, in the middle of the file, has a time value that is not a
/// date: only reading the rows shows it, so the build fails mid-transaction.
#[test]
fn failed_run_bad_date_row_keeps_previous_tables() {
    let p = InitProject::new();
    let (db, before) = good_run(&p);
    let rows = csv::Reader::from_path(p.path("fixtures/data/orders.csv"))
        .unwrap()
        .records()
        .count();
    corrupt_orders(&p, "ordered_at", |n, v| {
        if n == rows / 2 {
            "notadate".to_string()
        } else {
            v.to_string()
        }
    });
    let out = p.kpic(&["check"]);
    expect_code(&out, 0, "kpic check (a bad row is only seen by the engine)");
    let out = p.kpic(&["run", "--db", s(&db)]);
    assert_failed_in_engine(&out, "kpic run with a bad date row");
    assert_unchanged(&before, &db, "after a run that failed in the engine");
}

/// A source whose SQL reads a table that does not exist.
#[test]
fn failed_run_missing_table_keeps_previous_tables() {
    let p = InitProject::new();
    let (db, before) = good_run(&p);
    p.write(
        "models/ghosts.yml",
        "sources:\n  - name: ghosts\n    sql: \"select * from no_such_table\"\n    time: created_at\n\
         metrics:\n  - name: ghost_count\n    source: ghosts\n    measure: count(*)\n\
         kpis:\n  - name: ghost_kpi\n    metric: ghost_count\n    grain: month\n    target: 10\n    owner: nobody\n    action_plan: none\n",
    );
    let out = p.kpic(&["run", "--db", s(&db)]);
    assert_failed_in_engine(&out, "kpic run with a missing table");
    assert_unchanged(&before, &db, "after a run that failed in the engine");
}

/// `--timeout` far too short: if the build is stopped (exit 2, KPI405), the
/// previous tables are intact; if it completed anyway, nothing is asserted.
#[test]
fn timed_out_run_keeps_previous_tables() {
    let p = InitProject::new();
    let (db, mut before) = good_run(&p);
    // A different as_of, so a completed run would visibly change the tables.
    let out = p.kpic(&[
        "run",
        "--db",
        s(&db),
        "--timeout",
        "0.000001",
        "--as-of",
        "2026-01-15",
    ]);
    match out.status.code() {
        Some(0) => {
            eprintln!("the run beat a 1 µs timeout; nothing to check");
            before = snapshot(&db);
        }
        code => {
            assert_eq!(
                code,
                Some(2),
                "a timeout is an environment failure (exit 2)\n{}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("KPI405"), "stderr:\n{}", stderr(&out));
            assert_unchanged(&before, &db, "after a timed-out run");
        }
    }
    let out = p.kpic(&["run", "--db", s(&db), "--timeout", "0"]);
    expect_code(&out, 2, "kpic run --timeout 0");
    assert_unchanged(&before, &db, "after a run with --timeout 0");
}

// ---------------------------------------------------------------------------
// stdout carries only data
// ---------------------------------------------------------------------------

/// Warnings (the init project has at least one lint, or we add one) reach
/// stderr; stdout of every command holds only its data.
#[test]
fn diagnostics_go_to_stderr_only() {
    let p = InitProject::new();
    // Guarantee a warning: a KPI without an action plan (KPI254).
    p.write(
        "models/extra.yml",
        "kpis:\n  - name: extra_orders\n    metric: orders\n    grain: month\n    target: 100\n",
    );
    let db = p.db("r.duckdb");
    for args in [
        vec!["check"],
        vec!["list"],
        vec!["list", "--format", "json"],
        vec!["compile"],
        vec!["run", "--db", s(&db)],
        vec!["run", "--db", s(&db), "--format", "csv"],
        vec!["run", "--db", s(&db), "--format", "json"],
    ] {
        let out = p.kpic(&args);
        let what = format!("kpic {}", args.join(" "));
        expect_code(&out, 0, &what);
        assert!(
            stderr(&out).contains("warning["),
            "`{what}`: the project's warnings should be on stderr:\n{}",
            stderr(&out)
        );
        assert_no_diagnostics_on_stdout(&out, &what);
    }
    // --quiet keeps the data and drops the warnings.
    let out = p.kpic(&["--quiet", "run", "--db", s(&db), "--format", "csv"]);
    expect_code(&out, 0, "kpic --quiet run");
    assert!(!stderr(&out).contains("warning["), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("kpi,"));
}

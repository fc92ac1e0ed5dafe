//! Compiled-SQL tests (SPEC §4 `compile`, §5): snapshots of the repository
//! example's SQL, "each source is scanned once", and the compiled SELECTs of
//! the init project, executed by DuckDB directly, give the same rows as
//! `kpic run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::{
    InitProject, assert_compiled_sql_parses, assert_same_rows, dump_query, dump_table, expect_code,
    kpic_in, s,
};

const AS_OF: &str = "2026-06-21";

/// `kpic --project <repo> compile --dialect duckdb --as-of 2026-06-21 --out <tmp>`
/// on the repository's example project; returns (tempdir, <tmp>/duckdb).
fn compile_example() -> (tempfile::TempDir, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::Builder::new()
        .prefix("kpic-compile-")
        .tempdir()
        .unwrap();
    let out_dir = tmp.path().join("sql");
    let out = kpic_in(
        tmp.path(),
        &[
            "--project",
            s(root),
            "compile",
            "--dialect",
            "duckdb",
            "--as-of",
            AS_OF,
            "--out",
            s(&out_dir),
        ],
    );
    expect_code(&out, 0, "kpic compile of the example project");
    (tmp, out_dir.join("duckdb"))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
}

// ---------------------------------------------------------------------------
// Snapshots of the example's SQL
// ---------------------------------------------------------------------------

#[test]
fn example_compiled_sql_snapshots() {
    let (_tmp, dir) = compile_example();
    assert_compiled_sql_parses(&dir);
    insta::assert_snapshot!("example_kpi_results_sql", read(&dir, "kpi_results.sql"));
    insta::assert_snapshot!("example_build_sql", read(&dir, "build.sql"));
    insta::assert_snapshot!("example_kpi_drivers_sql", read(&dir, "kpi_drivers.sql"));
}

/// Compiling twice gives byte-identical SQL (no hash-map order leaks).
#[test]
fn example_compile_is_deterministic() {
    let (_a, first) = compile_example();
    let (_b, second) = compile_example();
    for f in [
        "kpi_results.sql",
        "kpi_metrics.sql",
        "kpi_breakdowns.sql",
        "kpi_drivers.sql",
        "kpi_definitions.sql",
        "build.sql",
    ] {
        assert!(
            read(&first, f) == read(&second, f),
            "{f} differs between two compiles"
        );
    }
}

// ---------------------------------------------------------------------------
// Each source is scanned once
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

/// Tokens of a SQL text: words, string literals, punctuation; comments and
/// quoted identifiers' quotes dropped.
fn tokens(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' || c == '"' {
            let quote = c;
            let mut text = String::new();
            i += 1;
            loop {
                assert!(i < chars.len(), "unterminated {quote} in compiled SQL");
                if chars[i] == quote {
                    if chars.get(i + 1) == Some(&quote) {
                        text.push(quote);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            out.push(if quote == '\'' {
                Tok::Str(text)
            } else {
                Tok::Word(text)
            });
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            if !c.is_whitespace() {
                out.push(Tok::Punct(c));
            }
            i += 1;
        }
    }
    out
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

/// A file read: `read_csv_auto('<file>') AS <alias>`.
#[derive(Debug)]
struct FileRead {
    file: String,
    alias: String,
    /// The base relation of a FROM (not a JOINed relation).
    base: bool,
    /// The innermost relation (CTE or CREATE TABLE) whose definition holds it.
    within: Option<String>,
}

#[derive(Debug, Default)]
struct ScanReport {
    reads: Vec<FileRead>,
    /// Relation definitions (CTEs and CREATE TABLEs): name -> count.
    defs: BTreeMap<String, usize>,
    /// FROM/JOIN references to a relation by name.
    refs: BTreeMap<String, usize>,
}

/// Walks the tokens with a stack of open parentheses, each labelled with
/// the CTE it defines (`name AS [MATERIALIZED] (`), if any.
fn scan_report(sql: &str) -> ScanReport {
    let toks = tokens(sql);
    let mut rep = ScanReport::default();
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut statement: Option<String> = None;
    let word = |i: usize| match toks.get(i) {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    for i in 0..toks.len() {
        match &toks[i] {
            Tok::Punct(';') => {
                stack.clear();
                statement = None;
            }
            Tok::Punct('(') => {
                // name AS ( | name AS [NOT] MATERIALIZED (
                let mut j = i;
                if j >= 1 && is_kw(toks.get(j - 1), "MATERIALIZED") {
                    j -= 1;
                    if j >= 1 && is_kw(toks.get(j - 1), "NOT") {
                        j -= 1;
                    }
                }
                let name = if j >= 2 && is_kw(toks.get(j - 1), "AS") {
                    word(j - 2).map(str::to_string)
                } else {
                    None
                };
                if let Some(n) = &name {
                    *rep.defs.entry(n.clone()).or_insert(0) += 1;
                }
                stack.push(name);
            }
            Tok::Punct(')') => {
                stack.pop();
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("TABLE") => {
                // CREATE [OR REPLACE] [TEMPORARY] TABLE name AS
                if let Some(n) = word(i + 1)
                    && is_kw(toks.get(i + 2), "AS")
                {
                    statement = Some(n.to_string());
                    *rep.defs.entry(n.to_string()).or_insert(0) += 1;
                }
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("read_csv_auto") => {
                let file = match (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3)) {
                    (Some(Tok::Punct('(')), Some(Tok::Str(f)), Some(Tok::Punct(')'))) => f.clone(),
                    other => panic!("unexpected read_csv_auto call: {other:?}"),
                };
                assert!(is_kw(toks.get(i + 4), "AS"), "read_csv_auto without alias");
                let alias = word(i + 5).expect("alias").to_string();
                let base = i >= 1 && is_kw(toks.get(i - 1), "FROM");
                let within = stack
                    .iter()
                    .rev()
                    .find_map(|n| n.clone())
                    .or_else(|| statement.clone());
                rep.reads.push(FileRead {
                    file,
                    alias,
                    base,
                    within,
                });
            }
            Tok::Word(w)
                if i >= 1 && (is_kw(toks.get(i - 1), "FROM") || is_kw(toks.get(i - 1), "JOIN")) =>
            {
                *rep.refs.entry(w.clone()).or_insert(0) += 1;
            }
            _ => {}
        }
    }
    rep
}

/// (name, path) of every source in models/sources.yml of the example.
fn example_sources() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/sources.yml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["sources"]
        .as_sequence()
        .expect("sources list")
        .iter()
        .map(|src| {
            (
                src["name"].as_str().unwrap().to_string(),
                src["path"]
                    .as_str()
                    .expect("the example's sources are files")
                    .to_string(),
            )
        })
        .collect()
}

/// For every source: exactly one base read of its file, inside the one
/// definition of `kpic_scan_<source>`; no other relation (kpic_agg_*,
/// kpic_win_*, a KPI's CTEs) reads a file itself. (Whether the engine then
/// computes a scan CTE read by several steps once is checked on DuckDB's
/// plan, see `assert_engine_reads_once`.)
fn assert_each_source_scanned_once(what: &str, sql: &str, sources: &[(String, String)]) {
    let rep = scan_report(sql);
    for (name, file) in sources {
        let scan = format!("kpic_scan_{name}");
        let base: Vec<&FileRead> = rep
            .reads
            .iter()
            .filter(|r| r.base && &r.file == file)
            .collect();
        assert_eq!(
            base.len(),
            1,
            "{what}: `FROM read_csv_auto('{file}')` should occur once, found {}: {base:?}",
            base.len()
        );
        assert_eq!(base[0].alias, *name, "{what}: alias of the scan of {file}");
        assert_eq!(
            base[0].within.as_deref(),
            Some(scan.as_str()),
            "{what}: the read of {file} is not inside `{scan}`"
        );
        let defs = rep.defs.get(&scan).copied().unwrap_or(0);
        assert_eq!(defs, 1, "{what}: `{scan}` is defined {defs} times");
        let refs = rep.refs.get(&scan).copied().unwrap_or(0);
        assert!(refs >= 1, "{what}: `{scan}` is never used");
    }
    for r in &rep.reads {
        assert!(
            r.within
                .as_deref()
                .is_some_and(|w| w.starts_with("kpic_scan_")),
            "{what}: {r:?} reads a file outside a kpic_scan_* relation"
        );
        if r.base {
            assert!(
                sources.iter().any(|(n, f)| *f == r.file && *n == r.alias),
                "{what}: unexpected base read {r:?}"
            );
        }
    }
}

/// Number of file-reading operators (READ_CSV*, READ_PARQUET, READ_JSON*)
/// in a DuckDB JSON plan, and of those whose projections include `column`.
fn plan_reads(plan: &serde_json::Value, out: &mut Vec<Vec<String>>) {
    match plan {
        serde_json::Value::Array(items) => items.iter().for_each(|i| plan_reads(i, out)),
        serde_json::Value::Object(node) => {
            if let Some(name) = node.get("name").and_then(|n| n.as_str())
                && (name.starts_with("READ_CSV")
                    || name.starts_with("READ_PARQUET")
                    || name.starts_with("READ_JSON"))
            {
                let projections = node
                    .get("extra_info")
                    .and_then(|e| e.get("Projections"))
                    .map(|p| match p {
                        serde_json::Value::Array(a) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect(),
                        serde_json::Value::String(s) => {
                            s.split('\n').map(|x| x.trim().to_string()).collect()
                        }
                        _ => vec![],
                    })
                    .unwrap_or_default();
                out.push(projections);
            }
            if let Some(children) = node.get("children") {
                plan_reads(children, out);
            }
        }
        _ => {}
    }
}

/// The file reads DuckDB's physical plan of `sql` performs.
fn engine_reads(conn: &duckdb::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN (FORMAT JSON) {sql}"))
        .unwrap_or_else(|e| panic!("EXPLAIN fails: {e}\n{sql}"));
    let plans: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut reads = Vec::new();
    for p in plans {
        let v: serde_json::Value = serde_json::from_str(&p).expect("EXPLAIN (FORMAT JSON) is JSON");
        plan_reads(&v, &mut reads);
    }
    reads
}

/// The engine reads files exactly as often as the SQL text calls
/// read_csv_auto (so a CTE read by several steps is computed once), and
/// each source's file (recognized by its time column) once.
fn assert_engine_reads_once(
    what: &str,
    reads: &[Vec<String>],
    text_reads: usize,
    sources: &[(String, String, String)],
) {
    assert_eq!(
        reads.len(),
        text_reads,
        "{what}: DuckDB's plan reads files {} times, the SQL has {text_reads} read_csv_auto calls: some relation is read more than once\nreads (projections): {reads:?}",
        reads.len()
    );
    for (name, _, time) in sources {
        let n = reads.iter().filter(|p| p.iter().any(|c| c == time)).count();
        assert_eq!(
            n, 1,
            "{what}: DuckDB reads the file of source {name} (time column {time}) {n} times\nreads (projections): {reads:?}"
        );
    }
}

/// (name, path, time column) of every source in the example's sources.yml.
fn example_sources_with_time() -> Vec<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/sources.yml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["sources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|src| {
            (
                src["name"].as_str().unwrap().to_string(),
                src["path"].as_str().unwrap().to_string(),
                src["time"].as_str().expect("time column").to_string(),
            )
        })
        .collect()
}

#[test]
fn example_each_source_is_scanned_once() {
    let sources = example_sources();
    let names: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["orders", "sessions", "customers", "support_tickets"] {
        assert!(
            names.contains(&expected),
            "example source {expected} is gone"
        );
    }
    let (_tmp, dir) = compile_example();
    let build = read(&dir, "build.sql");
    let results = read(&dir, "kpi_results.sql");
    assert_each_source_scanned_once("build.sql", &build, &sources);
    assert_each_source_scanned_once("kpi_results.sql", &results, &sources);

    // The same, as DuckDB plans it.
    let with_time = example_sources_with_time();
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let root = env!("CARGO_MANIFEST_DIR").replace('\'', "''");
    conn.execute_batch(&format!("SET file_search_path = '{root}'"))
        .unwrap();
    let reads = engine_reads(&conn, &results);
    assert_engine_reads_once(
        "kpi_results.sql",
        &reads,
        scan_report(&results).reads.len(),
        &with_time,
    );

    // The plan check bites: DuckDB does not merge two reads of one file
    // (so counting its read operators does count file scans).
    let (orders_file, orders_time) = with_time
        .iter()
        .find(|(n, _, _)| n == "orders")
        .map(|(_, f, t)| (f.clone(), t.clone()))
        .unwrap();
    let twice = format!(
        "WITH a AS (SELECT count({orders_time}) AS c FROM read_csv_auto('{orders_file}') AS orders), \
         b AS (SELECT max({orders_time}) AS m FROM read_csv_auto('{orders_file}') AS orders) SELECT * FROM a, b"
    );
    assert_eq!(
        engine_reads(&conn, &twice).len(),
        2,
        "test bug: DuckDB merged two reads of one file"
    );

    // build.sql: plan each statement, then run it (later ones read the
    // temporary tables of earlier ones).
    use sqlparser::{dialect::DuckDbDialect, parser::Parser};
    let mut all = Vec::new();
    for stmt in Parser::parse_sql(&DuckDbDialect {}, &build).expect("build.sql parses") {
        let text = stmt.to_string();
        if text.to_ascii_uppercase().starts_with("CREATE") {
            all.extend(engine_reads(&conn, &text));
        }
        conn.execute_batch(&text)
            .unwrap_or_else(|e| panic!("build.sql statement fails in DuckDB: {e}\n{text}"));
    }
    assert_engine_reads_once(
        "build.sql",
        &all,
        scan_report(&build).reads.len(),
        &with_time,
    );
}

/// The checker itself: it must catch a second read of a file, a file read
/// by an aggregate, and an inlinable scan CTE used twice.
#[test]
fn scan_checker_catches_double_reads() {
    let sources = vec![("orders".to_string(), "o.csv".to_string())];
    let good = "WITH kpic_scan_orders AS MATERIALIZED (SELECT * FROM read_csv_auto('o.csv') AS orders), \
                kpic_agg_a AS (SELECT 1 FROM kpic_scan_orders), kpic_agg_b AS (SELECT 1 FROM kpic_scan_orders) \
                SELECT * FROM kpic_agg_a, kpic_agg_b";
    assert_each_source_scanned_once("good", good, &sources);
    let fails = |sql: &str| {
        let sql = sql.to_string();
        let sources = sources.clone();
        std::panic::catch_unwind(move || assert_each_source_scanned_once("bad", &sql, &sources))
            .is_err()
    };
    // A second scan of the same file by an aggregate.
    assert!(fails(
        "WITH kpic_scan_orders AS MATERIALIZED (SELECT * FROM read_csv_auto('o.csv') AS orders), \
         kpic_agg_a AS (SELECT 1 FROM kpic_scan_orders), kpic_agg_b AS (SELECT 1 FROM read_csv_auto('o.csv') AS orders) \
         SELECT * FROM kpic_agg_a, kpic_agg_b"
    ));
    // A scan CTE that reads the file and a second read of it in the scan.
    assert!(fails(
        "WITH kpic_scan_orders AS (SELECT * FROM read_csv_auto('o.csv') AS orders \
         UNION ALL SELECT * FROM read_csv_auto('o.csv') AS orders) SELECT 1 FROM kpic_scan_orders"
    ));
    // Two scan relations of one source in a build script.
    assert!(fails(
        "CREATE TEMPORARY TABLE kpic_scan_orders AS SELECT * FROM read_csv_auto('o.csv') AS orders; \
         CREATE TEMPORARY TABLE kpic_agg_x AS WITH kpic_scan_orders AS (SELECT * FROM read_csv_auto('o.csv') AS orders) SELECT 1 FROM kpic_scan_orders;"
    ));
    // A joined read is not a base read, but it must be inside a scan too.
    let joined = "CREATE TEMPORARY TABLE kpic_scan_orders AS SELECT * FROM read_csv_auto('o.csv') AS orders \
                  LEFT JOIN read_csv_auto('c.csv') AS customers ON orders.c = customers.c; \
                  CREATE TABLE kpi_results AS SELECT 1 FROM kpic_scan_orders;";
    assert_each_source_scanned_once("joined", joined, &sources);
}

// ---------------------------------------------------------------------------
// Compiled SQL executed by DuckDB directly = kpic run
// ---------------------------------------------------------------------------

#[test]
fn init_compiled_sql_matches_run() {
    let p = InitProject::new();
    let out_dir = p.tmp.path().join("sql");
    let out = p.kpic(&["compile", "--as-of", AS_OF, "--out", s(&out_dir)]);
    expect_code(&out, 0, "kpic compile --as-of (init project)");
    let dir = out_dir.join("duckdb");
    let db = p.db("run.duckdb");
    let out = p.kpic(&["run", "--as-of", AS_OF, "--db", s(&db)]);
    expect_code(&out, 0, "kpic run --as-of (init project)");

    let conn = duckdb::Connection::open_in_memory().unwrap();
    let search = s(&p.dir).replace('\'', "''");
    conn.execute_batch(&format!("SET file_search_path = '{search}'"))
        .unwrap();
    for (table, except) in [
        ("kpi_results", ""),
        ("kpi_metrics", ""),
        ("kpi_breakdowns", ""),
        ("kpi_drivers", ""),
        // computed_at is the build's timestamp.
        ("kpi_definitions", " EXCLUDE (computed_at)"),
    ] {
        let sql = read(&dir, &format!("{table}.sql"));
        let sql = sql.trim().trim_end_matches(';');
        conn.execute_batch(&format!("CREATE TEMPORARY TABLE direct_{table} AS {sql}"))
            .unwrap_or_else(|e| panic!("DuckDB rejects the compiled {table}.sql: {e}"));
        let direct = dump_query(&conn, &format!("SELECT *{except} FROM direct_{table}"));
        let run = if except.is_empty() {
            dump_table(&db, table)
        } else {
            dump_query(
                &crate::cli::open_read_only(&db),
                &format!("SELECT *{except} FROM {table}"),
            )
        };
        assert!(!run.1.is_empty(), "kpic run wrote no rows into {table}");
        assert_same_rows(
            &format!("{table}: compiled SQL run by DuckDB vs kpic run"),
            &direct,
            &run,
        );
    }
}

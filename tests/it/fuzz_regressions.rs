//! Inputs on which the fuzz targets (`fuzz/`) or the property tests
//! (`properties.rs`) found a bug, kept as tests.
//!
//! A crash `fuzz/run.sh` reports leaves its input in
//! `fuzz/artifacts/<target>/`; add it to [`FUZZ_INPUTS`] (as text, or with
//! `include_bytes!` for binary input) and [`fuzz_inputs_compile_or_report`]
//! replays it through the fuzz harness's path: load → model → semantic
//! (with no catalog), then plan and SQL for every dialect, every statement
//! re-parsed.

use std::path::{Path, PathBuf};

use crate::properties::{Case, compile_and_read_back, run_and_compare};

/// The multi-file format of the fuzz harness (`fuzz/src/lib.rs`): text
/// before the first `#@ <path>` line is `models/m.yml`, each marker starts
/// a file (paths here are trusted: they are test inputs).
fn write_input(root: &Path, input: &[u8]) {
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![(PathBuf::from("models/m.yml"), Vec::new())];
    for line in input.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b"#@ ") {
            Some(rest) => {
                let path = String::from_utf8_lossy(rest).trim().to_string();
                files.push((PathBuf::from(path), Vec::new()));
            }
            None => files.last_mut().expect("a file").1.extend_from_slice(line),
        }
    }
    // An input that starts with a marker has no default file.
    if input.starts_with(b"#@ ") {
        files.remove(0);
    }
    for (rel, bytes) in files {
        let file = root.join(rel);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("create dirs");
        std::fs::write(file, bytes).expect("write an input file");
    }
}

/// The fuzz `compile` target's check, in-process.
fn compile_input(input: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_input(dir.path(), input);
    let (model, diags) = kpic::analyze_project(dir.path(), &mut kpic::semantic::NoCatalog);
    let _ = kpic::diagnostics::render::human(&diags, &model.sources, false);
    let _ = kpic::diagnostics::render::json(&diags, &model.sources);
    if diags.has_errors() {
        return;
    }
    for name in kpic::sql::DIALECTS {
        let dialect = kpic::sql::dialect_named(name).expect("a listed dialect");
        let dialect = dialect.as_ref();
        let options = kpic::plan::PlanOptions {
            as_of: None,
            select: vec![],
            local_files: *name == "duckdb",
        };
        let Ok(plan) = kpic::plan::plan_kpis(&model, &options) else {
            continue;
        };
        if kpic::sql::dialect_problems(&model, dialect).has_errors() {
            continue;
        }
        let compiled = kpic::sql::plan_to_sql(&plan, &model, dialect);
        let mut texts = vec![compiled.build_script(dialect)];
        for t in kpic::sql::OUTPUT_TABLES {
            if let Some(mut q) = compiled.standalone(t) {
                dialect.finish_standalone(&mut q);
                texts.push(format!("{q:#}"));
            }
        }
        for sql in texts {
            let parser = dialect.parser();
            sqlparser::parser::Parser::new(parser.as_ref())
                .with_recursion_limit(4096)
                .try_with_sql(&sql)
                .and_then(|mut p| p.parse_statements())
                .unwrap_or_else(|e| panic!("{name}: does not re-parse: {e}\n{sql}"));
        }
    }
}

/// Crash inputs of the fuzz targets (kept under `tests/it/fuzz_inputs/`),
/// and the property tests' findings as fuzz inputs (those compiled to
/// valid SQL before their fixes too: the tests below check what the SQL
/// means).
const FUZZ_INPUTS: &[&str] = &[
    // Found by the `compile` target in CI: a mutated monthly_orders whose
    // `target: values` periods all fall away printed `CASE ELSE … END`,
    // which does not re-parse (fixed in sql/build.rs, `case`).
    include_str!("fuzz_inputs/compile-empty-case.txt"),
    // Found by the `compile` target in CI: `time: a:b` parsed as a
    // semi-structured path and printed as is for Postgres, which cannot
    // parse it (now refused in model/sql_field.rs, `no_colon_paths`).
    include_str!("fuzz_inputs/compile-colon-path.txt"),
    // A dimension named `null` used as a breakdown: planned by parsing the
    // name as SQL, so its members were all NULL (fixed in
    // plan/breakdowns.rs).
    "sources:\n  - name: orders\n    path: data/o.csv\n    table: o\n    time: day\n    dimensions:\n      - name: \"null\"\n        expr: channel\nmetrics:\n  - name: revenue\n    source: orders\n    measure: sum(amount)\nkpis:\n  - name: rev\n    metric: revenue\n    grain: month\n    breakdowns: [\"null\"]\n",
    // Columns named `a""b` and `a\"b`: sqlparser's printer took the quotes
    // for escapes already written and printed other names (fixed in
    // sql/dialect/translate.rs).
    "sources:\n  - name: orders\n    path: data/o.csv\n    table: o\n    time: '\"d\"\"ay\"'\n    dimensions:\n      - name: channel\n        expr: '\"ch\\\"\"an\"'\nmetrics:\n  - name: revenue\n    source: orders\n    measure: 'sum(\"a\"\"\"\"b\")'\nkpis:\n  - name: rev\n    metric: revenue\n    grain: month\n    breakdowns: [channel]\n",
];

#[test]
fn fuzz_inputs_compile_or_report() {
    for input in FUZZ_INPUTS {
        compile_input(input.as_bytes());
    }
}

/// A small project with plain names, for the cases below to vary.
fn plain() -> Case {
    Case {
        source: "orders".into(),
        table: ("analytics".into(), "orders".into()),
        time_col: "ordered_at".into(),
        amount_col: "amount".into(),
        cat_col: "channel".into(),
        dim: "channel_dim".into(),
        total: "revenue".into(),
        ratio: "web_share".into(),
        ratio_kpi: "web_share_kpi".into(),
        per_value: vec![
            ("web_revenue".into(), "web_kpi".into(), "Web".into()),
            ("shop_revenue".into(), "shop_kpi".into(), "Shop".into()),
        ],
        filtered_kpi: "revenue_kpi".into(),
        filtered_label: "Revenue".into(),
        excluded: 1,
        values: vec!["web".into(), "shop".into()],
        rows: vec![
            (3, 0, 10),
            (40, 1, 20),
            (41, 0, 5),
            (100, 1, 7),
            (170, 0, 1),
        ],
    }
}

fn holds(case: &Case) {
    if let Err(e) = compile_and_read_back(case) {
        panic!("every dialect: {e}");
    }
    if let Err(e) = run_and_compare(case) {
        panic!("DuckDB: {e}");
    }
}

#[test]
fn plain_case_holds() {
    holds(&plain());
}

/// Identifiers holding `""` or `\"` (and quotes at their ends) keep their
/// names in every dialect and on DuckDB.
#[test]
fn identifiers_with_doubled_or_escaped_quotes() {
    let mut c = plain();
    c.time_col = "order\"\"ed at".into();
    c.amount_col = "a\\\"mount".into();
    c.cat_col = "\"channel\"".into();
    c.table.1 = "or\"\"ders\\\"".into();
    holds(&c);
}

/// Dimensions named like SQL values (`null`, `true`, `current_date`) as
/// breakdowns: their members are the dimension's values.
#[test]
fn dimensions_named_like_sql_values() {
    for dim in ["null", "true", "current_date"] {
        let mut c = plain();
        c.dim = dim.into();
        holds(&c);
    }
}

/// A source column named `period_start` read by a breakdown dimension:
/// the breakdown aggregate selected `s.*, <period> AS period_start` from
/// the scan (`sql/render/diagnose.rs`, `rows_with_members`), so the
/// engine read the source's column where kpic meant the period
/// (DuckDB: `date_diff('day', VARCHAR, DATE)` did not bind). The row's
/// period is now `__kpic_period`.
#[test]
fn column_named_period_start_with_breakdowns() {
    let mut c = plain();
    c.cat_col = "period_start".into();
    holds(&c);
}

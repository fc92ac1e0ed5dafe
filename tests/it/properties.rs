//! Property tests (issue 5): generated projects whose names and values
//! need quoting — kpic names that are SQL keywords (`select`, `order`,
//! `group`, …) or kpic's own column names (`period`, `actual`, …), column
//! names with spaces, quotes, dots, mixed case and non-ASCII letters, text
//! values and labels with `'`, `"`, backslashes, spaces and non-ASCII
//! letters.
//!
//! - [`every_dialect_reparses_and_keeps_names_and_values`]: the project
//!   compiles for every dialect, every statement re-parses with sqlparser
//!   in that dialect, and what the parser reads back is what was written:
//!   every text value of a filter is one of the SQL's string literals, every
//!   label and description too (kpi_definitions), every column name one of
//!   its identifiers (Snowflake: folded to upper case where kpic folds it,
//!   see `sql/dialect/snowflake.rs`) and the `table:` name's parts its
//!   relation's.
//! - [`duckdb_results_match_an_independent_sum`]: on DuckDB the project runs
//!   (in-process) over a CSV of generated rows, and kpi_results,
//!   kpi_breakdowns and kpi_definitions hold exactly what plain Rust
//!   computes from the same rows: the quoting kept the meaning.
//!
//! proptest (a dev-dependency) generates the cases and, on a failure,
//! shrinks them to a minimal project — for quoting bugs the offending
//! character is the answer. The runs are deterministic: a fixed seed,
//! overridable with `KPIC_PROPTEST_SEED=<u64>`; `KPIC_PROPTEST_CASES=<n>`
//! sets the number of cases (40 and 16 by default; the DuckDB one runs an
//! engine per case). Failures are not persisted to files.
//!
//! Not generated, by choice: `{`/`}` (a SQL field is a Jinja template, so
//! `{{` in a value is the user's to escape), line breaks and backticks in
//! names and data values (labels do get line breaks and tabs), and leading
//! or trailing spaces in CSV values (what a CSV reader does with them is
//! not kpic's to decide).

use chrono::{Datelike, Duration, NaiveDate};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use sqlparser::ast::{Expr, ObjectNamePart, Value};
use std::collections::{BTreeMap, BTreeSet};

use crate::common::Project;

/// Words that are reserved or special in at least one engine, and names of
/// kpic's own output columns: valid kpic names (`[a-z][a-z0-9_]*`) that
/// every identifier in the SQL must survive.
const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "order",
    "by",
    "table",
    "limit",
    "offset",
    "union",
    "join",
    "left",
    "case",
    "end",
    "date",
    "year",
    "month",
    "interval",
    "user",
    "default",
    "window",
    "partition",
    "range",
    "rows",
    "all",
    "as",
    "and",
    "or",
    "not",
    "null",
    "true",
    "values",
    "in",
    "is",
    "with",
    "having",
    "cast",
    "filter",
    "over",
    "desc",
    "current_date",
    "timestamp",
    "column",
    "check",
    "key",
    "to",
    "on",
    "using",
    "natural",
    "cross",
    "qualify",
    "sample",
    "array",
    "format",
    "status",
    "plan",
    "period",
    "period_start",
    "period_end",
    "actual",
    "target",
    "kpi",
    "metric",
    "member",
    "dimension",
    "value",
];

/// The seed of every property test: `KPIC_PROPTEST_SEED`, else fixed.
fn seed() -> u64 {
    std::env::var("KPIC_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0x6b70_6963)
}

/// A runner with a fixed seed and `KPIC_PROPTEST_CASES` (else `cases`).
fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("KPIC_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed().wrapping_add(i as u64)).to_le_bytes());
    }
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Panics with proptest's minimal failing case and how to reproduce it.
fn check<T: std::fmt::Debug>(what: &str, result: Result<(), proptest::test_runner::TestError<T>>) {
    if let Err(e) = result {
        panic!(
            "{what}: {e}\n(seed {}; reproduce with KPIC_PROPTEST_SEED={})",
            seed(),
            seed()
        );
    }
}

// ---------------------------------------------------------------------------
// Generated projects
// ---------------------------------------------------------------------------

/// One generated project: a source over (time, amount, category) columns,
/// a `total` metric, one filtered metric per category value, a ratio, one
/// KPI per filtered metric and one KPI over `total` that excludes a value
/// and breaks down by the category.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) source: String,
    /// The `table:` of the source (other engines): a schema and a table
    /// name, each as its text.
    pub(crate) table: (String, String),
    pub(crate) time_col: String,
    pub(crate) amount_col: String,
    pub(crate) cat_col: String,
    pub(crate) dim: String,
    pub(crate) total: String,
    /// A derived metric (the first value's share of `total`) and its KPI.
    pub(crate) ratio: String,
    pub(crate) ratio_kpi: String,
    /// (metric, KPI, label) per category value.
    pub(crate) per_value: Vec<(String, String, String)>,
    /// The KPI over `total` with a filter `category <> values[excluded]`.
    pub(crate) filtered_kpi: String,
    pub(crate) filtered_label: String,
    pub(crate) excluded: usize,
    pub(crate) values: Vec<String>,
    /// (day offset from 2024-01-01, value index, amount).
    pub(crate) rows: Vec<(i64, usize, i64)>,
}

const FIRST_DAY: (i32, u32, u32) = (2024, 1, 1);
const AS_OF: &str = "2024-06-30";
const DAYS: i64 = 182; // 2024-01-01 ..= 2024-06-30

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2).expect("a date")
}

/// A kpic name: a keyword, or random `[a-z][a-z0-9_]*`.
fn kpic_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYWORDS).prop_map(str::to_string),
        1 => "[a-z][a-z0-9_]{0,12}",
    ]
}

/// A column name: a keyword (any case), or text with spaces, quotes, dots,
/// `%`, backslashes and non-ASCII letters (never blank at either end).
fn column_name() -> impl Strategy<Value = String> {
    let keyword = || prop::sample::select(KEYWORDS);
    prop_oneof![
        1 => keyword().prop_map(str::to_string),
        1 => keyword().prop_map(|k| k.to_uppercase()),
        1 => "[a-z][a-z0-9_]{0,8}",
        4 => "[A-Za-zé日][A-Za-z0-9 '\"._%\\\\éÉßøñ日本€-]{0,10}[A-Za-z0-9é日'\"]",
    ]
}

/// A text value that reads as text (it starts with a letter), with quotes,
/// backslashes, spaces, separators and non-ASCII letters.
fn text_value() -> impl Strategy<Value = String> {
    "[A-Za-zé😀][A-Za-z0-9 '\"\\\\%_,;:.éÉß日本😀-]{0,12}[A-Za-z0-9'\"\\\\%é😀.]?"
}

/// A label or description: any printable text, with line breaks and tabs.
fn label() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 '\"\\\\%_,;:.éß日本😀\n\t-]{1,24}"
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(kpic_name(), 15),
        prop::collection::vec(column_name(), 4),
        prop::collection::btree_set(text_value(), 2..=4),
        prop::collection::vec(label(), 5),
        any::<prop::sample::Index>(),
        prop::collection::vec((0..DAYS, any::<prop::sample::Index>(), -50i64..500), 1..40),
    )
        .prop_map(|(names, cols, values, labels, excluded, rows)| {
            let values: Vec<String> = values.into_iter().collect();
            // Column names differ without regard to case (DuckDB's are
            // case-insensitive, quoted or not).
            let mut taken: BTreeSet<String> = BTreeSet::new();
            let cols: Vec<String> = cols
                .into_iter()
                .map(|c| unique(c, &mut taken, |c, i| format!("{c} {i}")))
                .collect();
            // kpic names differ from each other and from the columns (a
            // name that is also a column is a question of resolution, not
            // of quoting).
            let names: Vec<String> = names
                .into_iter()
                .map(|n| unique(n, &mut taken, |n, i| format!("{n}_{i}")))
                .collect();
            let per_value = (0..values.len())
                .map(|i| {
                    (
                        names[7 + i].clone(),
                        names[11 + i].clone(),
                        labels[i].clone(),
                    )
                })
                .collect();
            Case {
                source: names[0].clone(),
                table: (names[1].clone(), cols[3].clone()),
                time_col: cols[0].clone(),
                amount_col: cols[1].clone(),
                cat_col: cols[2].clone(),
                dim: names[2].clone(),
                total: names[3].clone(),
                ratio: names[4].clone(),
                ratio_kpi: names[5].clone(),
                per_value,
                filtered_kpi: names[6].clone(),
                filtered_label: labels[4].clone(),
                excluded: excluded.index(values.len()),
                rows: rows
                    .into_iter()
                    .map(|(day, v, amount)| (day, v.index(values.len()), amount))
                    .collect(),
                values,
            }
        })
}

/// `name`, or `fix(name, i)` for the first `i` that is not taken yet
/// (compared in lower case); records the result.
fn unique(
    name: String,
    taken: &mut BTreeSet<String>,
    fix: impl Fn(&str, usize) -> String,
) -> String {
    let mut out = name.clone();
    let mut i = 2;
    while taken.contains(&out.to_lowercase()) {
        out = fix(&name, i);
        i += 1;
    }
    taken.insert(out.to_lowercase());
    out
}

/// A SQL identifier as a user writes it: bare when it can be, else in
/// double quotes with `"` doubled.
fn ident(name: &str) -> String {
    let bare = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !KEYWORDS.contains(&name);
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A free text field as kpic keeps it: without trailing white space
/// (`model::text` drops the final line break of a `|` block scalar that
/// way, and with it any trailing space or tab).
fn shown(text: &str) -> String {
    text.trim_end().to_string()
}

/// A SQL string literal: `'…'` with `'` doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A YAML scalar holding `text` exactly (a JSON string is a YAML
/// double-quoted scalar).
fn yaml(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

impl Case {
    /// The model file. Every scalar is written as a YAML double-quoted
    /// string, names too (`null`, `true` are kpic names but YAML values).
    fn model_yaml(&self, with_table: bool) -> String {
        let mut y = String::new();
        let cat = ident(&self.cat_col);
        let sum = yaml(&format!("sum({})", ident(&self.amount_col)));
        let source = yaml(&self.source);
        y.push_str(&format!(
            "sources:\n  - name: {source}\n    path: data/rows.csv\n"
        ));
        if with_table {
            let table = format!("{}.{}", ident(&self.table.0), ident(&self.table.1));
            y.push_str(&format!("    table: {}\n", yaml(&table)));
        }
        y.push_str(&format!(
            "    time: {}\n    dimensions:\n      - name: {}\n        expr: {}\n",
            yaml(&ident(&self.time_col)),
            yaml(&self.dim),
            yaml(&cat)
        ));
        y.push_str(&format!(
            "metrics:\n  - name: {}\n    source: {source}\n    measure: {sum}\n",
            yaml(&self.total)
        ));
        for ((metric, _, _), value) in self.per_value.iter().zip(&self.values) {
            y.push_str(&format!(
                "  - name: {}\n    source: {source}\n    measure: {sum}\n    filter: {}\n",
                yaml(metric),
                yaml(&format!("{cat} = {}", literal(value)))
            ));
        }
        y.push_str(&format!(
            "  - name: {}\n    expr: {}\n",
            yaml(&self.ratio),
            yaml(&format!(
                "{} / {}",
                ident(&self.per_value[0].0),
                ident(&self.total)
            ))
        ));
        y.push_str("kpis:\n");
        for (metric, kpi, label) in &self.per_value {
            y.push_str(&format!(
                "  - name: {}\n    metric: {}\n    grain: month\n    label: {}\n    description: {}\n",
                yaml(kpi),
                yaml(metric),
                yaml(label),
                yaml(&format!("{label} / {kpi}"))
            ));
        }
        y.push_str(&format!(
            "  - name: {}\n    metric: {}\n    grain: month\n    label: {}\n    filter: {}\n    breakdowns: [{}]\n",
            yaml(&self.filtered_kpi),
            yaml(&self.total),
            yaml(&self.filtered_label),
            yaml(&format!("{cat} <> {}", literal(&self.values[self.excluded]))),
            yaml(&self.dim)
        ));
        y.push_str(&format!(
            "  - name: {}\n    metric: {}\n    grain: quarter\n    target: 0.5\n",
            yaml(&self.ratio_kpi),
            yaml(&self.ratio)
        ));
        y
    }

    /// The rows as CSV: header and text cells quoted (`"` doubled), dates
    /// and amounts bare, so the reader types them.
    fn csv(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut out = format!(
            "{},{},{}\n",
            q(&self.time_col),
            q(&self.amount_col),
            q(&self.cat_col)
        );
        for (day, v, amount) in &self.rows {
            let date = first_day() + Duration::days(*day);
            out.push_str(&format!(
                "{},{amount},{}\n",
                date.format("%Y-%m-%d"),
                q(&self.values[*v])
            ));
        }
        out
    }

    fn project(&self, with_table: bool) -> Project {
        Project::new(&[
            ("kpic.yml", "name: properties\n"),
            ("models/generated.yml", &self.model_yaml(with_table)),
            ("data/rows.csv", &self.csv()),
        ])
    }

    /// `YYYY-MM` → the sum of the amounts of the rows `keep` accepts, for
    /// every month from the first row's to as_of's.
    fn monthly(&self, keep: impl Fn(usize) -> bool) -> BTreeMap<String, f64> {
        let first = self.rows.iter().map(|r| r.0).min().expect("a row");
        let start = first_day() + Duration::days(first);
        let mut out: BTreeMap<String, f64> = (start.month()..=6)
            .map(|m| (format!("2024-{m:02}"), 0.0))
            .collect();
        for (day, v, amount) in &self.rows {
            if keep(*v) {
                let date = first_day() + Duration::days(*day);
                *out.entry(date.format("%Y-%m").to_string()).or_default() += *amount as f64;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Every dialect: re-parse, and read back the names and values
// ---------------------------------------------------------------------------

/// What sqlparser reads back from SQL: its string literals, the names of
/// its column references and the parts of its relations' names.
struct ReadBack {
    strings: BTreeSet<String>,
    /// Identifiers as the engine reads them (see [`ReadBack::meaning`]).
    idents: BTreeSet<String>,
    relations: BTreeSet<Vec<String>>,
    dialect: &'static str,
}

impl ReadBack {
    fn new(dialect: &'static str) -> ReadBack {
        ReadBack {
            strings: BTreeSet::new(),
            idents: BTreeSet::new(),
            relations: BTreeSet::new(),
            dialect,
        }
    }

    /// The name an identifier stands for, in kpic's terms: on Snowflake a
    /// bare name is its upper case (`select_3` is `SELECT_3`, which kpic
    /// also writes `"SELECT_3"`); elsewhere the text as parsed.
    /// On BigQuery, a quoted name has the escape sequences of a string
    /// literal, which sqlparser does not apply to identifiers.
    fn meaning(&self, ident: &sqlparser::ast::Ident) -> String {
        if self.dialect == "snowflake" && ident.quote_style.is_none() {
            ident.value.to_uppercase()
        } else if self.dialect == "bigquery" && ident.quote_style == Some('`') {
            bigquery_reads(&ident.value)
        } else {
            ident.value.clone()
        }
    }

    fn add<V: sqlparser::ast::Visit>(&mut self, statements: &V) {
        let _ = sqlparser::ast::visit_expressions(statements, |e: &Expr| {
            match e {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s)
                    | Value::DoubleQuotedString(s)
                    | Value::EscapedStringLiteral(s)
                    | Value::UnicodeStringLiteral(s)
                    | Value::NationalStringLiteral(s)
                    | Value::TripleSingleQuotedString(s)
                    | Value::TripleDoubleQuotedString(s) => {
                        self.strings.insert(s.clone());
                    }
                    _ => {}
                },
                Expr::Identifier(i) => {
                    self.idents.insert(self.meaning(i));
                }
                Expr::CompoundIdentifier(parts) => {
                    let meant: Vec<String> = parts.iter().map(|i| self.meaning(i)).collect();
                    self.idents.extend(meant);
                }
                _ => {}
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let _ = sqlparser::ast::visit_relations(statements, |name| {
            let parts = name
                .0
                .iter()
                .filter_map(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(self.meaning(i)),
                    _ => None,
                })
                .collect();
            self.relations.insert(parts);
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
}

/// The name `dialect` gives a column the user named `name`: Snowflake folds
/// what could be written bare (lower-case ASCII) to upper case.
fn expected_ident(dialect: &str, name: &str) -> String {
    let mut chars = name.chars();
    let foldable = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '$'));
    if dialect == "snowflake" && foldable {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    }
}

/// `sql` parsed with the dialect's sqlparser dialect. Databricks: string
/// literals are kept as written and read here the way Spark reads them
/// (sqlparser's Databricks dialect reads `\u0027`, which kpic writes for
/// `'`, as `u0027`; see `spark_string` in `sql/dialect/databricks.rs`).
fn parse_in(
    dialect: &dyn kpic::sql::Dialect,
    sql: &str,
) -> Result<Vec<sqlparser::ast::Statement>, sqlparser::parser::ParserError> {
    let parser = dialect.parser();
    let spark = dialect.name() == "databricks";
    let options = sqlparser::parser::ParserOptions::new().with_unescape(!spark);
    let mut statements = sqlparser::parser::Parser::new(parser.as_ref())
        .with_options(options)
        .try_with_sql(sql)?
        .parse_statements()?;
    if spark {
        let _ = sqlparser::ast::visit_expressions_mut(&mut statements, |e: &mut Expr| {
            if let Expr::Value(v) = e
                && let Value::SingleQuotedString(s) = &mut v.value
            {
                *s = spark_reads(s);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    Ok(statements)
}

/// The name a BigQuery quoted identifier stands for (what is between the
/// backticks): `\\c` escapes as in string literals (`\\n`, `\\r`, `\\t`;
/// any other `\\c` is `c`, which covers `\\\\` and `` \\` ``).
fn bigquery_reads(inside: &str) -> String {
    let mut out = String::new();
    let mut chars = inside.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The text of a Spark SQL string literal (what is between the quotes),
/// after Spark's unescaping (`ParserUtils.unescapeSQLString`): `\uXXXX`,
/// octal `\ddd`, `\0 \b \n \r \t \Z`, `\%` and `\_` kept with their
/// backslash, any other `\c` is `c`.
fn spark_reads(inside: &str) -> String {
    let chars: Vec<char> = inside.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' || i == chars.len() {
            out.push(c);
            continue;
        }
        let n = chars[i];
        i += 1;
        let hex: String = chars[i..].iter().take(4).collect();
        let octal: String = chars[i - 1..].iter().take(3).collect();
        match n {
            'u' if hex.len() == 4 && u32::from_str_radix(&hex, 16).is_ok() => {
                let code = u32::from_str_radix(&hex, 16).expect("hex digits");
                out.extend(char::from_u32(code));
                i += 4;
            }
            '0'..='3'
                if octal.len() == 3 && octal.chars().skip(1).all(|d| matches!(d, '0'..='7')) =>
            {
                let code = u32::from_str_radix(&octal, 8).expect("octal digits");
                out.extend(char::from_u32(code));
                i += 2;
            }
            '0' => out.push('\0'),
            'b' => out.push('\u{8}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'Z' => out.push('\u{1A}'),
            '%' | '_' => {
                out.push('\\');
                out.push(n);
            }
            other => out.push(other),
        }
    }
    out
}

/// Compiles `case` for every dialect and checks what sqlparser reads back.
pub(crate) fn compile_and_read_back(case: &Case) -> Result<(), TestCaseError> {
    let p = case.project(true);
    let yaml = case.model_yaml(true);
    let (model, diags) = kpic::analyze_project(p.path(), &mut kpic::semantic::NoCatalog);
    if diags.has_errors() {
        let text = kpic::diagnostics::render::human(&diags, &model.sources, false);
        return Err(TestCaseError::fail(format!(
            "the project does not check:\n{text}\n{yaml}"
        )));
    }
    for name in kpic::sql::DIALECTS {
        let dialect = kpic::sql::dialect_named(name).expect("a listed dialect");
        let dialect = dialect.as_ref();
        let fail = |what: String| TestCaseError::fail(format!("{name}: {what}\n{yaml}"));
        let refused = kpic::sql::dialect_problems(&model, dialect);
        if refused.has_errors() {
            return Err(fail(format!("refused: {refused:?}")));
        }
        let options = kpic::plan::PlanOptions {
            as_of: None,
            select: vec![],
            local_files: *name == "duckdb",
        };
        let plan = kpic::plan::plan_kpis(&model, &options)
            .map_err(|d| fail(format!("does not plan: {d:?}")))?;
        let compiled = kpic::sql::plan_to_sql(&plan, &model, dialect);
        let mut texts: Vec<(String, String)> = kpic::sql::OUTPUT_TABLES
            .iter()
            .filter_map(|t| compiled.standalone(t).map(|q| (t, q)))
            .map(|(t, mut q)| {
                dialect.finish_standalone(&mut q);
                (t.to_string(), format!("{q:#}"))
            })
            .collect();
        texts.push(("build.sql".into(), compiled.build_script(dialect)));
        let mut back = ReadBack::new(name);
        for (what, sql) in &texts {
            let statements = parse_in(dialect, sql)
                .map_err(|e| fail(format!("{what} does not re-parse: {e}\n{sql}")))?;
            back.add(&statements);
        }
        for value in &case.values {
            if !back.strings.contains(value) {
                return Err(fail(format!(
                    "the value {value:?} is not among the string literals read back: {:?}",
                    back.strings
                )));
            }
        }
        for (_, kpi, label) in &case.per_value {
            for text in [shown(label), format!("{label} / {kpi}")] {
                if !back.strings.contains(&text) {
                    return Err(fail(format!(
                        "the label/description {text:?} is not read back: {:?}",
                        back.strings
                    )));
                }
            }
        }
        for col in [&case.time_col, &case.amount_col, &case.cat_col] {
            let want = expected_ident(name, col);
            if !back.idents.contains(&want) {
                return Err(fail(format!(
                    "the column {col:?} is not read back as {want:?}: {:?}",
                    back.idents
                )));
            }
        }
        if *name != "duckdb" {
            let mut want = vec![
                expected_ident(name, &case.table.0),
                expected_ident(name, &case.table.1),
            ];
            // BigQuery reads a quoted name with dots as a path (and its
            // table names cannot hold a dot): compare the paths.
            let path = |parts: &[String]| parts.join(".");
            let found = if *name == "bigquery" {
                want = vec![path(&want)];
                back.relations.iter().any(|r| path(r) == want[0])
            } else {
                back.relations.contains(&want)
            };
            if !found {
                return Err(fail(format!(
                    "the table {want:?} is not read back: {:?}",
                    back.relations
                )));
            }
        }
    }
    Ok(())
}

#[test]
fn every_dialect_reparses_and_keeps_names_and_values() {
    let mut runner = runner(40);
    check(
        "generated project, every dialect",
        runner.run(&case(), |c| compile_and_read_back(&c)),
    );
}

// ---------------------------------------------------------------------------
// DuckDB: the meaning survives
// ---------------------------------------------------------------------------

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Runs `case` on DuckDB in-process and compares the output tables with
/// sums computed here from the same rows.
pub(crate) fn run_and_compare(case: &Case) -> Result<(), TestCaseError> {
    let p = case.project(false);
    let yaml = case.model_yaml(false);
    let fail = |what: String| TestCaseError::fail(format!("{what}\n{yaml}\n{}", case.csv()));
    let root = p.path();
    let mut catalog = kpic::exec::DuckDbCatalog::new(root, None);
    let (model, diags) = kpic::analyze_project(root, &mut catalog);
    if diags.has_errors() {
        let text = kpic::diagnostics::render::human(&diags, &model.sources, false);
        return Err(fail(format!("the project does not check:\n{text}")));
    }
    let as_of = NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d").expect("a date");
    let options = kpic::plan::PlanOptions {
        as_of: Some(kpic::model::AsOf::Date(as_of)),
        select: vec![],
        local_files: true,
    };
    let plan = kpic::plan::plan_kpis(&model, &options)
        .map_err(|d| fail(format!("does not plan: {d:?}")))?;
    let compiled = kpic::sql::plan_to_sql(&plan, &model, &kpic::sql::dialect::DuckDb);
    let database = root.join("target").join("t.duckdb");
    std::fs::create_dir_all(root.join("target")).expect("create target/");
    let run = kpic::exec::RunOptions {
        database: database.to_string_lossy().into_owned(),
        memory_limit: Some("500MB".into()),
        timeout: None,
    };
    let outcome = kpic::exec::run_build(&model.project, &compiled, &run)
        .map_err(|d| fail(format!("does not run: {d:?}")))?;

    // kpi_results: every KPI's actual per month.
    let mut expected: Vec<(String, BTreeMap<String, f64>)> = case
        .per_value
        .iter()
        .enumerate()
        .map(|(i, (_, kpi, _))| (kpi.clone(), case.monthly(|v| v == i)))
        .collect();
    expected.push((
        case.filtered_kpi.clone(),
        case.monthly(|v| v != case.excluded),
    ));
    for (kpi, months) in &expected {
        let got: BTreeMap<String, Option<f64>> = outcome
            .rows
            .iter()
            .filter(|r| &r.kpi == kpi)
            .map(|r| (r.period.clone(), r.actual))
            .collect();
        let want: BTreeMap<String, Option<f64>> =
            months.iter().map(|(m, v)| (m.clone(), Some(*v))).collect();
        let same = got.len() == want.len()
            && got.iter().zip(&want).all(|((gm, gv), (wm, wv))| {
                gm == wm
                    && match (gv, wv) {
                        (Some(g), Some(w)) => close(*g, *w),
                        _ => false,
                    }
            });
        if !same {
            return Err(fail(format!(
                "kpi_results of {kpi}: got {got:?}, want {want:?}"
            )));
        }
    }

    let conn = kpic::exec::open_read_only(&database).expect("open the built database");
    // kpi_breakdowns: each member is a value (not the excluded one) and
    // its actual is that value's sum in the period.
    let mut st = conn
        .prepare("SELECT period, dimension, member, actual FROM kpi_breakdowns WHERE kpi = ?")
        .expect("query kpi_breakdowns");
    let rows: Vec<(String, String, Option<String>, Option<f64>)> = st
        .query_map([case.filtered_kpi.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .and_then(|rows| rows.collect())
        .expect("read kpi_breakdowns");
    let mut members_seen = BTreeSet::new();
    for (period, dimension, member, actual) in &rows {
        let Some(member) = member else {
            return Err(fail(format!("a NULL member in {period}")));
        };
        let Some(i) = case.values.iter().position(|v| v == member) else {
            return Err(fail(format!(
                "kpi_breakdowns member {member:?} is none of the values {:?}",
                case.values
            )));
        };
        if dimension != &case.dim || i == case.excluded {
            return Err(fail(format!(
                "kpi_breakdowns row ({dimension:?}, {member:?}) should not exist"
            )));
        }
        let want = case.monthly(|v| v == i).get(period).copied();
        if !matches!((actual, want), (Some(a), Some(w)) if close(*a, w)) {
            return Err(fail(format!(
                "kpi_breakdowns {member:?} in {period}: got {actual:?}, want {want:?}"
            )));
        }
        members_seen.insert(i);
    }
    let members_with_rows: BTreeSet<usize> = case
        .rows
        .iter()
        .map(|r| r.1)
        .filter(|v| *v != case.excluded)
        .collect();
    if members_seen != members_with_rows {
        return Err(fail(format!(
            "kpi_breakdowns has members {members_seen:?}, the rows have {members_with_rows:?}"
        )));
    }

    // kpi_definitions: labels and descriptions as written.
    let mut st = conn
        .prepare("SELECT kpi, label, description FROM kpi_definitions")
        .expect("query kpi_definitions");
    let defs: BTreeMap<String, (Option<String>, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .and_then(|rows| rows.collect())
        .expect("read kpi_definitions");
    for (_, kpi, label) in &case.per_value {
        let want = (Some(shown(label)), Some(format!("{label} / {kpi}")));
        if defs.get(kpi) != Some(&want) {
            return Err(fail(format!(
                "kpi_definitions of {kpi}: got {:?}, want {want:?}",
                defs.get(kpi)
            )));
        }
    }
    Ok(())
}

#[test]
fn duckdb_results_match_an_independent_sum() {
    let mut runner = runner(16);
    check(
        "generated project on DuckDB",
        runner.run(&case(), |c| run_and_compare(&c)),
    );
}

/// The generators produce what the module header promises (so a change to
/// them cannot quietly stop testing quoting).
#[test]
fn generated_cases_need_quoting() {
    let mut runner = runner(64);
    let mut seen = BTreeSet::new();
    for _ in 0..64 {
        let c = case()
            .new_tree(&mut runner)
            .expect("generate a case")
            .current();
        let names = [&c.source, &c.dim, &c.total, &c.filtered_kpi];
        if names.iter().any(|n| KEYWORDS.contains(&n.as_str())) {
            seen.insert("keyword name");
        }
        for text in c
            .values
            .iter()
            .chain([&c.time_col, &c.amount_col, &c.cat_col])
        {
            for (ch, what) in [('\'', "'"), ('"', "\""), ('\\', "\\"), (' ', "space")] {
                if text.contains(ch) {
                    seen.insert(what);
                }
            }
            if !text.is_ascii() {
                seen.insert("non-ASCII");
            }
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["keyword name", "'", "\"", "\\", "space", "non-ASCII"]),
        "what 64 generated cases hold"
    );
}

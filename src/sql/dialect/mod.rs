//! SQL dialects: every difference between engines lives here, as methods
//! of the [`Dialect`] trait that build AST (sqlparser's printer does not
//! translate, so each difference must be built into the tree). The default
//! methods produce DuckDB SQL; a dialect overrides only what differs.
//!
//! No `match dialect` anywhere else: callers ask the trait.

mod bigquery;
mod clickhouse;
mod databricks;
mod duckdb;
mod postgres;
mod redshift;
mod snowflake;
pub mod translate;
mod trino;

use chrono::NaiveDate;
use sqlparser::ast::{
    DataType, DateTimeField, Expr, Function, Ident, Interval, Query, Statement, TableFactor,
};

use super::build::*;
use crate::model::Grain;

pub use bigquery::BigQuery;
pub use clickhouse::ClickHouse;
pub use databricks::Databricks;
pub use duckdb::DuckDb;
pub use postgres::Postgres;
pub use redshift::Redshift;
pub use snowflake::Snowflake;
pub use translate::{translate_expr, translate_query, translate_statement};
pub use trino::Trino;

/// Names accepted by `--dialect`.
pub const DIALECTS: &[&str] = &[
    "duckdb",
    "postgres",
    "snowflake",
    "bigquery",
    "databricks",
    "redshift",
    "trino",
    "clickhouse",
];

/// The dialect named `name`, or `None` when kpic cannot compile for it yet.
pub fn dialect_named(name: &str) -> Option<Box<dyn Dialect>> {
    match name {
        "duckdb" => Some(Box::new(DuckDb)),
        "postgres" => Some(Box::new(Postgres)),
        "snowflake" => Some(Box::new(Snowflake)),
        "bigquery" => Some(Box::new(BigQuery)),
        "databricks" => Some(Box::new(Databricks)),
        "redshift" => Some(Box::new(Redshift)),
        "trino" => Some(Box::new(Trino)),
        "clickhouse" => Some(Box::new(ClickHouse)),
        _ => None,
    }
}

fn grain_unit(grain: Grain) -> (&'static str, DateTimeField, i64) {
    match grain {
        Grain::Day => ("day", DateTimeField::Day, 1),
        Grain::Week => ("week", DateTimeField::Day, 7),
        Grain::Month => ("month", DateTimeField::Month, 1),
        Grain::Quarter => ("quarter", DateTimeField::Month, 3),
        Grain::Year => ("year", DateTimeField::Year, 1),
    }
}

/// SQL text printed exactly as given (a literal whose escaping the
/// printer would change).
pub fn verbatim(sql: String) -> Expr {
    Expr::value(sqlparser::ast::Value::Placeholder(sql))
}

/// Build-then-swap replacement of the output tables, the shape every
/// engine without DuckDB's `CREATE OR REPLACE` in a transaction uses: each
/// output is first built as `<table>__kpic_new` by the `build` skeletons
/// (the last one, a `CREATE TABLE … AS SELECT 1`, receives the query), so a
/// failure there leaves every old table in place; then each table is
/// swapped in by the `swap` skeletons, and last the `cleanup` skeletons run
/// for every table. Skeletons name the table `kpic_t` and the staged one
/// `kpic_t_new`.
pub(super) fn staged_replace(
    dialect: &dyn Dialect,
    tables: Vec<(String, Query)>,
    build: &[&str],
    swap: &[&str],
    cleanup: &[&str],
) -> Vec<Statement> {
    let (mut built, mut swapped, mut cleaned) = (Vec::new(), Vec::new(), Vec::new());
    for (name, q) in tables {
        let staged = format!("{name}__kpic_new");
        let names = [("kpic_t", name.as_str()), ("kpic_t_new", staged.as_str())];
        let mut query = Some(q);
        for (i, sql) in build.iter().enumerate() {
            let q = if i + 1 == build.len() {
                query.take()
            } else {
                None
            };
            built.push(skeleton(dialect, sql, &names, q));
        }
        swapped.extend(swap.iter().map(|sql| skeleton(dialect, sql, &names, None)));
        cleaned.extend(
            cleanup
                .iter()
                .map(|sql| skeleton(dialect, sql, &names, None)),
        );
    }
    built.extend(swapped);
    built.extend(cleaned);
    built
}

/// A string literal for engines that read backslash escapes inside `'…'`
/// (Snowflake, BigQuery, ClickHouse): `\`, `\'`, `\n`, `\r`; `None` when
/// the text needs none of them.
pub(super) fn backslash_escaped(text: &str) -> Option<Expr> {
    if !text.contains(['\\', '\'', '\n', '\r']) {
        return None;
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\'' => escaped.push_str("\\'"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            c => escaped.push(c),
        }
    }
    Some(Expr::value(sqlparser::ast::Value::SingleQuotedString(
        escaped,
    )))
}

/// Why an engine cannot compute a construct (an aggregate, a feature), and
/// what to do instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub help: String,
}

/// A statement parsed from `sql` with this dialect's parser, with the
/// relations named in `names` (placeholder → real name) renamed and, for a
/// `CREATE TABLE … AS`, the query replaced by `query`. Statement skeletons
/// are written as SQL text once and rebuilt as AST, so the printer, not
/// string formatting, places names and quotes.
pub fn skeleton(
    dialect: &dyn Dialect,
    sql: &str,
    names: &[(&str, &str)],
    query: Option<Query>,
) -> Statement {
    use sqlparser::ast::VisitMut;
    let parsed = sqlparser::parser::Parser::parse_sql(dialect.parser().as_ref(), sql);
    let mut statement = match parsed.ok().and_then(|mut v| v.pop()) {
        Some(s) => s,
        // The skeletons are constants of the dialect files; a test parses
        // each one. Reaching this is a bug in a dialect file.
        None => panic!(
            "statement skeleton does not parse for {}: {sql}",
            dialect.name()
        ),
    };
    let _ = sqlparser::ast::visit_relations_mut(&mut statement, |relation| {
        let text = relation.to_string();
        if let Some((_, real)) = names.iter().find(|(placeholder, _)| *placeholder == text) {
            *relation = object(real);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    // Renamed relations in other positions (ALTER … RENAME TO) are idents.
    struct Rename<'a>(&'a [(&'a str, &'a str)]);
    impl sqlparser::ast::VisitorMut for Rename<'_> {
        type Break = ();
        fn post_visit_ident(&mut self, ident: &mut Ident) -> std::ops::ControlFlow<()> {
            if let Some((_, real)) = self.0.iter().find(|(p, _)| *p == ident.value) {
                *ident = super::build::ident(real);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Rename(names));
    translate_statement(&mut statement, dialect);
    // The query goes in last: it is already rendered for the dialect.
    if let (Statement::CreateTable(ct), Some(q)) = (&mut statement, query) {
        ct.query = Some(Box::new(q));
    }
    statement
}

/// The SQL dialect of one engine. Construction methods build the tree for
/// what differs in meaning (dates, spines, NULL matching); style methods
/// are applied to every rendered query by the [`translate`] pass; build
/// methods write `build.sql`. Defaults are DuckDB's.
pub trait Dialect {
    fn name(&self) -> &'static str;

    /// sqlparser's dialect for this engine: statement skeletons are parsed
    /// with it, and the tests re-parse exported SQL with it.
    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::DuckDbDialect {})
    }

    /// sqlglot's name for this engine (the tests' independent parser).
    fn sqlglot_name(&self) -> &'static str {
        self.name()
    }

    /// `DATE '2026-01-31'`
    fn date_literal(&self, d: NaiveDate) -> Expr {
        cast(string(&d.format("%Y-%m-%d").to_string()), DataType::Date)
    }

    /// Converts a time value (DATE, TIMESTAMP or text) to a DATE.
    fn to_date(&self, e: Expr) -> Expr {
        cast(e, DataType::Date)
    }

    fn current_date(&self) -> Expr {
        keyword_function("current_date")
    }

    fn current_timestamp(&self) -> Expr {
        keyword_function("current_timestamp")
    }

    /// Start of the period containing the DATE `e`, as a DATE. DuckDB's
    /// weeks are ISO weeks (Monday start):
    /// `CAST(date_trunc('week', d) AS DATE)`.
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let (unit, _, _) = grain_unit(grain);
        cast(func("date_trunc", vec![string(unit), e]), DataType::Date)
    }

    /// `e + n periods` as a DATE; month arithmetic clips to month end
    /// (`DATE '2024-02-29' - INTERVAL 1 YEAR` = 2023-02-28).
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (_, field, step) = grain_unit(grain);
        let amount = n * step;
        let interval = Expr::Interval(Interval {
            value: Box::new(int(amount.abs())),
            leading_field: Some(field),
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        });
        let moved = if amount < 0 {
            sub(e, interval)
        } else {
            add(e, interval)
        };
        cast(moved, DataType::Date)
    }

    /// The DATE `e` plus an integer number of days.
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        cast(add(e, cast(days, DataType::Integer(None))), DataType::Date)
    }

    /// Whole days from DATE `a` to DATE `b`: `date_diff('day', a, b)`.
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        func("date_diff", vec![string("day"), a, b])
    }

    fn iso_year(&self, e: Expr) -> Expr {
        func("isoyear", vec![e])
    }

    fn iso_week(&self, e: Expr) -> Expr {
        func("week", vec![e])
    }

    /// The period label of SPEC §3.3 (`2026-W05`, `2026-Q1`, …).
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let text = |e: Expr| cast(e, varchar());
        match grain {
            Grain::Day => func("strftime", vec![e, string("%Y-%m-%d")]),
            Grain::Month => func("strftime", vec![e, string("%Y-%m")]),
            Grain::Week => func(
                "concat",
                vec![
                    text(self.iso_year(e.clone())),
                    string("-W"),
                    func("lpad", vec![text(self.iso_week(e)), int(2), string("0")]),
                ],
            ),
            Grain::Quarter => func(
                "concat",
                vec![
                    text(func("year", vec![e.clone()])),
                    string("-Q"),
                    text(func("quarter", vec![e])),
                ],
            ),
            Grain::Year => text(func("year", vec![e])),
        }
    }

    /// Reads a local file: `read_csv('path')`, `read_parquet`, `read_json_auto`.
    fn file_relation(&self, path: &str, alias: &str) -> TableFactor {
        let lower = path.to_ascii_lowercase();
        let reader = if lower.ends_with(".parquet") {
            "read_parquet"
        } else if lower.ends_with(".json")
            || lower.ends_with(".ndjson")
            || lower.ends_with(".jsonl")
        {
            "read_json_auto"
        } else {
            "read_csv_auto"
        };
        table_function(reader, vec![string(path)], alias)
    }

    /// One DATE column `column` with every period start from `start` to
    /// `end` (both DATEs, inclusive): DuckDB unnests `generate_series`.
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (_, field, step) = grain_unit(grain);
        let interval = Expr::Interval(Interval {
            value: Box::new(int(step)),
            leading_field: Some(field),
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        });
        let series = func("generate_series", vec![start, end, interval]);
        select_query(select(
            vec![item(
                cast(func("unnest", vec![series]), DataType::Date),
                column,
            )],
            vec![],
        ))
    }

    /// Numbers are computed as DOUBLE.
    fn double_type(&self) -> DataType {
        double()
    }

    /// Equality that holds for two NULLs (joining NULL breakdown members):
    /// `a IS NOT DISTINCT FROM b`.
    fn null_safe_eq(&self, a: Expr, b: Expr) -> Expr {
        Expr::IsNotDistinctFrom(Box::new(a), Box::new(b))
    }

    /// A breakdown member as text: `CAST(e AS VARCHAR)`.
    fn member_text(&self, e: Expr) -> Expr {
        cast(e, varchar())
    }

    /// 1 when `cond` holds, else 0: `CAST(cond AS INTEGER)`.
    fn flag(&self, cond: Expr) -> Expr {
        cast(cond, DataType::Integer(None))
    }

    /// How to ask for a common table expression to be computed once and
    /// kept (`WITH x AS MATERIALIZED (…)`), where the engine takes the hint.
    /// DuckDB and PostgreSQL do; elsewhere `None` (plain `WITH x AS (…)`).
    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        Some(sqlparser::ast::CteAsMaterialized::Materialized)
    }

    /// Natural logarithm (driver attribution): `ln(e)`.
    fn ln(&self, e: Expr) -> Expr {
        func("ln", vec![e])
    }

    // ---- style: applied by the translate pass --------------------------

    /// Whether aggregates take `FILTER (WHERE …)`; without, the pass moves
    /// the condition into a `CASE` inside the aggregate.
    fn aggregate_filter(&self) -> bool {
        true
    }

    /// One of kpic's aggregates (SPEC §3.2) in this engine's words:
    /// `Ok(None)` keeps the call as written, `Ok(Some(e))` replaces it,
    /// `Err` refuses it (reported at the metric before compiling).
    fn aggregate(&self, _name: &str, _call: &Function) -> Result<Option<Expr>, Refusal> {
        Ok(None)
    }

    /// Where every sort-based aggregate of one query must share a single
    /// ordering (Redshift: PERCENTILE_CONT, MEDIAN and LISTAGG of a query
    /// all order by the same expression): the ordering of `call`, an
    /// aggregate already in this engine's words, as text. The pass then
    /// gives each ordering a grouped query of its own (see
    /// [`translate`]). `None`: the engine has no such rule, or `call` is
    /// not sort-based.
    fn sort_order(&self, _call: &Function) -> Option<String> {
        None
    }

    /// A type named in a CAST, as this engine spells it.
    fn data_type(&self, t: DataType) -> DataType {
        t
    }

    /// A quoted identifier (quote character, case folding). Unquoted
    /// identifiers are left to the engine's own folding.
    fn identifier(&self, _ident: &mut Ident) {}

    /// A string literal that the default `'…'` with doubled quotes would
    /// misread (`None`: keep it). Engines that read backslash escapes in
    /// strings need their own.
    ///
    /// Default: `'…'` with every quote doubled. sqlparser's printer leaves
    /// `''` and `\'` inside a value as it finds them (it takes them for
    /// escapes already made), so text holding either is printed here.
    fn string_literal(&self, text: &str) -> Option<Expr> {
        (text.contains("''") || text.contains("\\'"))
            .then(|| verbatim(format!("'{}'", text.replace('\'', "''"))))
    }

    /// A standalone SELECT of `kpic compile` (`kpi_results.sql`, …) made
    /// runnable on its own: what build.sql sets for the session goes on
    /// the query instead (ClickHouse's `SETTINGS`). Default: unchanged.
    fn finish_standalone(&self, _query: &mut Query) {}

    // ---- build.sql --------------------------------------------------------

    /// Statements that open build.sql before anything else (session
    /// settings, `BEGIN`).
    fn build_prologue(&self) -> Vec<Statement> {
        vec![skeleton(self.as_dyn(), "BEGIN TRANSACTION", &[], None)]
    }

    /// Statements that close build.sql (`COMMIT`).
    fn build_epilogue(&self) -> Vec<Statement> {
        vec![skeleton(self.as_dyn(), "COMMIT", &[], None)]
    }

    /// A shared step materialized for the rest of the build, or `None` to
    /// inline it as a CTE wherever it is read.
    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        Some(skeleton(
            self.as_dyn(),
            "CREATE OR REPLACE TEMPORARY TABLE kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            Some(query),
        ))
    }

    /// A statement that removes the temporary table `name` left by an
    /// earlier build in the same session, run before [`Dialect::temp_table`]
    /// (for engines whose temporary tables outlive the transaction).
    fn drop_temp_table(&self, _name: &str) -> Option<Statement> {
        None
    }

    /// Statements that replace the output tables `(name, query)` so that a
    /// reader sees the old tables or the new ones. DuckDB: `CREATE OR
    /// REPLACE TABLE` inside build.sql's transaction.
    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        tables
            .into_iter()
            .map(|(name, q)| {
                skeleton(
                    self.as_dyn(),
                    "CREATE OR REPLACE TABLE kpic_t AS SELECT 1",
                    &[("kpic_t", &name)],
                    Some(q),
                )
            })
            .collect()
    }

    /// `CREATE OR REPLACE VIEW name AS query`: a view over the output
    /// tables (`kpi_scorecard`), created after [`Dialect::replace_tables`].
    fn create_view(&self, name: &str, query: Query) -> Statement {
        let mut statement = skeleton(
            self.as_dyn(),
            "CREATE OR REPLACE VIEW kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            None,
        );
        match &mut statement {
            Statement::CreateView(view) => *view.query = query,
            // The skeleton is a constant that parses as a view.
            _ => unreachable!("CREATE VIEW skeleton"),
        }
        statement
    }

    /// A statement run before [`Dialect::replace_tables`] that removes the
    /// view `name`, for engines that refuse to drop a table a view reads
    /// (PostgreSQL, Redshift); `None` where views bind by name when read.
    fn drop_view(&self, _name: &str) -> Option<Statement> {
        None
    }

    /// `self` as a trait object (for the default methods above).
    fn as_dyn(&self) -> &dyn Dialect;
}

/// Test helper: `dialect`'s translation of one aggregate call written as
/// text (`quantile_cont(x, 0.9)`), parsed with sqlparser's generic dialect.
#[cfg(test)]
pub(crate) fn aggregate_of(dialect: &dyn Dialect, text: &str) -> Result<Option<Expr>, Refusal> {
    let e = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let Expr::Function(f) = e else {
        panic!("{text} is not a function call")
    };
    let name = crate::semantic::aggregates::function_name(&f);
    dialect.aggregate(&name, &f)
}

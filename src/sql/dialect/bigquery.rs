//! BigQuery, GoogleSQL (checked against BigQuery's SQL reference; no
//! server here, so the tests re-parse the output with sqlparser's and
//! sqlglot's BigQuery dialects).
//!
//! What differs from DuckDB:
//! - Dates: `DATE_TRUNC(d, ISOWEEK)` (ISO weeks begin on Monday),
//!   `DATE_TRUNC(d, MONTH)`; `DATE_ADD(d, INTERVAL 3 MONTH)` /
//!   `DATE_SUB(…)`, which give the last day of the month when the result
//!   month is shorter (2024-01-31 + 1 month = 2024-02-29), as in DuckDB;
//!   `DATE_DIFF(b, a, DAY)` is `b - a` (end date first).
//! - ISO year and week: `EXTRACT(ISOYEAR FROM d)`, `EXTRACT(ISOWEEK FROM
//!   d)`. Labels: `FORMAT_DATE('%G-W%V', d)` (`%G` ISO year, `%V` ISO
//!   week 01–53), `FORMAT_DATE('%Y-Q%Q', d)`, `FORMAT_DATE('%Y-%m', d)`.
//! - Date spines: `UNNEST(GENERATE_DATE_ARRAY(start, end, INTERVAL 1
//!   MONTH))`, both ends included; a NULL bound gives a NULL array, which
//!   unnests to no rows.
//! - Types: `FLOAT64`, `INT64`, `STRING`, `BOOL` (so a flag is
//!   `CAST(cond AS INT64)`, 1 or 0, and a member is `CAST(x AS STRING)`).
//!   Date literals stay `CAST('2026-01-31' AS DATE)` (the canonical
//!   format); a TIMESTAMP becomes a DATE in UTC; `CURRENT_DATE` is UTC's
//!   date unless the job sets another default time zone.
//! - Division of INT64 values is FLOAT64, and every division kpic writes
//!   is guarded by `NULLIF(…, 0)` (BigQuery raises an error on division by
//!   zero, also for FLOAT64). Window partitions are strings (FLOAT64 may
//!   be grouped and compared but not be a `PARTITION BY` key).
//! - Identifiers are quoted with backticks (`` `plan` ``); a double-quoted
//!   `"plan"` would be a string. Quoted identifiers have the escape
//!   sequences of string literals (BigQuery's lexical structure), so a
//!   backslash or a backtick in a name is written `\\` or `` \` ``, and a
//!   newline `\n` (a name `a\b` written as is would read as `a`,
//!   backspace, ...).
//! - String literals: backslashes start escape sequences and `''` is not
//!   an escaped quote, and quoted strings cannot hold newlines, so
//!   backslashes, quotes and newlines are written `\\`, `\'`, `\n`, `\r`.
//! - Aggregates: no `FILTER` (the pass moves the condition into a `CASE`).
//!   `PERCENTILE_CONT` is analytic only and `APPROX_QUANTILES` is
//!   approximate and does not interpolate, so `quantile_cont(x, p)` and
//!   `median(x)` (p = 0.5) are computed exactly from the sorted values:
//!   with `a = ARRAY_AGG(x IGNORE NULLS ORDER BY x)`, `n = COUNT(x)` and
//!   `r = p * (n - 1)`, the value is `a[SAFE_OFFSET(FLOOR(r))] + (r -
//!   FLOOR(r)) * (a[SAFE_OFFSET(CEIL(r))] - a[SAFE_OFFSET(FLOOR(r))])`,
//!   DuckDB's interpolation, in FLOAT64; NULL without values. The sorted
//!   array holds one group's values, so a group with more values than
//!   BigQuery can hold in one row fails loudly ("resources exceeded")
//!   instead of being approximated. `avg` (and `mean`) average a FLOAT64
//!   argument (BigQuery's `AVG` of NUMERIC is NUMERIC, rounded to 9
//!   decimals). `approx_count_distinct` is BigQuery's HyperLogLog++
//!   `APPROX_COUNT_DISTINCT` (approximate, like DuckDB's, but the two
//!   estimates differ). `STDDEV*` return FLOAT64 as they are.
//! - `NULLIF`, `IS NOT DISTINCT FROM`, `GROUP BY GROUPING SETS` with
//!   `GROUPING()`, `UNION DISTINCT`, `LN` are BigQuery's too; there is no
//!   `AS MATERIALIZED` hint.
//! - Not translated: `LEAST`/`GREATEST` return NULL when any argument is
//!   NULL (DuckDB skips NULLs). kpic's own calls never see a NULL; in a
//!   derived metric's `expr` they differ (no hook re-spells scalar
//!   functions).
//! - `build.sql` is one multi-statement query (a script): temporary tables
//!   exist only there. DDL on permanent tables cannot run inside a
//!   transaction, so there is no `BEGIN`. Shared steps and every output
//!   are first built as temporary tables (`<table>__kpic_new`): a failure
//!   there leaves every old table in place. Then each output is replaced
//!   with `CREATE OR REPLACE TABLE t AS SELECT * FROM t__kpic_new`, which
//!   is atomic per table; the five replacements are not one transaction,
//!   so between two of them a reader can see a new table beside an old
//!   one. The output tables are unqualified: run the script with a default
//!   dataset.

use sqlparser::ast::{
    AccessExpr, DataType, DateTimeField, Expr, Function, FunctionArgumentClause, FunctionArguments,
    Ident, Interval, NullTreatment, OrderByExpr, OrderByOptions, Query, Statement, Subscript,
    TableFactor,
};

use super::snowflake::{as_type, quantile_arguments, with_typed_argument};
use super::{Dialect, Refusal, backslash_escaped, grain_unit, skeleton, staged_replace};
use crate::model::Grain;
use crate::sql::build::*;

pub struct BigQuery;

/// A date part written as a keyword (`DATE_TRUNC(d, MONTH)`).
fn part(name: &str) -> Expr {
    Expr::Identifier(Ident::new(name))
}

/// `INTERVAL <amount> <field>`
fn interval(amount: Expr, field: DateTimeField) -> Expr {
    Expr::Interval(Interval {
        value: Box::new(amount),
        leading_field: Some(field),
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })
}

/// `ARRAY_AGG(x IGNORE NULLS ORDER BY x)`
fn sorted_values(x: Expr) -> Expr {
    let mut f = function("array_agg", vec![x.clone()]);
    if let FunctionArguments::List(list) = &mut f.args {
        list.clauses = vec![
            FunctionArgumentClause::IgnoreOrRespectNulls(NullTreatment::IgnoreNulls),
            FunctionArgumentClause::OrderBy(vec![OrderByExpr {
                expr: x,
                options: OrderByOptions {
                    sort: None,
                    nulls_first: None,
                },
                with_fill: None,
            }]),
        ];
    }
    Expr::Function(f)
}

/// `array[SAFE_OFFSET(CAST(i AS INT64))]` (0-based; NULL out of range)
fn safe_offset(array: Expr, i: Expr) -> Expr {
    Expr::CompoundFieldAccess {
        root: Box::new(array),
        access_chain: vec![AccessExpr::Subscript(Subscript::Index {
            index: func("safe_offset", vec![cast(i, DataType::Int64)]),
        })],
    }
}

/// The exact continuous percentile `p` of `x` as an aggregate expression
/// (see the module header), computed over FLOAT64 values.
pub(super) fn exact_percentile(x: Expr, p: Expr) -> Expr {
    let x = as_type(x, DataType::Float64);
    let rank = || mul(p.clone(), sub(func("count", vec![x.clone()]), int(1)));
    let below = || func("floor", vec![rank()]);
    let above = func("ceil", vec![rank()]);
    let value = |i: Expr| safe_offset(sorted_values(x.clone()), i);
    paren(add(
        value(below()),
        mul(sub(rank(), below()), sub(value(above), value(below()))),
    ))
}

impl Dialect for BigQuery {
    fn name(&self) -> &'static str {
        "bigquery"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::BigQueryDialect {})
    }

    /// `DATE_TRUNC(d, ISOWEEK)`, `DATE_TRUNC(d, MONTH)`, …
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let unit = match grain {
            Grain::Day => "DAY",
            Grain::Week => "ISOWEEK",
            Grain::Month => "MONTH",
            Grain::Quarter => "QUARTER",
            Grain::Year => "YEAR",
        };
        func("date_trunc", vec![e, part(unit)])
    }

    /// `DATE_ADD(d, INTERVAL 3 MONTH)`, `DATE_SUB(d, INTERVAL 7 DAY)`
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (_, field, step) = grain_unit(grain);
        let amount = n * step;
        let name = if amount < 0 { "date_sub" } else { "date_add" };
        func(name, vec![e, interval(int(amount.abs()), field)])
    }

    /// `DATE_ADD(d, INTERVAL (n) DAY)`
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        func(
            "date_add",
            vec![e, interval(paren(days), DateTimeField::Day)],
        )
    }

    /// `DATE_DIFF(b, a, DAY)` (= b − a)
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        func("date_diff", vec![b, a, part("DAY")])
    }

    /// `EXTRACT(ISOYEAR FROM d)`
    fn iso_year(&self, e: Expr) -> Expr {
        extract(DateTimeField::Isoyear, e)
    }

    /// `EXTRACT(ISOWEEK FROM d)`
    fn iso_week(&self, e: Expr) -> Expr {
        extract(DateTimeField::IsoWeek, e)
    }

    /// `FORMAT_DATE('%G-W%V', d)`, `FORMAT_DATE('%Y-Q%Q', d)`, …
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let format = match grain {
            Grain::Day => "%Y-%m-%d",
            Grain::Week => "%G-W%V",
            Grain::Month => "%Y-%m",
            Grain::Quarter => "%Y-Q%Q",
            Grain::Year => "%Y",
        };
        func("format_date", vec![string(format), e])
    }

    /// `SELECT d AS column FROM UNNEST(GENERATE_DATE_ARRAY(start, end,
    /// INTERVAL 1 MONTH)) AS d`
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (_, field, step) = grain_unit(grain);
        let dates = func(
            "generate_date_array",
            vec![start, end, interval(int(step), field)],
        );
        let unnest = TableFactor::UNNEST {
            alias: Some(alias("d")),
            array_exprs: vec![dates],
            with_offset: false,
            with_offset_alias: None,
            with_ordinality: false,
        };
        select_query(select(
            vec![item(col("d"), column)],
            vec![from(unnest, vec![])],
        ))
    }

    fn double_type(&self) -> DataType {
        DataType::Float64
    }

    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        None
    }

    // ---- style ------------------------------------------------------------

    fn aggregate_filter(&self) -> bool {
        false
    }

    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        Ok(match name {
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont" | "median" => {
                let (x, p) = quantile_arguments(name, call)?;
                Some(exact_percentile(x, p))
            }
            "mean" => Some(with_typed_argument(call, "avg", DataType::Float64)),
            "avg" => Some(with_typed_argument(call, name, DataType::Float64)),
            _ => None,
        })
    }

    /// `FLOAT64`, `INT64`, `STRING`, `BOOL`
    fn data_type(&self, t: DataType) -> DataType {
        match t {
            DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::Float(_)
            | DataType::Float4
            | DataType::Float8
            | DataType::Float32
            | DataType::Real => DataType::Float64,
            DataType::Integer(_)
            | DataType::Int(_)
            | DataType::Int2(_)
            | DataType::Int4(_)
            | DataType::Int8(_)
            | DataType::TinyInt(_)
            | DataType::SmallInt(_)
            | DataType::BigInt(_) => DataType::Int64,
            DataType::Varchar(_)
            | DataType::Nvarchar(_)
            | DataType::CharVarying(_)
            | DataType::CharacterVarying(_)
            | DataType::Text => DataType::String(None),
            DataType::Boolean => DataType::Bool,
            other => other,
        }
    }

    /// `` `plan` ``; `` `a\\b` `` for a name holding a backslash.
    fn identifier(&self, ident: &mut Ident) {
        if ident.value.contains(['`', '\\', '\n', '\r']) {
            // sqlparser's printer knows no escapes but doubled quotes: the
            // escaped name is printed as the text of an unquoted one.
            let mut quoted = String::with_capacity(ident.value.len() + 4);
            quoted.push('`');
            for c in ident.value.chars() {
                match c {
                    '`' => quoted.push_str("\\`"),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    '\r' => quoted.push_str("\\r"),
                    c => quoted.push(c),
                }
            }
            quoted.push('`');
            ident.value = quoted;
            ident.quote_style = None;
        } else {
            ident.quote_style = Some('`');
        }
    }

    /// `'it\'s'`
    fn string_literal(&self, text: &str) -> Option<Expr> {
        backslash_escaped(text)
    }

    // ---- build.sql --------------------------------------------------------

    fn build_prologue(&self) -> Vec<Statement> {
        vec![]
    }

    fn build_epilogue(&self) -> Vec<Statement> {
        vec![]
    }

    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        Some(skeleton(
            self,
            "CREATE TEMP TABLE kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            Some(query),
        ))
    }

    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        staged_replace(
            self,
            tables,
            &["CREATE TEMP TABLE kpic_t_new AS SELECT 1"],
            &["CREATE OR REPLACE TABLE kpic_t AS SELECT * FROM kpic_t_new"],
            &[],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Value;
    use sqlparser::parser::Parser;

    fn sql(e: &Expr) -> String {
        e.to_string()
    }

    fn reparse(text: &str) {
        Parser::parse_sql(&sqlparser::dialect::BigQueryDialect {}, text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }

    #[test]
    fn dates() {
        let d = || col("d");
        assert_eq!(
            sql(&BigQuery.period_start(Grain::Week, d())),
            "date_trunc(d, ISOWEEK)"
        );
        assert_eq!(
            sql(&BigQuery.add_periods(Grain::Quarter, d(), -1)),
            "date_sub(d, INTERVAL 3 MONTH)"
        );
        assert_eq!(
            sql(&BigQuery.add_periods(Grain::Week, d(), 1)),
            "date_add(d, INTERVAL 7 DAY)"
        );
        assert_eq!(
            sql(&BigQuery.add_days(d(), add(col("n"), int(1)))),
            "date_add(d, INTERVAL (n + 1) DAY)"
        );
        assert_eq!(
            sql(&BigQuery.day_diff(col("a"), col("b"))),
            "date_diff(b, a, DAY)"
        );
        assert_eq!(
            sql(&BigQuery.period_label(Grain::Week, d())),
            "format_date('%G-W%V', d)"
        );
        assert_eq!(sql(&BigQuery.iso_week(d())), "EXTRACT(ISOWEEK FROM d)");
        for e in [
            BigQuery.period_start(Grain::Week, d()),
            BigQuery.add_days(d(), neg(int(30))),
            BigQuery.day_diff(col("a"), col("b")),
            BigQuery.iso_year(d()),
            BigQuery.iso_week(d()),
        ] {
            reparse(&format!("SELECT {e}"));
        }
    }

    #[test]
    fn spine_unnests_a_date_array() {
        let q = BigQuery.date_spine(Grain::Quarter, col("s"), col("e"), "ps");
        let text = q.to_string();
        assert_eq!(
            text,
            "SELECT d AS ps FROM UNNEST(generate_date_array(s, e, INTERVAL 3 MONTH)) AS d"
        );
        reparse(&text);
    }

    #[test]
    fn quantiles_interpolate_between_sorted_values() {
        let e = exact_percentile(col("x"), num(0.9));
        let text = sql(&e);
        let sorted = "array_agg(CAST(x AS FLOAT64) IGNORE NULLS ORDER BY CAST(x AS FLOAT64))";
        let rank = "0.9 * (count(CAST(x AS FLOAT64)) - 1)";
        assert_eq!(
            text,
            format!(
                "(({sorted}[safe_offset(CAST(floor({rank}) AS INT64))]) + ((({rank}) - floor({rank})) \
                 * (({sorted}[safe_offset(CAST(ceil({rank}) AS INT64))]) \
                 - ({sorted}[safe_offset(CAST(floor({rank}) AS INT64))]))))"
            )
        );
        reparse(&format!("SELECT {text} FROM t"));
    }

    #[test]
    fn aggregates() {
        let agg = |text: &str| crate::sql::dialect::aggregate_of(&BigQuery, text);
        assert!(
            agg("median(x)")
                .unwrap()
                .unwrap()
                .to_string()
                .contains("0.5 * (count(CAST(x AS FLOAT64)) - 1)")
        );
        assert_eq!(
            agg("mean(x)").unwrap().unwrap().to_string(),
            "avg(CAST(x AS FLOAT64))"
        );
        assert_eq!(agg("approx_count_distinct(x)").unwrap(), None);
        assert_eq!(agg("stddev_samp(x)").unwrap(), None);
        assert!(agg("percentile_cont(x)").is_err());
    }

    #[test]
    fn types_identifiers_and_strings() {
        assert_eq!(BigQuery.data_type(double()), DataType::Float64);
        assert_eq!(BigQuery.data_type(varchar()).to_string(), "STRING");
        assert_eq!(
            BigQuery.data_type(DataType::Integer(None)).to_string(),
            "INT64"
        );
        let mut i = Ident::with_quote('"', "plan");
        BigQuery.identifier(&mut i);
        assert_eq!(i.to_string(), "`plan`");
        // Quoted names read escapes like string literals.
        let mut i = Ident::with_quote('"', "a\\b`c\nd");
        BigQuery.identifier(&mut i);
        assert_eq!(i.to_string(), "`a\\\\b\\`c\\nd`");
        for text in ["it's", "a\\b", "a\\'b", "''", "\\", "line\nbreak\r\n"] {
            let lit = BigQuery.string_literal(text).expect("needs escaping");
            let printed = format!("SELECT {lit}");
            let parsed = Parser::parse_sql(&sqlparser::dialect::BigQueryDialect {}, &printed)
                .unwrap_or_else(|e| panic!("{printed}: {e}"));
            let sqlparser::ast::Statement::Query(q) = &parsed[0] else {
                panic!("{printed}")
            };
            let sqlparser::ast::SetExpr::Select(s) = q.body.as_ref() else {
                panic!("{printed}")
            };
            let sqlparser::ast::SelectItem::UnnamedExpr(Expr::Value(v)) = &s.projection[0] else {
                panic!("{printed}")
            };
            assert_eq!(v.value, Value::SingleQuotedString(text.into()), "{printed}");
            assert!(!printed.contains('\n'), "{printed}");
        }
    }

    #[test]
    fn build_statements_parse_and_replace_after_every_build() {
        let q = || select_query(select(vec![item(int(1), "x")], vec![]));
        let stmts = BigQuery.replace_tables(vec![
            ("kpi_results".into(), q()),
            ("kpi_metrics".into(), q()),
        ]);
        let text: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "CREATE TEMPORARY TABLE kpi_results__kpic_new AS SELECT 1 AS x",
                "CREATE TEMPORARY TABLE kpi_metrics__kpic_new AS SELECT 1 AS x",
                "CREATE OR REPLACE TABLE kpi_results AS SELECT * FROM kpi_results__kpic_new",
                "CREATE OR REPLACE TABLE kpi_metrics AS SELECT * FROM kpi_metrics__kpic_new",
            ]
        );
        for t in &text {
            reparse(t);
        }
        let temp = BigQuery.temp_table("kpic_scan_orders", q()).unwrap();
        reparse(&temp.to_string());
        assert!(BigQuery.build_prologue().is_empty());
    }
}

//! Databricks / Spark SQL (Databricks SQL and Databricks Runtime 13.3 LTS
//! and later; tested on a local Spark 4.3 by the engine tests, with ANSI
//! mode on, as on Databricks SQL warehouses).
//!
//! What differs from DuckDB, each verified on Spark:
//! - `date_trunc` returns a TIMESTAMP; `trunc(d, 'MM')` returns a DATE and
//!   is used instead (`'WEEK'` gives the Monday, as DuckDB's ISO weeks;
//!   `'QUARTER'`, `'YEAR'`). Days are the date itself. A TIMESTAMP source
//!   column is cast to DATE in the session time zone
//!   (`spark.sql.session.timeZone`).
//! - Date arithmetic: `add_months(d, n)` clips to month end (2024-01-31 + 1
//!   month = 2024-02-29, 2024-02-29 − 12 months = 2023-02-28), as DuckDB's
//!   intervals do; years are 12 months; days and weeks `date_add(d, n)`.
//!   Day differences: `datediff(b, a)` (end first).
//! - ISO year and week: `date_part('YEAROFWEEK', d)` and `weekofyear(d)`
//!   (Spark's `EXTRACT(YEAROFWEEK …)` is the same, but sqlparser's
//!   Databricks dialect does not read it back). Spark's datetime patterns
//!   have no week-based year (`Y`, `w` are refused since Spark 3), so week
//!   and quarter labels are built with `concat`; days and months use
//!   `date_format(d, 'yyyy-MM')`.
//! - Date spines: `SELECT explode(sequence(start, end, INTERVAL 1 MONTH))`.
//!   `sequence` raises an error where `start > end` (DuckDB's
//!   `generate_series` is empty), so the sequence sits in a `CASE WHEN start
//!   <= end`; `explode` of NULL gives no rows, as for NULL bounds in DuckDB.
//! - Types: text is `STRING`; `DOUBLE PRECISION` is a parse error, `DOUBLE`
//!   is used; `INTEGER` is `INT`.
//! - Identifiers are quoted with backticks: a double-quoted `"x"` is a
//!   string literal in Spark.
//! - String literals: a backslash starts an escape sequence. Spark 4.3
//!   reads `''` as a quote, but Databricks documents only backslash
//!   escapes, and adjacent literals are concatenated (`'it''s'` would be
//!   `'it' 's'` = `its` where `''` is no escape). So backslashes are
//!   written `\\` and quotes `\u0027`, which every version reads the same
//!   way; `$` is written `\u0024`, because Spark substitutes `${name}` in
//!   the SQL text before parsing it (an unknown name becomes the empty
//!   string) and Databricks notebooks read `$name` as a widget.
//! - Aggregates: `FILTER (WHERE …)` is Spark's. `quantile_cont(x, p)` (and
//!   `quantile`, `percentile`, `percentile_cont` written that way) →
//!   `percentile_cont(p) WITHIN GROUP (ORDER BY x)`, and `median(x)` is
//!   Spark's own: both exact and interpolated, as DuckDB's. `avg(x)` over a
//!   DECIMAL is a DECIMAL rounded to the argument's scale + 4 digits, so
//!   `avg` and `mean` average `CAST(x AS DOUBLE)`, as DuckDB does.
//!   `approx_count_distinct` is Spark's HyperLogLog++ (relative standard
//!   deviation 5%): approximate, like DuckDB's, and the two estimates
//!   differ (for the example's 80,238 distinct customers Spark says
//!   72,933).
//! - ANSI mode: division by zero, overflow and invalid casts raise errors.
//!   kpic divides only by `NULLIF(x, 0)` and takes `ln` of positive values,
//!   so nothing here depends on ANSI mode being off.
//! - No `AS MATERIALIZED` hint for CTEs.
//! - `build.sql`: Spark has no transactions (`BEGIN` is a syntax error), so
//!   there is no prologue or epilogue. Shared steps are `CREATE OR REPLACE
//!   TEMPORARY VIEW`s, which every Spark and Databricks compute has (SQL
//!   warehouses and serverless included, where `CACHE TABLE` is not); they
//!   are computed again by every output that reads them. Run build.sql in
//!   one session: the views live in it.
//! - Every output is first built as `<table>__kpic_new` (a failure there
//!   leaves every old table in place). Then, per table: `CREATE TABLE IF
//!   NOT EXISTS t LIKE t__kpic_new` (Delta: Databricks Runtime 13.3 and
//!   later), `INSERT OVERWRITE TABLE t SELECT * FROM t__kpic_new`, `DROP
//!   TABLE t__kpic_new`. `CREATE OR REPLACE TABLE … AS` would need Delta
//!   (Spark's own tables refuse it) and `DROP` + `RENAME` leaves a moment
//!   without the table; on Delta an `INSERT OVERWRITE` is one commit, so a
//!   reader sees the old rows or the new ones, and the table keeps its
//!   history, grants and comments. The five overwrites are not one
//!   transaction: between two of them a reader can see a new table beside
//!   an old one. On Parquet tables (local Spark) the overwrite is not
//!   atomic. Columns go by position: when a kpic upgrade changes an
//!   output's columns so that they no longer fit (count, types), the
//!   overwrite fails and the old table stays until it is dropped by hand
//!   (columns of the same types in a new order would not be noticed).

use sqlparser::ast::{
    DataType, DateTimeField, ExactNumberInfo, Expr, Function, Ident, Interval, Query, Statement,
    Value,
};

use super::postgres::{keep_filter, percentile_within_group};
use super::{Dialect, Refusal, grain_unit, skeleton, staged_replace};
use crate::model::Grain;
use crate::sql::build::*;

pub struct Databricks;

/// `text` as a Spark string literal that every Spark version reads back as
/// `text`, or `None` when the plain `'…'` already is one: `\` → `\\`,
/// `'` → `\u0027`, `$` → `\u0024` (see the module header). Newlines stay
/// as they are. The result holds no quote, so the printer writes it
/// verbatim, and sqlparser's Databricks dialect (which reads no escapes)
/// still parses it.
fn spark_string(text: &str) -> Option<Expr> {
    if !text.contains(['\\', '\'', '$']) {
        return None;
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\'' => escaped.push_str("\\u0027"),
            '$' => escaped.push_str("\\u0024"),
            c => escaped.push(c),
        }
    }
    Some(Expr::value(Value::SingleQuotedString(escaped)))
}

/// `CAST(e AS t)` unless `e` is that cast already.
fn as_type(e: Expr, t: DataType) -> Expr {
    match e {
        Expr::Cast { ref data_type, .. } if *data_type == t => e,
        other => cast(other, t),
    }
}

/// `avg(x)` → `avg(CAST(x AS DOUBLE))`, keeping DISTINCT and FILTER.
fn avg_of_double(call: &Function) -> Expr {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let mut f = call.clone();
    f.name = sqlparser::ast::ObjectName::from(vec![Ident::new("avg")]);
    if let FunctionArguments::List(list) = &mut f.args
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) = list.args.first_mut()
    {
        *x = as_type(x.clone(), double());
    }
    Expr::Function(f)
}

/// `INTERVAL 3 MONTH`
fn interval(amount: i64, field: DateTimeField) -> Expr {
    Expr::Interval(Interval {
        value: Box::new(int(amount)),
        leading_field: Some(field),
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })
}

impl Dialect for Databricks {
    fn name(&self) -> &'static str {
        "databricks"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::DatabricksDialect {})
    }

    /// `trunc(d, 'MM')`, `trunc(d, 'WEEK')` (Monday), …; days `CAST(d AS
    /// DATE)`.
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let unit = match grain {
            Grain::Day => return as_type(e, DataType::Date),
            Grain::Week => "WEEK",
            Grain::Month => "MM",
            Grain::Quarter => "QUARTER",
            Grain::Year => "YEAR",
        };
        func("trunc", vec![e, string(unit)])
    }

    /// `add_months(d, -3)`; days and weeks `date_add(d, 14)`.
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (_, field, step) = grain_unit(grain);
        match field {
            DateTimeField::Day => func("date_add", vec![e, int(n * step)]),
            DateTimeField::Month => func("add_months", vec![e, int(n * step)]),
            _ => func("add_months", vec![e, int(n * step * 12)]),
        }
    }

    /// `date_add(d, CAST(n AS INT))`
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        func("date_add", vec![e, cast(days, DataType::Int(None))])
    }

    /// `datediff(b, a)` (= b − a)
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        func("datediff", vec![b, a])
    }

    /// `date_part('YEAROFWEEK', d)`
    fn iso_year(&self, e: Expr) -> Expr {
        func("date_part", vec![string("YEAROFWEEK"), e])
    }

    /// `weekofyear(d)`
    fn iso_week(&self, e: Expr) -> Expr {
        func("weekofyear", vec![e])
    }

    /// `date_format(d, 'yyyy-MM')`; weeks `concat(CAST(date_part('YEAROFWEEK',
    /// d) AS STRING), '-W', lpad(CAST(weekofyear(d) AS STRING), 2, '0'))`,
    /// quarters `concat(CAST(year(d) AS STRING), '-Q', CAST(quarter(d) AS
    /// STRING))`, years `CAST(year(d) AS STRING)`.
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let text = |e: Expr| cast(e, DataType::String(None));
        match grain {
            Grain::Day => func("date_format", vec![e, string("yyyy-MM-dd")]),
            Grain::Month => func("date_format", vec![e, string("yyyy-MM")]),
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

    /// `SELECT explode(CASE WHEN start <= end THEN sequence(start, end,
    /// INTERVAL 3 MONTH) END) AS column`: no rows when `start > end` or a
    /// bound is NULL.
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (_, field, step) = grain_unit(grain);
        let series = func(
            "sequence",
            vec![start.clone(), end.clone(), interval(step, field)],
        );
        let guarded = case(vec![(lt_eq(start, end), series)], None);
        select_query(select(
            vec![item(func("explode", vec![guarded]), column)],
            vec![],
        ))
    }

    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        None
    }

    // ---- style ------------------------------------------------------------

    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        use super::translate::arguments;
        Ok(match name {
            // Spark's own ordered-set form is kept as written.
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont"
                if call.within_group.is_empty() =>
            {
                let (x, rest) = arguments(call).ok_or_else(|| Refusal {
                    message: format!("`{name}` with these arguments cannot be translated"),
                    help: "write it as `quantile_cont(column, 0.9)`".into(),
                })?;
                let Some(p) = rest.first() else {
                    return Err(Refusal {
                        message: format!("`{name}` needs a fraction"),
                        help: format!("write `{name}(column, 0.9)`"),
                    });
                };
                Some(keep_filter(call, percentile_within_group(x, p.clone())))
            }
            "avg" | "mean" => Some(avg_of_double(call)),
            _ => None,
        })
    }

    /// `VARCHAR` → `STRING`, `DOUBLE PRECISION` → `DOUBLE`, `INTEGER` →
    /// `INT`.
    fn data_type(&self, t: DataType) -> DataType {
        match t {
            DataType::Varchar(_)
            | DataType::Text
            | DataType::CharacterVarying(_)
            | DataType::Nvarchar(_) => DataType::String(None),
            DataType::DoublePrecision | DataType::Float8 | DataType::Double(_) => {
                DataType::Double(ExactNumberInfo::None)
            }
            DataType::Integer(_) => DataType::Int(None),
            other => other,
        }
    }

    /// `` `plan` ``
    fn identifier(&self, ident: &mut Ident) {
        ident.quote_style = Some('`');
    }

    /// `'it\u0027s a \\ b'` (see [`spark_string`]).
    fn string_literal(&self, text: &str) -> Option<Expr> {
        spark_string(text)
    }

    // ---- build.sql --------------------------------------------------------

    fn build_prologue(&self) -> Vec<Statement> {
        vec![]
    }

    fn build_epilogue(&self) -> Vec<Statement> {
        vec![]
    }

    /// `CREATE OR REPLACE TEMPORARY VIEW name AS query`
    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        let mut statement = skeleton(
            self,
            "CREATE OR REPLACE TEMPORARY VIEW kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            None,
        );
        match &mut statement {
            Statement::CreateView(view) => *view.query = query,
            // The skeleton is a constant that parses as a view.
            _ => unreachable!("CREATE TEMPORARY VIEW skeleton"),
        }
        Some(statement)
    }

    /// Every output built as `<table>__kpic_new`, then, per table, `CREATE
    /// TABLE IF NOT EXISTS t LIKE t__kpic_new`, `INSERT OVERWRITE TABLE t
    /// SELECT * FROM t__kpic_new` and `DROP TABLE t__kpic_new` (see the
    /// module header for what is atomic).
    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        staged_replace(
            self,
            tables,
            &[
                "DROP TABLE IF EXISTS kpic_t_new",
                "CREATE TABLE kpic_t_new AS SELECT 1",
            ],
            &[
                "CREATE TABLE IF NOT EXISTS kpic_t LIKE kpic_t_new",
                "INSERT OVERWRITE TABLE kpic_t SELECT * FROM kpic_t_new",
                "DROP TABLE kpic_t_new",
            ],
            &[],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::parser::Parser;

    fn sql(e: &Expr) -> String {
        e.to_string()
    }

    fn parse(text: &str) -> Vec<Statement> {
        Parser::parse_sql(&sqlparser::dialect::DatabricksDialect {}, text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// How Spark reads the inside of a `'…'` literal (`unescapeSQLString`
    /// of Spark's parser), for the escapes [`spark_string`] writes; any
    /// other escape fails the test.
    fn spark_reads(inside: &str) -> String {
        let mut out = String::new();
        let mut chars = inside.chars();
        while let Some(c) = chars.next() {
            assert_ne!(c, '\'', "an unescaped quote in {inside:?}");
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap();
                    out.push(char::from_u32(code).unwrap());
                }
                other => panic!("unexpected escape {other:?} in {inside:?}"),
            }
        }
        out
    }

    #[test]
    fn periods_start_with_trunc_which_returns_a_date() {
        let start = |g| sql(&Databricks.period_start(g, col("d")));
        assert_eq!(start(Grain::Week), "trunc(d, 'WEEK')");
        assert_eq!(start(Grain::Month), "trunc(d, 'MM')");
        assert_eq!(start(Grain::Quarter), "trunc(d, 'QUARTER')");
        assert_eq!(start(Grain::Year), "trunc(d, 'YEAR')");
        assert_eq!(start(Grain::Day), "CAST(d AS DATE)");
    }

    #[test]
    fn date_arithmetic_and_differences() {
        let d = || col("d");
        assert_eq!(
            sql(&Databricks.add_periods(Grain::Quarter, d(), -1)),
            "add_months(d, -3)"
        );
        assert_eq!(
            sql(&Databricks.add_periods(Grain::Year, d(), -1)),
            "add_months(d, -12)"
        );
        assert_eq!(
            sql(&Databricks.add_periods(Grain::Week, d(), 2)),
            "date_add(d, 14)"
        );
        assert_eq!(
            sql(&Databricks.add_days(d(), int(3))),
            "date_add(d, CAST(3 AS INT))"
        );
        // The end comes first.
        assert_eq!(
            sql(&Databricks.day_diff(col("a"), col("b"))),
            "datediff(b, a)"
        );
    }

    #[test]
    fn labels() {
        let label = |g| sql(&Databricks.period_label(g, col("d")));
        assert_eq!(label(Grain::Day), "date_format(d, 'yyyy-MM-dd')");
        assert_eq!(label(Grain::Month), "date_format(d, 'yyyy-MM')");
        assert_eq!(
            label(Grain::Week),
            "concat(CAST(date_part('YEAROFWEEK', d) AS STRING), '-W', \
             lpad(CAST(weekofyear(d) AS STRING), 2, '0'))"
        );
        assert_eq!(
            label(Grain::Quarter),
            "concat(CAST(year(d) AS STRING), '-Q', CAST(quarter(d) AS STRING))"
        );
        assert_eq!(label(Grain::Year), "CAST(year(d) AS STRING)");
    }

    #[test]
    fn spine_explodes_a_sequence_only_when_it_is_not_reversed() {
        let q = Databricks.date_spine(Grain::Quarter, col("s"), col("e"), "ps");
        let text = q.to_string();
        assert_eq!(
            text,
            "SELECT explode(CASE WHEN s <= e THEN sequence(s, e, INTERVAL 3 MONTH) END) AS ps"
        );
        parse(&text);
        let week = Databricks.date_spine(Grain::Week, col("s"), col("e"), "ps");
        assert!(week.to_string().contains("INTERVAL 7 DAY"), "{week}");
    }

    #[test]
    fn types_and_identifiers() {
        assert_eq!(
            Databricks.data_type(DataType::Varchar(None)),
            DataType::String(None)
        );
        assert_eq!(
            Databricks.data_type(DataType::DoublePrecision).to_string(),
            "DOUBLE"
        );
        assert_eq!(
            Databricks.data_type(DataType::Integer(None)).to_string(),
            "INT"
        );
        let mut i = Ident::with_quote('"', "plan");
        Databricks.identifier(&mut i);
        assert_eq!(i.to_string(), "`plan`");
        let mut i = Ident::with_quote('"', "odd`name");
        Databricks.identifier(&mut i);
        assert_eq!(i.to_string(), "`odd``name`");
    }

    #[test]
    fn string_literals_round_trip_through_sparks_reading() {
        assert_eq!(spark_string("plain text, with \"double\" quotes"), None);
        for text in [
            "it's",
            "a\\b",
            "a\\'b",
            "''",
            "'",
            "\\",
            "'\\'",
            "ends with a quote'",
            "\\u0027 stays text",
            "\\012 is not octal",
            "${spark.app.name} and $HOME",
            "line\nbreak\r\n",
            "tab\there; -- not a comment",
            "café ✓",
        ] {
            let lit = Databricks
                .string_literal(text)
                .unwrap_or_else(|| string(text));
            let printed = lit.to_string();
            let inside = &printed[1..printed.len() - 1];
            assert!(printed.starts_with('\'') && printed.ends_with('\''));
            assert!(!inside.contains('$'), "{printed}");
            assert_eq!(spark_reads(inside), text, "{printed}");
            // sqlparser's Databricks dialect (no escapes) reads it back.
            parse(&format!("SELECT {printed}"));
        }
        assert_eq!(
            Databricks.string_literal("it's a\\b").unwrap().to_string(),
            "'it\\u0027s a\\\\b'"
        );
    }

    #[test]
    fn quantiles_are_exact_and_averages_are_of_doubles() {
        let agg = |text: &str| crate::sql::dialect::aggregate_of(&Databricks, text);
        assert_eq!(
            agg("quantile_cont(x, 0.9) FILTER (WHERE y > 1)")
                .unwrap()
                .unwrap()
                .to_string(),
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY x) FILTER (WHERE y > 1)"
        );
        assert_eq!(
            agg("mean(DISTINCT x)").unwrap().unwrap().to_string(),
            "avg(DISTINCT CAST(x AS DOUBLE))"
        );
        assert_eq!(
            agg("avg(CAST(x AS DOUBLE))").unwrap().unwrap().to_string(),
            "avg(CAST(x AS DOUBLE))"
        );
        assert_eq!(agg("median(x)").unwrap(), None);
        assert_eq!(agg("approx_count_distinct(x)").unwrap(), None);
        assert_eq!(
            agg("percentile_cont(0.5) WITHIN GROUP (ORDER BY x)").unwrap(),
            None
        );
        assert!(agg("quantile_cont(x)").is_err());
    }

    #[test]
    fn build_statements_parse_and_overwrite_after_every_build() {
        let q = || select_query(select(vec![item(int(1), "x")], vec![]));
        let stmts = Databricks.replace_tables(vec![
            ("kpi_results".into(), q()),
            ("kpi_metrics".into(), q()),
        ]);
        let text: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "DROP TABLE IF EXISTS kpi_results__kpic_new",
                "CREATE TABLE kpi_results__kpic_new AS SELECT 1 AS x",
                "DROP TABLE IF EXISTS kpi_metrics__kpic_new",
                "CREATE TABLE kpi_metrics__kpic_new AS SELECT 1 AS x",
                "CREATE TABLE IF NOT EXISTS kpi_results LIKE kpi_results__kpic_new",
                "INSERT OVERWRITE TABLE kpi_results SELECT * FROM kpi_results__kpic_new",
                "DROP TABLE kpi_results__kpic_new",
                "CREATE TABLE IF NOT EXISTS kpi_metrics LIKE kpi_metrics__kpic_new",
                "INSERT OVERWRITE TABLE kpi_metrics SELECT * FROM kpi_metrics__kpic_new",
                "DROP TABLE kpi_metrics__kpic_new",
            ]
        );
        for t in &text {
            parse(t);
        }
        let view = Databricks.temp_table("kpic_scan_orders", q()).unwrap();
        assert_eq!(
            view.to_string(),
            "CREATE OR REPLACE TEMPORARY VIEW kpic_scan_orders AS SELECT 1 AS x"
        );
        parse(&view.to_string());
        assert!(Databricks.build_prologue().is_empty());
        assert!(Databricks.build_epilogue().is_empty());
    }
}

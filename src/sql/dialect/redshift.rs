//! Amazon Redshift (checked against the Amazon Redshift Database Developer
//! Guide's SQL reference, page names below; no cluster here, so the tests
//! re-parse the output with sqlparser's and sqlglot's Redshift dialects).
//!
//! What differs from DuckDB:
//! - Aggregates take no `FILTER (WHERE …)` (r_Aggregate_functions): the
//!   pass moves the condition into a `CASE` inside the aggregate.
//! - `DATE_TRUNC('month', ts)` takes and returns a TIMESTAMP (r_DATE_TRUNC):
//!   the date is cast to `TIMESTAMP` and the result back to `DATE`. `week`
//!   truncates to the Monday (ISO), as in DuckDB.
//! - Date arithmetic: `DATEADD(month, 3, d)` returns a TIMESTAMP, cast back
//!   to `DATE`. Months clip to the end of a shorter month (2016-02-29 + 12
//!   months = 2017-02-28), but `DATEADD(year, 1, '2016-02-29')` is
//!   2017-03-01 (r_DATEADD_function, usage notes), so a year is added as 12
//!   months and DuckDB's clipping is kept; a week is 7 days. Day
//!   differences: `DATEDIFF(day, a, b)` (`b - a`).
//! - ISO year and week: `TO_CHAR(d, 'IYYY')` and `TO_CHAR(d, 'IW')` (ISO
//!   year, ISO week: r_FORMAT_strings), cast to `INTEGER`. Labels:
//!   `TO_CHAR(d, 'YYYY-MM-DD')`, …, joined with `||` (`CONCAT` takes exactly
//!   two arguments); `Q` is the quarter.
//! - Date spines: `generate_series` runs only on the leader node and cannot
//!   feed a query over tables (c_sql-functions-leader-node); `WITH
//!   RECURSIVE` cannot appear inside a subquery or inside another `WITH`
//!   subquery (r_WITH_clause), which is where a spine goes. The spine is
//!   the bounds in a one-row derived table cross joined with a numbers
//!   table built from digit lists (`SELECT 0 AS d UNION ALL … SELECT 9`),
//!   filtered to the periods from start to end inclusive. The digits bound
//!   the span: 99,999 days (273 years), 9,999 weeks or months, 999
//!   quarters or years; a longer span is cut there. NULL bounds give no
//!   rows, as `generate_series` does.
//! - Types: `DOUBLE` is spelled `DOUBLE PRECISION`. `CAST(x AS VARCHAR)` is
//!   `VARCHAR(256)` and an explicit cast truncates, so breakdown members are
//!   cast to `VARCHAR(MAX)` (65,535 bytes, the longest Redshift string).
//! - `AVG` of an integer returns a BIGINT (truncated) and of a DECIMAL keeps
//!   the argument's scale (r_AVG): `avg`, `mean` and `stddev*` get their
//!   argument cast to `DOUBLE PRECISION` and compute as DuckDB does.
//! - Quantiles: `quantile_cont(x, p)` → `PERCENTILE_CONT(p) WITHIN GROUP
//!   (ORDER BY CAST(x AS DOUBLE PRECISION))`, exact and interpolated as in
//!   DuckDB; `median(x)` is the 0.5 quantile. PERCENTILE_CONT is
//!   sort-based, and every sort-based aggregate of a query must order by
//!   the same expression (r_PERCENTILE_CONT usage notes). kpic computes
//!   a quantile over the whole period and over its like-for-like days
//!   (`ORDER BY x` and `ORDER BY CASE WHEN … THEN x END`), and different
//!   metrics order by different columns, so [`Dialect::sort_order`] names
//!   each call's ordering and the translate pass splits such a grouped
//!   query into one query per ordering over the same rows, joined back on
//!   the group keys. Each extra ordering reads the rows once more. A single
//!   measure with two orderings (`median(a) - median(b)`) is refused at
//!   the metric (KPI301).
//! - `approx_count_distinct(x)` → `HLL(x)`: Redshift's HyperLogLog
//!   cardinality, 0 when every value is NULL (r_HLL_function); approximate,
//!   like DuckDB's, but the two estimates differ.
//! - `IS NOT DISTINCT FROM` is not among Redshift's comparison conditions
//!   (r_comparison_condition): two members match when `COALESCE(a, '0') =
//!   COALESCE(b, '0') AND COALESCE(a, '1') = COALESCE(b, '1')`, exact for
//!   text (a NULL matches only a NULL) and two plain equalities, so the
//!   join stays a hash join.
//! - `CAST(boolean AS INTEGER)` → `CASE WHEN c THEN 1 WHEN NOT c THEN 0
//!   END` (NULL stays NULL).
//! - `CURRENT_TIMESTAMP` is a deprecated leader-node-only function
//!   (c_SQL_functions_leader_node_only): `GETDATE()`.
//! - String literals read backslash escapes (`QUOTE_LITERAL` doubles
//!   backslashes): a backslash is written `\\`.
//! - `GROUPING SETS` and `GROUPING()` are Redshift's (aggregation extensions,
//!   up to 64 grouping sets); `LN`, `NULLIF`, `LEAST` too. There is no `AS
//!   MATERIALIZED` hint. sqlparser 0.63's `RedshiftSqlDialect` does not
//!   parse `GROUPING SETS`, so `Redshift::parser()` is `RedshiftParser`,
//!   the same dialect with them enabled.
//! - `build.sql`: DDL is transactional, as in PostgreSQL: `BEGIN`, shared
//!   steps as `CREATE TEMPORARY TABLE` (Redshift has no `ON COMMIT DROP`:
//!   they live until the session ends, so build.sql is meant to run in its
//!   own session), every output built as `<table>__kpic_new`, then each old
//!   table dropped and the new one renamed (`ALTER TABLE … RENAME TO` may
//!   run in a transaction block; only external tables and `ALTER COLUMN`
//!   may not: r_ALTER_TABLE), `COMMIT`. Readers see the old tables or the
//!   new ones. A view bound to an output table blocks its `DROP` (the
//!   build then fails and changes nothing); views over the KPI tables
//!   should be created `WITH NO SCHEMA BINDING`.

use sqlparser::ast::{
    CharacterLength, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, Join, JoinConstraint, JoinOperator, Query, Statement, TableFactor, UnaryOperator,
};

use super::postgres::{build_then_rename, drop_view_before_rename};
use super::translate::arguments;
use super::{Dialect, Refusal, grain_unit, skeleton};
use crate::model::Grain;
use crate::sql::build::*;

pub struct Redshift;

/// sqlparser's Redshift dialect with `GROUP BY GROUPING SETS (…)` enabled:
/// Redshift has had aggregation extensions since 2023
/// (r_GROUP_BY_aggregation-extensions) but sqlparser 0.63's
/// `RedshiftSqlDialect` does not parse them. Every other answer is
/// `RedshiftSqlDialect`'s, and the parser's `dialect_of!` checks see a
/// `RedshiftSqlDialect`.
#[derive(Debug, Default)]
pub struct RedshiftParser(sqlparser::dialect::RedshiftSqlDialect);

impl sqlparser::dialect::Dialect for RedshiftParser {
    fn dialect(&self) -> std::any::TypeId {
        std::any::TypeId::of::<sqlparser::dialect::RedshiftSqlDialect>()
    }
    fn supports_group_by_expr(&self) -> bool {
        true
    }
    fn is_nested_delimited_identifier_start(&self, ch: char) -> bool {
        self.0.is_nested_delimited_identifier_start(ch)
    }
    fn peek_nested_delimited_identifier_quotes(
        &self,
        chars: std::iter::Peekable<std::str::Chars<'_>>,
    ) -> Option<(char, Option<char>)> {
        self.0.peek_nested_delimited_identifier_quotes(chars)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.0.identifier_quote_style(identifier)
    }
    fn convert_type_before_value(&self) -> bool {
        self.0.convert_type_before_value()
    }
    fn supports_connect_by(&self) -> bool {
        self.0.supports_connect_by()
    }
    fn supports_top_before_distinct(&self) -> bool {
        self.0.supports_top_before_distinct()
    }
    fn supports_partiql(&self) -> bool {
        self.0.supports_partiql()
    }
    fn supports_unpivot_expr(&self) -> bool {
        self.0.supports_unpivot_expr()
    }
    fn supports_string_escape_constant(&self) -> bool {
        self.0.supports_string_escape_constant()
    }
    fn supports_geometric_types(&self) -> bool {
        self.0.supports_geometric_types()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.0.supports_bitwise_shift_operators()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.0.supports_array_typedef_with_brackets()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        self.0.allow_extract_single_quotes()
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        self.0.supports_string_literal_backslash_escape()
    }
    fn supports_select_wildcard_exclude(&self) -> bool {
        self.0.supports_select_wildcard_exclude()
    }
    fn supports_select_wildcard_with_alias(&self) -> bool {
        self.0.supports_select_wildcard_with_alias()
    }
    fn supports_left_associative_joins_without_parens(&self) -> bool {
        self.0.supports_left_associative_joins_without_parens()
    }
    fn supports_select_exclude(&self) -> bool {
        self.0.supports_select_exclude()
    }
    fn supports_create_table_like_parenthesized(&self) -> bool {
        self.0.supports_create_table_like_parenthesized()
    }
    fn supports_string_literal_concatenation_with_newline(&self) -> bool {
        self.0.supports_string_literal_concatenation_with_newline()
    }
    fn supports_window_function_null_treatment_arg(&self) -> bool {
        self.0.supports_window_function_null_treatment_arg()
    }
    fn is_reserved_for_identifier(&self, kw: sqlparser::keywords::Keyword) -> bool {
        self.0.is_reserved_for_identifier(kw)
    }
}

/// The DATEADD/DATEDIFF unit and the number of them in one period: weeks
/// are 7 days, quarters 3 months, years 12 months (DATEADD's `year`
/// moves Feb 29 to Mar 1).
fn unit(grain: Grain) -> (&'static str, i64) {
    match grain {
        Grain::Day => ("day", 1),
        Grain::Week => ("day", 7),
        Grain::Month => ("month", 1),
        Grain::Quarter => ("month", 3),
        Grain::Year => ("month", 12),
    }
}

/// How many decimal digits the spine's numbers table has: the longest span
/// is 10^digits periods.
fn spine_digits(grain: Grain) -> u32 {
    match grain {
        Grain::Day => 5,
        Grain::Week | Grain::Month => 4,
        Grain::Quarter | Grain::Year => 3,
    }
}

/// A DATEADD/DATEDIFF date part: a bare keyword, never quoted.
fn part(unit: &str) -> Expr {
    Expr::Identifier(Ident::new(unit))
}

/// `CAST(DATEADD(unit, n, d) AS DATE)`
fn date_add(unit: &str, n: Expr, d: Expr) -> Expr {
    cast(func("dateadd", vec![part(unit), n, d]), DataType::Date)
}

/// `DATEDIFF(unit, a, b)`: `b - a` in units.
fn date_diff(unit: &str, a: Expr, b: Expr) -> Expr {
    func("datediff", vec![part(unit), a, b])
}

fn to_char(e: Expr, format: &str) -> Expr {
    func("to_char", vec![e, string(format)])
}

/// `a || b || …`
fn concat(parts: Vec<Expr>) -> Expr {
    parts
        .into_iter()
        .reduce(|a, b| binop(a, sqlparser::ast::BinaryOperator::StringConcat, b))
        .unwrap_or_else(|| string(""))
}

fn cross_join(relation: TableFactor) -> Join {
    Join {
        relation,
        global: false,
        join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
    }
}

/// `(SELECT 0 AS d UNION ALL SELECT 1 AS d … UNION ALL SELECT 9 AS d) AS alias`
fn digits(alias: &str) -> TableFactor {
    let one = |i: i64| select_query(select(vec![item(int(i), "d")], vec![]));
    let all = union((0..10).map(one).collect(), false).unwrap_or_else(|| one(0));
    derived(all, alias)
}

/// `(SELECT d0.d + 10 * d1.d + … AS n FROM digits AS d0 CROSS JOIN …) AS n`:
/// every integer from 0 to 10^count - 1, once.
fn numbers(count: u32) -> TableFactor {
    let mut value = qcol("d0", "d");
    let mut joins = Vec::new();
    for i in 1..count {
        let alias = format!("d{i}");
        value = add(value, mul(int(10_i64.pow(i)), qcol(&alias, "d")));
        joins.push(cross_join(digits(&alias)));
    }
    derived(
        select_query(select(
            vec![item(value, "n")],
            vec![from(digits("d0"), joins)],
        )),
        "n",
    )
}

/// `avg(x)` → `avg(CAST(x AS DOUBLE PRECISION))`, keeping DISTINCT, a
/// filter and a window.
fn with_double_argument(call: &Function, name: &str) -> Option<Expr> {
    let mut f = call.clone();
    // Function names stay unquoted (`avg` is a keyword).
    f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
    let FunctionArguments::List(list) = &mut f.args else {
        return None;
    };
    match list.args.first_mut() {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) => {
            *x = cast(x.clone(), DataType::DoublePrecision);
            Some(Expr::Function(f))
        }
        _ => None,
    }
}

/// `PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY CAST(x AS DOUBLE PRECISION))`:
/// exact and interpolated, as DuckDB's `quantile_cont`; the cast makes the
/// result a DOUBLE (an integer or DECIMAL ordering returns a DECIMAL,
/// r_PERCENTILE_CONT). A median is the 0.5 quantile, so a metric's median
/// and its other quantiles of the same column share one ordering.
fn percentile_cont(x: Expr, p: Expr) -> Expr {
    super::postgres::percentile_within_group(cast(x, DataType::DoublePrecision), p)
}

impl Dialect for Redshift {
    fn name(&self) -> &'static str {
        "redshift"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    /// `RedshiftParser`: sqlparser's Redshift dialect, with GROUPING SETS.
    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(RedshiftParser::default())
    }

    /// `GETDATE()` (`CURRENT_TIMESTAMP` runs only on the leader node).
    fn current_timestamp(&self) -> Expr {
        func("getdate", vec![])
    }

    /// `CAST(DATE_TRUNC('month', CAST(d AS TIMESTAMP)) AS DATE)`
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let (unit, _, _) = grain_unit(grain);
        let timestamp = DataType::Timestamp(None, sqlparser::ast::TimezoneInfo::None);
        cast(
            func("date_trunc", vec![string(unit), cast(e, timestamp)]),
            DataType::Date,
        )
    }

    /// `CAST(DATEADD(month, -12, d) AS DATE)`
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (unit, step) = unit(grain);
        date_add(unit, int(n * step), e)
    }

    /// `CAST(DATEADD(day, CAST(n AS INTEGER), d) AS DATE)`
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        date_add("day", cast(days, DataType::Integer(None)), e)
    }

    /// `DATEDIFF(day, a, b)`
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        date_diff("day", a, b)
    }

    /// `CAST(TO_CHAR(d, 'IYYY') AS INTEGER)`
    fn iso_year(&self, e: Expr) -> Expr {
        cast(to_char(e, "IYYY"), DataType::Integer(None))
    }

    /// `CAST(TO_CHAR(d, 'IW') AS INTEGER)`
    fn iso_week(&self, e: Expr) -> Expr {
        cast(to_char(e, "IW"), DataType::Integer(None))
    }

    /// `TO_CHAR(d, 'YYYY-MM')`, `TO_CHAR(d, 'IYYY') || '-W' || TO_CHAR(d,
    /// 'IW')`, …
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        match grain {
            Grain::Day => to_char(e, "YYYY-MM-DD"),
            Grain::Month => to_char(e, "YYYY-MM"),
            Grain::Week => concat(vec![
                to_char(e.clone(), "IYYY"),
                string("-W"),
                to_char(e, "IW"),
            ]),
            Grain::Quarter => concat(vec![
                to_char(e.clone(), "YYYY"),
                string("-Q"),
                to_char(e, "Q"),
            ]),
            Grain::Year => to_char(e, "YYYY"),
        }
    }

    /// ```sql
    /// SELECT CAST(DATEADD(month, 3 * n.n, b.start_day) AS DATE) AS column
    /// FROM (SELECT start AS start_day, end AS end_day) AS b
    /// CROSS JOIN (SELECT d0.d + 10 * d1.d + 100 * d2.d AS n
    ///             FROM (SELECT 0 AS d UNION ALL … SELECT 9 AS d) AS d0
    ///             CROSS JOIN (…) AS d1 CROSS JOIN (…) AS d2) AS n
    /// WHERE 3 * n.n <= DATEDIFF(month, b.start_day, b.end_day)
    /// ```
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (unit, step) = unit(grain);
        let bounds = derived(
            select_query(select(
                vec![item(start, "start_day"), item(end, "end_day")],
                vec![],
            )),
            "b",
        );
        let offset = match step {
            1 => qcol("n", "n"),
            _ => mul(int(step), qcol("n", "n")),
        };
        let mut s = select(
            vec![item(
                date_add(unit, offset.clone(), qcol("b", "start_day")),
                column,
            )],
            vec![from(bounds, vec![cross_join(numbers(spine_digits(grain)))])],
        );
        s.selection = Some(lt_eq(
            offset,
            date_diff(unit, qcol("b", "start_day"), qcol("b", "end_day")),
        ));
        select_query(s)
    }

    /// `(COALESCE(a, '0') = COALESCE(b, '0')) AND (COALESCE(a, '1') =
    /// COALESCE(b, '1'))`: true for equal texts and for two NULLs, false
    /// for a NULL and a text (no text equals both sentinels).
    fn null_safe_eq(&self, a: Expr, b: Expr) -> Expr {
        let side = |sentinel: &str| {
            eq(
                func("coalesce", vec![a.clone(), string(sentinel)]),
                func("coalesce", vec![b.clone(), string(sentinel)]),
            )
        };
        and(side("0"), side("1"))
    }

    /// `CAST(e AS VARCHAR(MAX))`
    fn member_text(&self, e: Expr) -> Expr {
        cast(e, DataType::Varchar(Some(CharacterLength::Max)))
    }

    /// `CASE WHEN c THEN 1 WHEN NOT (c) THEN 0 END`
    fn flag(&self, cond: Expr) -> Expr {
        let not = Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(Expr::Nested(Box::new(cond.clone()))),
        };
        case(vec![(cond, int(1)), (not, int(0))], None)
    }

    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        None
    }

    fn aggregate_filter(&self) -> bool {
        false
    }

    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        let args = || {
            arguments(call).ok_or_else(|| Refusal {
                message: format!("`{name}` with these arguments cannot be translated"),
                help: format!("write it as `{name}(column)`"),
            })
        };
        match name {
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont" => {
                let (x, rest) = args()?;
                let Some(p) = rest.first() else {
                    return Err(Refusal {
                        message: format!("`{name}` needs a fraction"),
                        help: format!("write `{name}(column, 0.9)`"),
                    });
                };
                Ok(Some(percentile_cont(x, p.clone())))
            }
            "median" => {
                let (x, _) = args()?;
                Ok(Some(percentile_cont(x, num(0.5))))
            }
            "approx_count_distinct" => {
                let (x, _) = args()?;
                Ok(Some(func("hll", vec![x])))
            }
            "avg" | "mean" => Ok(with_double_argument(call, "avg")),
            "stddev" | "stddev_samp" | "stddev_pop" => Ok(with_double_argument(call, name)),
            _ => Ok(None),
        }
    }

    /// PERCENTILE_CONT (and MEDIAN, LISTAGG) are sort-based: every one of
    /// a query must order by the same expression.
    fn sort_order(&self, call: &Function) -> Option<String> {
        let name = crate::semantic::aggregates::function_name(call);
        if !call.within_group.is_empty() {
            let order: Vec<String> = call.within_group.iter().map(|o| o.to_string()).collect();
            Some(order.join(", "))
        } else if name == "median" || name == "listagg" {
            Some(call.args.to_string())
        } else {
            None
        }
    }

    fn data_type(&self, t: DataType) -> DataType {
        match t {
            DataType::Double(_) => DataType::DoublePrecision,
            other => other,
        }
    }

    /// `'it''s a\\b'`: Redshift reads a backslash in a literal as an
    /// escape, so backslashes are doubled; quotes are doubled here too
    /// (sqlparser's printer leaves a quote after a backslash, or a pair of
    /// quotes, as it finds it, so the literal is written out in full).
    fn string_literal(&self, text: &str) -> Option<Expr> {
        (text.contains('\\') || text.contains('\''))
            .then(|| string(&text.replace('\\', "\\\\").replace('\'', "''")))
    }

    fn build_prologue(&self) -> Vec<Statement> {
        vec![skeleton(self, "BEGIN", &[], None)]
    }

    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        Some(skeleton(
            self,
            "CREATE TEMPORARY TABLE kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            Some(query),
        ))
    }

    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        build_then_rename(self, tables)
    }

    fn drop_view(&self, name: &str) -> Option<Statement> {
        Some(drop_view_before_rename(self, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{SelectItem, SetExpr, Value};
    use sqlparser::parser::Parser;

    fn sql(e: &Expr) -> String {
        e.to_string()
    }

    fn parses(text: &str) {
        Parser::parse_sql(&RedshiftParser::default(), text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }

    #[test]
    fn the_parser_reads_grouping_sets_and_stays_redshifts() {
        let text = "SELECT a, b, grouping(a), count(*) FROM t GROUP BY GROUPING SETS ((a), (b))";
        assert!(Parser::parse_sql(&sqlparser::dialect::RedshiftSqlDialect {}, text).is_err());
        parses(text);
        // Redshift's own rules still hold: `#` temp names, `[…]` paths.
        parses("SELECT a FROM #temp");
        let d: &dyn sqlparser::dialect::Dialect = &RedshiftParser::default();
        assert!(d.is::<sqlparser::dialect::RedshiftSqlDialect>());
    }

    #[test]
    fn dates_move_by_dateadd_and_years_as_twelve_months() {
        let d = || col("d");
        assert_eq!(
            sql(&Redshift.add_periods(Grain::Year, d(), -1)),
            "CAST(dateadd(month, -12, d) AS DATE)"
        );
        assert_eq!(
            sql(&Redshift.add_periods(Grain::Week, d(), 2)),
            "CAST(dateadd(day, 14, d) AS DATE)"
        );
        assert_eq!(
            sql(&Redshift.add_days(d(), int(1))),
            "CAST(dateadd(day, CAST(1 AS INTEGER), d) AS DATE)"
        );
        assert_eq!(
            sql(&Redshift.day_diff(col("a"), col("b"))),
            "datediff(day, a, b)"
        );
        assert_eq!(
            sql(&Redshift.period_start(Grain::Week, d())),
            "CAST(date_trunc('week', CAST(d AS TIMESTAMP)) AS DATE)"
        );
    }

    #[test]
    fn iso_weeks_and_labels_come_from_to_char() {
        let label = |g| sql(&Redshift.period_label(g, col("d")));
        assert_eq!(label(Grain::Day), "to_char(d, 'YYYY-MM-DD')");
        assert_eq!(
            label(Grain::Week),
            "to_char(d, 'IYYY') || '-W' || to_char(d, 'IW')"
        );
        assert_eq!(
            label(Grain::Quarter),
            "to_char(d, 'YYYY') || '-Q' || to_char(d, 'Q')"
        );
        assert_eq!(
            sql(&Redshift.iso_year(col("d"))),
            "CAST(to_char(d, 'IYYY') AS INTEGER)"
        );
        parses(&format!("SELECT {}", label(Grain::Week)));
    }

    #[test]
    fn spine_crosses_the_bounds_with_a_numbers_table() {
        let q = Redshift.date_spine(Grain::Quarter, col("s"), col("e"), "ps");
        let text = q.to_string();
        let digits = |a: &str| {
            let ds: Vec<String> = (0..10).map(|i| format!("SELECT {i} AS d")).collect();
            format!("({}) AS {a}", ds.join(" UNION ALL "))
        };
        assert_eq!(
            text,
            format!(
                "SELECT CAST(dateadd(month, 3 * n.n, b.start_day) AS DATE) AS ps \
                 FROM (SELECT s AS start_day, e AS end_day) AS b \
                 CROSS JOIN (SELECT (d0.d + (10 * d1.d)) + (100 * d2.d) AS n \
                 FROM {} CROSS JOIN {} CROSS JOIN {}) AS n \
                 WHERE (3 * n.n) <= datediff(month, b.start_day, b.end_day)",
                digits("d0"),
                digits("d1"),
                digits("d2")
            )
        );
        parses(&text);
        // Days reach 99,999 periods; a year is 12 months.
        let days = Redshift
            .date_spine(Grain::Day, col("s"), col("e"), "ps")
            .to_string();
        assert!(days.contains("(10000 * d4.d) AS n"), "{days}");
        assert!(!days.contains("d5"), "{days}");
        let years = Redshift
            .date_spine(Grain::Year, col("s"), col("e"), "ps")
            .to_string();
        assert!(
            years.contains("dateadd(month, 12 * n.n, b.start_day)"),
            "{years}"
        );
    }

    /// The numbers table holds every integer below 10^digits exactly once.
    #[test]
    fn numbers_table_counts_every_integer_once() {
        let mut seen = vec![0u32; 1000];
        for a in 0..10 {
            for b in 0..10 {
                for c in 0..10 {
                    // d0 + 10 * d1 + 100 * d2, as the query sums them.
                    seen[a + 10 * b + 100 * c] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        let text = numbers(3).to_string();
        assert!(text.starts_with("(SELECT (d0.d + (10 * d1.d)) + (100 * d2.d) AS n"));
    }

    #[test]
    fn members_match_null_to_null_with_equalities_only() {
        assert_eq!(
            sql(&Redshift.null_safe_eq(col("a"), col("b"))),
            "(coalesce(a, '0') = coalesce(b, '0')) AND (coalesce(a, '1') = coalesce(b, '1'))"
        );
        // Truth table of the rewrite, with NULL as None.
        let holds = |a: Option<&str>, b: Option<&str>| {
            let side = |s: &str| a.unwrap_or(s) == b.unwrap_or(s);
            side("0") && side("1")
        };
        assert!(holds(None, None));
        assert!(holds(Some("x"), Some("x")));
        for s in ["0", "1", "", "x"] {
            assert!(!holds(None, Some(s)), "{s}");
            assert!(!holds(Some(s), None), "{s}");
        }
        assert_eq!(
            sql(&Redshift.member_text(col("m"))),
            "CAST(m AS VARCHAR(MAX))"
        );
        assert_eq!(
            sql(&Redshift.flag(col("c"))),
            "CASE WHEN c THEN 1 WHEN NOT (c) THEN 0 END"
        );
    }

    #[test]
    fn aggregates_in_redshifts_words() {
        let agg = |text: &str| crate::sql::dialect::aggregate_of(&Redshift, text);
        let text = |t: &str| agg(t).unwrap().unwrap().to_string();
        assert_eq!(
            text("quantile_cont(x, 0.9)"),
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY CAST(x AS DOUBLE PRECISION))"
        );
        assert_eq!(
            text("median(x)"),
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(x AS DOUBLE PRECISION))"
        );
        assert!(
            agg("quantile_cont(x)").is_err(),
            "a quantile needs a fraction"
        );
        assert_eq!(text("approx_count_distinct(x)"), "hll(x)");
        assert_eq!(
            text("mean(DISTINCT x)"),
            "avg(DISTINCT CAST(x AS DOUBLE PRECISION))"
        );
        assert_eq!(
            text("stddev_pop(x)"),
            "stddev_pop(CAST(x AS DOUBLE PRECISION))"
        );
        assert_eq!(agg("sum(x)").unwrap(), None);
        assert_eq!(agg("count(DISTINCT x)").unwrap(), None);
        parses("SELECT hll(x), avg(CAST(x AS DOUBLE PRECISION)) FROM t");
    }

    #[test]
    fn backslashes_are_doubled_and_read_back() {
        assert_eq!(Redshift.string_literal("plain"), None);
        for text in [
            "a\\b", "a\\'b", "\\", "'\\'", "end\\", "it's", "''", "a''b", "\\''\\",
        ] {
            let lit = Redshift.string_literal(text).unwrap();
            let printed = format!("SELECT {lit}");
            let parsed = Parser::parse_sql(&RedshiftParser::default(), &printed)
                .unwrap_or_else(|e| panic!("{printed}: {e}"));
            let Statement::Query(q) = &parsed[0] else {
                panic!("{printed}")
            };
            let SetExpr::Select(s) = q.body.as_ref() else {
                panic!("{printed}")
            };
            let SelectItem::UnnamedExpr(Expr::Value(v)) = &s.projection[0] else {
                panic!("{printed}")
            };
            assert_eq!(v.value, Value::SingleQuotedString(text.into()), "{printed}");
        }
        assert_eq!(
            Redshift.string_literal("it's a\\b").unwrap().to_string(),
            "'it''s a\\\\b'"
        );
    }

    #[test]
    fn build_is_one_transaction_with_temp_tables_and_renames() {
        let q = || select_query(select(vec![item(int(1), "x")], vec![]));
        let mut stmts = Redshift.build_prologue();
        stmts.push(Redshift.temp_table("kpic_scan_orders", q()).unwrap());
        stmts.extend(Redshift.replace_tables(vec![("kpi_results".into(), q())]));
        stmts.extend(Redshift.build_epilogue());
        let text: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "BEGIN",
                "CREATE TEMPORARY TABLE kpic_scan_orders AS SELECT 1 AS x",
                "DROP TABLE IF EXISTS kpi_results__kpic_new",
                "CREATE TABLE kpi_results__kpic_new AS SELECT 1 AS x",
                "DROP TABLE IF EXISTS kpi_results",
                "ALTER TABLE kpi_results__kpic_new RENAME TO kpi_results",
                "COMMIT",
            ]
        );
        for t in &text {
            parses(t);
        }
        assert_eq!(sql(&Redshift.current_timestamp()), "getdate()");
    }
}

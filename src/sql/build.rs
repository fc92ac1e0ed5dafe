//! Small constructors for sqlparser AST nodes, so the renderer reads like
//! the SQL it builds. Identifiers are created unquoted; the dialect's
//! quoting pass decides quoting at the end.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, Cte, CteAsMaterialized, DataType, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident,
    Join, JoinConstraint, JoinOperator, ObjectName, OrderByExpr, OrderByOptions, Query, Select,
    SelectFlavor, SelectItem, SetExpr, SetOperator, SetQuantifier, TableAlias, TableFactor,
    TableWithJoins, UnaryOperator, Value, With,
};

/// An identifier, double-quoted when it is not a plain lower-case name or
/// when it is a SQL keyword.
pub fn ident(name: &str) -> Ident {
    if needs_quotes(name) {
        Ident::with_quote('"', name)
    } else {
        Ident::new(name)
    }
}

pub fn needs_quotes(name: &str) -> bool {
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    !plain
        || sqlparser::keywords::ALL_KEYWORDS
            .binary_search(&name.to_ascii_uppercase().as_str())
            .is_ok()
}

pub fn col(name: &str) -> Expr {
    Expr::Identifier(ident(name))
}

/// `table.column`
pub fn qcol(table: &str, name: &str) -> Expr {
    Expr::CompoundIdentifier(vec![ident(table), ident(name)])
}

pub fn object(name: &str) -> ObjectName {
    ObjectName::from(vec![ident(name)])
}

fn args(args: Vec<Expr>) -> FunctionArguments {
    FunctionArguments::List(FunctionArgumentList {
        duplicate_treatment: None,
        args: args
            .into_iter()
            .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
            .collect(),
        clauses: vec![],
    })
}

pub fn function(name: &str, a: Vec<Expr>) -> Function {
    Function {
        // Function names are never quoted (`least`, `left` are keywords).
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: args(a),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }
}

pub fn func(name: &str, a: Vec<Expr>) -> Expr {
    Expr::Function(function(name, a))
}

/// A niladic SQL function written without parentheses (`current_date`).
pub fn keyword_function(name: &str) -> Expr {
    Expr::Function(Function {
        args: FunctionArguments::None,
        ..function(name, vec![])
    })
}

pub fn count_star() -> Expr {
    Expr::Function(count_star_call())
}

/// `count(*)` as a call (to give it a FILTER clause).
pub fn count_star_call() -> Function {
    Function {
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Wildcard)],
            clauses: vec![],
        }),
        ..function("count", vec![])
    }
}

pub fn binop(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

/// Wraps compound expressions in parentheses so printing keeps precedence.
pub fn paren(e: Expr) -> Expr {
    match e {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Nested(_)
        | Expr::Function(_)
        | Expr::Value(_)
        | Expr::Cast { .. }
        | Expr::Case { .. }
        | Expr::Subquery(_)
        | Expr::TypedString(_) => e,
        other => Expr::Nested(Box::new(other)),
    }
}

pub fn add(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::Plus, paren(b))
}
pub fn sub(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::Minus, paren(b))
}
pub fn mul(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::Multiply, paren(b))
}
/// Division that is NULL when the divisor is 0: `a / NULLIF(b, 0)`.
pub fn safe_div(a: Expr, b: Expr) -> Expr {
    binop(
        paren(a),
        BinaryOperator::Divide,
        func("nullif", vec![b, num(0.0)]),
    )
}
pub fn eq(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::Eq, paren(b))
}
pub fn lt(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::Lt, paren(b))
}
pub fn lt_eq(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::LtEq, paren(b))
}
pub fn gt(a: Expr, b: Expr) -> Expr {
    binop(a, BinaryOperator::Gt, b)
}
pub fn gt_eq(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::GtEq, paren(b))
}
pub fn and(a: Expr, b: Expr) -> Expr {
    binop(paren(a), BinaryOperator::And, paren(b))
}
pub fn and_all(items: Vec<Expr>) -> Option<Expr> {
    items.into_iter().reduce(and)
}
pub fn neg(e: Expr) -> Expr {
    Expr::UnaryOp {
        op: UnaryOperator::Minus,
        expr: Box::new(paren(e)),
    }
}
pub fn is_null(e: Expr) -> Expr {
    Expr::IsNull(Box::new(paren(e)))
}

/// A numeric literal, printed without a trailing `.0` for integers.
pub fn num(v: f64) -> Expr {
    let text = if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    };
    let e = Expr::value(Value::Number(text, false));
    if v < 0.0 {
        // `- 5` keeps the printer from fusing `--5` into a comment.
        return Expr::Nested(Box::new(e));
    }
    e
}

pub fn int(v: i64) -> Expr {
    Expr::value(Value::Number(v.to_string(), false))
}

pub fn string(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

pub fn null() -> Expr {
    Expr::value(Value::Null)
}

pub fn cast(e: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(e),
        data_type,
        format: None,
    }
}

/// `CASE WHEN … END`. Without any WHEN (e.g. a `target: {values: {}}`
/// whose periods all fall away) SQL has no such CASE: the value is the
/// ELSE branch, or NULL. (Found by the compile fuzz target.)
pub fn case(whens: Vec<(Expr, Expr)>, otherwise: Option<Expr>) -> Expr {
    if whens.is_empty() {
        return otherwise.unwrap_or_else(null);
    }
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: whens
            .into_iter()
            .map(|(condition, result)| CaseWhen { condition, result })
            .collect(),
        else_result: otherwise.map(Box::new),
    }
}

pub fn subquery(q: Query) -> Expr {
    Expr::Subquery(Box::new(q))
}

pub fn item(e: Expr, alias: &str) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr: e,
        alias: ident(alias),
    }
}

pub fn wildcard_of(table: &str) -> SelectItem {
    SelectItem::QualifiedWildcard(
        sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(object(table)),
        Default::default(),
    )
}

pub fn alias(name: &str) -> TableAlias {
    TableAlias {
        explicit: true,
        name: ident(name),
        columns: vec![],
        at: None,
    }
}

/// A named relation (table or CTE), with an optional alias.
pub fn table(name: ObjectName, as_name: Option<&str>) -> TableFactor {
    TableFactor::Table {
        name,
        alias: as_name.map(alias),
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

/// A table function call `name(args) AS alias`.
pub fn table_function(name: &str, a: Vec<Expr>, as_name: &str) -> TableFactor {
    match table(object(name), Some(as_name)) {
        TableFactor::Table {
            name,
            alias,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
            ..
        } => TableFactor::Table {
            name,
            alias,
            args: Some(sqlparser::ast::TableFunctionArgs {
                args: a
                    .into_iter()
                    .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                    .collect(),
                settings: None,
            }),
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
        },
        other => other,
    }
}

pub fn derived(q: Query, as_name: &str) -> TableFactor {
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(q),
        alias: Some(alias(as_name)),
        sample: None,
    }
}

pub fn left_join(relation: TableFactor, on: Expr) -> Join {
    Join {
        relation,
        global: false,
        join_operator: JoinOperator::LeftOuter(JoinConstraint::On(on)),
    }
}

pub fn inner_join(relation: TableFactor, on: Expr) -> Join {
    Join {
        relation,
        global: false,
        join_operator: JoinOperator::Inner(JoinConstraint::On(on)),
    }
}

/// A SELECT with every optional clause empty.
pub fn select(projection: Vec<SelectItem>, from: Vec<TableWithJoins>) -> Select {
    Select {
        select_token: AttachedToken::empty(),
        optimizer_hints: vec![],
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from,
        lateral_views: vec![],
        prewhere: None,
        selection: None,
        connect_by: vec![],
        group_by: GroupByExpr::Expressions(vec![], vec![]),
        cluster_by: vec![],
        distribute_by: vec![],
        sort_by: vec![],
        having: None,
        named_window: vec![],
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    }
}

pub fn from(relation: TableFactor, joins: Vec<Join>) -> TableWithJoins {
    TableWithJoins { relation, joins }
}

pub fn query(body: SetExpr) -> Query {
    Query {
        with: None,
        body: Box::new(body),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }
}

pub fn select_query(s: Select) -> Query {
    query(SetExpr::Select(Box::new(s)))
}

/// `a UNION ALL b UNION ALL …` (`distinct` for UNION).
pub fn union(parts: Vec<Query>, distinct: bool) -> Option<Query> {
    let mut iter = parts.into_iter();
    let first = iter.next()?;
    let mut body = *first.body;
    for q in iter {
        body = SetExpr::SetOperation {
            left: Box::new(body),
            op: SetOperator::Union,
            set_quantifier: if distinct {
                SetQuantifier::Distinct
            } else {
                SetQuantifier::All
            },
            right: q.body,
        };
    }
    Some(query(body))
}

/// `WITH name AS (query), … q`.
pub fn with(q: Query, ctes: Vec<(String, Query)>) -> Query {
    with_ctes(
        q,
        ctes.into_iter()
            .map(|(name, q)| cte(&name, q, None))
            .collect(),
    )
}

/// `WITH name [AS MATERIALIZED] (q)`, one common table expression.
pub fn cte(name: &str, q: Query, materialized: Option<CteAsMaterialized>) -> Cte {
    Cte {
        alias: TableAlias {
            explicit: false,
            ..alias(name)
        },
        query: Box::new(q),
        from: None,
        materialized,
        closing_paren_token: AttachedToken::empty(),
    }
}

/// `q` with `ctes` put before the common table expressions it already
/// has (they may read `ctes`).
pub fn with_ctes(q: Query, mut ctes: Vec<Cte>) -> Query {
    if let Some(own) = &q.with {
        ctes.extend(own.cte_tables.iter().cloned());
    }
    if ctes.is_empty() {
        return q;
    }
    Query {
        with: Some(With {
            with_token: AttachedToken::empty(),
            recursive: false,
            cte_tables: ctes,
        }),
        ..q
    }
}

/// `LAG(e) OVER (PARTITION BY partition ORDER BY order)`
pub fn lag(e: Expr, partition: Vec<Expr>, order: Expr) -> Expr {
    over("lag", e, partition, order, None)
}

/// `LEAD(e) OVER (PARTITION BY partition ORDER BY order)`
pub fn lead(e: Expr, partition: Vec<Expr>, order: Expr) -> Expr {
    over("lead", e, partition, order, None)
}

/// `SUM(e) OVER (PARTITION BY partition ORDER BY order ROWS BETWEEN
/// UNBOUNDED PRECEDING AND CURRENT ROW)`: the frame is spelled out because
/// Redshift requires one for an ordered aggregate window.
pub fn running_sum(e: Expr, partition: Vec<Expr>, order: Expr) -> Expr {
    use sqlparser::ast::{WindowFrame, WindowFrameBound, WindowFrameUnits};
    let frame = WindowFrame {
        units: WindowFrameUnits::Rows,
        start_bound: WindowFrameBound::Preceding(None),
        end_bound: Some(WindowFrameBound::CurrentRow),
    };
    over("sum", e, partition, order, Some(frame))
}

/// `row_number() OVER (PARTITION BY partition ORDER BY order DESC)`: 1 on
/// each partition's latest row.
pub fn row_number_desc(partition: Vec<Expr>, order: Expr) -> Expr {
    let mut f = function("row_number", vec![]);
    f.over = Some(sqlparser::ast::WindowType::WindowSpec(
        sqlparser::ast::WindowSpec {
            window_name: None,
            partition_by: partition,
            order_by: vec![OrderByExpr {
                expr: order,
                options: OrderByOptions {
                    sort: Some(sqlparser::ast::OrderBySort::Desc),
                    nulls_first: None,
                },
                with_fill: None,
            }],
            window_frame: None,
        },
    ));
    Expr::Function(f)
}

fn over(
    name: &str,
    e: Expr,
    partition: Vec<Expr>,
    order: Expr,
    window_frame: Option<sqlparser::ast::WindowFrame>,
) -> Expr {
    let mut f = function(name, vec![e]);
    f.over = Some(sqlparser::ast::WindowType::WindowSpec(
        sqlparser::ast::WindowSpec {
            window_name: None,
            partition_by: partition,
            order_by: vec![OrderByExpr {
                expr: order,
                options: OrderByOptions {
                    sort: None,
                    nulls_first: None,
                },
                with_fill: None,
            }],
            window_frame,
        },
    ));
    Expr::Function(f)
}

pub fn double() -> DataType {
    DataType::Double(sqlparser::ast::ExactNumberInfo::None)
}

pub fn varchar() -> DataType {
    DataType::Varchar(None)
}

/// `EXTRACT(field FROM e)`
pub fn extract(field: sqlparser::ast::DateTimeField, e: Expr) -> Expr {
    Expr::Extract {
        field,
        syntax: sqlparser::ast::ExtractSyntax::From,
        expr: Box::new(e),
    }
}

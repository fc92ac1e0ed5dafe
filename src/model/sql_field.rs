//! Parsing of SQL fields (after templating) with sqlparser. A field holds
//! one expression (or, for `sql:` sources, one query), never a statement
//! list: trailing tokens such as `; drop table x` are a KPI109 error, and so
//! is a query anywhere in a field (a `sql:` source, a subquery in a filter)
//! that writes instead of reading (`INSERT`, `UPDATE`, `DELETE`, `MERGE`,
//! `SELECT … INTO`).
//!
//! Fields are bounded before they are parsed (KPI107): sqlparser builds a
//! chain of operators such as `a + a + … + a` as a tree as deep as the
//! chain, and every later walk of the tree (clone, drop, analysis,
//! printing) is recursive, so a long chain would overflow the stack. See
//! [`MAX_SQL_DEPTH`].

use std::ops::ControlFlow;

use sqlparser::ast;
use sqlparser::ast::{Visit, Visitor};
use sqlparser::dialect::DuckDbDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use super::types::SqlExpr;
use crate::diagnostics::{Code, Diagnostic};
use crate::source::{SourceMap, Span};

/// Parses `text` (the rendered field) as one expression. `span` is the
/// field's span in its YAML file; `exact` says whether `text` is the file
/// text itself (no templating happened), so error positions can be shifted
/// onto it.
pub fn parse_expr(text: &str, span: Span, sources: &SourceMap) -> Result<SqlExpr, Diagnostic> {
    let dialect = DuckDbDialect {};
    let result = bounded_parser(&dialect, text, span)?.and_then(|mut p| {
        let expr = p.parse_expr()?;
        match p.peek_token().token {
            Token::EOF => Ok(expr),
            Token::SemiColon => Err(ParserError::ParserError(
                "a field holds one SQL expression, not statements".into(),
            )),
            other => Err(ParserError::ParserError(format!(
                "unexpected `{other}` after the expression"
            ))),
        }
    });
    match result {
        Ok(expr) => {
            read_only(&expr, span)?;
            no_colon_paths(&expr, span)?;
            Ok(SqlExpr {
                expr,
                text: text.to_string(),
                span,
            })
        }
        Err(e) => Err(syntax_error(e, text, span, sources)),
    }
}

/// Parses a `sql:` source body as one query.
pub fn parse_query(
    text: &str,
    span: Span,
    sources: &SourceMap,
) -> Result<Box<ast::Query>, Diagnostic> {
    let dialect = DuckDbDialect {};
    let result = bounded_parser(&dialect, text, span)?.and_then(|mut p| {
        let q = p.parse_query()?;
        while p.consume_token(&Token::SemiColon) {}
        match p.peek_token().token {
            Token::EOF => Ok(q),
            other => Err(ParserError::ParserError(format!(
                "unexpected `{other}` after the query: a source holds one SELECT"
            ))),
        }
    });
    let q = result.map_err(|e| syntax_error(e, text, span, sources))?;
    read_only(&q, span)?;
    no_colon_paths(&q, span)?;
    Ok(q)
}

/// Parses a dotted relation name (`analytics.fct_orders`).
pub fn parse_object_name(
    text: &str,
    span: Span,
    sources: &SourceMap,
) -> Result<ast::ObjectName, Diagnostic> {
    let dialect = DuckDbDialect {};
    let result = bounded_parser(&dialect, text, span)?.and_then(|mut p| {
        let name = p.parse_object_name(false)?;
        match p.peek_token().token {
            Token::EOF => Ok(name),
            other => Err(ParserError::ParserError(format!(
                "unexpected `{other}` in a table name"
            ))),
        }
    });
    result.map_err(|e| syntax_error(e, text, span, sources))
}

/// `offset(metric, 1 month)` → `offset(metric, 1*month)`: the one
/// whitespace character between the count and the unit becomes `*`, so the
/// text parses as SQL and keeps its length.
pub fn rewrite_offsets(text: String) -> String {
    let lower = text.to_ascii_lowercase();
    let mut bytes = text.into_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find("offset(") {
        let start = from + i + "offset(".len();
        let Some(close) = lower[start..].find(')').map(|c| start + c) else {
            break;
        };
        if let Some(comma) = lower[start..close].rfind(',').map(|c| start + c) {
            let args = &lower[comma + 1..close];
            let trimmed = args.trim_start();
            let lead = args.len() - trimmed.len();
            let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
            let rest = &trimmed[digits..];
            if digits > 0
                && rest.starts_with([' ', '\t'])
                && rest
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_alphabetic())
            {
                bytes[comma + 1 + lead + digits] = b'*';
            }
        }
        from = close;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// Most operators a field may chain: an estimate of the depth of its tree
/// (see [`depth_estimate`]). Real fields chain a few dozen; DuckDB itself
/// refuses expressions nested deeper than 1000 (`max_expression_depth`),
/// and the limit keeps every recursive walk of the tree far from the end
/// of the stack.
pub const MAX_SQL_DEPTH: usize = 1_000;

/// Most nested parentheses (and function calls, subqueries) in a field;
/// sqlparser's own recursion limit.
pub const MAX_SQL_NESTING: usize = 50;

/// A parser over `text`'s tokens, or a KPI107 diagnostic when the field's
/// operator chains are longer than [`MAX_SQL_DEPTH`] (checked on the
/// tokens, before a tree exists). The inner `Err` is a tokenizer error.
fn bounded_parser<'d>(
    dialect: &'d DuckDbDialect,
    text: &str,
    span: Span,
) -> Result<Result<Parser<'d>, ParserError>, Diagnostic> {
    let tokens = match Tokenizer::new(dialect, text).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => return Ok(Err(e.into())),
    };
    let depth = depth_estimate(tokens.iter().map(|t| &t.token));
    if depth > MAX_SQL_DEPTH {
        return Err(Diagnostic::new(
            Code::InputTooLarge,
            format!("the SQL chains more than {MAX_SQL_DEPTH} operators"),
        )
        .at(span, "too long a chain of operators")
        .with_help(
            "split the expression into several metrics combined by a derived `expr`, or move the logic into a table or a `sql:` source",
        )
        .with_note(format!(
            "a chain of {depth} operators builds an expression {depth} levels deep"
        )));
    }
    Ok(Ok(Parser::new(dialect)
        .with_recursion_limit(MAX_SQL_NESTING)
        .with_tokens_with_locations(tokens)))
}

/// An upper bound (up to the parser's nesting limit) of how deep sqlparser's
/// tree for these tokens can be. A binary, unary or postfix operator adds at
/// most one level to the chain it is in, a keyword (`AND`, `IS`, `CASE`, …)
/// likewise; identifiers and literals are leaves. Items of a list (after a
/// comma) are siblings, not a chain, and a parenthesized chain adds to the
/// chain around it. So the estimate is the largest sum, over the open
/// parentheses, of the operators counted since the last comma at each level.
fn depth_estimate<'t>(tokens: impl Iterator<Item = &'t Token>) -> usize {
    // Operators since the last comma, per open parenthesis (outermost first).
    let mut levels: Vec<usize> = vec![0];
    let mut sum = 0usize;
    let mut worst = 0usize;
    for t in tokens {
        match t {
            Token::LParen | Token::LBrace => levels.push(0),
            Token::RParen | Token::RBrace | Token::RBracket if levels.len() > 1 => {
                sum -= levels.pop().unwrap_or(0);
            }
            Token::Comma => {
                if let Some(top) = levels.last_mut() {
                    sum -= *top;
                    *top = 0;
                }
            }
            t if counts(t) => {
                if let Some(top) = levels.last_mut() {
                    *top += 1;
                }
                sum += 1;
                worst = worst.max(sum);
                // A subscript opens a level of its own.
                if matches!(t, Token::LBracket) {
                    levels.push(0);
                }
            }
            _ => {}
        }
    }
    worst
}

/// Whether a token may add a level to an expression: anything but
/// whitespace, punctuation that closes or separates, literals and plain
/// identifiers.
fn counts(t: &Token) -> bool {
    match t {
        Token::EOF
        | Token::Whitespace(_)
        | Token::SemiColon
        | Token::RParen
        | Token::RBrace
        | Token::RBracket
        | Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => false,
        Token::Word(w) => w.quote_style.is_none() && w.keyword != Keyword::NoKeyword,
        _ => true,
    }
}

/// Refuses a query, anywhere in a field, that writes: a field is read as
/// an expression or a SELECT, and kpic embeds it in its own queries.
fn read_only<V: Visit>(node: &V, span: Span) -> Result<(), Diagnostic> {
    struct Writes;
    impl Visitor for Writes {
        type Break = &'static str;
        fn pre_visit_query(&mut self, q: &ast::Query) -> ControlFlow<Self::Break> {
            match writes(&q.body) {
                Some(what) => ControlFlow::Break(what),
                None => ControlFlow::Continue(()),
            }
        }
    }
    fn writes(body: &ast::SetExpr) -> Option<&'static str> {
        match body {
            ast::SetExpr::Insert(_) => Some("INSERT"),
            ast::SetExpr::Update(_) => Some("UPDATE"),
            ast::SetExpr::Delete(_) => Some("DELETE"),
            ast::SetExpr::Merge(_) => Some("MERGE"),
            ast::SetExpr::Select(s) if s.into.is_some() => Some("SELECT … INTO"),
            ast::SetExpr::SetOperation { left, right, .. } => {
                writes(left).or_else(|| writes(right))
            }
            // Nested queries are visited on their own.
            _ => None,
        }
    }
    match node.visit(&mut Writes) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(what) => Err(Diagnostic::new(
            Code::SqlSyntax,
            format!("`{what}` is a statement that writes data; a SQL field only reads"),
        )
        .at(span, "writes data")
        .with_help(
            "a `sql:` source holds one SELECT, and filters and measures are expressions; kpic writes its own tables",
        )),
    }
}

/// Refuses `col:field` paths (Snowflake's and Databricks' semi-structured
/// access, which sqlparser reads in any field): DuckDB, Postgres and the
/// other engines have no such syntax and kpic has no translation for it,
/// so the SQL kpic writes would not parse there. (Found by the compile
/// fuzz target: `time: a:b`.)
fn no_colon_paths<V: Visit>(node: &V, span: Span) -> Result<(), Diagnostic> {
    struct ColonPath;
    impl Visitor for ColonPath {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
            match e {
                ast::Expr::JsonAccess { .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match node.visit(&mut ColonPath) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Diagnostic::new(
            Code::SqlSyntax,
            "`a:b` (a semi-structured path) is not portable SQL",
        )
        .at(span, "`:` path access")
        .with_help(
            "kpic compiles every field for several engines: use a JSON function such as `json_extract_string(col, '$.field')`, or expose the field as a column in the warehouse",
        )),
    }
}

fn syntax_error(e: ParserError, text: &str, span: Span, sources: &SourceMap) -> Diagnostic {
    let message = match &e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return Diagnostic::new(
                Code::InputTooLarge,
                format!("the SQL nests more than {MAX_SQL_NESTING} levels of parentheses, calls or subqueries"),
            )
            .at(span, "nested too deeply")
            .with_help("flatten the expression, or split it into several metrics");
        }
    };
    // sqlparser appends " at Line: L, Column: C"; strip it from the message
    // and use it to point inside the field when the field text is exact.
    let (msg, pos) = split_location(&message);
    let mut at = span;
    if let Some((line, col)) = pos
        && sources.snippet(span) == text
        && line == 1
    {
        let offset: usize = text
            .chars()
            .take(col.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        let start = (span.start + offset).min(span.end);
        let len = text[offset.min(text.len())..]
            .split_whitespace()
            .next()
            .map(str::len)
            .unwrap_or(0)
            .max(1);
        at = Span::new(span.file, start, (start + len).min(span.end.max(start + 1)));
    }
    Diagnostic::new(Code::SqlSyntax, format!("SQL does not parse: {msg}"))
        .at(at, "here")
        .with_help("a field holds one SQL expression, e.g. `sum(amount)` or `status = 'completed'`")
}

fn split_location(message: &str) -> (String, Option<(usize, usize)>) {
    if let Some(i) = message.rfind(" at Line: ") {
        let loc = &message[i + " at Line: ".len()..];
        let mut parts = loc.split(", Column: ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let col = parts.next().and_then(|c| c.trim().parse().ok());
        if let (Some(l), Some(c)) = (line, col) {
            return (message[..i].to_string(), Some((l, c)));
        }
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn map(text: &str) -> (SourceMap, Span) {
        let mut sources = SourceMap::new();
        let id = sources.add(Path::new("m.yml"), "m.yml".into(), text.into());
        (sources, Span::new(id, 0, text.len()))
    }

    #[test]
    fn statements_are_refused() {
        let text = "1=1; drop table x";
        let (sources, span) = map(text);
        let err = parse_expr(text, span, &sources).unwrap_err();
        assert_eq!(err.code, Code::SqlSyntax);
    }

    #[test]
    fn offsets_become_products() {
        assert_eq!(
            rewrite_offsets("revenue / offset(revenue, 1 year) - 1".into()),
            "revenue / offset(revenue, 1*year) - 1"
        );
        assert_eq!(
            rewrite_offsets("OFFSET(a,  12  months)".into()),
            "OFFSET(a,  12* months)"
        );
        assert_eq!(rewrite_offsets("offset(a, b)".into()), "offset(a, b)");
        assert_eq!(rewrite_offsets("offset(".into()), "offset(");
    }

    #[test]
    fn long_chains_are_refused_before_parsing() {
        let text = format!("amount{}", " + amount".repeat(100_000));
        let (sources, span) = map(&text);
        let err = parse_expr(&text, span, &sources).unwrap_err();
        assert_eq!(err.code, Code::InputTooLarge);
        let text = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        let (sources, span) = map(&text);
        let err = parse_expr(&text, span, &sources).unwrap_err();
        assert_eq!(err.code, Code::InputTooLarge);
    }

    #[test]
    fn lists_are_siblings_not_chains() {
        // 5000 items of an IN list, 500 arguments of coalesce: flat.
        let items: Vec<String> = (0..5000).map(|i| format!("'c{i}'")).collect();
        let text = format!("country in ({})", items.join(", "));
        let (sources, span) = map(&text);
        assert!(parse_expr(&text, span, &sources).is_ok());
        let args = vec!["a + b"; 500].join(", ");
        let text = format!("coalesce({args}) > 0");
        let (sources, span) = map(&text);
        assert!(parse_expr(&text, span, &sources).is_ok());
        let tokens = Tokenizer::new(&DuckDbDialect {}, "(a + b) * (c + d), e")
            .tokenize()
            .expect("tokens");
        assert_eq!(depth_estimate(tokens.iter()), 2);
    }

    #[test]
    fn queries_that_write_are_refused() {
        for text in [
            "insert into x select 1",
            "with a as (select 1) insert into x select * from a",
            "select * into x from y",
            "select * from y union all (select 1 into z)",
            "with a as (delete from x returning *) select * from a",
        ] {
            let (sources, span) = map(text);
            let err = parse_query(text, span, &sources).expect_err(text);
            assert_eq!(err.code, Code::SqlSyntax, "{text}");
        }
        let text = "amount in (insert into x select 1 returning 1)";
        let (sources, span) = map(text);
        assert!(parse_expr(text, span, &sources).is_err());
        let text = "select a, b from read_csv('x.csv') where a in (select 1)";
        let (sources, span) = map(text);
        assert!(parse_query(text, span, &sources).is_ok());
    }

    #[test]
    fn expression_parses() {
        let text = "sum(amount) filter (where x > 1)";
        let (sources, span) = map(text);
        assert!(parse_expr(text, span, &sources).is_ok());
    }
}

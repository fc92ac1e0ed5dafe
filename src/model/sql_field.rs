//! Parsing of SQL fields (after templating) with sqlparser. A field holds
//! one expression (or, for `sql:` sources, one query), never a statement
//! list: trailing tokens such as `; drop table x` are a KPI109 error.

use sqlparser::ast;
use sqlparser::dialect::DuckDbDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use super::types::SqlExpr;
use crate::diagnostics::{Code, Diagnostic};
use crate::source::{SourceMap, Span};

/// Parses `text` (the rendered field) as one expression. `span` is the
/// field's span in its YAML file; `exact` says whether `text` is the file
/// text itself (no templating happened), so error positions can be shifted
/// onto it.
pub fn parse_expr(text: &str, span: Span, sources: &SourceMap) -> Result<SqlExpr, Diagnostic> {
    let dialect = DuckDbDialect {};
    let result = Parser::new(&dialect).try_with_sql(text).and_then(|mut p| {
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
        Ok(expr) => Ok(SqlExpr {
            expr,
            text: text.to_string(),
            span,
        }),
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
    let result = Parser::new(&dialect).try_with_sql(text).and_then(|mut p| {
        let q = p.parse_query()?;
        while p.consume_token(&Token::SemiColon) {}
        match p.peek_token().token {
            Token::EOF => Ok(q),
            other => Err(ParserError::ParserError(format!(
                "unexpected `{other}` after the query: a source holds one SELECT"
            ))),
        }
    });
    result.map_err(|e| syntax_error(e, text, span, sources))
}

/// Parses a dotted relation name (`analytics.fct_orders`).
pub fn parse_object_name(
    text: &str,
    span: Span,
    sources: &SourceMap,
) -> Result<ast::ObjectName, Diagnostic> {
    let dialect = DuckDbDialect {};
    let result = Parser::new(&dialect).try_with_sql(text).and_then(|mut p| {
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

fn syntax_error(e: ParserError, text: &str, span: Span, sources: &SourceMap) -> Diagnostic {
    let message = match &e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "expression nested too deeply".to_string(),
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
    fn expression_parses() {
        let text = "sum(amount) filter (where x > 1)";
        let (sources, span) = map(text);
        assert!(parse_expr(text, span, &sources).is_ok());
    }
}

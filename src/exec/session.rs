//! A read-only query session for `kpic explain`: the project's database
//! opened read-only (or an in-memory one), the compiled steps that are
//! worth sharing materialized as temporary tables, then any number of
//! SELECTs read back as plain cells. Nothing is written to the database.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use duckdb::Connection;
use duckdb::types::ValueRef;

use super::{configure, first_lines, open_read_only, with_timeout};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::Project;
use crate::sql::CompiledSql;

/// One value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Number(f64),
    Text(String),
    Bool(bool),
}

impl Cell {
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Number(v) => Some(*v),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }
}

pub struct Session {
    conn: Connection,
    /// Steps materialized as temporary tables.
    pub materialized: BTreeSet<String>,
    timeout: Option<Duration>,
}

impl Session {
    /// Opens `database` read-only when it exists, an in-memory database
    /// otherwise.
    pub fn open(
        project: &Project,
        database: Option<&Path>,
        memory_limit: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Session, Diagnostic> {
        let conn = match database.filter(|p| p.is_file()) {
            Some(p) => open_read_only(p),
            None => Connection::open_in_memory(),
        }
        .map_err(|e| {
            Diagnostic::new(Code::Database, format!("cannot open DuckDB: {e}"))
                .with_help("check the database path and that no other process is writing to it")
        })?;
        Session::on(conn, project, memory_limit, timeout)
    }

    /// A session on a connection already open on the same database (read-only
    /// or in memory): the catalog's, which has read the sources' schemas.
    pub fn on(
        conn: Connection,
        project: &Project,
        memory_limit: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Session, Diagnostic> {
        configure(&conn, &project.root, memory_limit).map_err(|e| {
            Diagnostic::new(Code::Database, format!("cannot configure DuckDB: {e}"))
                .with_help("a memory limit looks like `2GB` or `512MB`")
        })?;
        Ok(Session {
            conn,
            materialized: BTreeSet::new(),
            timeout,
        })
    }

    /// Materializes the compiled SQL's shared steps (aggregates, and scans
    /// several steps read) as temporary tables; later SELECTs read them.
    pub fn materialize(&mut self, compiled: &CompiledSql) -> Result<(), Diagnostic> {
        let (statements, materialized) = compiled.setup_statements();
        for st in statements {
            self.execute(&st.sql, &st.label)?;
        }
        self.materialized = materialized;
        Ok(())
    }

    fn execute(&self, sql: &str, label: &str) -> Result<(), Diagnostic> {
        let (result, timed_out) =
            with_timeout(&self.conn, self.timeout, || self.conn.execute_batch(sql));
        result.map_err(|e| failure(label, &e.to_string(), timed_out))
    }

    /// Closes the connection on a thread of its own: freeing DuckDB's
    /// buffers and temporary tables takes milliseconds nobody waits for
    /// (the process may exit first; the session wrote nothing).
    pub fn close_in_background(self) {
        let conn = self.conn;
        let spawned = std::thread::Builder::new()
            .name("kpic-close".into())
            .spawn(move || drop(conn));
        // Without a thread, the connection is closed here instead.
        drop(spawned);
    }

    /// Runs a SELECT and reads every row.
    pub fn rows(&self, sql: &str, label: &str) -> Result<Vec<Vec<Cell>>, Diagnostic> {
        let (result, timed_out) = with_timeout(&self.conn, self.timeout, || {
            let mut st = self.conn.prepare(sql)?;
            let mut rows = st.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let n = row.as_ref().column_count();
                let mut cells = Vec::with_capacity(n);
                for i in 0..n {
                    cells.push(cell(row.get_ref(i)?));
                }
                out.push(cells);
            }
            Ok::<_, duckdb::Error>(out)
        });
        result.map_err(|e| failure(label, &e.to_string(), timed_out))
    }
}

fn failure(label: &str, e: &str, timed_out: bool) -> Diagnostic {
    if timed_out {
        Diagnostic::new(
            Code::Timeout,
            format!("`{label}` took longer than the timeout"),
        )
    } else {
        Diagnostic::new(
            Code::QueryFailed,
            format!("`{label}` failed: {}", first_lines(e)),
        )
        .with_help("run `kpic compile` to read the SQL")
    }
}

fn cell(v: ValueRef<'_>) -> Cell {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Boolean(b) => Cell::Bool(b),
        ValueRef::TinyInt(i) => Cell::Number(i as f64),
        ValueRef::SmallInt(i) => Cell::Number(i as f64),
        ValueRef::Int(i) => Cell::Number(i as f64),
        ValueRef::BigInt(i) => Cell::Number(i as f64),
        ValueRef::HugeInt(i) => Cell::Number(i as f64),
        ValueRef::UTinyInt(i) => Cell::Number(i as f64),
        ValueRef::USmallInt(i) => Cell::Number(i as f64),
        ValueRef::UInt(i) => Cell::Number(i as f64),
        ValueRef::UBigInt(i) => Cell::Number(i as f64),
        ValueRef::Float(f) => Cell::Number(f as f64),
        ValueRef::Double(f) => Cell::Number(f),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        // Everything else is read through a CAST in kpic's own SELECTs.
        _ => Cell::Null,
    }
}

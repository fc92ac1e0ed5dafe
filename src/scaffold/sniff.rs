//! Sniffing one CSV file with DuckDB: in goes a path, out comes a
//! [`SniffedFile`] (row count, delimiter, header, and per column its DuckDB
//! type, non-null and distinct counts, and for a possible time column its
//! range). The file is read with the very `read_csv_auto` call kpic's
//! sources use (see [`crate::sql::Dialect::file_relation`]), so the types
//! seen here are the types `kpic run` will see.

use std::io::Read;
use std::path::Path;

use duckdb::Connection;

use super::ScaffoldError;

#[derive(Debug, Clone)]
pub struct SniffedFile {
    pub rows: i64,
    /// As `sniff_csv` reports them (None when it could not tell).
    pub delimiter: Option<String>,
    pub has_header: Option<bool>,
    pub columns: Vec<SniffedColumn>,
}

#[derive(Debug, Clone)]
pub struct SniffedColumn {
    /// The name DuckDB gives the column (duplicates already renamed).
    pub name: String,
    /// DuckDB's type, e.g. `BIGINT`, `DOUBLE`, `DATE`, `VARCHAR`.
    pub data_type: String,
    pub non_null: i64,
    pub distinct: i64,
    /// For DATE/TIMESTAMP columns, and text columns whose name says time.
    pub time: Option<TimeStats>,
}

#[derive(Debug, Clone)]
pub struct TimeStats {
    /// How the column becomes a time.
    pub read_as: TimeRead,
    /// Values that are (or parse as) a time.
    pub valid: i64,
    pub min: Option<String>,
    pub max: Option<String>,
    /// Days from the earliest to the latest value.
    pub span_days: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRead {
    /// A DATE or TIMESTAMP column, as it is.
    Typed,
    /// TIMESTAMP WITH TIME ZONE, cast to TIMESTAMP (UTC): the bundled
    /// DuckDB has no time zone library to cut it into dates.
    FromTimeZone,
    /// Text, `TRY_CAST` to TIMESTAMP (values that do not parse are NULL).
    FromText,
}

impl TimeRead {
    /// The SQL that reads `ident` (a quoted or bare column) as a time.
    pub fn expr(self, ident: &str) -> String {
        match self {
            TimeRead::Typed => ident.to_string(),
            TimeRead::FromTimeZone => format!("CAST({ident} AS TIMESTAMP)"),
            TimeRead::FromText => format!("TRY_CAST({ident} AS TIMESTAMP)"),
        }
    }
}

impl SniffedColumn {
    pub fn is_integer(&self) -> bool {
        matches!(
            self.data_type.as_str(),
            "TINYINT"
                | "SMALLINT"
                | "INTEGER"
                | "BIGINT"
                | "HUGEINT"
                | "UTINYINT"
                | "USMALLINT"
                | "UINTEGER"
                | "UBIGINT"
                | "UHUGEINT"
        )
    }

    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(self.data_type.as_str(), "FLOAT" | "DOUBLE")
            || self.data_type.starts_with("DECIMAL")
    }

    pub fn is_temporal(&self) -> bool {
        is_temporal_type(&self.data_type)
    }

    pub fn is_text(&self) -> bool {
        self.data_type == "VARCHAR"
    }
}

fn is_temporal_type(t: &str) -> bool {
    t == "DATE" || t.starts_with("TIMESTAMP")
}

/// A name that says "this is when": `date`, `created`, `*_at`, `*_date`…
pub fn time_like_name(sanitized: &str) -> bool {
    const WHOLE: &[&str] = &[
        "date",
        "day",
        "time",
        "timestamp",
        "datetime",
        "created",
        "updated",
        "ts",
        "when",
    ];
    const SUFFIXES: &[&str] = &["_at", "_date", "_time", "_day", "_ts", "_on", "_timestamp"];
    WHOLE.contains(&sanitized)
        || SUFFIXES.iter().any(|s| sanitized.ends_with(s))
        || sanitized.starts_with("date_")
}

/// `"name"` with inner quotes doubled: a DuckDB identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Cheap checks before DuckDB sees the file, for clearer errors than the
/// CSV reader's: missing, not a regular file, empty, binary, a header that
/// is not UTF-8, gzip data under a name without `.gz`.
pub fn precheck(path: &Path) -> Result<(), ScaffoldError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        ScaffoldError::new(format!("cannot read `{shown}`: {e}"))
            .help("check the path (relative to the current directory)")
    })?;
    if !meta.is_file() {
        return Err(ScaffoldError::new(format!("`{shown}` is not a file"))
            .help("pass CSV files (a directory's files with a shell glob: dir/*.csv)"));
    }
    if meta.len() == 0 {
        return Err(
            ScaffoldError::new(format!("`{shown}` is empty: no header, no rows"))
                .help("pass a CSV file with a header line and at least one row"),
        );
    }
    let lower = path.to_string_lossy().to_ascii_lowercase();
    for ext in [".parquet", ".json", ".ndjson", ".jsonl"] {
        if lower.ends_with(ext) {
            return Err(ScaffoldError::new(format!(
                "`{shown}` is not a CSV file (its name ends in `{ext}`)"
            ))
            .help("--from-csv reads CSV files (optionally gzipped); write a source with `path:` for Parquet or JSON"));
        }
    }
    let mut head = Vec::with_capacity(8192);
    std::fs::File::open(path)
        .and_then(|f| f.take(8192).read_to_end(&mut head))
        .map_err(|e| ScaffoldError::new(format!("cannot read `{shown}`: {e}")))?;
    let gzipped = head.starts_with(&[0x1f, 0x8b]);
    if gzipped {
        if !lower.ends_with(".gz") {
            return Err(ScaffoldError::new(format!(
                "`{shown}` is gzip-compressed but its name does not end in `.gz`"
            ))
            .help("rename it to end in `.csv.gz` (DuckDB decompresses by extension)"));
        }
        // Its content is DuckDB's to check.
        return Ok(());
    }
    if head.contains(&0) {
        return Err(
            ScaffoldError::new(format!("`{shown}` is a binary file, not CSV text"))
                .help("pass a CSV file: text, one row per line, a header line first"),
        );
    }
    // The header line, if it is within the first 8 KiB (a cut multi-byte
    // character at the buffer's end must not count as invalid).
    if let Some(end) = head.iter().position(|&b| b == b'\n')
        && std::str::from_utf8(&head[..end]).is_err()
    {
        return Err(not_utf8(path));
    }
    Ok(())
}

fn not_utf8(path: &Path) -> ScaffoldError {
    ScaffoldError::new(format!("`{}` is not UTF-8 text", path.display())).help(
        "kpic (DuckDB) reads CSV as UTF-8: convert it first, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`",
    )
}

/// Reads the file's schema and statistics (one scan for the statistics).
pub fn sniff(conn: &Connection, path: &Path) -> Result<SniffedFile, ScaffoldError> {
    precheck(path)?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(abs_str) = absolute.to_str() else {
        return Err(ScaffoldError::new(format!(
            "the path `{}` is not valid UTF-8",
            path.display()
        ))
        .help("rename the file"));
    };
    let relation =
        crate::sql::Dialect::file_relation(&crate::sql::dialect::DuckDb, abs_str, "t").to_string();
    let read_error = |e: duckdb::Error| {
        let text = e.to_string();
        if text.to_ascii_lowercase().contains("unicode") || text.contains("UTF") {
            return not_utf8(path);
        }
        let first = text.lines().next().unwrap_or("").to_string();
        ScaffoldError::new(format!("cannot read `{}` as CSV: {first}", path.display()))
            .help("pass a CSV file (optionally .csv.gz): a header line, then one row per line")
    };

    let columns: Vec<(String, String)> = conn
        .prepare(&format!("DESCRIBE SELECT * FROM {relation}"))
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect()
        })
        .map_err(read_error)?;
    if columns.is_empty() {
        return Err(ScaffoldError::new(format!(
            "`{}` has no columns",
            path.display()
        )));
    }

    // One statistics query; `layout` remembers which select items belong
    // to which column.
    let mut items = vec!["count(*)".to_string()];
    let mut time_items: Vec<Option<(usize, TimeRead)>> = Vec::new();
    for (name, data_type) in &columns {
        let q = quote_ident(name);
        items.push(format!("count({q})"));
        items.push(format!("count(DISTINCT {q})"));
        let sanitized = super::names::sanitize(name);
        let read_as = if data_type.starts_with("TIMESTAMP WITH TIME ZONE") {
            Some(TimeRead::FromTimeZone)
        } else if is_temporal_type(data_type) {
            Some(TimeRead::Typed)
        } else if data_type == "VARCHAR" && time_like_name(&sanitized) {
            Some(TimeRead::FromText)
        } else {
            None
        };
        match read_as {
            Some(how) => {
                let t = how.expr(&q);
                time_items.push(Some((items.len(), how)));
                items.push(format!("count({t})"));
                items.push(format!("CAST(min({t}) AS VARCHAR)"));
                items.push(format!("CAST(max({t}) AS VARCHAR)"));
                items.push(format!(
                    "date_diff('day', CAST(min({t}) AS DATE), CAST(max({t}) AS DATE))"
                ));
            }
            None => time_items.push(None),
        }
    }
    let sql = format!("SELECT {} FROM {relation}", items.join(", "));
    let sniffed = conn
        .query_row(&sql, [], |r| {
            let rows: i64 = r.get(0)?;
            let mut out = Vec::with_capacity(columns.len());
            let mut i = 1;
            for ((name, data_type), time) in columns.iter().zip(&time_items) {
                let non_null: i64 = r.get(i)?;
                let distinct: i64 = r.get(i + 1)?;
                i += 2;
                let time = match time {
                    Some((at, how)) => {
                        i += 4;
                        Some(TimeStats {
                            read_as: *how,
                            valid: r.get(*at)?,
                            min: r.get(at + 1)?,
                            max: r.get(at + 2)?,
                            span_days: r.get(at + 3)?,
                        })
                    }
                    None => None,
                };
                out.push(SniffedColumn {
                    name: name.clone(),
                    data_type: data_type.clone(),
                    non_null,
                    distinct,
                    time,
                });
            }
            Ok((rows, out))
        })
        .map_err(read_error)?;
    let (rows, columns) = sniffed;

    // The dialect as DuckDB's sniffer saw it, for the summary only.
    let dialect = conn
        .query_row(
            &format!(
                "SELECT Delimiter, HasHeader FROM sniff_csv({})",
                sql_string(abs_str)
            ),
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
        )
        .ok();
    Ok(SniffedFile {
        rows,
        delimiter: dialect.as_ref().map(|d| d.0.clone()),
        has_header: dialect.map(|d| d.1),
        columns,
    })
}

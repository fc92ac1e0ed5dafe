//! `kpic init --from-csv`: from CSV files to a starter project. In: the
//! project directory and the CSV paths. Out: a [`Scaffold`], the list of
//! files to write (YAML and README text, or a CSV to copy) and a summary
//! line per input; the CLI checks that none exists and writes them.
//!
//! Each file is sniffed with DuckDB ([`sniff`]) and its columns get a role:
//! - the **time** column: DATE/TIMESTAMP, or text named like a time
//!   (`*_at`, `*_date`, `created`…) whose values parse as timestamps; the
//!   one with the most non-null, then distinct, values;
//! - **dimensions**: text or boolean columns with at most 50 distinct
//!   values and at most one per two rows;
//! - **identifiers**: `id`, `*_id`, or integers unique on every row:
//!   `count(distinct …)` metrics;
//! - **measures**: other numeric columns: a `sum` metric, and an `avg` one
//!   for non-integer columns (amounts, durations; an average of counts is
//!   rarely what is meant);
//! - every file gets a `count(*)` metric.
//!
//! A file with a time column gets two KPIs (its row count and the sum of its
//! first measure) at a grain fitted to its time span (day under 60 days,
//! week under a year, month beyond), broken down by its dimensions, with
//! owner, target and action plan left as commented TODOs so that
//! `kpic check` shows the hygiene warnings until a person fills them in.
//!
//! Files outside the project directory are copied into
//! `fixtures/data/<source>.csv[.gz]` (the project is self-contained and
//! its paths are plain); files already inside it are referenced in place.

pub mod names;
pub mod sniff;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use names::{Namer, display, jinja_safe, sanitize, sql_ident, yaml};
use sniff::{SniffedColumn, SniffedFile, TimeRead};

/// Why the scaffold cannot be written.
#[derive(Debug, Clone)]
pub struct ScaffoldError {
    pub message: String,
    pub help: Option<String>,
}

impl ScaffoldError {
    pub fn new(message: impl Into<String>) -> ScaffoldError {
        ScaffoldError {
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> ScaffoldError {
        self.help = Some(help.into());
        self
    }
}

/// What to write, relative to the project directory.
#[derive(Debug)]
pub struct Scaffold {
    pub files: Vec<PlannedFile>,
    /// One line per input file, for the terminal.
    pub summary: Vec<String>,
}

#[derive(Debug)]
pub struct PlannedFile {
    pub rel: PathBuf,
    pub content: Content,
}

#[derive(Debug)]
pub enum Content {
    Text(String),
    /// Copy this input file.
    CopyOf(PathBuf),
}

/// Largest number of distinct values of a dimension.
const MAX_DIMENSION_MEMBERS: i64 = 50;
/// The uniqueness test for integer IDs needs enough rows to mean anything.
const MIN_ROWS_FOR_UNIQUE_ID: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    Day,
    Week,
    Month,
}

impl Grain {
    fn for_span(days: i64) -> Grain {
        if days < 60 {
            Grain::Day
        } else if days < 366 {
            Grain::Week
        } else {
            Grain::Month
        }
    }

    fn name(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
        }
    }

    fn adjective(self) -> &'static str {
        match self {
            Grain::Day => "daily",
            Grain::Week => "weekly",
            Grain::Month => "monthly",
        }
    }
}

/// The role of a column in the generated source.
#[derive(Debug)]
enum Role {
    Time,
    Dimension,
    Identifier,
    Measure { avg: bool },
    Ignored(String),
}

struct PlannedSource {
    file_label: String,
    name: String,
    path: String,
    sniffed: SniffedFile,
    /// (column, sql identifier, role), in file order.
    columns: Vec<(SniffedColumn, String, Role)>,
    time: Option<(String, String, Grain)>,
    /// (dimension name, column, sql identifier)
    dimensions: Vec<(String, String, String)>,
    metrics: Vec<PlannedMetric>,
    /// The sum metric of the first measure column, if any.
    first_sum: Option<String>,
    kpis: Vec<PlannedKpi>,
}

struct PlannedMetric {
    name: String,
    label: String,
    description: String,
    measure: String,
}

struct PlannedKpi {
    name: String,
    metric: String,
    label: String,
    description: String,
}

/// Sniffs `inputs` and plans the project in `dir` (nothing is written).
pub fn scaffold(dir: &Path, inputs: &[PathBuf]) -> Result<Scaffold, ScaffoldError> {
    let mut seen = HashSet::new();
    for input in inputs {
        sniff::precheck(input)?;
        let canonical = std::fs::canonicalize(input).unwrap_or_else(|_| input.clone());
        if !seen.insert(canonical) {
            return Err(
                ScaffoldError::new(format!("`{}` is given twice", input.display()))
                    .help("pass each file once"),
            );
        }
    }
    let conn = duckdb::Connection::open_in_memory()
        .map_err(|e| ScaffoldError::new(format!("cannot start DuckDB: {e}")))?;
    let keywords = duckdb_keywords(&conn);
    let dir_canonical = std::fs::canonicalize(dir).ok();

    let mut source_names = Namer::default();
    let mut metric_names = Namer::default();
    let mut kpi_names = Namer::default();
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for input in inputs {
        let sniffed = sniff::sniff(&conn, input)?;
        let file_label = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| input.display().to_string());
        if sniffed.rows == 0 {
            return Err(ScaffoldError::new(format!(
                "`{}` has a header but no rows",
                input.display()
            ))
            .help("kpic init sniffs types and the time column from the rows: pass a file with data (or write its source by hand)"));
        }
        let (stem, extension) = stem_and_extension(&file_label);
        let name = source_names.unique(&stem, "data");
        let inside = dir_canonical.as_ref().and_then(|d| {
            let file = std::fs::canonicalize(input).ok()?;
            let rel = file.strip_prefix(d).ok()?;
            rel_to_slash(rel)
        });
        let path = match inside {
            Some(rel) => rel,
            None => {
                let rel = format!("fixtures/data/{name}{extension}");
                files.push(PlannedFile {
                    rel: PathBuf::from(&rel),
                    content: Content::CopyOf(input.clone()),
                });
                rel
            }
        };
        let mut source = plan_source(file_label, name, path, sniffed, &keywords);
        add_metrics(&mut source, &mut metric_names);
        add_kpis(&mut source, &mut kpi_names);
        sources.push(source);
    }

    let summary = sources.iter().map(summary_line).collect();
    let project_name = dir
        .canonicalize()
        .ok()
        .or_else(|| std::path::absolute(dir).ok())
        .and_then(|d| d.file_name().map(|n| sanitize(&n.to_string_lossy())))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "csv_kpis".to_string());
    files.push(text("kpic.yml", kpic_yml(&project_name)));
    files.push(text("models/sources.yml", sources_yml(&sources)));
    files.push(text("models/metrics.yml", metrics_yml(&sources)));
    if sources.iter().any(|s| !s.kpis.is_empty()) {
        files.push(text("models/kpis.yml", kpis_yml(&sources)));
    }
    files.push(text("README.md", readme(&project_name, &sources)));
    Ok(Scaffold { files, summary })
}

fn text(rel: &str, content: String) -> PlannedFile {
    PlannedFile {
        rel: PathBuf::from(rel),
        content: Content::Text(content),
    }
}

/// DuckDB's keywords that are reserved somewhere (lower case): quoted
/// when they name a column.
fn duckdb_keywords(conn: &duckdb::Connection) -> HashSet<String> {
    conn.prepare(
        "SELECT lower(keyword_name) FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'",
    )
    .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
    .unwrap_or_default()
}

/// `sales.csv.gz` → (`sales`, `.csv.gz`); `data` → (`data`, `.csv`).
fn stem_and_extension(file_name: &str) -> (String, String) {
    let (rest, gz) = match file_name.strip_suffix(".gz") {
        Some(r) => (r, ".gz"),
        None => (file_name, ""),
    };
    match rest.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && sanitize(ext) == ext.to_ascii_lowercase() => (
            stem.to_string(),
            format!(".{}{gz}", ext.to_ascii_lowercase()),
        ),
        _ => (rest.to_string(), format!(".csv{gz}")),
    }
}

/// A relative path with `/` separators, if it is plain (no `..`).
fn rel_to_slash(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn plan_source(
    file_label: String,
    name: String,
    path: String,
    sniffed: SniffedFile,
    keywords: &HashSet<String>,
) -> PlannedSource {
    let rows = sniffed.rows;
    // The time column: the most filled, then the most varied.
    let time_index = sniffed
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let t = c.time.as_ref()?;
            let usable = t.valid > 0
                && (t.read_as != TimeRead::FromText || t.valid * 10 >= c.non_null * 9)
                && jinja_safe(&sql_ident(&c.name, keywords)).is_some();
            usable.then_some((i, t.valid, c.distinct))
        })
        .max_by_key(|&(i, valid, distinct)| (valid, distinct, std::cmp::Reverse(i)))
        .map(|(i, _, _)| i);

    let mut dimension_names = Namer::default();
    let mut columns = Vec::new();
    let mut dimensions = Vec::new();
    let mut time = None;
    for (i, c) in sniffed.columns.iter().enumerate() {
        let ident = sql_ident(&c.name, keywords);
        let key = sanitize(&c.name);
        let id_name = key == "id" || key.ends_with("_id");
        let role = if jinja_safe(&ident).is_none() {
            Role::Ignored("its name cannot be written in a SQL field".into())
        } else if Some(i) == time_index {
            let t = c.time.as_ref().expect("the time column has time stats");
            let expr = t.read_as.expr(&ident);
            let grain = Grain::for_span(t.span_days.unwrap_or(0));
            let range = format!(
                "{}, {} to {}",
                match t.read_as {
                    TimeRead::Typed => c.data_type.as_str(),
                    TimeRead::FromTimeZone => "TIMESTAMP WITH TIME ZONE, read in UTC",
                    TimeRead::FromText => "text parsed as TIMESTAMP",
                },
                t.min.as_deref().unwrap_or("?"),
                t.max.as_deref().unwrap_or("?")
            );
            time = Some((expr, range, grain));
            Role::Time
        } else if c.non_null == 0 {
            Role::Ignored("always empty".into())
        } else if c.is_numeric() {
            let unique_integer = c.is_integer()
                && rows >= MIN_ROWS_FOR_UNIQUE_ID
                && c.distinct == rows
                && c.non_null == rows;
            if id_name || unique_integer {
                Role::Identifier
            } else {
                Role::Measure {
                    avg: !c.is_integer(),
                }
            }
        } else if c.is_text() || c.data_type == "BOOLEAN" {
            if id_name {
                Role::Identifier
            } else if c.distinct <= MAX_DIMENSION_MEMBERS && c.distinct * 2 <= rows {
                Role::Dimension
            } else {
                Role::Ignored(format!(
                    "{} distinct values in {rows} rows: too many for a dimension",
                    c.distinct
                ))
            }
        } else if c.is_temporal() {
            Role::Ignored("another time column (make it `time:` to use it instead)".into())
        } else {
            Role::Ignored(format!("type {}", c.data_type))
        };
        if matches!(role, Role::Dimension) {
            let dim = dimension_names.unique(&c.name, "dimension");
            dimensions.push((dim, c.name.clone(), ident.clone()));
        }
        columns.push((c.clone(), ident, role));
    }
    PlannedSource {
        file_label,
        name,
        path,
        sniffed,
        columns,
        time,
        dimensions,
        metrics: Vec::new(),
        first_sum: None,
        kpis: Vec::new(),
    }
}

fn add_metrics(source: &mut PlannedSource, names: &mut Namer) {
    let s = &source.name;
    let file = &source.file_label;
    let mut metrics = vec![PlannedMetric {
        name: names.unique(&format!("{s}_rows"), "rows"),
        label: format!("Rows of {file}"),
        description: format!("The number of rows of {file}."),
        measure: "count(*)".into(),
    }];
    let mut first_sum = None;
    for (c, ident, role) in &source.columns {
        let col = display(&c.name);
        let key = match sanitize(&c.name) {
            k if k.is_empty() => "col".to_string(),
            k => k,
        };
        let wrap = |sql: String| jinja_safe(&sql).expect("checked when the role was given");
        match role {
            Role::Identifier => metrics.push(PlannedMetric {
                name: names.unique(&format!("{s}_distinct_{key}"), "distinct"),
                label: format!("Distinct {col}"),
                description: format!("The number of distinct values of `{col}` in {file}."),
                measure: wrap(format!("count(DISTINCT {ident})")),
            }),
            Role::Measure { avg } => {
                let name = names.unique(&format!("{s}_{key}"), "measure");
                first_sum.get_or_insert_with(|| name.clone());
                metrics.push(PlannedMetric {
                    name,
                    label: format!("{col} (sum)"),
                    description: format!("The sum of `{col}` in {file}."),
                    measure: wrap(format!("sum({ident})")),
                });
                if *avg {
                    metrics.push(PlannedMetric {
                        name: names.unique(&format!("{s}_{key}_avg"), "average"),
                        label: format!("{col} (average)"),
                        description: format!("The average of `{col}` per row of {file}."),
                        measure: wrap(format!("avg({ident})")),
                    });
                }
            }
            _ => {}
        }
    }
    source.metrics = metrics;
    source.first_sum = first_sum;
}

/// Two KPIs per timed file: its row count and its first measure's sum.
fn add_kpis(source: &mut PlannedSource, names: &mut Namer) {
    let Some((_, _, grain)) = source.time else {
        return;
    };
    let mut chosen = vec![&source.metrics[0]];
    if let Some(first_sum) = &source.first_sum
        && let Some(m) = source.metrics.iter().find(|m| &m.name == first_sum)
    {
        chosen.push(m);
    }
    let mut kpis = Vec::new();
    for m in chosen {
        kpis.push(PlannedKpi {
            name: names.unique(&format!("{}_{}", m.name, grain.adjective()), "kpi"),
            metric: m.name.clone(),
            label: format!("{} per {}", m.label, grain.name()),
            description: format!("{} TODO: say what it means for the team.", m.description),
        });
    }
    source.kpis = kpis;
}

fn summary_line(s: &PlannedSource) -> String {
    let mut line = format!(
        "{}: {} rows, {} columns",
        display(&s.file_label),
        s.sniffed.rows,
        s.columns.len()
    );
    if let Some(d) = &s.sniffed.delimiter {
        let _ = write!(line, ", delimiter {d:?}");
    }
    match &s.time {
        Some((expr, range, grain)) => {
            let _ = write!(
                line,
                "; time `{}` ({range}) -> {} KPIs by {}",
                display(expr),
                s.kpis.len(),
                grain.name()
            );
        }
        None => line.push_str("; no time column -> no KPI"),
    }
    let _ = write!(
        line,
        "; {} dimensions, {} metrics",
        s.dimensions.len(),
        s.metrics.len()
    );
    line
}

fn kpic_yml(name: &str) -> String {
    format!(
        "# A kpic project over CSV files, written by `kpic init --from-csv`.\n\
         # Every key is optional; these are the defaults, spelled out.\n\
         name: {}\n\
         models: [models]      # sources.yml, metrics.yml, kpis.yml\n\
         target: target        # where kpic writes compiled SQL and the DuckDB file\n\
         warehouse:\n  dialect: duckdb\n  database: target/kpic.duckdb\n\
         # as_of: latest       # the latest date in the data (default), `today`, or a date\n",
        yaml(name)
    )
}

fn sources_yml(sources: &[PlannedSource]) -> String {
    let mut y = String::from(
        "# Sources: one per CSV file, sniffed by `kpic init --from-csv`.\n\
         # `time` is the column periods are cut on; dimensions are the columns\n\
         # KPIs are broken down by. Column names that are not plain lower-case\n\
         # identifiers are double-quoted SQL identifiers.\n\nsources:\n",
    );
    for s in sources {
        let _ = writeln!(y, "  - name: {}", s.name);
        let mut description = format!("{}: {} rows", s.file_label, s.sniffed.rows);
        if let Some(d) = &s.sniffed.delimiter {
            let _ = write!(description, ", delimiter {d:?}");
        }
        if s.sniffed.has_header == Some(false) {
            description.push_str(", no header line (columns are named column0, column1, ...)");
        }
        let _ = writeln!(y, "    description: {}", yaml(&description));
        let _ = writeln!(y, "    path: {}", yaml(&s.path));
        match &s.time {
            Some((expr, range, _)) => {
                let _ = writeln!(
                    y,
                    "    time: {}   # {}",
                    yaml(&sql_field(expr)),
                    display(range)
                );
            }
            None => y.push_str(
                "    # No time column was found (no DATE or TIMESTAMP column, nor a text\n\
                 \x20   # column named like a date whose values parse as timestamps), so\n\
                 \x20   # this source has no KPI: a KPI is a metric per period and needs a\n\
                 \x20   # time axis. Add `time: <column>` here and a KPI in models/kpis.yml.\n",
            ),
        }
        if !s.dimensions.is_empty() {
            y.push_str("    dimensions:\n");
            for (name, column, ident) in &s.dimensions {
                if name == ident {
                    let _ = writeln!(y, "      - {}", yaml(name));
                } else {
                    let _ = writeln!(y, "      - name: {}", yaml(name));
                    let _ = writeln!(y, "        expr: {}", yaml(&sql_field(ident)));
                    let _ = writeln!(y, "        label: {}", yaml(column));
                }
            }
        }
        let ignored: Vec<String> = s
            .columns
            .iter()
            .filter_map(|(c, _, r)| match r {
                Role::Ignored(why) => Some(format!("{} ({why})", display(&c.name))),
                _ => None,
            })
            .collect();
        for line in ignored {
            let _ = writeln!(y, "    # not used: {line}");
        }
        y.push('\n');
    }
    y
}

/// A SQL field as written in YAML: safe from Jinja (every column that got
/// a role passed [`jinja_safe`]).
fn sql_field(sql: &str) -> String {
    jinja_safe(sql).unwrap_or_else(|| sql.to_string())
}

fn metrics_yml(sources: &[PlannedSource]) -> String {
    let mut y = String::from(
        "# Metrics: a row count per file, a distinct count per identifier column,\n\
         # a sum (and for non-integer columns an average) per numeric column.\n\
         # Keep the ones that mean something; add derived ones with `expr:`.\n\nmetrics:\n",
    );
    for s in sources {
        for m in &s.metrics {
            let _ = writeln!(y, "  - name: {}", m.name);
            let _ = writeln!(y, "    label: {}", yaml(&m.label));
            let _ = writeln!(y, "    description: {}", yaml(&m.description));
            let _ = writeln!(y, "    source: {}", s.name);
            let _ = writeln!(y, "    measure: {}", yaml(&m.measure));
            y.push('\n');
        }
    }
    y
}

fn kpis_yml(sources: &[PlannedSource]) -> String {
    let mut y = String::from(
        "# KPIs: starters, two per file with a time column. A KPI needs an owner,\n\
         # a target and an action plan: they are left as TODO comments below,\n\
         # and `kpic check` warns (KPI252-254) until you fill them in. Keep the\n\
         # 3-5 KPIs your team stakes its success on; demote the others to metrics.\n\nkpis:\n",
    );
    for s in sources {
        let Some((_, _, grain)) = &s.time else {
            continue;
        };
        for k in &s.kpis {
            let _ = writeln!(y, "  - name: {}", k.name);
            let _ = writeln!(y, "    metric: {}", k.metric);
            let _ = writeln!(y, "    label: {}", yaml(&k.label));
            let _ = writeln!(y, "    description: {}", yaml(&k.description));
            let _ = writeln!(y, "    grain: {}", grain.name());
            y.push_str("    direction: higher_is_better   # TODO: or lower_is_better\n");
            if !s.dimensions.is_empty() {
                let names: Vec<String> = s.dimensions.iter().map(|d| yaml(&d.0)).collect();
                let _ = writeln!(y, "    breakdowns: [{}]", names.join(", "));
            }
            y.push_str(
                "    # TODO: who answers for this KPI, the number to reach per period,\n\
                 \x20   # and what the owner does when it is off track:\n\
                 \x20   # owner: TODO-team\n\
                 \x20   # target: 1000                 # or {change: +10%, vs: last_year}\n\
                 \x20   # action_plan: TODO\n\n",
            );
        }
    }
    y
}

fn md(s: &str) -> String {
    display(s).replace('`', "'")
}

fn readme(name: &str, sources: &[PlannedSource]) -> String {
    let mut r = format!(
        "# {}\n\nA starter kpic project written by `kpic init --from-csv` from {} CSV file(s).\n\n\
         ```\nkpic check     # validate; warns about the KPI fields left TODO\n\
         kpic run       # compute the KPI tables into target/kpic.duckdb\n```\n\n\
         What was sniffed (with DuckDB's `read_csv_auto`, as `kpic run` reads the files):\n\n",
        md(name),
        sources.len()
    );
    for s in sources {
        let _ = writeln!(r, "## `{}` (source `{}`)\n", md(&s.file_label), s.name);
        let _ = writeln!(r, "- path: `{}`; {} rows", md(&s.path), s.sniffed.rows);
        match &s.time {
            Some((expr, range, grain)) => {
                let _ = writeln!(
                    r,
                    "- time: `{}` ({}); KPIs by {} (day under 60 days of data, week under a year, month beyond)",
                    md(expr),
                    md(range),
                    grain.name()
                );
            }
            None => {
                let _ = writeln!(
                    r,
                    "- no time column: metrics only, no KPI (a KPI needs a time axis; add `time:` to the source)"
                );
            }
        }
        for (c, _, role) in &s.columns {
            let what = match role {
                Role::Time => "time".to_string(),
                Role::Dimension => "dimension".to_string(),
                Role::Identifier => "identifier: count(distinct)".to_string(),
                Role::Measure { avg: true } => "measure: sum, avg".to_string(),
                Role::Measure { avg: false } => "measure: sum".to_string(),
                Role::Ignored(why) => format!("not used: {why}"),
            };
            let _ = writeln!(
                r,
                "- column `{}` ({}): {}",
                md(&c.name),
                c.data_type,
                md(&what)
            );
        }
        r.push('\n');
    }
    r.push_str(
        "## Next steps\n\n\
         1. In `models/kpis.yml`, give each KPI you keep an `owner`, a `target` and an\n\
         \x20  `action_plan` (they are TODO comments), and check its `direction`.\n\
         2. Delete the metrics and KPIs that mean nothing to your team.\n\
         3. Add joins between sources (`joins:` in `models/sources.yml`) and derived\n\
         \x20  metrics (`expr:` in `models/metrics.yml`).\n",
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_extensions() {
        assert_eq!(
            stem_and_extension("sales.csv.gz"),
            ("sales".into(), ".csv.gz".into())
        );
        assert_eq!(
            stem_and_extension("Sales 2024.TSV"),
            ("Sales 2024".into(), ".tsv".into())
        );
        assert_eq!(stem_and_extension("data"), ("data".into(), ".csv".into()));
        assert_eq!(stem_and_extension("a.b c"), ("a.b c".into(), ".csv".into()));
    }

    #[test]
    fn grain_follows_the_span() {
        assert_eq!(Grain::for_span(0), Grain::Day);
        assert_eq!(Grain::for_span(59), Grain::Day);
        assert_eq!(Grain::for_span(60), Grain::Week);
        assert_eq!(Grain::for_span(365), Grain::Week);
        assert_eq!(Grain::for_span(366), Grain::Month);
    }
}

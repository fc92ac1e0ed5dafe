//! The `kpic` command line: argument parsing (clap), one function per
//! subcommand, printing and exit codes (0 success, 1 the project has
//! errors, 2 usage or environment failure). The only module that prints.

mod dbt;
mod explain;
mod from_csv;
mod import;
mod init;
mod output;
mod progress;
mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostics::{Code, Diagnostic, Diagnostics, render};
use crate::model::{AsOf, parse_as_of};
use crate::plan::PlanOptions;
use crate::semantic::{NoCatalog, SemanticModel};
use crate::source::SourceMap;

#[derive(Parser, Debug)]
#[command(
    name = "kpic",
    version,
    about = "kpic compiles KPI definitions to SQL and runs them"
)]
struct Cli {
    /// The project directory (default: the current directory).
    #[arg(long, global = true, default_value = ".")]
    project: PathBuf,
    /// Print only errors and the requested output.
    #[arg(long, global = true)]
    quiet: bool,
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// The dbt project whose target/manifest.json resolves ref() and
    /// source() (overrides kpic.yml's `dbt.project_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    dbt_project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
enum CheckFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum RunFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scaffold a new project (example models, macros and data), or with
    /// `--from-csv` a starter project over local CSV files.
    Init {
        /// Where to create it (default: the current directory).
        dir: Option<PathBuf>,
        /// Sniff these CSV files and write sources, metrics and KPIs for them.
        #[arg(long, num_args = 1.., value_name = "FILE")]
        from_csv: Vec<PathBuf>,
    },
    /// Load, validate and lint the project; exit 1 on errors.
    Check {
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
        /// Print the documentation of a diagnostic code (e.g. KPI203).
        #[arg(long, value_name = "CODE")]
        explain_code: Option<String>,
    },
    /// List sources, metrics and KPIs with their kinds.
    List {
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
    },
    /// Write the SQL of the output tables for a dialect.
    Compile {
        /// duckdb, postgres, snowflake, bigquery, databricks, redshift, trino or clickhouse;
        /// several comma-separated, or `all` (compiled in parallel, each into <out>/<dialect>).
        #[arg(long)]
        dialect: Option<String>,
        /// Output directory (default: <target>/compiled).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The date whose period is current (YYYY-MM-DD, `latest` or `today`).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Compile, execute on DuckDB, materialize the output tables and print the KPI table.
    Run(RunArgs),
    /// Why did a KPI move: drivers and the segments that explain the change.
    Explain(explain::ExplainArgs),
    /// Write a self-contained HTML KPI report.
    Report(report::ReportArgs),
    /// dbt integration: write the KPI tables as dbt models.
    Dbt {
        #[command(subcommand)]
        command: dbt::DbtCommand,
    },
    /// Import definitions from another tool.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
}

/// How a command ended.
pub enum Outcome {
    Ok,
    ProjectErrors,
    Failure,
}

struct Ctx {
    root: PathBuf,
    quiet: bool,
    /// Colour diagnostics (stderr).
    color: bool,
    /// Colour tables (stdout), decided for stdout on its own: piping the
    /// KPI table into a file must not capture escape codes.
    color_stdout: bool,
}

/// `--dbt-project DIR` (absolute), set once from the command line. Kept
/// outside [`Ctx`] so the commands that build a `Ctx` of their own need
/// not know about it.
static DBT_PROJECT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

impl Ctx {
    fn report(&self, diags: &Diagnostics, sources: &SourceMap) {
        if diags.is_empty() {
            return;
        }
        let diags = diags.clone().sorted();
        let shown = if self.quiet {
            Diagnostics(diags.0.into_iter().filter(|d| d.is_error()).collect())
        } else {
            diags
        };
        if shown.is_empty() {
            return;
        }
        let text = render::human(&shown, sources, self.color);
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    /// The dbt options of analyses (`--dbt-project`).
    fn dbt_options(&self) -> crate::dbt::DbtOptions {
        crate::dbt::DbtOptions {
            project_dir: DBT_PROJECT.get().cloned(),
            emit: false,
        }
    }

    fn info(&self, msg: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{msg}");
        }
    }
}

/// Exit status for diagnostics that stopped a command.
fn failure_kind(diags: &Diagnostics) -> Outcome {
    let environment = diags.iter().filter(|d| d.is_error()).all(|d| {
        matches!(
            d.code,
            Code::Database | Code::Timeout | Code::DialectUnsupported
        )
    });
    if environment {
        Outcome::Failure
    } else {
        Outcome::ProjectErrors
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let color_for = |terminal: bool| match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none() && terminal,
    };
    let color = color_for(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let color_stdout = color_for(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let root = if cli.project.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        cli.project.clone()
    };
    let ctx = Ctx {
        root,
        quiet: cli.quiet,
        color,
        color_stdout,
    };
    if let Some(p) = cli.dbt_project {
        let _ = DBT_PROJECT.set(std::path::absolute(&p).unwrap_or(p));
    }
    let outcome = match cli.command {
        Command::Init { dir, from_csv } if !from_csv.is_empty() => {
            from_csv::init_from_csv(&ctx, dir.as_deref(), &from_csv)
        }
        Command::Init { dir, .. } => init::init(&ctx, dir.as_deref()),
        Command::Check {
            format,
            explain_code,
        } => check(&ctx, format, explain_code),
        Command::List { format } => list(&ctx, format),
        Command::Compile {
            dialect,
            out,
            as_of,
        } => compile(&ctx, dialect, out, as_of),
        Command::Run(args) => run(&ctx, args),
        Command::Explain(args) => explain::explain(&ctx, args),
        Command::Report(args) => report::report(&ctx, args),
        Command::Dbt { command } => dbt::dbt(&ctx, command),
        Command::Import { command } => import::import(&ctx, command),
    };
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::ProjectErrors => ExitCode::from(1),
        Outcome::Failure => ExitCode::from(2),
    }
}

/// Plans the KPIs and binds their aggregates in DuckDB (see
/// [`crate::exec::type_check`]): type errors with a position, before any
/// data is read.
fn bind_in_engine(
    model: &SemanticModel,
    select: &[String],
    database: Option<&Path>,
    conn: Option<&duckdb::Connection>,
) -> Diagnostics {
    let options = PlanOptions {
        as_of: Some(AsOf::Latest),
        select: select.to_vec(),
        local_files: true,
    };
    let plan = match crate::plan::plan_kpis(model, &options) {
        Ok(plan) => plan,
        Err(d) => return d,
    };
    let opened;
    let conn = match conn {
        Some(c) => c,
        None => {
            let database = crate::exec::project_database(&model.project, database);
            match crate::exec::inspection_connection(&model.project.root, database.as_deref()) {
                Some(c) => {
                    opened = c;
                    &opened
                }
                None => return Diagnostics::new(),
            }
        }
    };
    let compiled = crate::sql::plan_to_sql(&plan, model, &crate::sql::dialect::DuckDb);
    crate::exec::type_check(&model.project, &plan, &compiled, conn)
}

/// The project directory must exist (a usage error otherwise: exit 2).
fn require_project_dir(ctx: &Ctx) -> Result<(), Outcome> {
    if ctx.root.is_dir() {
        return Ok(());
    }
    let _ = writeln!(
        std::io::stderr(),
        "error: project directory `{}` does not exist\n  = help: pass --project DIR, or run kpic inside a project (`kpic init DIR` creates one)",
        ctx.root.display()
    );
    Err(Outcome::Failure)
}

/// `--timeout SECONDS`: a positive, representable number of seconds.
fn timeout_arg(seconds: Option<f64>) -> Result<Option<Duration>, Outcome> {
    match seconds.map(|t| (t, Duration::try_from_secs_f64(t))) {
        Some((t, Ok(d))) if t > 0.0 => Ok(Some(d)),
        Some((t, _)) => {
            eprintln!("error: --timeout must be a positive number of seconds, not {t}");
            Err(Outcome::Failure)
        }
        None => Ok(None),
    }
}

/// DuckDB's memory limit: `--memory-limit`, else kpic.yml's
/// `memory_limit`, else 2GB.
fn memory_limit_arg(arg: Option<&str>, model: &SemanticModel) -> Option<String> {
    arg.map(str::to_string)
        .or(model.project.config.memory_limit.clone())
        .or(Some("2GB".into()))
}

/// [`analyze`] with `--db`'s database (relative to the current directory;
/// `:memory:` for none) as the catalog of `table:` sources. Returns the
/// model and the database's absolute path.
fn analyze_with_db(
    ctx: &Ctx,
    db: Option<&Path>,
) -> Result<(SemanticModel, Option<PathBuf>, Option<duckdb::Connection>), Outcome> {
    let db_path = match db {
        Some(p) if p.as_os_str() == ":memory:" => None,
        Some(p) => Some(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
        None => None,
    };
    let mut catalog = crate::exec::DuckDbCatalog::new(&ctx.root, db_path.as_deref());
    let analyzed = analyze(ctx, &mut catalog);
    // The catalog's connection (read-only on the database, or in memory)
    // is handed on, so the database is opened once.
    let conn = catalog.into_connection();
    analyzed.map(|m| (m, db_path, conn))
}

/// load → model → semantic, reporting diagnostics on stderr. `Err` when
/// the project has errors.
fn analyze(
    ctx: &Ctx,
    catalog: &mut dyn crate::semantic::Catalog,
) -> Result<SemanticModel, Outcome> {
    require_project_dir(ctx)?;
    let (model, diags) = crate::analyze_project_with(&ctx.root, catalog, &ctx.dbt_options());
    ctx.report(&diags, &model.sources);
    if diags.has_errors() {
        Err(Outcome::ProjectErrors)
    } else {
        Ok(model)
    }
}

fn check(ctx: &Ctx, format: CheckFormat, explain_code: Option<String>) -> Outcome {
    if let Some(code) = explain_code {
        return match Code::parse(&code) {
            Some(c) => {
                println!("{}: {}\n\n{}", c.as_str(), c.title(), c.doc());
                Outcome::Ok
            }
            None => {
                eprintln!("error: unknown diagnostic code `{code}`");
                Outcome::Failure
            }
        };
    }
    if let Err(o) = require_project_dir(ctx) {
        return o;
    }
    let mut catalog = crate::exec::DuckDbCatalog::new(&ctx.root, None);
    let (model, mut diags) =
        crate::analyze_project_with(&ctx.root, &mut catalog, &ctx.dbt_options());
    let inspection = catalog.into_connection();
    if !diags.has_errors() {
        diags.extend(bind_in_engine(&model, &[], None, inspection.as_ref()));
    }
    if !diags.has_errors() {
        diags.extend(crate::explain::decomposition_check(&model, None));
    }
    match format {
        CheckFormat::Json => println!("{}", render::json(&diags.clone().sorted(), &model.sources)),
        CheckFormat::Human => {
            ctx.report(&diags, &model.sources);
            if !diags.has_errors() {
                ctx.info(&format!(
                    "ok: {} sources, {} metrics, {} KPIs",
                    model.project.sources.len(),
                    model.project.metrics.len(),
                    model.project.kpis.len()
                ));
            }
        }
    }
    if diags.has_errors() {
        Outcome::ProjectErrors
    } else {
        Outcome::Ok
    }
}

fn list(ctx: &Ctx, format: CheckFormat) -> Outcome {
    let model = match analyze(ctx, &mut NoCatalog) {
        Ok(m) => m,
        Err(o) => return o,
    };
    output::list(&model, format == CheckFormat::Json);
    Outcome::Ok
}

fn parse_as_of_arg(as_of: Option<&str>) -> Result<Option<AsOf>, Outcome> {
    match as_of {
        None => Ok(None),
        Some(s) => match parse_as_of(s) {
            Some(a) => Ok(Some(a)),
            None => {
                eprintln!("error: --as-of `{s}` is not a date (YYYY-MM-DD), `latest` or `today`");
                Err(Outcome::Failure)
            }
        },
    }
}

fn compile(
    ctx: &Ctx,
    dialect: Option<String>,
    out: Option<PathBuf>,
    as_of: Option<String>,
) -> Outcome {
    let as_of = match parse_as_of_arg(as_of.as_deref()) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let model = match analyze(ctx, &mut crate::exec::DuckDbCatalog::new(&ctx.root, None)) {
        Ok(m) => m,
        Err(o) => return o,
    };
    let requested = dialect.unwrap_or_else(|| model.project.config.dialect.value.clone());
    // The dialects' canonical names, each once, in the order asked for.
    let mut names: Vec<&'static str> = Vec::new();
    for name in dialect_names(&requested) {
        let Some(d) = crate::sql::dialect_named(name) else {
            let d = Diagnostic::new(
                Code::DialectUnsupported,
                format!("unknown dialect `{name}`"),
            )
            .with_help(format!(
                "dialects: {}, or `all` (a comma-separated list compiles several)",
                crate::sql::DIALECTS.join(", ")
            ));
            ctx.report(&d.into(), &model.sources);
            return Outcome::Failure;
        };
        if !names.contains(&d.name()) {
            names.push(d.name());
        }
    }
    let out_root = out.unwrap_or_else(|| {
        ctx.root
            .join(&model.project.config.target_dir)
            .join("compiled")
    });
    // Dialects are independent once the model is analyzed: each is planned,
    // printed and written on a worker, at most one per core. Diagnostics
    // are reported afterwards, in the order the dialects were asked for.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(names.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(usize, Result<Compiled, CompileFailure>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else {
                            return done;
                        };
                        // Dialects are not `Sync`: each worker makes its own.
                        let Some(dialect) = crate::sql::dialect_named(name) else {
                            continue;
                        };
                        let out_dir = out_root.join(dialect.name());
                        done.push((
                            i,
                            compile_dialect(&model, dialect.as_ref(), as_of, &out_dir),
                        ));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    let mut outcome = Outcome::Ok;
    // A worker that panicked (a bug) lost its dialects' results: never
    // report success with dialects missing.
    let lost: Vec<&str> = (0..names.len())
        .filter(|i| !results.iter().any(|(done, _)| done == i))
        .map(|i| names[i])
        .collect();
    if !lost.is_empty() {
        eprintln!(
            "error: kpic failed internally while compiling for {} (a bug: please report it with the project)",
            lost.join(", ")
        );
        outcome = Outcome::Failure;
    }
    // Dialects often refuse a project for the same reason (a local file
    // source): each distinct set of errors is reported once.
    let mut reported: Vec<String> = Vec::new();
    let mut refused: Vec<&str> = Vec::new();
    for (i, result) in results {
        match result {
            Ok(c) => ctx.info(&format!(
                "compiled {} KPIs for {} into {}",
                c.kpis,
                names[i],
                c.dir.display()
            )),
            Err(CompileFailure::Refused(d, failed)) => {
                refused.push(names[i]);
                let key = format!("{:?}", d.0);
                if !reported.contains(&key) {
                    ctx.report(&d, &model.sources);
                    reported.push(key);
                }
                if matches!(outcome, Outcome::Ok) {
                    outcome = failed;
                }
            }
            Err(CompileFailure::Write(message)) => {
                eprintln!("error: {message}");
                outcome = Outcome::Failure;
            }
        }
    }
    if names.len() > 1 && !refused.is_empty() {
        eprintln!(
            "error: nothing written for {} (errors above)",
            refused.join(", ")
        );
    }
    outcome
}

/// `--dialect`: one name, a comma-separated list, or `all`.
fn dialect_names(requested: &str) -> Vec<&str> {
    if requested.trim() == "all" {
        return crate::sql::DIALECTS.to_vec();
    }
    requested
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// What [`compile_dialect`] wrote.
struct Compiled {
    kpis: usize,
    dir: PathBuf,
}

/// Why [`compile_dialect`] wrote nothing.
enum CompileFailure {
    /// The plan or the dialect refused the project (the exit code to give:
    /// a measure the dialect cannot express is a project error, exit 1).
    Refused(Diagnostics, Outcome),
    /// The files could not be written.
    Write(String),
}

/// plan → the dialect's refusals → SQL → files in `out_dir`, for one
/// dialect of `kpic compile`.
fn compile_dialect(
    model: &SemanticModel,
    dialect: &dyn crate::sql::Dialect,
    as_of: Option<AsOf>,
    out_dir: &Path,
) -> Result<Compiled, CompileFailure> {
    let options = PlanOptions {
        as_of,
        select: vec![],
        local_files: dialect.name() == "duckdb",
    };
    let plan = crate::plan::plan_kpis(model, &options).map_err(|d| {
        let outcome = failure_kind(&d);
        CompileFailure::Refused(d, outcome)
    })?;
    let refused = crate::sql::dialect_problems(model, dialect);
    if refused.has_errors() {
        return Err(CompileFailure::Refused(refused, Outcome::ProjectErrors));
    }
    let compiled = crate::sql::plan_to_sql(&plan, model, dialect);
    write_compiled(out_dir, &compiled, dialect)
        .map_err(|e| CompileFailure::Write(format!("cannot write `{}`: {e}", out_dir.display())))?;
    Ok(Compiled {
        kpis: plan.kpis.len(),
        dir: out_dir.to_path_buf(),
    })
}

/// plan → the dialect's refusals → SQL, for `compile` and `dbt emit`;
/// diagnostics are reported.
fn plan_and_compile(
    ctx: &Ctx,
    model: &SemanticModel,
    dialect: &dyn crate::sql::Dialect,
    as_of: Option<AsOf>,
    local_files: bool,
) -> Result<(crate::plan::Plan, crate::sql::CompiledSql), Outcome> {
    let options = PlanOptions {
        as_of,
        select: vec![],
        local_files,
    };
    let plan = crate::plan::plan_kpis(model, &options).map_err(|d| {
        ctx.report(&d, &model.sources);
        failure_kind(&d)
    })?;
    let refused = crate::sql::dialect_problems(model, dialect);
    if refused.has_errors() {
        ctx.report(&refused, &model.sources);
        return Err(Outcome::ProjectErrors);
    }
    let compiled = crate::sql::plan_to_sql(&plan, model, dialect);
    Ok((plan, compiled))
}

fn write_compiled(
    dir: &Path,
    compiled: &crate::sql::CompiledSql,
    dialect: &dyn crate::sql::Dialect,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for table in crate::sql::OUTPUT_TABLES
        .iter()
        .chain(crate::sql::OUTPUT_VIEWS)
    {
        if let Some(mut q) = compiled.standalone(table) {
            dialect.finish_standalone(&mut q);
            std::fs::write(dir.join(format!("{table}.sql")), format!("{q:#}\n"))?;
        }
    }
    std::fs::write(dir.join("build.sql"), compiled.build_script(dialect))?;
    Ok(())
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The DuckDB database file (default: the project's, target/kpic.duckdb).
    #[arg(long)]
    db: Option<PathBuf>,
    #[arg(long)]
    as_of: Option<String>,
    /// Only these KPIs.
    #[arg(long, num_args = 1..)]
    select: Vec<String>,
    #[arg(long, value_enum, default_value_t = RunFormat::Table)]
    format: RunFormat,
    /// Also write each output table and the kpi_scorecard view into this
    /// directory, as <name>.csv or <name>.parquet (--out-format).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The file format of --out.
    #[arg(long, value_enum, default_value_t = OutFormat::Csv, requires = "out")]
    out_format: OutFormat,
    /// DuckDB memory limit (e.g. 2GB).
    #[arg(long)]
    memory_limit: Option<String>,
    /// Stop a build that runs longer than this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
}

/// The file format of `kpic run --out`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OutFormat {
    Csv,
    Parquet,
}

/// The options of `kpic run` that decide a build (shared with `kpic report`).
struct BuildOptions<'a> {
    db: Option<&'a Path>,
    as_of: Option<&'a str>,
    select: &'a [String],
    memory_limit: Option<&'a str>,
    timeout: Option<f64>,
    /// `kpic run --out`: the tables also written as files.
    export: Option<crate::exec::Export>,
}

/// What [`build`] wrote.
struct Built {
    model: SemanticModel,
    plan: crate::plan::Plan,
    outcome: crate::exec::RunOutcome,
    run_options: crate::exec::RunOptions,
    /// The tables and views written (the names `--out` wrote files for).
    outputs: Vec<String>,
}

/// analyze → plan → bind → [`crate::exec::run_build`]: the output tables
/// written into the database, as `kpic run` does. Diagnostics are reported.
fn build(ctx: &Ctx, args: &BuildOptions) -> Result<Built, Outcome> {
    let as_of = parse_as_of_arg(args.as_of)?;
    // `--db` is relative to the current directory.
    let (model, db_path, inspection) = analyze_with_db(ctx, args.db)?;
    let options = PlanOptions {
        as_of,
        select: args.select.to_vec(),
        local_files: true,
    };
    let plan = match crate::plan::plan_kpis(&model, &options) {
        Ok(p) => p,
        Err(d) => {
            ctx.report(&d, &model.sources);
            return Err(failure_kind(&d));
        }
    };
    let bind = bind_in_engine(&model, args.select, db_path.as_deref(), inspection.as_ref());
    // The build opens the database for writing: the read-only inspection
    // connection is closed first.
    drop(inspection);
    if bind.has_errors() {
        ctx.report(&bind, &model.sources);
        return Err(Outcome::ProjectErrors);
    }
    let compiled = crate::sql::plan_to_sql(&plan, &model, &crate::sql::dialect::DuckDb);
    let database = match (&args.db, &db_path) {
        (Some(_), None) => ":memory:".to_string(),
        (_, Some(p)) => p.to_string_lossy().into_owned(),
        (None, None) => model.project.config.database.clone(),
    };
    let timeout = timeout_arg(args.timeout)?;
    let run_options = crate::exec::RunOptions {
        database,
        memory_limit: memory_limit_arg(args.memory_limit, &model),
        timeout,
    };
    let progress = progress::for_stderr(ctx.quiet);
    let outcome = match crate::exec::run_build_with(
        &model.project,
        &compiled,
        &run_options,
        progress.as_ref(),
        args.export.as_ref(),
    ) {
        Ok(o) => o,
        Err(d) => {
            ctx.report(&d, &model.sources);
            return Err(failure_kind(&d));
        }
    };
    let outputs = compiled
        .outputs
        .iter()
        .chain(&compiled.views)
        .map(|o| o.table.clone())
        .collect();
    Ok(Built {
        model,
        plan,
        outcome,
        run_options,
        outputs,
    })
}

fn run(ctx: &Ctx, args: RunArgs) -> Outcome {
    let export = args.out.clone().map(|dir| crate::exec::Export {
        dir,
        format: match args.out_format {
            OutFormat::Csv => crate::exec::ExportFormat::Csv,
            OutFormat::Parquet => crate::exec::ExportFormat::Parquet,
        },
    });
    let built = build(
        ctx,
        &BuildOptions {
            db: args.db.as_deref(),
            as_of: args.as_of.as_deref(),
            select: &args.select,
            memory_limit: args.memory_limit.as_deref(),
            timeout: args.timeout,
            export: export.clone(),
        },
    );
    let Built {
        model,
        plan,
        outcome,
        run_options,
        outputs,
    } = match built {
        Ok(b) => b,
        Err(o) => return o,
    };
    let rows = outcome.rows;
    let as_of = match (&plan.as_of, outcome.as_of) {
        (crate::plan::AsOfPlan::Date(d), _) => d.to_string(),
        (_, Some(d)) => d,
        (_, None) => "today".to_string(),
    };
    ctx.info(&format!(
        "{} KPIs as of {as_of}, written to {}",
        plan.kpis.len(),
        run_options.database
    ));
    if let Some(e) = &export {
        ctx.info(&format!(
            "wrote {} as .{} files into {}",
            outputs.join(", "),
            e.format.extension(),
            e.dir.display()
        ));
    }
    output::print_results(&model, &rows, args.format, ctx.color_stdout);
    Outcome::Ok
}

//! The stable diagnostic codes. KPI1xx: loading (files, YAML, keys,
//! templates, SQL syntax); KPI2xx: semantic errors, KPI25x: hygiene
//! warnings; KPI3xx: planning and dialect support; KPI4xx: execution;
//! KPI5xx: integrations (dbt, importers).
//!
//! A code never changes meaning once released. Each code documents What /
//! Why / Fix; `kpic check --explain-code KPI203` prints it.

use super::Severity;

macro_rules! codes {
    ($( $variant:ident = $num:literal, $sev:ident, $title:literal, $doc:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The code as printed: `KPI203`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => concat!("KPI", $num), )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// One-line title of the code.
            pub fn title(self) -> &'static str {
                match self { $( Code::$variant => $title, )* }
            }

            /// What / Why / Fix documentation.
            pub fn doc(self) -> &'static str {
                match self { $( Code::$variant => $doc, )* }
            }

            pub fn parse(s: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(s))
            }
        }
    };
}

codes! {
    // ---- KPI1xx: load ----
    FileUnreadable = "101", Error, "a file cannot be read",
        "What: a project file could not be read: it is missing or unreadable, not a regular file (a FIFO, socket or device), a symlink that loops or dangles, or not UTF-8 text; or a symlinked directory under a model or macro dir loops back into itself or leads outside the project (it is not followed).\nWhy: kpic needs the text to validate it, and must never block on a device or walk a tree forever.\nFix: check the file's permissions and encoding (save it as UTF-8); remove looping symlinks; list directories outside the project in kpic.yml `models`/`macros` instead of linking them.";
    YamlSyntax = "102", Error, "YAML syntax error",
        "What: the file is not valid YAML.\nWhy: kpic cannot read definitions it cannot parse.\nFix: correct the syntax at the position shown (indentation, quotes, colons).";
    UnknownKey = "103", Error, "unknown key",
        "What: a mapping has a key kpic does not know.\nWhy: a misspelt key would otherwise be ignored silently.\nFix: use the suggested key, or remove it.";
    WrongType = "104", Error, "value has the wrong shape",
        "What: a value is a list where a mapping is expected, a mapping where text is expected, and so on.\nFix: give the value the shape the definition language documents.";
    MissingKey = "105", Error, "required key missing",
        "What: a definition lacks a key it needs (e.g. a KPI without `metric`).\nFix: add the key.";
    ModelDir = "106", Error, "model directory missing or empty",
        "What: a directory listed under `models` does not exist or holds no YAML files.\nFix: create it, or correct `models` in kpic.yml.";
    InputTooLarge = "107", Error, "input exceeds a safety limit",
        "What: an input exceeds one of kpic's safety limits: a file over 10 MB; YAML nested more than 64 levels deep or expanding (aliases included) to more than 100000 nodes; a SQL field chaining more than 1000 operators or nesting more than 50 parentheses, calls or subqueries; a template over 256 KB; a derived metric built on more than 32 levels of derived metrics, or whose formula written out exceeds 2000 terms; a model or macro dir with more than 2000 directories or 10000 files, or nested more than 32 levels.\nWhy: definitions are small; such input is almost always a mistake or an attack, and without limits it would make kpic hang or crash.\nFix: split or simplify what the message names.";
    Template = "108", Error, "template error",
        "What: a SQL field's Jinja template (or a macro file) failed to render: syntax error, undefined name, bad call, or work without end (out of fuel, recursion too deep, or not finished within 500 ms).\nFix: correct the template; every variable must be defined (`var`, `env_var` take a default); loops and recursion must end.";
    SqlSyntax = "109", Error, "SQL syntax error",
        "What: a SQL field did not parse as a single SQL expression (a `sql:` source: a single query), or holds a query that writes (INSERT, UPDATE, DELETE, MERGE, SELECT … INTO).\nWhy: fields hold expressions, never statements, so `1=1; drop table x` is refused.\nFix: correct the expression.";
    InvalidValue = "110", Error, "invalid value",
        "What: a value is outside what the key accepts (an unknown grain, a tolerance outside [0, 1), a malformed number or duration).\nFix: use one of the values listed in the message.";

    // ---- KPI2xx: semantic errors ----
    InvalidName = "201", Error, "invalid name",
        "What: a name does not match `[a-z][a-z0-9_]{0,62}`.\nWhy: names become SQL identifiers and table values on every engine.\nFix: use lower case letters, digits and underscores, starting with a letter.";
    DuplicateName = "202", Error, "duplicate name",
        "What: two definitions of the same kind share a name (possibly in different files).\nFix: rename or remove one.";
    UnknownMetric = "203", Error, "unknown metric",
        "What: a reference names a metric that is not defined.\nFix: use the suggested name, or define the metric.";
    UnknownSource = "204", Error, "unknown source",
        "What: a metric or join names a source that is not defined.\nFix: use the suggested name, or define the source.";
    UnknownDimension = "205", Error, "unknown or unreachable dimension",
        "What: a breakdown names a dimension that is not reachable from every source of the KPI's metric.\nFix: declare the dimension on each source (or on a joined source).";
    MetricCycle = "206", Error, "metrics depend on each other in a cycle",
        "What: a derived metric refers, directly or not, to itself.\nFix: break the cycle.";
    MeasureWithoutAggregate = "207", Error, "measure without an aggregate",
        "What: a measure uses a column outside of any aggregate (e.g. `amount` instead of `sum(amount)`).\nWhy: a measure is one number per period.\nFix: wrap the column in an aggregate.";
    NestedAggregate = "208", Error, "nested aggregate",
        "What: an aggregate is applied to another aggregate (`sum(count(x))`).\nFix: define the inner aggregate as its own metric and combine metrics in a derived `expr`.";
    UnsupportedAggregate = "209", Error, "unsupported aggregate",
        "What: a measure uses an aggregate function kpic cannot translate to every engine, or a window function.\nFix: use sum, count, count(distinct), avg, min, max, median, quantile_cont/percentile, approx_count_distinct or stddev.";
    FilterNotBoolean = "210", Error, "filter is not boolean",
        "What: a `filter` is an expression that is not a condition (e.g. `amount + 1`), or uses an aggregate.\nFix: write a condition such as `status = 'completed'`.";
    UnknownColumn = "211", Error, "unknown column",
        "What: an expression references a column the source does not have.\nWhy: kpic reads the schema of local files during `check`.\nFix: use the suggested column, or correct the source.";
    PathNotFound = "212", Error, "source path does not exist",
        "What: a source's `path` matches no file, or names a directory, FIFO or device.\nFix: correct the path (relative to the project directory); name the files of a directory with a glob such as `dir/*.parquet`.";
    SourceRelation = "213", Error, "source needs exactly one relation",
        "What: a source must have exactly one of `path`, `table`, `sql`, `ref` (or `path` with `table`).\nFix: keep one.";
    MetricKind = "214", Error, "conflicting metric definition",
        "What: a metric mixes forms: `measure` with `expr`, `window` with `to_date`, `filter` or `window` on a derived metric, or `source` without `measure`.\nFix: a measure metric has `source` + `measure` (+ `filter`, `window` or `to_date`); a derived metric has only `expr`.";
    TargetLabel = "215", Error, "target period label invalid",
        "What: a per-period target uses a label that is malformed or of another grain than the KPI's.\nFix: use labels like 2026-03-15 (day), 2026-W05 (week), 2026-03 (month), 2026-Q1 (quarter), 2026 (year).";
    TargetFile = "216", Error, "target file invalid",
        "What: a target file is missing or lacks the columns `period` and `target`.\nFix: provide a CSV with columns period, target (and optionally kpi).";
    TimeRequired = "217", Error, "source has no time column",
        "What: a metric of a source without `time` is used by a KPI at a grain.\nFix: add `time:` to the source.";
    InvalidJoin = "218", Error, "invalid join",
        "What: a join names an unknown source, the source itself, or has an `on` condition kpic cannot use.\nFix: join another source on a column name or an equality condition.";
    DuplicateDimension = "219", Error, "duplicate dimension",
        "What: a source declares the same dimension twice.\nFix: remove or rename one.";
    InvalidExpression = "220", Error, "invalid metric expression",
        "What: a derived metric's `expr` or a KPI's `decomposition` uses something other than metrics, numbers and arithmetic, or a KPI's decomposition does not use its drivers.\nFix: write arithmetic over metric names.";
    InvalidReference = "221", Error, "invalid reference",
        "What: a KPI's related KPIs or drivers list names something that does not exist.\nFix: use the suggested name.";

    // ---- KPI25x: hygiene warnings ----
    TooManyKpis = "251", Warning, "owner has more than 5 KPIs",
        "What: one owner has more than five KPIs.\nWhy: teams should stake success on 3-5 KPIs; the rest are diagnostic metrics.\nFix: demote some KPIs to metrics (drivers).";
    KpiWithoutTarget = "252", Warning, "KPI without a target",
        "What: a KPI has no target.\nWhy: without a target a KPI gives no verdict; it is just a metric.\nFix: add a `target`.";
    KpiWithoutOwner = "253", Warning, "KPI without an owner",
        "What: a KPI has no owner.\nWhy: a KPI nobody owns is a KPI nobody acts on.\nFix: add an `owner`.";
    KpiWithoutActionPlan = "254", Warning, "KPI without an action plan",
        "What: a KPI has no action_plan.\nWhy: the Now What of a review needs a plan for when the KPI is off track.\nFix: add an `action_plan`.";
    CumulativeWithoutTarget = "255", Warning, "cumulative KPI without a target",
        "What: a KPI over a `to_date` or `window: all` metric has no target.\nWhy: cumulative numbers only grow: without a target they are a vanity metric.\nFix: add a target, or track the period value instead.";
    DecompositionMismatch = "256", Warning, "decomposition does not hold on the data",
        "What: a KPI's `decomposition` evaluated on the data differs from the KPI's metric by more than 0.1% in some period.\nWhy: drivers are attributed over that identity; when it does not hold, the split is rescaled to the KPI's change and misleads.\nFix: make the identity exact (same filters on every metric, e.g. `orders / sessions` counted over the same rows) or drop `decomposition:`.";
    TargetFileUnknownKpi = "257", Warning, "target file row for an unknown KPI",
        "What: a row of a target file names, in its `kpi` column, a KPI the project does not define (or none).\nWhy: the row is ignored, so a misspelt KPI name would leave that KPI's period without its target, silently.\nFix: use the suggested KPI name, or remove the row.";
    DriversNotAttributed = "258", Warning, "drivers not attributed: identity too large",
        "What: a KPI has drivers, but its identity (its `decomposition:`, or its derived metric's expression) has more than 10 metrics.\nWhy: the exact (Shapley) split evaluates the identity on every subset of its metrics (2^n evaluations), so kpic does not attribute it: kpi_drivers lists the drivers with their change but `method: none` and no contribution.\nFix: group metrics into derived metrics so the expression uses at most 10 (e.g. `paid = card + invoice + voucher`), or declare a `decomposition:` over at most 10 metrics and list those as `drivers:`.";

    // ---- KPI3xx: plan and dialects ----
    DialectUnsupported = "301", Error, "not available in this dialect",
        "What: the dialect name is unknown, or a metric uses an aggregate the target engine cannot compute exactly and kpic will not approximate silently (e.g. an exact quantile on an engine that only has approximate ones).\nFix: use one of the dialects `kpic compile --help` lists, or the alternative the message suggests (often the engine's approximate aggregate).";
    PlanUnsupported = "302", Error, "feature not supported",
        "What: a definition uses a feature this version of kpic cannot compile.\nFix: see the message for the alternative.";

    // ---- KPI4xx: execution ----
    Database = "401", Error, "database cannot be opened",
        "What: the DuckDB database could not be opened or configured.\nFix: check the path, that no other process holds it for writing, and the memory limit.";
    QueryFailed = "402", Error, "query failed",
        "What: the engine rejected or failed a query kpic generated for the named definition.\nFix: read the engine's message; it usually names a column or type.";
    JoinFanOut = "403", Error, "join duplicates fact rows",
        "What: a join matches more than one row of the joined source for some key.\nWhy: joins must be many-to-one, or metrics would be silently inflated.\nFix: join on a key that is unique in the joined source.";
    SchemaUnreadable = "404", Error, "source schema cannot be read",
        "What: kpic could not read the columns of a local source file.\nFix: check that the file is a valid CSV, Parquet or JSON file.";
    Timeout = "405", Error, "query timed out",
        "What: a query ran longer than `--timeout`.\nFix: raise the timeout or reduce the data.";

    // ---- KPI5xx: integrations ----

    // KPI501-519: dbt (the manifest, refs and sources, `kpic dbt emit`).
    DbtManifestMissing = "501", Error, "dbt manifest not found",
        "What: kpic.yml's `dbt:` (or `--dbt-project DIR`) names a dbt project whose manifest (`target/manifest.json`, or `dbt.manifest`) does not exist, or a project directory that does not exist.\nWhy: kpic resolves `ref()` and `source()` through the manifest dbt writes; it never runs dbt itself.\nFix: run `dbt parse` (or `dbt build`) in the dbt project, or correct `dbt.project_dir` / `dbt.manifest`.";
    DbtManifestInvalid = "502", Error, "dbt manifest cannot be read",
        "What: the dbt manifest is not readable JSON of the shape dbt writes (`metadata`, `nodes`, `sources`).\nFix: run `dbt parse` again to rewrite it; check that `dbt.manifest` names dbt's `manifest.json`.";
    DbtManifestStale = "503", Error, "dbt manifest older than the dbt project",
        "What: a model, seed, snapshot, macro or YAML file of the dbt project (or dbt_project.yml) changed after the manifest was written.\nWhy: refs are resolved with the manifest's relation names; a model renamed, moved to another schema, disabled or added since then would be resolved wrongly or not at all (an error rather than a warning: warnings are KPI25x, and `dbt parse` always clears it).\nFix: run `dbt parse` in the dbt project (it rewrites target/manifest.json in seconds, without touching the warehouse).";
    DbtUnknownRef = "504", Error, "unknown dbt model or source",
        "What: `ref()`, `source()` or a source's `ref:` names a model (or seed, snapshot) or a source table the dbt manifest does not have, or pins a version (`ref('m', v=2)`, `ref: m.v2`) the model does not have.\nFix: use the suggested name, or one of the versions listed (without a version a ref reads the model's `latest_version`); if the model or version is new, run `dbt parse` so the manifest knows it.";
    DbtDisabledModel = "505", Error, "dbt model is disabled",
        "What: the model (or source, or the model's version a ref pins or, unpinned, its latest version) a ref names exists but is disabled (`enabled: false`) in the dbt project.\nWhy: a disabled model has no relation in the warehouse.\nFix: enable it in dbt, or read another model.";
    DbtEphemeralModel = "506", Error, "dbt model is ephemeral",
        "What: the model a ref names is materialized as `ephemeral`: dbt inlines it as a CTE and it has no relation in the warehouse.\nFix: materialize it as a view or table in dbt, or read the models it selects from.";
    DbtAmbiguousRef = "507", Error, "ambiguous dbt ref",
        "What: a ref without a package names a model that several packages define (and the root project does not).\nFix: name the package: `ref('package', 'model')` (in a `ref:` key: `package.model`).";
    DbtAdapterUnknown = "508", Error, "dbt adapter has no kpic dialect",
        "What: the manifest's `metadata.adapter_type` is an adapter kpic cannot compile for, and kpic.yml sets no `warehouse.dialect`.\nFix: set `warehouse: {dialect: …}` in kpic.yml to the closest dialect kpic supports.";
    DbtEmitLocalSource = "509", Error, "source cannot be emitted to dbt",
        "What: `kpic dbt emit` met a source that reads a local file (`path:` without `table:`).\nWhy: a dbt model reads relations of the warehouse, not kpic's local files.\nFix: give the source `ref:`, `table:` (kept beside `path:` for DuckDB) or a `sql:` using `{{ ref() }}` / `{{ source() }}`.";
    DbtEmitStale = "510", Error, "emitted dbt models are stale",
        "What: `kpic dbt emit --check` found emitted files that differ from what the definitions give now (changed, missing or left over).\nFix: run `kpic dbt emit` and commit the files.";

    // (end of dbt codes)

    // KPI520-539: importers (`kpic import metricflow`).

    // (end of importer codes)
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

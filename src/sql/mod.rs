//! SQL: a [`Plan`](crate::plan::Plan) → sqlparser AST → text, for one
//! [`Dialect`]. The result, [`CompiledSql`], is a set of named queries
//! (shared aggregates and per-KPI steps) and one SELECT per output table;
//! it can be printed as standalone SELECTs (`kpic compile`) or as a build
//! script that materializes the shared aggregates once and then replaces
//! the output tables in one transaction (`kpic run`, `build.sql`).

pub mod build;
pub mod dialect;
mod render;
pub mod scorecard;

use std::collections::BTreeSet;

use sqlparser::ast::Query;

pub use dialect::{DIALECTS, Dialect, Refusal, dialect_named};
pub use render::{SegmentRanges, driver_step_metrics, plan_to_sql, segment_query};

/// A named query other queries refer to by name.
#[derive(Debug, Clone)]
pub struct NamedQuery {
    pub name: String,
    pub query: Query,
    /// Names of the named queries it reads.
    pub deps: Vec<String>,
    /// Worth materializing once when several outputs read it (aggregates).
    pub shared: bool,
}

/// One output table's SELECT.
#[derive(Debug, Clone)]
pub struct OutputQuery {
    pub table: String,
    pub query: Query,
    pub deps: Vec<String>,
}

/// A check run before the build: the query returns a row when the check
/// fails.
#[derive(Debug, Clone)]
pub struct CheckQuery {
    pub check: crate::plan::FanoutCheck,
    pub query: Query,
}

#[derive(Debug, Clone)]
pub struct CompiledSql {
    pub dialect: &'static str,
    pub named: Vec<NamedQuery>,
    pub outputs: Vec<OutputQuery>,
    /// Views over the output tables ([`OUTPUT_VIEWS`]), created after them
    /// in the same transaction; their SELECTs read only output tables.
    pub views: Vec<OutputQuery>,
    pub checks: Vec<CheckQuery>,
    /// KPI name → hash of its compiled definition.
    pub definition_hashes: Vec<(String, String)>,
    /// One query per aggregate column, over its scan, for `check` to bind
    /// in the engine (type errors point at the metric, not at a big query).
    pub probes: Vec<Probe>,
}

/// `SELECT <aggregate> FROM <scan>` for one aggregate column.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The scan's named query.
    pub scan: String,
    /// The aggregate column (`<metric>__<context>`).
    pub column: String,
    pub query: Query,
}

/// Names of the output tables, in build order.
pub const OUTPUT_TABLES: &[&str] = &[
    "kpi_results",
    "kpi_metrics",
    "kpi_breakdowns",
    "kpi_drivers",
    "kpi_definitions",
];

/// Names of the views over the output tables, created after them (the
/// `kpi_scorecard`, see [`scorecard`]).
pub const OUTPUT_VIEWS: &[&str] = &[scorecard::SCORECARD];

impl CompiledSql {
    fn named(&self, name: &str) -> Option<&NamedQuery> {
        self.named.iter().find(|n| n.name == name)
    }

    /// Named queries `deps` need (transitively), in dependency order,
    /// skipping those in `materialized`.
    fn closure(&self, deps: &[String], materialized: &BTreeSet<String>) -> Vec<(String, Query)> {
        let mut order: Vec<String> = Vec::new();
        fn visit(c: &CompiledSql, name: &str, mat: &BTreeSet<String>, order: &mut Vec<String>) {
            if order.iter().any(|n| n == name) || mat.contains(name) {
                return;
            }
            if let Some(n) = c.named(name) {
                for d in &n.deps {
                    visit(c, d, mat, order);
                }
                order.push(name.to_string());
            }
        }
        for d in deps {
            visit(self, d, materialized, &mut order);
        }
        order
            .into_iter()
            // No `AS MATERIALIZED` hints: not every engine (nor sqlparser's
            // DuckDB dialect) accepts them; build.sql materializes shared
            // steps as temporary tables instead.
            .filter_map(|n| self.named(&n).map(|q| (n, q.query.clone())))
            .collect()
    }

    /// The named queries `deps` need, as CTEs, skipping `materialized`.
    pub fn closure_of(
        &self,
        deps: &[String],
        materialized: &BTreeSet<String>,
    ) -> Vec<(String, Query)> {
        self.closure(deps, materialized)
    }

    /// A named query as a standalone SELECT (its dependencies as CTEs).
    pub fn standalone_named(&self, name: &str) -> Option<Query> {
        let n = self.named(name)?;
        Some(build::with(
            n.query.clone(),
            self.closure(&n.deps, &BTreeSet::new()),
        ))
    }

    /// The standalone SELECT of one output table (every step as a CTE), or
    /// of a view (which reads the output tables, so runs after a build).
    pub fn standalone(&self, table: &str) -> Option<Query> {
        let out = self
            .outputs
            .iter()
            .chain(&self.views)
            .find(|o| o.table == table)?;
        let ctes = self.closure(&out.deps, &BTreeSet::new());
        Some(build::with(out.query.clone(), ctes))
    }

    /// Statements that materialize the shared steps as temporary tables,
    /// and the names they materialize.
    pub fn setup_statements(&self) -> (Vec<BuildStatement>, BTreeSet<String>) {
        let mut stmts = Vec::new();
        let mut materialized = BTreeSet::new();
        for n in self.named.iter().filter(|n| n.shared) {
            let ctes = self.closure(&n.deps, &materialized);
            let q = build::with(n.query.clone(), ctes);
            stmts.push(BuildStatement {
                label: n.name.clone(),
                sql: format!("{:#}", create_table_as(&n.name, q, true)),
            });
            materialized.insert(n.name.clone());
        }
        (stmts, materialized)
    }

    /// The SELECT of an output table or named step once `materialized`
    /// steps exist as tables (the others as CTEs).
    pub fn select_after(&self, name: &str, materialized: &BTreeSet<String>) -> Option<Query> {
        let (query, deps) = match self.outputs.iter().find(|o| o.table == name) {
            Some(o) => (o.query.clone(), o.deps.clone()),
            None => {
                let n = self.named(name)?;
                (n.query.clone(), n.deps.clone())
            }
        };
        Some(build::with(query, self.closure(&deps, materialized)))
    }

    /// Statements that materialize the shared steps as temporary tables and
    /// then replace the output tables (DuckDB; `kpic run` wraps them in
    /// its own transaction).
    pub fn build_statements(&self) -> Vec<BuildStatement> {
        let (mut stmts, materialized) = self.setup_statements();
        for o in &self.outputs {
            let ctes = self.closure(&o.deps, &materialized);
            let q = build::with(o.query.clone(), ctes);
            stmts.push(BuildStatement {
                label: o.table.clone(),
                sql: format!("{:#}", create_table_as(&o.table, q, false)),
            });
        }
        for v in &self.views {
            stmts.push(BuildStatement {
                label: v.table.clone(),
                sql: format!(
                    "{:#}",
                    dialect::DuckDb.create_view(&v.table, v.query.clone())
                ),
            });
        }
        stmts
    }

    /// `build.sql` for `dialect` (the one these queries were rendered
    /// for): its prologue (settings, `BEGIN`), the shared steps as
    /// temporary tables where the engine has them (inlined as CTEs
    /// otherwise), the output tables replaced as the dialect makes atomic,
    /// and its epilogue.
    pub fn build_script(&self, dialect: &dyn Dialect) -> String {
        let mut s = format!(
            "-- Generated by kpic for {}. Builds the KPI tables, then replaces the old\n\
             -- ones (README, Dialects: what is atomic on this engine).\n\n",
            dialect.name()
        );
        let mut push = |label: Option<&str>, st: &sqlparser::ast::Statement| {
            if let Some(l) = label {
                s.push_str(&format!("-- {l}\n"));
            }
            s.push_str(&format!("{st:#};\n\n"));
        };
        for st in dialect.build_prologue() {
            push(None, &st);
        }
        let mut materialized = BTreeSet::new();
        for n in self.named.iter().filter(|n| n.shared) {
            let q = build::with(n.query.clone(), self.closure(&n.deps, &materialized));
            if let Some(st) = dialect.temp_table(&n.name, q) {
                if let Some(drop) = dialect.drop_temp_table(&n.name) {
                    push(None, &drop);
                }
                push(Some(&n.name), &st);
                materialized.insert(n.name.clone());
            }
        }
        let outputs = self
            .outputs
            .iter()
            .map(|o| {
                let ctes = self.closure(&o.deps, &materialized);
                (o.table.clone(), build::with(o.query.clone(), ctes))
            })
            .collect();
        // Engines whose views bind to the tables they read refuse to drop
        // a table a view reads: the views go first (inside the transaction
        // where there is one) and come back after the tables.
        for v in &self.views {
            if let Some(st) = dialect.drop_view(&v.table) {
                push(None, &st);
            }
        }
        for st in dialect.replace_tables(outputs) {
            push(None, &st);
        }
        for v in &self.views {
            let mut q = v.query.clone();
            dialect.finish_standalone(&mut q);
            push(Some(&v.table), &dialect.create_view(&v.table, q));
        }
        for st in dialect.build_epilogue() {
            push(None, &st);
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct BuildStatement {
    /// What the statement builds (for error messages).
    pub label: String,
    pub sql: String,
}

/// `CREATE OR REPLACE [TEMP] TABLE name AS query`, as AST: the statement
/// skeleton is parsed once and its name and query replaced.
fn create_table_as(name: &str, query: Query, temporary: bool) -> sqlparser::ast::Statement {
    use sqlparser::ast::Statement;
    let skeleton = "CREATE OR REPLACE TABLE t AS SELECT 1";
    let parsed =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::DuckDbDialect {}, skeleton);
    match parsed.ok().and_then(|mut v| v.pop()) {
        Some(Statement::CreateTable(mut ct)) => {
            ct.name = build::object(name);
            ct.temporary = temporary;
            ct.query = Some(Box::new(query));
            Statement::CreateTable(ct)
        }
        // The skeleton is a constant that parses; reaching this is a bug.
        _ => Statement::Query(Box::new(query)),
    }
}

/// Aggregates in the project's measures that `dialect` refuses, as errors
/// at each measure (checked before compiling, so the message points at
/// the definition rather than at generated SQL).
pub fn dialect_problems(
    model: &crate::semantic::SemanticModel,
    dialect: &dyn Dialect,
) -> crate::diagnostics::Diagnostics {
    use crate::diagnostics::{Code, Diagnostic};
    use crate::model::MetricKind;
    use sqlparser::ast::Expr;
    let mut diags = crate::diagnostics::Diagnostics::default();
    for metric in &model.project.metrics {
        let MetricKind::Measure { measure, .. } = &metric.kind else {
            continue;
        };
        let _ = sqlparser::ast::visit_expressions(&measure.expr, |e| {
            if let Expr::Function(f) = e {
                let name = crate::semantic::aggregates::function_name(f);
                if let Err(r) = dialect.aggregate(&name, f) {
                    diags.push(
                        Diagnostic::new(
                            Code::DialectUnsupported,
                            format!(
                                "metric `{}`: {} on {}",
                                metric.name.value,
                                r.message,
                                dialect.name()
                            ),
                        )
                        .at(
                            measure.span,
                            format!("`{name}` is refused for {}", dialect.name()),
                        )
                        .with_help(r.help),
                    );
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        // Engines whose sort-based aggregates share one ordering per query
        // (Redshift) get each ordering its own query, but one expression
        // cannot be split.
        let mut translated = measure.expr.clone();
        dialect::translate_expr(&mut translated, dialect);
        if dialect::translate::sort_orders(&translated, dialect).len() > 1 {
            diags.push(
                Diagnostic::new(
                    Code::DialectUnsupported,
                    format!(
                        "metric `{}`: its measure orders sort-based aggregates by different \
                         expressions, and {} needs every sort-based aggregate of a query to \
                         order by the same expression",
                        metric.name.value,
                        dialect.name()
                    ),
                )
                .at(measure.span, "two different orderings in one measure")
                .with_help(
                    "declare each quantile as a metric of its own and combine them in a \
                     derived metric (`expr: p90_a - p90_b`)",
                ),
            );
        }
    }
    diags
}

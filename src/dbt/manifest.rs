//! dbt's `target/manifest.json`, read for what kpic needs: the adapter, the
//! root project's name, and per model/seed/snapshot and source its package,
//! name, relation name and materialization (enabled and disabled ones).
//!
//! In: the manifest's bytes. Out: a [`Manifest`] that resolves `ref()` and
//! `source()` the way dbt does ([`Manifest::resolve_ref`],
//! [`Manifest::resolve_source`]), or a [`RefError`] naming the problem.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::diagnostics::{Code, did_you_mean};

#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub adapter_type: Option<String>,
    /// The root project (its models win over packages' in a bare `ref`).
    pub project_name: Option<String>,
    pub dbt_version: Option<String>,
    /// Models, seeds and snapshots (what `ref` reaches), enabled.
    pub nodes: Vec<Node>,
    /// Source tables, enabled.
    pub sources: Vec<SourceTable>,
    /// Disabled models, seeds, snapshots and sources.
    pub disabled_nodes: Vec<Node>,
    pub disabled_sources: Vec<SourceTable>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub resource_type: String,
    pub package: String,
    pub name: String,
    pub relation_name: Option<String>,
    pub materialized: Option<String>,
    pub version: Option<String>,
    pub latest_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SourceTable {
    pub package: String,
    pub source_name: String,
    pub name: String,
    pub relation_name: Option<String>,
}

/// Why a ref or source did not resolve.
#[derive(Debug, Clone)]
pub struct RefError {
    pub code: Code,
    pub message: String,
    /// Short label at the reference.
    pub label: String,
    pub help: Option<String>,
}

impl RefError {
    fn new(code: Code, message: String, label: &str, help: Option<String>) -> RefError {
        RefError {
            code,
            message,
            label: label.to_string(),
            help,
        }
    }
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    metadata: RawMetadata,
    #[serde(default)]
    nodes: BTreeMap<String, RawNode>,
    #[serde(default)]
    sources: BTreeMap<String, RawNode>,
    #[serde(default)]
    disabled: Option<BTreeMap<String, Vec<RawNode>>>,
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    adapter_type: Option<String>,
    project_name: Option<String>,
    dbt_version: Option<String>,
}

#[derive(Deserialize)]
struct RawNode {
    resource_type: Option<String>,
    package_name: Option<String>,
    name: Option<String>,
    source_name: Option<String>,
    relation_name: Option<String>,
    #[serde(default)]
    config: RawNodeConfig,
    version: Option<serde_json::Value>,
    latest_version: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct RawNodeConfig {
    materialized: Option<String>,
    enabled: Option<bool>,
}

fn version_text(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Resource types `ref()` reaches.
const REFABLE: &[&str] = &["model", "seed", "snapshot"];

impl Manifest {
    /// Parses the manifest JSON (any dbt 1.x schema version: only fields
    /// present in all of them are read).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let raw: RawManifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut m = Manifest {
            adapter_type: raw.metadata.adapter_type,
            project_name: raw.metadata.project_name,
            dbt_version: raw.metadata.dbt_version,
            ..Manifest::default()
        };
        let node = |n: RawNode| -> Option<Node> {
            let resource_type = n.resource_type?;
            REFABLE.contains(&resource_type.as_str()).then(|| Node {
                resource_type,
                package: n.package_name.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                relation_name: n.relation_name,
                materialized: n.config.materialized,
                version: version_text(&n.version),
                latest_version: version_text(&n.latest_version),
            })
        };
        let source = |n: RawNode| -> Option<SourceTable> {
            (n.resource_type.as_deref() == Some("source")).then(|| SourceTable {
                package: n.package_name.unwrap_or_default(),
                source_name: n.source_name.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                relation_name: n.relation_name,
            })
        };
        for (_, n) in raw.nodes {
            let enabled = n.config.enabled != Some(false);
            if let Some(n) = node(n) {
                if enabled {
                    m.nodes.push(n);
                } else {
                    m.disabled_nodes.push(n);
                }
            }
        }
        for (_, n) in raw.sources {
            if let Some(s) = source(n) {
                m.sources.push(s);
            }
        }
        for (_, list) in raw.disabled.unwrap_or_default() {
            for n in list {
                if n.resource_type.as_deref() == Some("source") {
                    m.disabled_sources.extend(source(n));
                } else {
                    m.disabled_nodes.extend(node(n));
                }
            }
        }
        Ok(m)
    }

    /// `ref('name')` / `ref('package', 'name')`: the relation name, as dbt
    /// resolves it (a bare name prefers the root project; among versions
    /// of a model the latest).
    pub fn resolve_ref(&self, package: Option<&str>, name: &str) -> Result<String, RefError> {
        let call = ref_call(package, name);
        let matches = |n: &&Node| n.name == name && package.is_none_or(|p| n.package == p);
        let candidates: Vec<&Node> = self.nodes.iter().filter(matches).collect();
        if candidates.is_empty() {
            if let Some(d) = self.disabled_nodes.iter().find(matches) {
                return Err(RefError::new(
                    Code::DbtDisabledModel,
                    format!(
                        "{call}: the dbt {} `{}.{}` is disabled",
                        d.resource_type, d.package, d.name
                    ),
                    "disabled in the dbt project",
                    Some("enable it in dbt (`enabled: true`), then run `dbt parse`; or read another model".into()),
                ));
            }
            let names = self
                .nodes
                .iter()
                .filter(|n| package.is_none_or(|p| n.package == p))
                .map(|n| n.name.as_str());
            let mut help = match did_you_mean(name, names) {
                Some(s) => format!("did you mean `{}`?", ref_call(package, s)),
                None => "check the name in the dbt project".to_string(),
            };
            if let Some(p) = package
                && let Some(other) = self.nodes.iter().find(|n| n.name == name)
            {
                help = format!(
                    "package `{p}` has no `{name}`, but package `{}` has: {}",
                    other.package,
                    ref_call(Some(&other.package), name)
                );
            }
            return Err(RefError::new(
                Code::DbtUnknownRef,
                format!("{call}: the dbt manifest has no model, seed or snapshot `{name}`"),
                "unknown dbt model",
                Some(format!(
                    "{help} (a model added since the last `dbt parse` is not in the manifest yet: run `dbt parse`)"
                )),
            ));
        }
        let mut packages: Vec<&str> = candidates.iter().map(|n| n.package.as_str()).collect();
        packages.sort();
        packages.dedup();
        let package = match packages.as_slice() {
            [one] => *one,
            several => match self
                .project_name
                .as_deref()
                .filter(|root| several.contains(root))
            {
                Some(root) => root,
                None => {
                    return Err(RefError::new(
                        Code::DbtAmbiguousRef,
                        format!(
                            "{call} is ambiguous: packages {} all define `{name}`",
                            several
                                .iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "which package's model?",
                        Some(format!(
                            "name the package: {}",
                            several
                                .iter()
                                .map(|p| ref_call(Some(p), name))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        )),
                    ));
                }
            },
        };
        let in_package: Vec<&Node> = candidates
            .into_iter()
            .filter(|n| n.package == package)
            .collect();
        // Versioned models: the latest version (dbt's bare ref).
        let node = in_package
            .iter()
            .find(|n| n.version.is_some() && n.version == n.latest_version)
            .or_else(|| in_package.first())
            .copied()
            .expect("candidates in the package");
        if node.materialized.as_deref() == Some("ephemeral") || node.relation_name.is_none() {
            return Err(RefError::new(
                Code::DbtEphemeralModel,
                format!(
                    "{call}: the dbt {} `{}.{}` is {} and has no relation in the warehouse",
                    node.resource_type,
                    node.package,
                    node.name,
                    node.materialized.as_deref().unwrap_or("not materialized")
                ),
                "no relation to read",
                Some(
                    "materialize it as a view or table in dbt (`materialized: view`), or read the models it selects from"
                        .into(),
                ),
            ));
        }
        Ok(node.relation_name.clone().unwrap_or_default())
    }

    /// `source('source_name', 'table')`: the relation name.
    pub fn resolve_source(&self, source_name: &str, table: &str) -> Result<String, RefError> {
        let call = format!("source('{source_name}', '{table}')");
        let matches = |s: &&SourceTable| s.source_name == source_name && s.name == table;
        let candidates: Vec<&SourceTable> = self.sources.iter().filter(matches).collect();
        match candidates.as_slice() {
            [] => {
                if self.disabled_sources.iter().any(|s| matches(&s)) {
                    return Err(RefError::new(
                        Code::DbtDisabledModel,
                        format!("{call}: the dbt source table is disabled"),
                        "disabled in the dbt project",
                        Some("enable it in dbt, then run `dbt parse`".into()),
                    ));
                }
                let known: Vec<String> = self
                    .sources
                    .iter()
                    .map(|s| format!("{}.{}", s.source_name, s.name))
                    .collect();
                let wanted = format!("{source_name}.{table}");
                let help = match did_you_mean(&wanted, known.iter().map(String::as_str)) {
                    Some(s) => {
                        let (a, b) = s.split_once('.').unwrap_or((s, ""));
                        format!("did you mean `source('{a}', '{b}')`?")
                    }
                    None if known.is_empty() => "the dbt project declares no sources".into(),
                    None => format!("sources: {}", known.join(", ")),
                };
                Err(RefError::new(
                    Code::DbtUnknownRef,
                    format!("{call}: the dbt manifest has no source table `{wanted}`"),
                    "unknown dbt source",
                    Some(format!(
                        "{help} (a source added since the last `dbt parse` is not in the manifest yet: run `dbt parse`)"
                    )),
                ))
            }
            [one, ..] => {
                let mut packages: Vec<&str> =
                    candidates.iter().map(|s| s.package.as_str()).collect();
                packages.sort();
                packages.dedup();
                let chosen = if packages.len() > 1 {
                    match candidates
                        .iter()
                        .find(|s| Some(s.package.as_str()) == self.project_name.as_deref())
                    {
                        Some(s) => *s,
                        None => {
                            return Err(RefError::new(
                                Code::DbtAmbiguousRef,
                                format!(
                                    "{call} is ambiguous: packages {} all define it",
                                    packages.join(", ")
                                ),
                                "which package's source?",
                                Some("rename the source in one package".into()),
                            ));
                        }
                    }
                } else {
                    *one
                };
                chosen.relation_name.clone().ok_or_else(|| {
                    RefError::new(
                        Code::DbtEphemeralModel,
                        format!("{call}: the source table has no relation name"),
                        "no relation to read",
                        Some("run `dbt parse` again".into()),
                    )
                })
            }
        }
    }
}

/// `ref('name')` or `ref('package', 'name')`, as written in Jinja.
pub fn ref_call(package: Option<&str>, name: &str) -> String {
    match package {
        Some(p) => format!("ref('{p}', '{name}')"),
        None => format!("ref('{name}')"),
    }
}

/// The kpic dialect for a dbt adapter type.
pub fn dialect_for_adapter(adapter: &str) -> Option<&'static str> {
    Some(match adapter {
        "duckdb" => "duckdb",
        "postgres" => "postgres",
        "snowflake" => "snowflake",
        "bigquery" => "bigquery",
        "databricks" | "spark" => "databricks",
        "redshift" => "redshift",
        "trino" => "trino",
        "clickhouse" => "clickhouse",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let text = r#"{
          "metadata": {"adapter_type": "duckdb", "project_name": "shop"},
          "nodes": {
            "model.shop.orders": {"resource_type": "model", "package_name": "shop", "name": "orders",
               "relation_name": "\"db\".\"main\".\"orders\"", "config": {"materialized": "table", "enabled": true}},
            "model.pkg_a.orders": {"resource_type": "model", "package_name": "pkg_a", "name": "orders",
               "relation_name": "\"db\".\"a\".\"orders\"", "config": {"materialized": "view"}},
            "model.pkg_a.dim": {"resource_type": "model", "package_name": "pkg_a", "name": "dim",
               "relation_name": "\"db\".\"a\".\"dim\"", "config": {}},
            "model.pkg_b.dim": {"resource_type": "model", "package_name": "pkg_b", "name": "dim",
               "relation_name": "\"db\".\"b\".\"dim\"", "config": {}},
            "model.shop.eph": {"resource_type": "model", "package_name": "shop", "name": "eph",
               "relation_name": null, "config": {"materialized": "ephemeral"}},
            "model.shop.v.v1": {"resource_type": "model", "package_name": "shop", "name": "v", "version": 1, "latest_version": 2,
               "relation_name": "v_v1", "config": {}},
            "model.shop.v.v2": {"resource_type": "model", "package_name": "shop", "name": "v", "version": 2, "latest_version": 2,
               "relation_name": "v_v2", "config": {}},
            "test.shop.t": {"resource_type": "test", "package_name": "shop", "name": "t", "config": {}}
          },
          "sources": {
            "source.shop.raw.customers": {"resource_type": "source", "package_name": "shop", "source_name": "raw",
               "name": "customers", "relation_name": "\"db\".\"main\".\"raw_customers\""}
          },
          "disabled": {"model.shop.old": [{"resource_type": "model", "package_name": "shop", "name": "old", "config": {"enabled": false}}]}
        }"#;
        Manifest::parse(text).unwrap()
    }

    #[test]
    fn resolves_like_dbt() {
        let m = manifest();
        assert_eq!(
            m.resolve_ref(None, "orders").unwrap(),
            "\"db\".\"main\".\"orders\""
        );
        assert_eq!(
            m.resolve_ref(Some("pkg_a"), "orders").unwrap(),
            "\"db\".\"a\".\"orders\""
        );
        assert_eq!(m.resolve_ref(None, "v").unwrap(), "v_v2");
        assert_eq!(
            m.resolve_source("raw", "customers").unwrap(),
            "\"db\".\"main\".\"raw_customers\""
        );
        let code = |r: Result<String, RefError>| r.unwrap_err().code;
        assert_eq!(code(m.resolve_ref(None, "dim")), Code::DbtAmbiguousRef);
        assert_eq!(code(m.resolve_ref(None, "eph")), Code::DbtEphemeralModel);
        assert_eq!(code(m.resolve_ref(None, "old")), Code::DbtDisabledModel);
        assert_eq!(code(m.resolve_ref(None, "t")), Code::DbtUnknownRef);
        let e = m.resolve_ref(None, "ordrs").unwrap_err();
        assert!(e.help.unwrap().contains("ref('orders')"));
        let e = m.resolve_source("raw", "customer").unwrap_err();
        assert!(e.help.unwrap().contains("source('raw', 'customers')"));
    }
}

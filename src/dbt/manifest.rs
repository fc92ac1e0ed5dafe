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

/// A ref as written: its Jinja call, the package it names (if any) and
/// the version it pins (if any).
struct Pinned<'a> {
    call: &'a str,
    package: Option<&'a str>,
    version: Option<&'a str>,
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

    /// `ref('name')` / `ref('package', 'name')`, optionally with a version
    /// (`v=2`): the relation name, as dbt resolves it (a bare name prefers
    /// the root project; of a versioned model, the version asked for, or
    /// without one its `latest_version`).
    pub fn resolve_ref(
        &self,
        package: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<String, RefError> {
        let call = ref_call(package, name, version);
        let in_call_package = package;
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
                Some(s) => format!("did you mean `{}`?", ref_call(package, s, version)),
                None => "check the name in the dbt project".to_string(),
            };
            if let Some(p) = package
                && let Some(other) = self.nodes.iter().find(|n| n.name == name)
            {
                help = format!(
                    "package `{p}` has no `{name}`, but package `{}` has: {}",
                    other.package,
                    ref_call(Some(&other.package), name, version)
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
                                .map(|p| ref_call(Some(p), name, version))
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
        let written = Pinned {
            call: &call,
            package: in_call_package,
            version,
        };
        let node = self.version_of(&written, package, name, &in_package)?;
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

    /// Whether some model named `name` (enabled or not) has versions.
    pub fn is_versioned(&self, name: &str) -> bool {
        self.nodes
            .iter()
            .chain(&self.disabled_nodes)
            .any(|n| n.name == name && n.version.is_some())
    }

    /// The node of `in_package` (the enabled nodes named `name` in
    /// `package`) a ref with `version` reads: that version, or without one
    /// the latest version of a versioned model (dbt's unpinned ref), or the
    /// one node of an unversioned model.
    fn version_of<'a>(
        &self,
        written: &Pinned<'_>,
        package: &str,
        name: &str,
        in_package: &[&'a Node],
    ) -> Result<&'a Node, RefError> {
        let call = written.call;
        let versioned = in_package.iter().any(|n| n.version.is_some());
        let disabled = |v: &str| {
            self.disabled_nodes
                .iter()
                .find(|n| n.name == name && n.package == package && n.version.as_deref() == Some(v))
        };
        let available = || {
            let mut versions: Vec<&str> = in_package
                .iter()
                .filter_map(|n| n.version.as_deref())
                .collect();
            sort_versions(&mut versions);
            versions
        };
        let wanted = match written.version {
            Some(v) => Some(v.to_string()),
            None if versioned => {
                // latest_version is on every version's node; an older
                // manifest without it: the greatest version (dbt's default).
                let latest = in_package.iter().find_map(|n| n.latest_version.clone());
                Some(latest.unwrap_or_else(|| {
                    available()
                        .last()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                }))
            }
            None => None,
        };
        let Some(wanted) = wanted else {
            return Ok(in_package[0]);
        };
        if let Some(node) = in_package
            .iter()
            .find(|n| n.version.as_deref() == Some(wanted.as_str()))
        {
            return Ok(node);
        }
        if let Some(d) = disabled(&wanted) {
            return Err(RefError::new(
                Code::DbtDisabledModel,
                format!(
                    "{call}: version {wanted} of the dbt {} `{}.{}` is disabled",
                    d.resource_type, d.package, d.name
                ),
                "disabled in the dbt project",
                Some(
                    "enable it in dbt (`enabled: true`), then run `dbt parse`; or read another version"
                        .into(),
                ),
            ));
        }
        let (message, help) = if versioned {
            let versions = available();
            let latest = in_package.iter().find_map(|n| n.latest_version.as_deref());
            (
                format!("{call}: the dbt model `{package}.{name}` has no version {wanted}"),
                format!(
                    "its versions: {}{} (a version added since the last `dbt parse` is not in the manifest yet: run `dbt parse`)",
                    versions.join(", "),
                    latest.map(|l| format!(", latest {l}")).unwrap_or_default()
                ),
            )
        } else {
            (
                format!(
                    "{call}: the dbt {} `{package}.{name}` has no versions",
                    in_package[0].resource_type
                ),
                format!(
                    "drop the version: {} (a version added since the last `dbt parse` is not in the manifest yet: run `dbt parse`)",
                    ref_call(written.package, name, None)
                ),
            )
        };
        Err(RefError::new(
            Code::DbtUnknownRef,
            message,
            "unknown version of the dbt model",
            Some(help),
        ))
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

/// `ref('name')` or `ref('package', 'name')`, with `, v=<version>` for a
/// pinned version, as written in Jinja.
pub fn ref_call(package: Option<&str>, name: &str, version: Option<&str>) -> String {
    let version = version
        .map(|v| format!(", v={}", version_literal(v)))
        .unwrap_or_default();
    match package {
        Some(p) => format!("ref('{p}', '{name}'{version})"),
        None => format!("ref('{name}'{version})"),
    }
}

/// A version as a Jinja literal: an integer as it is (`2`), anything else
/// quoted (`'1.5'`, `'beta'`), and `'0'` too, since dbt reads a falsy
/// `v=0` as no version. dbt looks a pinned version up by its text
/// (`<name>.v<version>`), so the quoted and unquoted forms read the same
/// node.
fn version_literal(v: &str) -> String {
    let integer = v.parse::<u64>().is_ok_and(|n| n != 0 && n.to_string() == v);
    if integer {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Versions in dbt's order: numerically when every one is a number,
/// otherwise as text.
fn sort_versions(versions: &mut Vec<&str>) {
    let numbers: Option<Vec<f64>> = versions.iter().map(|v| v.parse::<f64>().ok()).collect();
    match numbers {
        Some(_) => versions.sort_by(|a, b| {
            let (a, b) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            a.total_cmp(&b)
        }),
        None => versions.sort(),
    }
    versions.dedup();
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
            "model.shop.v.v3": {"resource_type": "model", "package_name": "shop", "name": "v", "version": 3, "latest_version": 2,
               "relation_name": "v_v3", "config": {}},
            "model.shop.s.vbeta": {"resource_type": "model", "package_name": "shop", "name": "s", "version": "beta", "latest_version": "alpha",
               "relation_name": "s_beta", "config": {}},
            "test.shop.t": {"resource_type": "test", "package_name": "shop", "name": "t", "config": {}}
          },
          "sources": {
            "source.shop.raw.customers": {"resource_type": "source", "package_name": "shop", "source_name": "raw",
               "name": "customers", "relation_name": "\"db\".\"main\".\"raw_customers\""}
          },
          "disabled": {"model.shop.old": [{"resource_type": "model", "package_name": "shop", "name": "old", "config": {"enabled": false}}],
            "model.shop.v.v0": [{"resource_type": "model", "package_name": "shop", "name": "v", "version": 0, "latest_version": 2, "config": {"enabled": false}}],
            "model.shop.s.valpha": [{"resource_type": "model", "package_name": "shop", "name": "s", "version": "alpha", "latest_version": "alpha", "config": {"enabled": false}}]}
        }"#;
        Manifest::parse(text).unwrap()
    }

    #[test]
    fn resolves_like_dbt() {
        let m = manifest();
        assert_eq!(
            m.resolve_ref(None, "orders", None).unwrap(),
            "\"db\".\"main\".\"orders\""
        );
        assert_eq!(
            m.resolve_ref(Some("pkg_a"), "orders", None).unwrap(),
            "\"db\".\"a\".\"orders\""
        );
        assert_eq!(m.resolve_ref(None, "v", None).unwrap(), "v_v2");
        assert_eq!(
            m.resolve_source("raw", "customers").unwrap(),
            "\"db\".\"main\".\"raw_customers\""
        );
        let code = |r: Result<String, RefError>| r.unwrap_err().code;
        assert_eq!(
            code(m.resolve_ref(None, "dim", None)),
            Code::DbtAmbiguousRef
        );
        assert_eq!(
            code(m.resolve_ref(None, "eph", None)),
            Code::DbtEphemeralModel
        );
        assert_eq!(
            code(m.resolve_ref(None, "old", None)),
            Code::DbtDisabledModel
        );
        assert_eq!(code(m.resolve_ref(None, "t", None)), Code::DbtUnknownRef);
        let e = m.resolve_ref(None, "ordrs", None).unwrap_err();
        assert!(e.help.unwrap().contains("ref('orders')"));
        let e = m.resolve_source("raw", "customer").unwrap_err();
        assert!(e.help.unwrap().contains("source('raw', 'customers')"));
    }

    #[test]
    fn versions_resolve_like_dbt() {
        let m = manifest();
        // Unpinned: latest_version (2), not the greatest (3, a prerelease).
        assert_eq!(m.resolve_ref(None, "v", None).unwrap(), "v_v2");
        assert_eq!(m.resolve_ref(None, "v", Some("3")).unwrap(), "v_v3");
        assert_eq!(m.resolve_ref(Some("shop"), "v", Some("1")).unwrap(), "v_v1");
        let e = m.resolve_ref(None, "v", Some("4")).unwrap_err();
        assert_eq!(e.code, Code::DbtUnknownRef);
        assert!(e.message.contains("ref('v', v=4)"), "{}", e.message);
        assert!(e.message.contains("no version 4"), "{}", e.message);
        let help = e.help.unwrap();
        assert!(help.contains("its versions: 1, 2, 3, latest 2"), "{help}");
        let e = m.resolve_ref(None, "v", Some("0")).unwrap_err();
        assert_eq!(e.code, Code::DbtDisabledModel);
        // An unversioned model pinned to a version.
        let e = m
            .resolve_ref(Some("shop"), "orders", Some("2"))
            .unwrap_err();
        assert_eq!(e.code, Code::DbtUnknownRef);
        assert!(e.message.contains("has no versions"), "{}", e.message);
        assert!(e.help.unwrap().contains("ref('shop', 'orders')"));
        // Text versions; the latest disabled.
        assert_eq!(m.resolve_ref(None, "s", Some("beta")).unwrap(), "s_beta");
        let e = m.resolve_ref(None, "s", None).unwrap_err();
        assert_eq!(e.code, Code::DbtDisabledModel);
        assert!(e.message.contains("version alpha"), "{}", e.message);
        assert!(m.is_versioned("v") && m.is_versioned("s") && !m.is_versioned("orders"));
    }

    #[test]
    fn ref_calls_print_the_version_dbt_reads() {
        assert_eq!(ref_call(None, "m", Some("2")), "ref('m', v=2)");
        assert_eq!(
            ref_call(Some("p"), "m", Some("1.5")),
            "ref('p', 'm', v='1.5')"
        );
        assert_eq!(ref_call(None, "m", Some("02")), "ref('m', v='02')");
        assert_eq!(ref_call(None, "m", Some("0")), "ref('m', v='0')");
        assert_eq!(ref_call(None, "m", Some("it's")), "ref('m', v='it\\'s')");
        assert_eq!(ref_call(None, "m", None), "ref('m')");
    }
}

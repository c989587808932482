//! `get`, `describe` and `delete` of ConfigMaps and Secrets, printed like kubectl.
//! Secret values never appear in tables or `describe` (sizes only); `-o yaml|json`
//! shows them base64-encoded in `data`, as kubectl does.

use std::fmt::Write as _;

use anyhow::Result;
use hyper::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::client::{enc, Client};
#[cfg(test)]
use super::output::table;
use crate::timefmt::from_k8s_time;

/// Which object kind a word names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// ConfigMaps.
    ConfigMap,
    /// Secrets.
    Secret,
}

impl ObjectKind {
    /// `configmap`, `configmaps`, `cm`, `secret`, `secrets`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "configmap" | "configmaps" | "cm" => Some(ObjectKind::ConfigMap),
            "secret" | "secrets" => Some(ObjectKind::Secret),
            _ => None,
        }
    }

    /// The API path segment and kubectl's plural (`configmaps`, `secrets`).
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmaps",
            ObjectKind::Secret => "secrets",
        }
    }

    /// kubectl's singular (`configmap`, `secret`).
    pub fn singular(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }
}

fn age(meta: &ObjectMeta, now: i64) -> String {
    match &meta.creation_timestamp {
        Some(t) => podhost_api::display::age(std::time::Duration::from_nanos(
            now.saturating_sub(from_k8s_time(t)).max(0) as u64,
        )),
        None => "<unknown>".into(),
    }
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// `get configmaps`: NAME DATA AGE.
#[cfg(test)]
fn config_maps_table(list: &[ConfigMap], all_namespaces: bool, now: i64) -> String {
    table(&config_map_rows(list, all_namespaces, now))
}

/// The rows of `get configmaps`, header first.
pub fn config_map_rows(list: &[ConfigMap], all_namespaces: bool, now: i64) -> Vec<Vec<String>> {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.extend(["NAME", "DATA", "AGE"].map(String::from));
    let mut rows = vec![header];
    for c in list {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(c.metadata.namespace.clone().unwrap_or_default());
        }
        let n =
            c.data.as_ref().map_or(0, |d| d.len()) + c.binary_data.as_ref().map_or(0, |d| d.len());
        row.extend([name_of(&c.metadata), n.to_string(), age(&c.metadata, now)]);
        rows.push(row);
    }
    rows
}

/// The rows of `get secrets` (NAME TYPE DATA AGE), header first.
pub fn secret_rows(list: &[Secret], all_namespaces: bool, now: i64) -> Vec<Vec<String>> {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.extend(["NAME", "TYPE", "DATA", "AGE"].map(String::from));
    let mut rows = vec![header];
    for s in list {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(s.metadata.namespace.clone().unwrap_or_default());
        }
        row.extend([
            name_of(&s.metadata),
            s.type_.clone().unwrap_or_else(|| "Opaque".into()),
            s.data.as_ref().map_or(0, |d| d.len()).to_string(),
            age(&s.metadata, now),
        ]);
        rows.push(row);
    }
    rows
}

fn map_lines(
    out: &mut String,
    title: &str,
    m: Option<&std::collections::BTreeMap<String, String>>,
) {
    match m.filter(|m| !m.is_empty()) {
        None => {
            let _ = writeln!(out, "{title:<14}<none>");
        }
        Some(m) => {
            for (i, (k, v)) in m.iter().enumerate() {
                let label = if i == 0 { title } else { "" };
                let _ = writeln!(out, "{label:<14}{k}={v}");
            }
        }
    }
}

fn header(out: &mut String, meta: &ObjectMeta) {
    let _ = writeln!(out, "{:<14}{}", "Name:", name_of(meta));
    let _ = writeln!(
        out,
        "{:<14}{}",
        "Namespace:",
        meta.namespace.clone().unwrap_or_default()
    );
    map_lines(out, "Labels:", meta.labels.as_ref());
    map_lines(out, "Annotations:", meta.annotations.as_ref());
}

/// `describe configmap`: values shown, binary ones by size.
pub fn describe_config_map(c: &ConfigMap) -> String {
    let mut out = String::new();
    header(&mut out, &c.metadata);
    let _ = writeln!(out, "\nData\n====");
    for (k, v) in c.data.iter().flatten() {
        let _ = writeln!(out, "{k}:\n----\n{v}\n");
    }
    let _ = writeln!(out, "\nBinaryData\n====");
    for (k, v) in c.binary_data.iter().flatten() {
        let _ = writeln!(out, "{k}: {} bytes", v.0.len());
    }
    if c.immutable == Some(true) {
        let _ = writeln!(out, "\nImmutable:  true");
    }
    let _ = writeln!(out, "\nEvents:  <none>");
    out
}

/// `describe secret`: sizes only, never the values.
pub fn describe_secret(s: &Secret) -> String {
    let mut out = String::new();
    header(&mut out, &s.metadata);
    let _ = writeln!(
        out,
        "\nType:  {}",
        s.type_.clone().unwrap_or_else(|| "Opaque".into())
    );
    let _ = writeln!(out, "\nData\n====");
    for (k, v) in s.data.iter().flatten() {
        let _ = writeln!(out, "{k}:  {} bytes", v.0.len());
    }
    if s.immutable == Some(true) {
        let _ = writeln!(out, "\nImmutable:  true");
    }
    out
}

/// Names of every ConfigMap or Secret in namespace `ns` (`describe configmaps`).
pub async fn names(client: &Client, kind: ObjectKind, ns: &str) -> Result<Vec<String>> {
    let q = format!("/v1/{}?namespace={}", kind.plural(), enc(ns));
    let list: Vec<serde_json::Value> = client.call(Method::GET, &q, None).await?;
    Ok(list
        .iter()
        .filter_map(|v| v.pointer("/metadata/name")?.as_str().map(str::to_string))
        .collect())
}

/// `describe configmap|secret NAME`.
pub async fn describe(client: &Client, kind: ObjectKind, ns: &str, name: &str) -> Result<i32> {
    let path = format!("/v1/{}/{ns}/{name}", kind.plural());
    match kind {
        ObjectKind::ConfigMap => {
            let c: ConfigMap = client.call(Method::GET, &path, None).await?;
            out!("{}", describe_config_map(&c));
        }
        ObjectKind::Secret => {
            let s: Secret = client.call(Method::GET, &path, None).await?;
            out!("{}", describe_secret(&s));
        }
    }
    Ok(0)
}

/// `delete configmap|secret NAME`; prints kubectl's line. Returns false when not found
/// (unless that is no error: `--ignore-not-found`).
pub async fn delete(
    client: &Client,
    kind: ObjectKind,
    ns: &str,
    name: &str,
    ignore_not_found: bool,
) -> bool {
    let r: Result<serde_json::Value> = client
        .call(
            Method::DELETE,
            &format!("/v1/{}/{ns}/{name}", kind.plural()),
            None,
        )
        .await;
    match r {
        Ok(_) => {
            outln!("{} \"{name}\" deleted", kind.singular());
            true
        }
        Err(e) if ignore_not_found && e.to_string().ends_with("not found") => true,
        Err(e) => {
            eprintln!("Error from server (NotFound): {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn secret_describe_shows_sizes_only() {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            data: Some([("password".to_string(), ByteString(b"hunter2".to_vec()))].into()),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        let text = describe_secret(&s);
        assert!(text.contains("password:  7 bytes"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let yaml = serde_saphyr::to_string(&s).expect("yaml");
        assert!(yaml.contains("password: aHVudGVyMg=="), "{yaml}");
        assert!(yaml.contains("kind: Secret"), "{yaml}");
    }

    #[test]
    fn tables() {
        let c = ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                ..Default::default()
            },
            data: Some([("a".to_string(), "b".to_string())].into()),
            ..Default::default()
        };
        let t = config_maps_table(&[c], false, 0);
        assert!(t.starts_with("NAME   DATA   AGE\ncfg    1"), "{t}");
    }
}

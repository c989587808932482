//! ConfigMap and Secret objects: what an API server does to them before storing them
//! (defaulting, `stringData` merged into `data`) and its validation rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

use crate::names;
use crate::validate::{metadata_errors, quote, render_errors, FieldError};
use crate::DEFAULT_NAMESPACE;

/// Largest total size of a ConfigMap's or Secret's values (Kubernetes: 1 MiB).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// A ConfigMap or Secret rejected by validation, worded like an API server's refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The {kind} {name:?} is invalid: {}", render_errors(.errors))]
pub struct InvalidObject {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    /// The object's name.
    pub name: String,
    /// Every problem found.
    pub errors: Vec<FieldError>,
}

/// Sets the namespace of a ConfigMap to `default` when unset.
pub fn default_config_map(cm: &mut ConfigMap) {
    default_namespace(&mut cm.metadata.namespace);
}

/// Defaults a Secret as the API server does: namespace, `type: Opaque`, and `stringData`
/// merged into `data` (stringData wins on a clash) so only `data` is stored.
pub fn default_secret(secret: &mut Secret) {
    default_namespace(&mut secret.metadata.namespace);
    if secret.type_.as_deref().unwrap_or_default().is_empty() {
        secret.type_ = Some("Opaque".into());
    }
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in strings {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

fn default_namespace(ns: &mut Option<String>) {
    if ns.as_deref().unwrap_or_default().is_empty() {
        *ns = Some(DEFAULT_NAMESPACE.to_string());
    }
}

/// Validates a (defaulted) ConfigMap: name, keys (shared by `data` and `binaryData`), size.
pub fn validate_config_map(cm: &ConfigMap) -> Result<(), InvalidObject> {
    let mut errors = metadata_errors(&cm.metadata);
    let mut total = 0;
    for (k, v) in cm.data.iter().flatten() {
        key_errors("data", k, &mut errors);
        total += v.len();
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        key_errors("binaryData", k, &mut errors);
        total += v.0.len();
        if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errors.push(FieldError::invalid(
                "data",
                quote(k),
                "duplicate of key present in binaryData",
            ));
        }
    }
    size_errors(total, &mut errors);
    finish("ConfigMap", &cm.metadata.name, errors)
}

/// Validates a (defaulted) Secret: name, keys, size and the keys its `type` requires.
pub fn validate_secret(secret: &Secret) -> Result<(), InvalidObject> {
    let mut errors = metadata_errors(&secret.metadata);
    let mut total = 0;
    for (k, v) in secret.data.iter().flatten() {
        key_errors("data", k, &mut errors);
        total += v.0.len();
    }
    size_errors(total, &mut errors);
    let has = |k: &str| secret.data.as_ref().is_some_and(|d| d.contains_key(k));
    let required: &[&str] = match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/basic-auth" => &[],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errors.push(FieldError::required(format!("data[{k}]"), ""));
        }
    }
    finish("Secret", &secret.metadata.name, errors)
}

fn key_errors(field: &str, key: &str, errors: &mut Vec<FieldError>) {
    for p in names::config_map_key(key) {
        errors.push(FieldError::invalid(field, quote(key), p));
    }
}

fn size_errors(total: usize, errors: &mut Vec<FieldError>) {
    if total > MAX_DATA_BYTES {
        errors.push(FieldError::new_too_long(
            "data",
            format!("must have at most {MAX_DATA_BYTES} bytes"),
        ));
    }
}

fn finish(
    kind: &'static str,
    name: &Option<String>,
    errors: Vec<FieldError>,
) -> Result<(), InvalidObject> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidObject {
            kind,
            name: name.clone().unwrap_or_default(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_manifests, Manifest};

    fn secret(yaml: &str) -> Secret {
        match parse_manifests(yaml, "s.yaml").expect("parses").remove(0) {
            Manifest::Secret(s) => *s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn string_data_is_merged_and_wins() {
        let mut s = secret("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: eA==, b: eQ==}\nstringData: {b: plain}\n");
        default_secret(&mut s);
        assert!(s.string_data.is_none());
        let data = s.data.as_ref().expect("data");
        assert_eq!(data["a"].0, b"x");
        assert_eq!(data["b"].0, b"plain");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("default"));
        assert!(validate_secret(&s).is_ok());
    }

    #[test]
    fn bad_keys_and_missing_tls_keys() {
        let mut s = secret("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {'a b': x}\n");
        default_secret(&mut s);
        let err = validate_secret(&s).expect_err("invalid").to_string();
        assert!(err.starts_with("The Secret \"s\" is invalid:"), "{err}");
        assert!(
            err.contains(r#"data: Invalid value: "a b": a valid config key"#),
            "{err}"
        );
        assert!(err.contains("data[tls.crt]: Required value"), "{err}");
    }

    #[test]
    fn config_map_keys_unique_across_data_and_binary() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\nbinaryData: {k: eA==}\n";
        let Manifest::ConfigMap(mut cm) = parse_manifests(text, "c").expect("parses").remove(0)
        else {
            panic!("not a configmap")
        };
        default_config_map(&mut cm);
        let err = validate_config_map(&cm).expect_err("dup").to_string();
        assert!(
            err.contains("duplicate of key present in binaryData"),
            "{err}"
        );
    }
}

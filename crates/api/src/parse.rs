//! YAML manifests to typed objects, with kubectl-style strict decoding.
//!
//! k8s-openapi's types silently skip unknown fields, but a misspelt field
//! (`imagee`) must not be ignored: Kubernetes' strict decoding rejects it, and so do
//! we. Each document goes YAML → `serde_json::Value` (keeping the YAML parser's
//! line/column for syntax errors) → `Pod` through `serde_ignored` (collects skipped
//! fields) and `serde_path_to_error` (names the field of a type error).

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::Value;

/// One object read from a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// A `v1` `Pod`, as written (not yet defaulted or validated).
    Pod(Box<Pod>),
    /// A `v1` `ConfigMap`, as written.
    ConfigMap(Box<ConfigMap>),
    /// A `v1` `Secret`, as written (`stringData` not yet merged).
    Secret(Box<Secret>),
}

impl Manifest {
    /// kubectl's lower-case kind (`pod`, `configmap`, `secret`) for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Manifest::Pod(_) => "pod",
            Manifest::ConfigMap(_) => "configmap",
            Manifest::Secret(_) => "secret",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Manifest::Pod(p) => &p.metadata,
            Manifest::ConfigMap(c) => &c.metadata,
            Manifest::Secret(s) => &s.metadata,
        }
    }
}

/// Why a manifest file could not be read into objects.
///
/// `file` is the name the caller gave (a path, or `-` for stdin); `document` counts
/// non-empty YAML documents from 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The text is not valid YAML.
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Syntax {
        /// Manifest name.
        file: String,
        /// 1-based line of the error.
        line: u64,
        /// 1-based column of the error.
        column: u64,
        /// The YAML parser's explanation.
        message: String,
    },
    /// The YAML parser failed without a position (resource budget, I/O-like failures).
    #[error("{file}: invalid YAML: {message}")]
    Yaml {
        /// Manifest name.
        file: String,
        /// The YAML parser's explanation.
        message: String,
    },
    /// A document is a scalar or a list, not an object.
    #[error(
        "document {document} of {file} is {found}, expected an object with apiVersion and kind"
    )]
    NotAnObject {
        /// Manifest name.
        file: String,
        /// 1-based document index.
        document: usize,
        /// What was found instead ("a list", "a string" …).
        found: &'static str,
    },
    /// `apiVersion` or `kind` is missing (or not a string).
    #[error("{field} not set (document {document} of {file}): a Pod needs `apiVersion: v1` and `kind: Pod`")]
    MissingTypeField {
        /// Manifest name.
        file: String,
        /// 1-based document index.
        document: usize,
        /// `apiVersion` or `kind`.
        field: &'static str,
    },
    /// A kind podhost does not run.
    #[error("kind {kind} is not supported: podhost runs Pods, ConfigMaps and Secrets (document {document} of {file})")]
    UnsupportedKind {
        /// Manifest name.
        file: String,
        /// 1-based document index.
        document: usize,
        /// The document's kind.
        kind: String,
    },
    /// A supported kind with an apiVersion other than `v1`.
    #[error("apiVersion {api_version:?} is not valid for kind {kind}: use \"v1\" (document {document} of {file})")]
    UnsupportedApiVersion {
        /// Manifest name.
        file: String,
        /// 1-based document index.
        document: usize,
        /// The document's kind.
        kind: String,
        /// The document's apiVersion.
        api_version: String,
    },
    /// Fields the schema does not have, as full paths (`spec.containers[0].imagee`).
    #[error("strict decoding error: {} (document {document} of {file})", quote_fields(.fields))]
    UnknownFields {
        /// Manifest name.
        file: String,
        /// 1-based document index.
        document: usize,
        /// Every unknown field, in document order.
        fields: Vec<String>,
    },
    /// A field has the wrong type or value shape.
    #[error("{path}: {message} (document {document} of {file})")]
    Type {
        /// Manifest name.
        file: String,
        /// 1-based document index.
        document: usize,
        /// Path of the offending field (`spec.containers[0].ports[0].containerPort`).
        path: String,
        /// What was wrong (`invalid type: string "eighty", expected i32`).
        message: String,
    },
}

/// Renders unknown fields like Kubernetes: `unknown field "a.b", unknown field "c"`.
fn quote_fields(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses every YAML document of `text` (documents separated by `---`; empty ones
/// skipped) into manifests; `source` names the file in error messages.
pub fn parse_manifests(text: &str, source: &str) -> Result<Vec<Manifest>, ParseError> {
    // Kubernetes reads YAML 1.1 (go-yaml): `defaultMode: 0644` is octal, as in its docs.
    let options = serde_saphyr::options! { with_snippet: false, legacy_octal_numbers: true };
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| yaml_error(&e, source))?;
    documents
        .into_iter()
        .filter(|doc| !doc.is_null())
        .enumerate()
        .map(|(i, doc)| parse_document(doc, source, i + 1))
        .collect()
}

/// Converts a YAML library error into [`ParseError`], keeping its position.
fn yaml_error(e: &serde_saphyr::Error, file: &str) -> ParseError {
    let rendered = e.to_string();
    match e.location() {
        Some(loc) if loc.line() > 0 => {
            // The library appends the position to its message; we print it in
            // front instead (`file:line:column:`), like compilers do.
            let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
            let message = rendered
                .strip_suffix(&suffix)
                .unwrap_or(&rendered)
                // Advice about the library's options means nothing to a user.
                .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
            ParseError::Syntax {
                file: file.to_string(),
                line: loc.line(),
                column: loc.column(),
                message,
            }
        }
        _ => ParseError::Yaml {
            file: file.to_string(),
            message: rendered,
        },
    }
}

/// Checks one document's type fields and decodes it strictly.
fn parse_document(doc: Value, file: &str, document: usize) -> Result<Manifest, ParseError> {
    let obj = match &doc {
        Value::Object(map) => map,
        other => {
            return Err(ParseError::NotAnObject {
                file: file.to_string(),
                document,
                found: describe(other),
            })
        }
    };
    let type_field = |field: &'static str| {
        obj.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(ParseError::MissingTypeField {
                file: file.to_string(),
                document,
                field,
            })
    };
    let api_version = type_field("apiVersion")?;
    let kind = type_field("kind")?;
    if !matches!(kind.as_str(), "Pod" | "ConfigMap" | "Secret") {
        return Err(ParseError::UnsupportedKind {
            file: file.to_string(),
            document,
            kind,
        });
    }
    if api_version != "v1" {
        return Err(ParseError::UnsupportedApiVersion {
            file: file.to_string(),
            document,
            kind,
            api_version,
        });
    }
    Ok(match kind.as_str() {
        "ConfigMap" => Manifest::ConfigMap(Box::new(decode_strict(doc, file, document)?)),
        "Secret" => Manifest::Secret(Box::new(decode_strict(doc, file, document)?)),
        _ => Manifest::Pod(Box::new(decode_strict(doc, file, document)?)),
    })
}

/// Deserializes `doc` into `T`, failing on unknown fields and naming the path of
/// type errors.
fn decode_strict<T: serde::de::DeserializeOwned>(
    doc: Value,
    file: &str,
    document: usize,
) -> Result<T, ParseError> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(format_ignored_path(&path));
    let result: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(doc, &mut record));
    match result {
        Ok(value) if unknown.is_empty() => Ok(value),
        Ok(_) => Err(ParseError::UnknownFields {
            file: file.to_string(),
            document,
            fields: unknown,
        }),
        Err(e) => Err(ParseError::Type {
            file: file.to_string(),
            document,
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        }),
    }
}

/// Formats a `serde_ignored` path as kubectl does: `spec.containers[0].imagee`.
fn format_ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = format_ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        // Option and newtype wrappers are invisible in the document.
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => format_ignored_path(parent),
    }
}

/// A short description of a JSON value's type, for messages.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_err(yaml: &str) -> String {
        parse_manifests(yaml, "pod.yaml")
            .expect_err("should fail")
            .to_string()
    }

    const MINIMAL: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n";

    #[test]
    fn parses_minimal_pod() {
        let manifests = parse_manifests(MINIMAL, "pod.yaml").expect("parses");
        assert_eq!(manifests.len(), 1);
        let Manifest::Pod(pod) = &manifests[0] else {
            panic!("not a pod: {manifests:?}")
        };
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
    }

    #[test]
    fn multiple_documents_skip_empty_ones() {
        let text = format!(
            "---\n{MINIMAL}---\n---\n{}\n---\n",
            MINIMAL.replace("web", "db")
        );
        let manifests = parse_manifests(&text, "pods.yaml").expect("parses");
        assert_eq!(manifests.len(), 2);
    }

    #[test]
    fn unknown_fields_have_full_paths() {
        let yaml = MINIMAL.replace(
            "    image: nginx",
            "    imagee: nginx\n    ports:\n    - containerPort: 80\n      protocl: TCP",
        );
        let err = pod_err(&yaml);
        assert!(
            err.contains(r#"unknown field "spec.containers[0].imagee""#),
            "{err}"
        );
        assert!(
            err.contains(r#"unknown field "spec.containers[0].ports[0].protocl""#),
            "{err}"
        );
        let err = pod_err(&format!("{MINIMAL}stauts: {{}}\n"));
        assert!(err.contains(r#"unknown field "stauts""#), "{err}");
    }

    #[test]
    fn type_errors_name_the_path() {
        let yaml = MINIMAL.replace(
            "    image: nginx",
            "    image: nginx\n    ports:\n    - containerPort: eighty",
        );
        let err = pod_err(&yaml);
        assert!(
            err.contains(r#"spec.containers[0].ports[0].containerPort: invalid type: string "eighty", expected i32"#),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = pod_err("apiVersion: v1\nkind: Pod\nmetadata: [a, b\nspec: {}\n");
        assert!(err.starts_with("pod.yaml:4:"), "{err}");
        let err = pod_err("apiVersion: v1\nkind: Pod\nmetadata:\n\tname: x\n");
        assert!(err.starts_with("pod.yaml:4:"), "{err}");
        assert!(err.contains("tab"), "{err}");
    }

    #[test]
    fn type_fields_are_checked() {
        let err = pod_err(&format!(
            "{MINIMAL}---\napiVersion: apps/v1\nkind: Deployment\n"
        ));
        assert_eq!(
            err,
            "kind Deployment is not supported: podhost runs Pods, ConfigMaps and Secrets (document 2 of pod.yaml)"
        );
        assert!(pod_err("kind: Pod\n").contains("apiVersion not set (document 1 of pod.yaml)"));
        assert!(pod_err("apiVersion: v1\n").contains("kind not set"));
        assert!(pod_err("apiVersion: apps/v1\nkind: Pod\n").contains("apiVersion \"apps/v1\""));
        assert!(pod_err("- a\n- b\n").contains("is a list"));
    }

    #[test]
    fn config_maps_and_secrets() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: aGVsbG8=}\nstringData: {p: q}\n";
        let m = parse_manifests(text, "o.yaml").expect("parses");
        let Manifest::ConfigMap(c) = &m[0] else {
            panic!("{m:?}")
        };
        assert_eq!(
            c.data.as_ref().and_then(|d| d.get("a")).map(String::as_str),
            Some("b")
        );
        let Manifest::Secret(s) = &m[1] else {
            panic!("{m:?}")
        };
        assert_eq!(
            s.data
                .as_ref()
                .and_then(|d| d.get("k"))
                .map(|b| b.0.as_slice()),
            Some(&b"hello"[..])
        );
        let err = pod_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatta: {}\n");
        assert!(err.contains(r#"unknown field "datta""#), "{err}");
    }

    #[test]
    fn leading_zero_modes_are_octal_like_kubernetes() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: a, image: b}]\n  volumes:\n  - name: s\n    secret: {secretName: s, defaultMode: 0400}\n";
        let Manifest::Pod(pod) = parse_manifests(text, "p").expect("parses").remove(0) else {
            panic!("not a pod")
        };
        let vols = pod.spec.and_then(|s| s.volumes).unwrap_or_default();
        assert_eq!(
            vols[0].secret.as_ref().and_then(|s| s.default_mode),
            Some(0o400)
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = pod_err("apiVersion: v1\nkind: Pod\nkind: Pod\n");
        assert!(err.contains("pod.yaml:3:1"), "{err}");
    }
}

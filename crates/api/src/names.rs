//! Kubernetes name formats (apimachinery `validation.IsDNS1123Label` and friends).
//!
//! Each check returns the list of problems (empty = valid), worded like Kubernetes
//! so users can search for the message.

/// Longest DNS-1123 label (RFC 1123).
pub(crate) const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (RFC 1123).
pub(crate) const SUBDOMAIN_MAX: usize = 253;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', \
or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
(e.g. 'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

const QUALIFIED_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and \
must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc', \
regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `max` as Kubernetes words a length limit.
fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// Whether `s` matches `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// RFC 1123 label: container, volume, port-less names and namespaces.
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_MAX {
        errs.push(too_long(LABEL_MAX));
    }
    if !is_label_shape(s) {
        errs.push(LABEL_MSG.to_string());
    }
    errs
}

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, \
'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation \
is '[-._a-zA-Z0-9]+')";

/// ConfigMap and Secret keys (`IsConfigMapKey`): `[-._a-zA-Z0-9]+`, not `.` or `..`.
pub(crate) fn config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > SUBDOMAIN_MAX {
        errs.push(too_long(SUBDOMAIN_MAX));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    if s == "." {
        errs.push("must not be '.'".to_string());
    } else if s == ".." {
        errs.push("must not be '..'".to_string());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// RFC 1123 subdomain: object names.
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > SUBDOMAIN_MAX {
        errs.push(too_long(SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_label_shape) {
        errs.push(SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Whether `s` matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_shape(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain.
pub(crate) fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if name.contains('/') {
        errs.push(format!("a qualified name {QUALIFIED_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
        return errs;
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > LABEL_MAX {
            errs.push(format!("name part {}", too_long(LABEL_MAX)));
        }
        if !is_qualified_shape(name) {
            errs.push(format!("name part {QUALIFIED_MSG}"));
        }
    }
    errs
}

/// Label values: empty, or a qualified name part of at most 63 characters.
pub(crate) fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_MAX {
        errs.push(too_long(LABEL_MAX));
    }
    if !s.is_empty() && !is_qualified_shape(s) {
        errs.push(format!(
            "a valid label must be an empty string or {QUALIFIED_MSG}"
        ));
    }
    errs
}

/// IANA service names, used for port names: at most 15 of `[-a-z0-9]`, a letter,
/// no `--`, no hyphen at either end.
pub(crate) fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(too_long(15));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Environment variable names: printable ASCII without `=` (Kubernetes ≥ 1.32
/// relaxed the old C-identifier rule to this).
pub(crate) fn env_var_name(s: &str) -> Vec<String> {
    if s.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        Vec::new()
    } else {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "web", "web-1", "0", "a".repeat(63).as_str()] {
            assert!(dns1123_label(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "web_1",
            "-a",
            "a-",
            "a.b",
            "a".repeat(64).as_str(),
        ] {
            assert!(!dns1123_label(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        for ok in ["web", "web.example.com", "a-b.c"] {
            assert!(dns1123_subdomain(ok).is_empty(), "{ok}");
        }
        for bad in ["", "Web_1", "a..b", ".a", "a.", "a".repeat(254).as_str()] {
            assert!(!dns1123_subdomain(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_and_values() {
        for ok in ["app", "app.kubernetes.io/name", "A_b.c"] {
            assert!(qualified_name(ok).is_empty(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a/b/c", "-a", "Exa mple/a"] {
            assert!(!qualified_name(bad).is_empty(), "{bad}");
        }
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_x").is_empty());
        assert!(!label_value("a b").is_empty());
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("web-8080").is_empty());
        for bad in [
            "HTTP",
            "8080",
            "a--b",
            "-a",
            "a-",
            "abcdefghijklmnop",
            "a_b",
        ] {
            assert!(!port_name(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        assert!(env_var_name("PATH").is_empty());
        assert!(env_var_name("my.var-1").is_empty());
        assert!(!env_var_name("A=B").is_empty());
        assert!(!env_var_name("tab\there").is_empty());
    }
}

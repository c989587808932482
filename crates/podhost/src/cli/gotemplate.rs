//! `-o go-template=…` and `-o go-template-file=…`: Go's text/template as kubectl runs
//! it, through the `gotmpl` crate (a port of Go's text/template: range, with, index,
//! printf, len, comparisons; maps range in key order; a missing key prints
//! `<no value>`, kubectl's default `--allow-missing-template-keys=true`), plus kubectl's
//! two functions `exists` and `base64decode`.

use std::fmt;

use anyhow::{Context, Result};
use base64::Engine as _;
use gotmpl::Value;

/// A parsed template.
#[derive(Clone)]
pub struct GoTemplate(gotmpl::Template);

impl fmt::Debug for GoTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GoTemplate")
    }
}

/// A template function's error.
fn func_error(name: &str, msg: impl fmt::Display) -> gotmpl::TemplateError {
    gotmpl::TemplateError::Exec(format!("error calling {name}: {msg}"))
}

/// kubectl's `exists ITEM INDEX…`: whether each key (of a map) or index (of a list)
/// leads somewhere, and the end is not nil.
fn exists(args: &[Value]) -> gotmpl::Result<Value> {
    let (item, indices) = args
        .split_first()
        .ok_or_else(|| func_error("exists", "wrong number of args: want at least 1"))?;
    let mut v = item.clone();
    for i in indices {
        let next = match (&v, i) {
            (Value::Map(m), Value::String(k)) => m.get(k).cloned(),
            (Value::List(l), i) => i
                .as_int()
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| l.get(n).cloned()),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => return Ok(Value::Bool(false)),
        }
    }
    Ok(Value::Bool(!matches!(v, Value::Nil)))
}

/// kubectl's `base64decode STRING` (a Secret's data).
fn base64decode(args: &[Value]) -> gotmpl::Result<Value> {
    let [Value::String(s)] = args else {
        return Err(func_error("base64decode", "want one string"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|e| func_error("base64decode", format!("base64 decode failed: {e}")))?;
    Ok(Value::String(String::from_utf8_lossy(&bytes).into()))
}

impl GoTemplate {
    /// Parses `-o go-template=TEXT`.
    pub fn parse(text: &str) -> Result<GoTemplate> {
        let t = gotmpl::Template::new("output")
            .func("exists", exists)
            .func("base64decode", base64decode)
            .parse(text)
            .map_err(|e| anyhow::anyhow!("error parsing template {text}, {e}"))?;
        Ok(GoTemplate(t))
    }

    /// Reads and parses `-o go-template-file=PATH`.
    pub fn from_file(path: &str) -> Result<GoTemplate> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("error reading --template {path}"))?;
        GoTemplate::parse(&text)
    }

    /// The template applied to an object (or a List of them).
    pub fn render(&self, v: &serde_json::Value) -> Result<String> {
        let data = gotmpl::to_value(v).context("converting the object for the template")?;
        self.0
            .execute_to_string(&data)
            .map_err(|e| anyhow::anyhow!("error executing template: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, v: serde_json::Value) -> String {
        GoTemplate::parse(t)
            .expect("parse")
            .render(&v)
            .expect("render")
    }

    #[test]
    fn kubectl_habits() {
        let list = serde_json::json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"tier": "db", "app": "web"}},
             "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
             "status": {"phase": "Running"}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending"}},
        ]});
        assert_eq!(
            render(
                r#"{{range .items}}{{.metadata.name}}{{"\t"}}{{.status.phase}}{{"\n"}}{{end}}"#,
                list.clone()
            ),
            "a\tRunning\nb\tPending\n"
        );
        assert_eq!(
            render(
                r#"{{range .items}}{{printf "%-3s|%q" .metadata.name .status.phase}};{{end}}"#,
                list.clone()
            ),
            "a  |\"Running\";b  |\"Pending\";"
        );
        // Maps range in key order; a missing key prints <no value>; with/else.
        assert_eq!(
            render(
                r#"{{range $k, $v := (index .items 0).metadata.labels}}{{$k}}={{$v}},{{end}} {{(index .items 1).metadata.labels}} {{range .items}}{{with .metadata.labels}}{{index . "app"}}{{else}}none{{end}} {{end}}"#,
                list.clone()
            ),
            "app=web,tier=db, <no value> web none "
        );
        assert_eq!(
            render(
                r#"{{len .items}} {{(index (index .items 0).spec.containers 0).name}} {{exists . "items" 0 "spec" "containers"}} {{exists . "items" 1 "spec"}} {{exists . "items" 5}}"#,
                list
            ),
            "2 c true false false"
        );
    }

    #[test]
    fn secrets_decode() {
        let s = serde_json::json!({"data": {"password": "czNjcjN0"}});
        assert_eq!(render("{{base64decode .data.password}}", s), "s3cr3t");
        let err = GoTemplate::parse("{{base64decode .data.password}}")
            .expect("parse")
            .render(&serde_json::json!({"data": {"password": "!!"}}))
            .expect_err("bad base64");
        assert!(err.to_string().contains("base64"), "{err}");
    }

    #[test]
    fn parse_errors_are_reported() {
        let e = GoTemplate::parse("{{.items").expect_err("unclosed");
        assert!(e.to_string().contains("error parsing template"), "{e}");
    }
}

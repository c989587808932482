//! kubectl's JSONPath templates (`-o jsonpath=…`, `custom-columns`, `--sort-by`):
//! text with `{…}` expressions: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, `..name`,
//! filters `[?(@.a=="x")]` (`==`, `!=`, `<`, `>`, or existence), `{range …}…{end}`
//! and string literals `{"\n"}`. Several results of one expression are joined by a
//! space, as kubectl does.

use serde_json::Value;

/// A template that did not parse, or one that failed on the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The template text is malformed.
    #[error("error parsing jsonpath {template:?}: {why}")]
    Parse {
        /// The template.
        template: String,
        /// What is wrong.
        why: String,
    },
    /// A field the template names is not there (kubectl's error for a plain path).
    #[error("{0} is not found")]
    NotFound(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Recursive(String),
    Filter {
        path: Vec<Step>,
        op: Option<(String, Value)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// Whether a missing field is an error (kubectl: yes for `-o jsonpath`, no for
    /// custom columns, which print `<none>`).
    strict: bool,
}

fn perr(template: &str, why: impl Into<String>) -> JsonPathError {
    JsonPathError::Parse {
        template: template.to_string(),
        why: why.into(),
    }
}

/// Splits `s` into the steps of a path (`.a[0].b`, `a.b`, `..c`).
fn parse_path(template: &str, s: &str) -> Result<Vec<Step>, JsonPathError> {
    let mut steps = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    // A leading `$` is the root.
    if s.starts_with('$') {
        i = 1;
    }
    let ident_end = |from: usize| {
        let mut j = from;
        while j < b.len() && b[j] != b'.' && b[j] != b'[' {
            j += 1;
        }
        j
    };
    while i < b.len() {
        match b[i] {
            b'.' if b.get(i + 1) == Some(&b'.') => {
                let end = ident_end(i + 2);
                steps.push(Step::Recursive(s[i + 2..end].to_string()));
                i = end;
            }
            b'.' => {
                let end = ident_end(i + 1);
                if end > i + 1 {
                    let name = &s[i + 1..end];
                    steps.push(if name == "*" {
                        Step::All
                    } else {
                        Step::Field(name.to_string())
                    });
                }
                i = end;
            }
            b'[' => {
                let close = find_close(s, i).ok_or_else(|| perr(template, "unclosed ["))?;
                let inner = s[i + 1..close].trim();
                steps.push(parse_bracket(template, inner)?);
                i = close + 1;
            }
            _ => {
                let end = ident_end(i);
                steps.push(Step::Field(s[i..end].to_string()));
                i = end;
            }
        }
    }
    Ok(steps)
}

/// The `]` closing the `[` at `open`, skipping quoted text and nested brackets.
fn find_close(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip_while(|(i, _)| *i < open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

fn parse_bracket(template: &str, inner: &str) -> Result<Step, JsonPathError> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(name) = unquote(inner) {
        return Ok(Step::Field(name.to_string()));
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|r| r.strip_suffix(')')) {
        let f = f.trim();
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if let Some((l, r)) = f.split_once(op) {
                let path = l
                    .trim()
                    .strip_prefix('@')
                    .ok_or_else(|| perr(template, "a filter starts with @"))?;
                let r = r.trim();
                let value = match unquote(r) {
                    Some(s) => Value::String(s.to_string()),
                    None => serde_json::from_str(r)
                        .map_err(|_| perr(template, format!("bad filter value {r}")))?,
                };
                return Ok(Step::Filter {
                    path: parse_path(template, path)?,
                    op: Some((op.to_string(), value)),
                });
            }
        }
        let path = f
            .strip_prefix('@')
            .ok_or_else(|| perr(template, "a filter starts with @"))?;
        return Ok(Step::Filter {
            path: parse_path(template, path)?,
            op: None,
        });
    }
    inner
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| perr(template, format!("unsupported [{inner}]")))
}

impl Template {
    /// Parse a template (`{.metadata.name}`, or `.metadata.name` alone, which kubectl
    /// also takes). `strict`: a missing field is an error rather than nothing.
    pub fn parse(template: &str, strict: bool) -> Result<Template, JsonPathError> {
        let t = if template.contains('{') {
            template.to_string()
        } else {
            format!("{{{template}}}")
        };
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut rest = t.as_str();
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(unescape(rest)));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(unescape(&rest[..open])));
            }
            let close = rest[open..]
                .find('}')
                .map(|c| c + open)
                .ok_or_else(|| perr(template, "unclosed {"))?;
            let expr = rest[open + 1..close].trim();
            rest = &rest[close + 1..];
            if let Some(lit) = unquote(expr) {
                nodes.push(Node::Text(unescape(lit)));
            } else if let Some(path) = expr.strip_prefix("range ") {
                stack.push((
                    parse_path(template, path.trim())?,
                    std::mem::take(&mut nodes),
                ));
            } else if expr == "end" {
                let (path, outer) = stack
                    .pop()
                    .ok_or_else(|| perr(template, "{end} without {range}"))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if expr.is_empty() {
                return Err(perr(template, "empty {}"));
            } else {
                nodes.push(Node::Path(parse_path(template, expr)?));
            }
        }
        if !stack.is_empty() {
            return Err(perr(template, "{range} without {end}"));
        }
        Ok(Template { nodes, strict })
    }

    /// Apply the template to `v`.
    pub fn render(&self, v: &Value) -> Result<String, JsonPathError> {
        let mut out = String::new();
        render_nodes(&self.nodes, v, self.strict, &mut out)?;
        Ok(out)
    }

    /// The values the template's (first) path selects in `v` (`--sort-by`).
    pub fn values(&self, v: &Value) -> Vec<Value> {
        self.nodes
            .iter()
            .find_map(|n| match n {
                Node::Path(p) => Some(select(p, v)),
                _ => None,
            })
            .unwrap_or_default()
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

/// A value as kubectl prints it in a template: strings bare, the rest as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn render_nodes(
    nodes: &[Node],
    v: &Value,
    strict: bool,
    out: &mut String,
) -> Result<(), JsonPathError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let found = select(p, v);
                if found.is_empty()
                    && strict
                    && !p
                        .iter()
                        .any(|s| matches!(s, Step::All | Step::Filter { .. } | Step::Recursive(_)))
                {
                    return Err(JsonPathError::NotFound(path_name(p)));
                }
                out.push_str(&found.iter().map(text).collect::<Vec<_>>().join(" "));
            }
            Node::Range(p, body) => {
                for item in select(p, v) {
                    render_nodes(body, &item, strict, out)?;
                }
            }
        }
    }
    Ok(())
}

fn path_name(p: &[Step]) -> String {
    p.iter()
        .rev()
        .find_map(|s| match s {
            Step::Field(f) => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn compare(a: &Value, op: &str, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match op {
        "==" => a == b || (text(a) == text(b)),
        "!=" => !(a == b || text(a) == text(b)),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => match op {
                "<" => x < y,
                ">" => x > y,
                "<=" => x <= y,
                _ => x >= y,
            },
            _ => false,
        },
    }
}

fn recurse(v: &Value, name: &str, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(name) {
                out.push(x.clone());
            }
            for x in m.values() {
                recurse(x, name, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| recurse(x, name, out)),
        _ => {}
    }
}

/// Every value `steps` reach from `v`.
fn select(steps: &[Step], v: &Value) -> Vec<Value> {
    let mut cur = vec![v.clone()];
    for s in steps {
        let mut next = Vec::new();
        for v in &cur {
            match s {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x.clone());
                    }
                }
                Step::Index(i) => {
                    if let Value::Array(a) = v {
                        let i = if *i < 0 { a.len() as i64 + i } else { *i };
                        if let Some(x) = usize::try_from(i).ok().and_then(|i| a.get(i)) {
                            next.push(x.clone());
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter().cloned()),
                    Value::Object(m) => next.extend(m.values().cloned()),
                    _ => {}
                },
                Step::Recursive(name) => recurse(v, name, &mut next),
                Step::Filter { path, op } => {
                    if let Value::Array(a) = v {
                        for item in a {
                            let got = select(path, item);
                            let keep = match op {
                                None => !got.is_empty(),
                                Some((op, want)) => got.iter().any(|g| compare(g, op, want)),
                            };
                            if keep {
                                next.push(item.clone());
                            }
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}}, "status": {"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": 2}]}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending"}}
        ]})
    }

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t, true)
            .expect("parse")
            .render(v)
            .expect("render")
    }

    #[test]
    fn paths_ranges_filters() {
        let v = pods();
        assert_eq!(r("{.items[*].metadata.name}", &v), "a b");
        assert_eq!(r("{.items[0].status.phase}", &v), "Running");
        assert_eq!(r("{.items[-1].metadata.name}", &v), "b");
        assert_eq!(
            r(
                "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}",
                &v
            ),
            "a\tRunning\nb\tPending\n"
        );
        assert_eq!(
            r("{.items[?(@.status.phase==\"Pending\")].metadata.name}", &v),
            "b"
        );
        assert_eq!(
            r("{.items[0].metadata.labels['app.kubernetes.io/name']}", &v),
            "x"
        );
        assert_eq!(r("{..restartCount}", &v), "2");
        assert_eq!(r("name={.items[1].metadata.name}", &v), "name=b");
        assert_eq!(r(".items[0].metadata.name", &v), "a");
        assert_eq!(
            r("{.items[0].status.containerStatuses[0]}", &v),
            "{\"name\":\"c\",\"restartCount\":2}"
        );
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{.a", true).is_err());
        assert!(Template::parse("{range .a}", true).is_err());
        let t = Template::parse("{.items[0].nope}", true).expect("parse");
        assert_eq!(
            t.render(&pods()).expect_err("missing").to_string(),
            "nope is not found"
        );
        let lax = Template::parse("{.items[0].nope}", false).expect("parse");
        assert_eq!(lax.render(&pods()).expect("lax"), "");
    }
}

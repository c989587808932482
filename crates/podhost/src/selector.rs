//! Label selectors as the API server parses them (`k8s.io/apimachinery/pkg/labels`):
//! equality (`a=b`, `a==b`, `a!=b`), existence (`a`, `!a`), sets (`a in (x,y)`,
//! `a notin (x)`) and integer comparisons (`a>1`, `a<5`), comma-separated, all ANDed.
//! An invalid selector is an error, never a selector that silently matches nothing.

use std::collections::BTreeMap;

/// A selector that could not be parsed; the text is kubectl's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector: all its requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<(String, Op)>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Open,
    Close,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "''".into(),
        Some(Token::Ident(s)) => format!("'{s}'"),
        Some(Token::Comma) => "','".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
        Some(Token::Not) => "'!'".into(),
        Some(Token::Eq) => "'='".into(),
        Some(Token::DoubleEq) => "'=='".into(),
        Some(Token::NotEq) => "'!='".into(),
        Some(Token::Gt) => "'>'".into(),
        Some(Token::Lt) => "'<'".into(),
        Some(Token::In) => "'in'".into(),
        Some(Token::NotIn) => "'notin'".into(),
    }
}

fn lex(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' | '>' | '<' => {
                chars.next();
                out.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '>' => Token::Gt,
                    _ => Token::Lt,
                });
            }
            '!' | '=' => {
                chars.next();
                let double = chars.peek() == Some(&'=');
                if double {
                    chars.next();
                }
                out.push(match (c, double) {
                    ('!', true) => Token::NotEq,
                    ('!', false) => Token::Not,
                    (_, true) => Token::DoubleEq,
                    _ => Token::Eq,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || ",()!=<>".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                });
            }
        }
    }
    out
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside; may be empty.
pub(crate) fn check_value(v: &str) -> Result<(), SelectorError> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    if ok {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "invalid label value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name like a value.
pub(crate) fn check_key(k: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let bad_prefix = prefix.is_some_and(|p| {
        p.is_empty()
            || p.len() > 253
            || !p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if name.is_empty() || bad_prefix || check_value(name).is_err() {
        return Err(SelectorError(format!(
            "invalid label key {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (an optional prefix is a DNS subdomain)"
        )));
    }
    Ok(())
}

impl Selector {
    /// Parse a selector; the empty selector matches everything.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let tokens = lex(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        let expected = |what: &str, t: Option<&Token>| {
            SelectorError(format!("found {}, expected: {what}", describe(t)))
        };
        while i < tokens.len() {
            let negated = tokens[i] == Token::Not;
            if negated {
                i += 1;
            }
            let key = match tokens.get(i) {
                Some(Token::Ident(k)) => k.clone(),
                t => return Err(expected("identifier", t)),
            };
            check_key(&key)?;
            i += 1;
            let at_end = matches!(tokens.get(i), None | Some(Token::Comma));
            let op = if negated {
                if !at_end {
                    return Err(expected("',' or end of string", tokens.get(i)));
                }
                Op::NotExists
            } else if at_end {
                Op::Exists
            } else {
                let op = tokens[i].clone();
                i += 1;
                match op {
                    Token::Eq | Token::DoubleEq | Token::NotEq => {
                        let v = match tokens.get(i) {
                            Some(Token::Ident(v)) => {
                                i += 1;
                                v.clone()
                            }
                            // `a=` selects the empty value.
                            None | Some(Token::Comma) => String::new(),
                            t => return Err(expected("identifier", t)),
                        };
                        check_value(&v)?;
                        if op == Token::NotEq {
                            Op::NotEquals(v)
                        } else {
                            Op::Equals(v)
                        }
                    }
                    Token::Gt | Token::Lt => {
                        let n = match tokens.get(i) {
                            Some(Token::Ident(v)) => v.parse::<i64>().map_err(|_| {
                                SelectorError(format!(
                                    "for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"
                                ))
                            })?,
                            t => return Err(expected("identifier", t)),
                        };
                        i += 1;
                        if op == Token::Gt {
                            Op::Gt(n)
                        } else {
                            Op::Lt(n)
                        }
                    }
                    Token::In | Token::NotIn => {
                        if tokens.get(i) != Some(&Token::Open) {
                            return Err(expected("'('", tokens.get(i)));
                        }
                        i += 1;
                        let mut values = Vec::new();
                        loop {
                            match tokens.get(i) {
                                Some(Token::Ident(v)) => {
                                    check_value(v)?;
                                    values.push(v.clone());
                                    i += 1;
                                }
                                Some(Token::Close) if values.is_empty() => {
                                    return Err(SelectorError(
                                        "for 'in', 'notin' operators, values set can't be empty"
                                            .into(),
                                    ))
                                }
                                t => return Err(expected("identifier", t)),
                            }
                            match tokens.get(i) {
                                Some(Token::Comma) => i += 1,
                                Some(Token::Close) => {
                                    i += 1;
                                    break;
                                }
                                t => return Err(expected("',' or ')'", t)),
                            }
                        }
                        if op == Token::In {
                            Op::In(values)
                        } else {
                            Op::NotIn(values)
                        }
                    }
                    t => {
                        return Err(expected(
                            "'=', '!=', '==', 'in', 'notin', '>' or '<'",
                            Some(&t),
                        ))
                    }
                }
            };
            reqs.push((key, op));
            match tokens.get(i) {
                None => {}
                Some(Token::Comma) if i + 1 < tokens.len() => i += 1,
                t => return Err(expected("',' or end of string", t)),
            }
        }
        Ok(Selector(reqs))
    }

    /// Whether labels `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.0.iter().all(|(k, op)| {
            let v = labels.and_then(|l| l.get(k));
            match op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Equals(want) => v == Some(want),
                // As the API server: a missing label is "not equal" and "not in".
                Op::NotEquals(want) => v != Some(want),
                Op::In(set) => v.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.contains(v)),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(sel: &str, pairs: &[(&str, &str)]) -> bool {
        Selector::parse(sel)
            .unwrap_or_else(|e| panic!("{sel}: {e}"))
            .matches(Some(&labels(pairs)))
    }

    #[test]
    fn equality_and_existence() {
        assert!(m("app=web", &[("app", "web")]));
        assert!(m("app==web,tier", &[("app", "web"), ("tier", "x")]));
        assert!(!m("app=web,tier", &[("app", "web")]));
        assert!(m("app!=web", &[]));
        assert!(!m("app!=web", &[("app", "web")]));
        assert!(m("!app", &[("tier", "x")]));
        assert!(!m("!app", &[("app", "x")]));
        assert!(m("", &[]));
        assert!(m(" app = web ", &[("app", "web")]));
        assert!(m("example.com/role=db", &[("example.com/role", "db")]));
    }

    #[test]
    fn sets_and_comparisons() {
        assert!(m("app in (a,b)", &[("app", "b")]));
        assert!(!m("app in (a,b)", &[("app", "c")]));
        assert!(!m("app in (a,b)", &[]));
        assert!(m("app notin (a, b)", &[]));
        assert!(m(
            "app notin (a,b),tier in (x)",
            &[("app", "c"), ("tier", "x")]
        ));
        assert!(!m("app notin (a,b)", &[("app", "a")]));
        assert!(m("n>2,n<10", &[("n", "5")]));
        assert!(!m("n>2", &[("n", "x")]));
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for bad in [
            "app in (a",
            "app in a,b",
            "app in ()",
            "app=web,",
            "=web",
            "app=we b",
            "!app=x",
            "app==(",
            "-app",
            "app=-x",
            "n>x",
            "app in (a,b) tier",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = Selector::parse("app in (a").expect_err("error");
        assert_eq!(
            e.to_string(),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
    }
}

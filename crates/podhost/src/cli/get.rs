//! `podhost get`: pods, events, ConfigMaps and Secrets as kubectl prints them, with
//! its flags: several types (`pods,cm`), `TYPE/NAME`, label and field selectors,
//! `-o wide|yaml|json|name|jsonpath=…|custom-columns=…|go-template=…`, `--show-labels`, `-L`,
//! `--sort-by`, `--no-headers`, and `-w` (with `--watch-only`, `--output-watch-events`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde_json::Value;

use super::client::{enc, Client};
use super::gotemplate::GoTemplate;
use super::jsonpath::{text, Template};
use super::objects::{self, ObjectKind};
use super::{output, GetArgs};
use crate::lifecycle::PodEvent;
use crate::timefmt::now_nanos;

/// A resource type `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pods,
    Nodes,
    Events,
    Object(ObjectKind),
}

impl Kind {
    fn parse(word: &str) -> Result<Kind> {
        if super::is_pod_kind(word) {
            return Ok(Kind::Pods);
        }
        if matches!(word, "events" | "event" | "ev") {
            return Ok(Kind::Events);
        }
        if matches!(word, "nodes" | "node" | "no") {
            return Ok(Kind::Nodes);
        }
        match ObjectKind::parse(word) {
            Some(k) => Ok(Kind::Object(k)),
            None => bail!("the server doesn't have a resource type {word:?} (podhost knows: pods, nodes, events, configmaps, secrets)"),
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Kind::Pods => "pod",
            Kind::Nodes => "node",
            Kind::Events => "event",
            Kind::Object(k) => k.singular(),
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Kind::Pods => "pods",
            Kind::Nodes => "nodes",
            Kind::Events => "events",
            Kind::Object(k) => k.plural(),
        }
    }
    /// Field selectors the API server takes for the type.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Pods => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Kind::Object(ObjectKind::Secret) => &["metadata.name", "metadata.namespace", "type"],
            _ => &["metadata.name", "metadata.namespace"],
        }
    }
}

/// The output a `-o` names.
#[derive(Debug, Clone)]
enum Output {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(Template),
    GoTemplate(GoTemplate),
    Columns(Vec<(String, Template)>),
}

fn parse_output(o: Option<&str>) -> Result<Output> {
    Ok(match o {
        None => Output::Table { wide: false },
        Some("wide") => Output::Table { wide: true },
        Some("yaml") => Output::Yaml,
        Some("json") => Output::Json,
        Some("name") => Output::Name,
        Some(o) if o.starts_with("jsonpath=") || o.starts_with("jsonpath-as-json=") => {
            let t = o.split_once('=').map_or("", |(_, t)| t);
            Output::JsonPath(Template::parse(t, true)?)
        }
        Some(o) if o.starts_with("go-template=") => {
            Output::GoTemplate(GoTemplate::parse(&o["go-template=".len()..])?)
        }
        Some(o) if o.starts_with("go-template-file=") => {
            Output::GoTemplate(GoTemplate::from_file(&o["go-template-file=".len()..])?)
        }
        Some(o) if o.starts_with("custom-columns=") => {
            let spec = &o["custom-columns=".len()..];
            let mut cols = Vec::new();
            for col in spec.split(',').filter(|c| !c.is_empty()) {
                let (name, path) = col.split_once(':').with_context(|| {
                    format!("custom-columns format specified, but found invalid column {col:?}: expected <header>:<json-path-expr>")
                })?;
                cols.push((name.to_string(), Template::parse(path, false)?));
            }
            if cols.is_empty() {
                bail!("custom-columns format specified but no custom columns given");
            }
            Output::Columns(cols)
        }
        Some(o) => bail!("unable to match a printer suitable for the output format {o:?}, allowed formats are: custom-columns,go-template,go-template-file,json,jsonpath,name,wide,yaml"),
    })
}

/// One listed object: its JSON form (what templates, selectors and sorting read) and
/// its table row.
#[derive(Debug, Clone)]
struct Item {
    name: String,
    namespace: String,
    value: Value,
    labels: BTreeMap<String, String>,
    row: Vec<String>,
}

/// A page of one type: header and items.
struct Listing {
    kind: Kind,
    header: Vec<String>,
    items: Vec<Item>,
}

/// `field=value`, `field==value`, `field!=value`, comma-separated.
fn parse_field_selector(kind: Kind, s: &str) -> Result<Vec<(String, bool, String)>> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, true, v)
        } else {
            bail!("invalid field selector: {term:?}: expected field=value or field!=value");
        };
        let field = field.trim();
        if !kind.fields().contains(&field) {
            bail!(
                "field label not supported: {field} (for {}: {})",
                kind.plural(),
                kind.fields().join(", ")
            );
        }
        out.push((field.to_string(), eq, value.trim().to_string()));
    }
    Ok(out)
}

fn field_of(v: &Value, field: &str) -> String {
    let got = field.split('.').try_fold(v, |v, k| v.get(k));
    match (field, got) {
        ("spec.hostNetwork", None) => "false".into(),
        (_, Some(v)) => text(v),
        (_, None) => String::new(),
    }
}

fn age_of(meta_time: Option<&Value>, now: i64) -> String {
    meta_time
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| {
            let ns = now.saturating_sub(t.as_nanosecond() as i64).max(0) as u64;
            podhost_api::display::age(Duration::from_nanos(ns))
        })
        .unwrap_or_else(|| "<unknown>".into())
}

/// Events in the shape of the API's `v1 Event` (for `-o yaml`, templates).
fn event_value(pod: &Pod, i: usize, e: &PodEvent) -> Value {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let first = crate::timefmt::rfc3339(e.time);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": format!("{name}.{i}"), "namespace": ns },
        "involvedObject": { "kind": "Pod", "name": name, "namespace": ns, "uid": pod.metadata.uid },
        "type": e.kind,
        "reason": e.reason,
        "message": e.message,
        "count": e.count,
        "lastTimestamp": first,
        "source": { "component": if e.reason == "Scheduled" { "default-scheduler" } else { "kubelet" } },
    })
}

/// Lists one type from the daemon, filtered by namespace and label selector.
/// `values`: whether each item keeps its JSON (outputs other than the table and names,
/// field selectors, sorting and watching read it); making it cost more than all else of
/// a `get pods` of hundreds of pods.
async fn list(
    client: &Client,
    kind: Kind,
    args: &GetArgs,
    wide: bool,
    values: bool,
) -> Result<Listing> {
    let mut q = format!(
        "namespace={}&all_namespaces={}",
        enc(&args.namespace),
        args.all_namespaces
    );
    if let Some(s) = &args.selector {
        q.push_str(&format!("&selector={}", enc(s)));
    }
    let now = now_nanos();
    let all_ns = args.all_namespaces;
    let item = |value: Value, row: Vec<String>| {
        let meta = |k: &str| {
            value
                .pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let labels = value
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        Item {
            name: meta("name"),
            namespace: meta("namespace"),
            labels,
            row,
            value,
        }
    };
    Ok(match kind {
        // The daemon makes the table: decoding hundreds of whole Pods cost more than the
        // rest of the command.
        Kind::Pods if !values => {
            let path = format!("/v1/pods?{q}&table=true&wide={wide}");
            let table: output::PodTable = client.call(Method::GET, &path, None).await?;
            Listing {
                kind,
                header: table.header,
                items: table
                    .rows
                    .into_iter()
                    .map(|r| Item {
                        name: r.name,
                        namespace: r.namespace,
                        labels: r.labels,
                        row: r.cells,
                        value: Value::Null,
                    })
                    .collect(),
            }
        }
        Kind::Pods => {
            let rows = |p: &[Pod]| output::pod_rows(p, wide, all_ns, now);
            typed(client, kind, &format!("/v1/pods?{q}"), rows, values).await?
        }
        Kind::Nodes => {
            // One node, cluster-scoped: namespaces and selectors do not narrow it.
            let nodes = vec![super::node::fetch(client).await?];
            listing(kind, &nodes, |n| super::node::rows(n, wide, now), values)?
        }
        Kind::Object(ObjectKind::ConfigMap) => {
            let rows = |c: &[ConfigMap]| objects::config_map_rows(c, all_ns, now);
            typed(client, kind, &format!("/v1/configmaps?{q}"), rows, values).await?
        }
        Kind::Object(ObjectKind::Secret) => {
            let rows = |c: &[Secret]| objects::secret_rows(c, all_ns, now);
            typed(client, kind, &format!("/v1/secrets?{q}"), rows, values).await?
        }
        Kind::Events => {
            let pods: Vec<Pod> = client
                .call(Method::GET, &format!("/v1/pods?{q}"), None)
                .await?;
            let mut items = Vec::new();
            for p in &pods {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let evs: Vec<PodEvent> = match client
                    .call(Method::GET, &format!("/v1/pods/{ns}/{name}/events"), None)
                    .await
                {
                    Ok(evs) => evs,
                    // Gone between the two requests.
                    Err(_) => continue,
                };
                for (i, e) in evs.iter().enumerate() {
                    let mut row = Vec::new();
                    if all_ns {
                        row.push(ns.clone());
                    }
                    row.extend([
                        age_of(Some(&Value::String(crate::timefmt::rfc3339(e.time))), now),
                        e.kind.clone(),
                        e.reason.clone(),
                        format!("pod/{name}"),
                        e.message.clone(),
                    ]);
                    let mut it = item(event_value(p, i, e), row);
                    it.labels = BTreeMap::new();
                    items.push((e.time, it));
                }
            }
            items.sort_by_key(|(t, _)| *t);
            let mut header = Vec::new();
            if all_ns {
                header.push("NAMESPACE".to_string());
            }
            header.extend(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"].map(String::from));
            Listing {
                kind,
                header,
                items: items.into_iter().map(|(_, i)| i).collect(),
            }
        }
    })
}

/// A list of one typed kind, each object with its table row (`rows`: header first).
async fn typed<T: serde::de::DeserializeOwned + serde::Serialize + Metadata<Ty = ObjectMeta>>(
    client: &Client,
    kind: Kind,
    path: &str,
    rows: impl FnOnce(&[T]) -> Vec<Vec<String>>,
    values: bool,
) -> Result<Listing> {
    let list: Vec<T> = client.call(Method::GET, path, None).await?;
    listing(kind, &list, rows, values)
}

/// The listing of `list`, each object with its table row (`rows`: header first) and,
/// with `values`, its JSON.
fn listing<T: serde::Serialize + Metadata<Ty = ObjectMeta>>(
    kind: Kind,
    list: &[T],
    rows: impl FnOnce(&[T]) -> Vec<Vec<String>>,
    values: bool,
) -> Result<Listing> {
    let mut rows = rows(list).into_iter();
    let header = rows.next().unwrap_or_default();
    let items = list
        .iter()
        .zip(rows)
        .map(|(o, row)| {
            let meta = o.metadata();
            Ok(Item {
                name: meta.name.clone().unwrap_or_default(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                labels: meta.labels.clone().unwrap_or_default(),
                row,
                value: match values {
                    true => serde_json::to_value(o)?,
                    false => Value::Null,
                },
            })
        })
        .collect::<Result<_>>()?;
    Ok(Listing {
        kind,
        header,
        items,
    })
}

/// What one `get` asks for, past argument parsing.
struct Request {
    /// Types in the order given, each with the names asked for (empty: all).
    kinds: Vec<(Kind, Vec<String>)>,
    output: Output,
    fields: Vec<Vec<(String, bool, String)>>,
    sort_by: Option<Template>,
    /// Whether a single object was asked for by name (printed bare, not as a List).
    single: bool,
}

fn parse_request(args: &GetArgs) -> Result<Request> {
    let mut kinds: Vec<(Kind, Vec<String>)> = Vec::new();
    let mut words =
        std::iter::once(args.kind.as_str()).chain(args.names.iter().map(String::as_str));
    let first = words.next().unwrap_or_default();
    let slash_form = first.contains('/');
    if slash_form {
        for w in std::iter::once(first).chain(words) {
            let (k, n) = w
                .split_once('/')
                .with_context(|| format!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'podhost get resource/<resource_name>' instead of 'podhost get resource resource/<resource_name>'): {w:?}"))?;
            let kind = Kind::parse(k)?;
            match kinds.iter_mut().find(|(x, _)| *x == kind) {
                Some((_, names)) => names.push(n.to_string()),
                None => kinds.push((kind, vec![n.to_string()])),
            }
        }
    } else {
        let names: Vec<String> = words.map(str::to_string).collect();
        if let Some(n) = names.iter().find(|n| n.contains('/')) {
            bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form: {n:?}");
        }
        for k in first.split(',').filter(|k| !k.is_empty()) {
            let kind = Kind::parse(k)?;
            if !kinds.iter().any(|(x, _)| *x == kind) {
                kinds.push((kind, names.clone()));
            }
        }
    }
    if kinds.is_empty() {
        bail!("You must specify the type of resource to get. Use \"podhost get pods\", \"podhost get configmaps\" …");
    }
    let fields = kinds
        .iter()
        .map(|(k, _)| match &args.field_selector {
            Some(s) => parse_field_selector(*k, s),
            None => Ok(Vec::new()),
        })
        .collect::<Result<_>>()?;
    let sort_by = args
        .sort_by
        .as_deref()
        .map(|s| Template::parse(s, false))
        .transpose()?;
    let single = kinds.len() == 1 && kinds[0].1.len() == 1;
    Ok(Request {
        output: parse_output(args.output.as_deref())?,
        kinds,
        fields,
        sort_by,
        single,
    })
}

/// Sort by the value a JSONPath selects: numbers as numbers, the rest as text.
fn sort_items(items: &mut [Item], by: &Template) {
    let key = |i: &Item| by.values(&i.value).into_iter().next();
    items.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        match (&x, &y) {
            (Some(Value::Number(m)), Some(Value::Number(n))) => m
                .as_f64()
                .partial_cmp(&n.as_f64())
                .unwrap_or(std::cmp::Ordering::Equal),
            _ => x.as_ref().map(text).cmp(&y.as_ref().map(text)),
        }
    });
}

/// Fetch, filter and order what `req` asks for; prints one error per missing name.
async fn fetch(client: &Client, args: &GetArgs, req: &Request) -> Result<(Vec<Listing>, usize)> {
    let wide = matches!(req.output, Output::Table { wide: true });
    let values = !matches!(req.output, Output::Table { .. } | Output::Name)
        || args.watch
        || args.watch_only
        || req.sort_by.is_some()
        || req.fields.iter().any(|f| !f.is_empty());
    let mut listings = Vec::new();
    let mut missing = 0;
    for ((kind, names), fields) in req.kinds.iter().zip(&req.fields) {
        let mut l = list(client, *kind, args, wide, values).await?;
        l.items.retain(|i| {
            fields
                .iter()
                .all(|(f, eq, v)| (field_of(&i.value, f) == *v) == *eq)
        });
        if !names.is_empty() {
            for n in names
                .iter()
                .filter(|n| !l.items.iter().any(|i| &i.name == *n))
            {
                eprintln!(
                    "Error from server (NotFound): {} \"{n}\" not found",
                    kind.plural()
                );
                missing += 1;
            }
            l.items = names
                .iter()
                .filter_map(|n| l.items.iter().find(|i| &i.name == n).cloned())
                .collect();
        }
        if let Some(by) = &req.sort_by {
            sort_items(&mut l.items, by);
        }
        listings.push(l);
    }
    Ok((listings, missing))
}

/// The table columns of `args` (`--show-labels`, `-L`) added to a row.
fn extend_row(args: &GetArgs, row: &mut Vec<String>, labels: &BTreeMap<String, String>) {
    for key in label_columns(args) {
        row.push(labels.get(&key).cloned().unwrap_or_default());
    }
    if args.show_labels {
        let all: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        row.push(if all.is_empty() {
            "<none>".into()
        } else {
            all.join(",")
        });
    }
}

fn label_columns(args: &GetArgs) -> Vec<String> {
    args.label_columns
        .iter()
        .flat_map(|c| c.split(','))
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn header_of(args: &GetArgs, l: &Listing) -> Vec<String> {
    let mut h = l.header.clone();
    for key in label_columns(args) {
        h.push(key.rsplit('/').next().unwrap_or(&key).to_uppercase());
    }
    if args.show_labels {
        h.push("LABELS".into());
    }
    h
}

/// The rows of a listing as printed: `kind/name` in the NAME column when several
/// types are shown, as kubectl.
fn row_of(args: &GetArgs, l: &Listing, i: &Item, prefixed: bool) -> Vec<String> {
    let mut row = i.row.clone();
    if prefixed && l.kind != Kind::Events {
        let at = usize::from(args.all_namespaces);
        if let Some(n) = row.get_mut(at) {
            *n = format!("{}/{n}", l.kind.singular());
        }
    }
    extend_row(args, &mut row, &i.labels);
    row
}

fn columns_row(cols: &[(String, Template)], v: &Value) -> Vec<String> {
    cols.iter()
        .map(|(_, t)| match t.render(v) {
            Ok(s) if !s.is_empty() => s.replace(' ', ","),
            _ => "<none>".into(),
        })
        .collect()
}

/// A List of every item (or the one object asked for by name).
fn list_value(listings: &[Listing], single: bool) -> Value {
    let items: Vec<&Value> = listings
        .iter()
        .flat_map(|l| l.items.iter().map(|i| &i.value))
        .collect();
    if single && items.len() == 1 {
        return items[0].clone();
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": { "resourceVersion": "" },
    })
}

fn print_once(args: &GetArgs, req: &Request, listings: &[Listing], missing: usize) -> Result<()> {
    let total: usize = listings.iter().map(|l| l.items.len()).sum();
    match &req.output {
        Output::Yaml => out!(
            "{}",
            serde_saphyr::to_string(&list_value(listings, req.single))?
        ),
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&list_value(listings, req.single))?
        ),
        Output::JsonPath(t) => out!("{}", t.render(&list_value(listings, req.single))?),
        Output::GoTemplate(t) => out!("{}", t.render(&list_value(listings, req.single))?),
        Output::Name => {
            for l in listings {
                for i in &l.items {
                    outln!("{}/{}", l.kind.singular(), i.name);
                }
            }
        }
        Output::Columns(cols) => {
            let mut rows = Vec::new();
            if !args.no_headers {
                rows.push(cols.iter().map(|(h, _)| h.clone()).collect());
            }
            for l in listings {
                rows.extend(l.items.iter().map(|i| columns_row(cols, &i.value)));
            }
            if total > 0 {
                out!("{}", output::table(&rows));
            }
        }
        Output::Table { .. } => {
            let prefixed = listings.len() > 1;
            let mut first = true;
            for l in listings.iter().filter(|l| !l.items.is_empty()) {
                if !first {
                    outln!();
                }
                first = false;
                let mut rows = Vec::new();
                if !args.no_headers {
                    rows.push(header_of(args, l));
                }
                rows.extend(l.items.iter().map(|i| row_of(args, l, i, prefixed)));
                out!("{}", output::table(&rows));
            }
        }
    }
    if total == 0 && missing == 0 && matches!(req.output, Output::Table { .. } | Output::Columns(_))
    {
        let where_ = if args.all_namespaces {
            String::new()
        } else {
            format!(" in {} namespace", args.namespace)
        };
        eprintln!("No resources found{where_}.");
    }
    Ok(())
}

/// `podhost get …`.
pub async fn run(client: &Client, args: GetArgs) -> Result<i32> {
    let req = parse_request(&args)?;
    if args.watch || args.watch_only {
        return watch(client, &args, &req).await;
    }
    let (listings, missing) = fetch(client, &args, &req).await?;
    print_once(&args, &req, &listings, missing)?;
    Ok(i32::from(missing > 0))
}

/// How often `-w` asks the daemon again.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// `get -w`: the listing, then a line per object that changed, appeared or went away
/// (ADDED, MODIFIED, DELETED with `--output-watch-events`), until interrupted.
async fn watch(client: &Client, args: &GetArgs, req: &Request) -> Result<i32> {
    if req.kinds.len() != 1 {
        bail!("you may only specify a single resource type when watching");
    }
    let events = args.output_watch_events;
    let (mut listings, _) = fetch(client, args, req).await?;
    let Some(first) = listings.pop() else {
        return Ok(0);
    };
    let kind = first.kind;
    // Widths of the table so far, so that later lines stay under their header.
    let mut widths: Vec<usize> = Vec::new();
    let mut line = |row: Vec<String>, widths: &mut Vec<usize>| -> String {
        for (i, c) in row.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let render = |i: &Item,
                  ev: &str,
                  widths: &mut Vec<usize>,
                  line: &mut dyn FnMut(Vec<String>, &mut Vec<usize>) -> String|
     -> Result<String> {
        Ok(match &req.output {
            Output::Table { .. } => {
                let mut row = row_of(args, &first, i, false);
                if events {
                    row.insert(0, ev.to_string());
                }
                line(row, widths) + "\n"
            }
            Output::Columns(cols) => line(columns_row(cols, &i.value), widths) + "\n",
            Output::Name => format!("{}/{}\n", kind.singular(), i.name),
            Output::Json if events => {
                serde_json::to_string_pretty(&serde_json::json!({"type": ev, "object": i.value}))?
                    + "\n"
            }
            Output::Json => serde_json::to_string_pretty(&i.value)? + "\n",
            Output::Yaml if events => format!(
                "{}---\n",
                serde_saphyr::to_string(&serde_json::json!({"type": ev, "object": i.value}))?
            ),
            Output::Yaml => format!("{}---\n", serde_saphyr::to_string(&i.value)?),
            Output::JsonPath(t) => t.render(&i.value)?,
            Output::GoTemplate(t) => t.render(&i.value)?,
        })
    };
    let key = |i: &Item| format!("{}/{}", i.namespace, i.name);
    let mut seen: BTreeMap<String, (Item, Value)> = BTreeMap::new();
    if !args.watch_only {
        let mut header = match &req.output {
            Output::Table { .. } => Some(header_of(args, &first)),
            Output::Columns(cols) => Some(cols.iter().map(|(h, _)| h.clone()).collect()),
            _ => None,
        };
        if let (Some(h), true) = (&mut header, events) {
            if matches!(req.output, Output::Table { .. }) {
                h.insert(0, "EVENT".into());
            }
        }
        // Widths from the header and the first rows, as kubectl's first flush.
        if let Some(h) = &header {
            line(h.clone(), &mut widths);
        }
        for i in &first.items {
            render(i, "ADDED", &mut widths, &mut line)?;
        }
        if let Some(h) = header.filter(|_| !args.no_headers) {
            outln!("{}", line(h, &mut widths));
        }
        for i in &first.items {
            out!("{}", render(i, "ADDED", &mut widths, &mut line)?);
        }
    }
    for i in &first.items {
        seen.insert(key(i), (i.clone(), i.value.clone()));
    }
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let (mut now, _) = fetch(client, args, req).await?;
        let Some(now) = now.pop() else { continue };
        let mut current = BTreeMap::new();
        for i in now.items {
            let k = key(&i);
            // The object changed; a row that differs only by its AGE column is no change.
            let changed = match seen.get(&k) {
                None => Some("ADDED"),
                Some((_, v)) if *v != i.value => Some("MODIFIED"),
                Some(_) => None,
            };
            if let Some(ev) = changed {
                out!("{}", render(&i, ev, &mut widths, &mut line)?);
            }
            current.insert(k, (i.clone(), i.value));
        }
        for (k, (old, _)) in &seen {
            if !current.contains_key(k) {
                out!("{}", render(old, "DELETED", &mut widths, &mut line)?);
            }
        }
        seen = current;
    }
}

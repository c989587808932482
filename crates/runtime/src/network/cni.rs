//! CNI invocation (spec 0.3–1.0): plugin lookup, exec with `CNI_*` env and the config on
//! stdin, chained lists with `prevResult`, capability args, result and error parsing.
//!
//! Written from the CNI SPEC.md; libcni's behaviour is followed where the spec leaves
//! room: a list's DEL runs in reverse order with the cached ADD result as `prevResult`,
//! and runtime args reach only the plugins that declare the capability.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

/// A plugin that runs longer than this is killed: a hung plugin must not hang the pod.
pub(super) const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Failure of a CNI operation, naming the plugin or config file involved.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The plugin binary is in none of the directories.
    #[error("CNI plugin {plugin:?} not found in {dirs} (install Debian's containernetworking-plugins, or set --cni-bin-dir)")]
    PluginNotFound {
        /// The plugin `type`.
        plugin: String,
        /// The directories searched, colon-separated.
        dirs: String,
    },
    /// The plugin ran and reported an error (CNI error JSON or stderr).
    #[error("CNI plugin {plugin:?} failed on {command}: {message}")]
    Plugin {
        /// The plugin `type`.
        plugin: String,
        /// ADD, DEL, CHECK.
        command: &'static str,
        /// `msg` (and `details`) of its error result, or its stderr.
        message: String,
    },
    /// The plugin could not be run.
    #[error("CNI plugin {plugin:?}: running {path}: {source}")]
    Exec {
        /// The plugin `type`.
        plugin: String,
        /// Its binary.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not finish in time and was killed.
    #[error("CNI plugin {plugin:?}: {command} did not finish within {}s", PLUGIN_TIMEOUT.as_secs())]
    Timeout {
        /// The plugin `type`.
        plugin: String,
        /// ADD, DEL, CHECK.
        command: &'static str,
    },
    /// The plugin's ADD output is not a CNI result.
    #[error("CNI plugin {plugin:?}: unreadable {command} result {output:?}: {source}")]
    BadResult {
        /// The plugin `type`.
        plugin: String,
        /// ADD, DEL, CHECK.
        command: &'static str,
        /// What it printed (truncated).
        output: String,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A network config file is invalid.
    #[error("CNI config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The config directory has no usable file.
    #[error("no CNI network config (*.conflist, *.conf, *.json) in {0}")]
    NoConfig(PathBuf),
    /// Reading the config directory failed.
    #[error("reading CNI config {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// An ADD of a list that stopped at one plugin.
#[derive(Debug)]
pub struct AddFailure {
    /// Index of the plugin that failed.
    pub failed_at: usize,
    /// Result of the plugins before it (their DEL's `prevResult`).
    pub partial: Option<Value>,
    /// Why.
    pub source: CniError,
}

/// A network configuration list (`.conflist`), single `.conf` files wrapped into one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfList {
    /// Network name (host-local keys its store by it; ipMasq rules carry it).
    pub name: String,
    /// Spec version the plugins are called with.
    pub cni_version: String,
    /// Plugin configs in ADD order, as written (each has `type`).
    pub plugins: Vec<Value>,
    /// The file it came from (for messages).
    pub source: PathBuf,
}

impl ConfList {
    /// Parse a `.conflist` (or, when `single`, a one-plugin `.conf`).
    pub fn parse(text: &str, source: &Path, single: bool) -> Result<ConfList, CniError> {
        let bad = |message: String| CniError::Config {
            path: source.to_path_buf(),
            message,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("missing \"name\"".into()))?
            .to_string();
        let cni_version = v
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.4.0")
            .to_string();
        let plugins = if single {
            vec![v.clone()]
        } else {
            v.get("plugins")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| bad("missing \"plugins\" list".into()))?
        };
        if plugins.is_empty() {
            return Err(bad("\"plugins\" is empty".into()));
        }
        for (i, p) in plugins.iter().enumerate() {
            if plugin_type(p).is_empty() {
                return Err(bad(format!("plugins[{i}] has no \"type\"")));
            }
        }
        Ok(ConfList {
            name,
            cni_version,
            plugins,
            source: source.to_path_buf(),
        })
    }

    /// The first config of `dir` in lexical order, like libcni's `ConfFiles` + sort.
    pub fn load_dir(dir: &Path) -> Result<ConfList, CniError> {
        let io = |source| CniError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("conflist" | "conf" | "json")
                    )
            })
            .collect();
        files.sort();
        let path = files
            .into_iter()
            .next()
            .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
        let text = std::fs::read_to_string(&path).map_err(|source| CniError::Io {
            path: path.clone(),
            source,
        })?;
        let single = path.extension().and_then(|e| e.to_str()) != Some("conflist");
        ConfList::parse(&text, &path, single)
    }
}

pub(crate) fn plugin_type(p: &Value) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or("")
}

/// What the runtime tells every plugin about this attachment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`: the sandbox that first attached (host-local records it).
    pub container_id: String,
    /// `CNI_NETNS`: the pinned namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` pairs (`K8S_POD_NAME` …).
    pub args: Vec<(String, String)>,
    /// Capability args by capability name (`portMappings` …), given only to plugins
    /// that declare the capability, under `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

/// Runs CNI plugins found in a list of directories.
#[derive(Debug, Clone)]
pub struct Cni {
    bin_dirs: Vec<PathBuf>,
}

impl Cni {
    /// Plugins are looked up in `bin_dirs`, in order.
    pub fn new(bin_dirs: Vec<PathBuf>) -> Self {
        Cni { bin_dirs }
    }

    fn cni_path(&self) -> String {
        self.bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The binary of plugin `kind`.
    pub fn find_plugin(&self, kind: &str) -> Result<PathBuf, CniError> {
        // A type is a file name, never a path: "../x" must not escape the plugin dirs.
        if !kind.contains('/') {
            for d in &self.bin_dirs {
                let p = d.join(kind);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        Err(CniError::PluginNotFound {
            plugin: kind.to_string(),
            dirs: self.cni_path(),
        })
    }

    /// ADD every plugin of `list` in order, each given the previous result. Returns the
    /// final result. On error nothing is undone here: the caller runs [`Cni::del_upto`]
    /// (DEL is idempotent by spec), as CRI runtimes tear down after a failed setup.
    pub async fn add_list(&self, list: &ConfList, rt: &RuntimeConf) -> Result<Value, AddFailure> {
        let mut prev: Option<Value> = None;
        for (i, p) in list.plugins.iter().enumerate() {
            let fail = |source, partial: &Option<Value>| AddFailure {
                failed_at: i,
                partial: partial.clone(),
                source,
            };
            let out = match self.exec(list, p, "ADD", rt, prev.as_ref()).await {
                Ok(out) => out,
                Err(e) => return Err(fail(e, &prev)),
            };
            match serde_json::from_slice::<Value>(&out) {
                Ok(result) => prev = Some(result),
                Err(source) => {
                    let e = CniError::BadResult {
                        plugin: plugin_type(p).to_string(),
                        command: "ADD",
                        output: String::from_utf8_lossy(&out).chars().take(200).collect(),
                        source,
                    };
                    return Err(fail(e, &prev));
                }
            }
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// DEL every plugin of `list` in reverse order with `result` (the cached ADD result,
    /// if any) as `prevResult`. Goes on after a failure so one broken plugin does not
    /// keep the others' resources; returns the first error. A plugin binary that is
    /// missing is skipped: it cannot have allocated anything.
    pub async fn del_list(
        &self,
        list: &ConfList,
        rt: &RuntimeConf,
        result: Option<&Value>,
    ) -> Result<(), CniError> {
        self.del_range(list, rt, result, list.plugins.len(), None)
            .await
    }

    /// DEL after an ADD that failed at plugin `failed_at`: that plugin and those before
    /// it, in reverse. The failed plugin's own DEL error is ignored: it never finished
    /// ADD, and what it did half is what its DEL tries, best effort.
    pub async fn del_upto(
        &self,
        list: &ConfList,
        rt: &RuntimeConf,
        partial: Option<&Value>,
        failed_at: usize,
    ) -> Result<(), CniError> {
        self.del_range(list, rt, partial, failed_at + 1, Some(failed_at))
            .await
    }

    async fn del_range(
        &self,
        list: &ConfList,
        rt: &RuntimeConf,
        result: Option<&Value>,
        count: usize,
        tolerate: Option<usize>,
    ) -> Result<(), CniError> {
        let mut first = None;
        for (i, p) in list.plugins.iter().enumerate().take(count).rev() {
            match self.exec(list, p, "DEL", rt, result).await {
                Ok(_) | Err(CniError::PluginNotFound { .. }) => {}
                Err(_) if tolerate == Some(i) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The config one plugin of a list gets on stdin.
    fn plugin_config(
        list: &ConfList,
        plugin: &Value,
        rt: &RuntimeConf,
        prev: Option<&Value>,
    ) -> Value {
        let mut conf = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("name".into(), Value::String(list.name.clone()));
        conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
        if let Some(prev) = prev.filter(|p| !p.is_null()) {
            conf.insert("prevResult".into(), prev.clone());
        }
        let mut runtime_config = Map::new();
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            for (cap, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = rt.capability_args.get(cap) {
                        runtime_config.insert(cap.clone(), v.clone());
                    }
                }
            }
        }
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        Value::Object(conf)
    }

    async fn exec(
        &self,
        list: &ConfList,
        plugin: &Value,
        command: &'static str,
        rt: &RuntimeConf,
        prev: Option<&Value>,
    ) -> Result<Vec<u8>, CniError> {
        let kind = plugin_type(plugin).to_string();
        let path = self.find_plugin(&kind)?;
        let conf = Self::plugin_config(list, plugin, rt, prev);
        let stdin = serde_json::to_vec(&conf).unwrap_or_default();
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let exec_err = |source| CniError::Exec {
            plugin: kind.clone(),
            path: path.clone(),
            source,
        };
        let mut child = tokio::process::Command::new(&path);
        child
            .env_clear()
            // Plugins run iptables, ip, modprobe: they need a PATH.
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &rt.container_id)
            .env("CNI_NETNS", &rt.netns)
            .env("CNI_IFNAME", &rt.ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let span = crate::step!("cni", plugin = %kind, cmd = command);
        let mut child = span.in_scope(|| child.spawn()).map_err(exec_err)?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(&stdin).await.map_err(exec_err)?;
        }
        let waited = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output());
        let out = match waited.instrument(span).await {
            Ok(r) => r.map_err(exec_err)?,
            Err(_) => {
                return Err(CniError::Timeout {
                    plugin: kind,
                    command,
                })
            }
        };
        if out.status.success() {
            return Ok(out.stdout);
        }
        Err(CniError::Plugin {
            message: error_message(&out.stdout, &out.stderr, out.status),
            plugin: kind,
            command,
        })
    }
}

/// The message of a failed plugin: its CNI error JSON (`msg: details`), else its output.
fn error_message(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = v.get("msg").and_then(Value::as_str) {
            let code = v.get("code").and_then(Value::as_u64).unwrap_or(0);
            return match v.get("details").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!("{msg}: {d} (code {code})"),
                _ => format!("{msg} (code {code})"),
            };
        }
    }
    let text = [stdout, stderr]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if text.is_empty() {
        format!("exited with {status} and no message")
    } else {
        text
    }
}

/// Addresses of a CNI result that belong to the container: (address without prefix,
/// gateway). Handles 0.3.x/0.4.0/1.0.0 (`ips` + `interfaces`) and 0.1/0.2 (`ip4`, `ip6`).
pub fn result_ips(result: &Value) -> Vec<String> {
    let strip = |a: &str| a.split('/').next().unwrap_or(a).to_string();
    if let Some(ips) = result.get("ips").and_then(Value::as_array) {
        let ifaces = result
            .get("interfaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // An ip whose `interface` points at a host-side interface (no `sandbox`) is not the
        // pod's; one without `interface` is assumed to be.
        let in_sandbox = |ip: &Value| match ip.get("interface").and_then(Value::as_u64) {
            Some(i) => ifaces
                .get(i as usize)
                .and_then(|f| f.get("sandbox"))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()),
            None => true,
        };
        let mut v4: Vec<String> = Vec::new();
        let mut v6: Vec<String> = Vec::new();
        for ip in ips.iter().filter(|ip| in_sandbox(ip)) {
            if let Some(a) = ip.get("address").and_then(Value::as_str) {
                if a.contains(':') {
                    v6.push(strip(a));
                } else {
                    v4.push(strip(a));
                }
            }
        }
        // IPv4 first, as Kubernetes lists podIPs on dual-stack by the primary family.
        v4.extend(v6);
        return v4;
    }
    ["ip4", "ip6"]
        .iter()
        .filter_map(|k| result.get(*k)?.get("ip")?.as_str().map(strip))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_config_chains_and_filters_capabilities() {
        let list = ConfList::parse(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            Path::new("x.conflist"),
            false,
        )
        .expect("parse");
        let mut rt = RuntimeConf::default();
        rt.capability_args
            .insert("portMappings".into(), serde_json::json!([{"hostPort": 1}]));
        let prev = serde_json::json!({"ips": []});
        let bridge = Cni::plugin_config(&list, &list.plugins[0], &rt, None);
        assert_eq!(bridge["name"], "n");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        let pm = Cni::plugin_config(&list, &list.plugins[1], &rt, Some(&prev));
        assert_eq!(pm["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert_eq!(pm["prevResult"], prev);
    }

    #[test]
    fn single_conf_and_errors() {
        let l = ConfList::parse(
            r#"{"cniVersion":"0.4.0","name":"one","type":"bridge"}"#,
            Path::new("a.conf"),
            true,
        )
        .expect("conf");
        assert_eq!(l.plugins.len(), 1);
        let e = ConfList::parse(r#"{"name":"x","plugins":[{}]}"#, Path::new("b"), false)
            .expect_err("no type");
        assert!(e.to_string().contains("plugins[0] has no \"type\""), "{e}");
    }

    #[test]
    fn result_ips_picks_sandbox_interfaces() {
        let r = serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "br"}, {"name": "veth"}, {"name": "eth0", "sandbox": "/run/x"}],
            "ips": [{"address": "fd00::5/64", "interface": 2}, {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2}, {"address": "10.1.0.1/24", "interface": 0}]
        });
        assert_eq!(result_ips(&r), vec!["10.1.0.5", "fd00::5"]);
        let old = serde_json::json!({"ip4": {"ip": "10.2.0.3/16"}});
        assert_eq!(result_ips(&old), vec!["10.2.0.3"]);
    }

    #[test]
    fn error_json_becomes_message() {
        use std::os::unix::process::ExitStatusExt;
        let m = error_message(
            br#"{"code":7,"msg":"failed to allocate","details":"range full"}"#,
            b"",
            std::process::ExitStatus::from_raw(256),
        );
        assert_eq!(m, "failed to allocate: range full (code 7)");
    }

    #[tokio::test]
    async fn missing_plugin_names_itself_and_the_dirs() {
        let cni = Cni::new(vec![
            PathBuf::from("/nonexistent/a"),
            PathBuf::from("/nonexistent/b"),
        ]);
        let e = cni.find_plugin("nosuch").expect_err("missing");
        let s = e.to_string();
        assert!(
            s.contains("\"nosuch\"") && s.contains("/nonexistent/a:/nonexistent/b"),
            "{s}"
        );
    }
}

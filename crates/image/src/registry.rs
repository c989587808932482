//! Registry configuration: where to pull a repository from (mirrors), how to
//! talk to each host (plain HTTP, TLS verification, extra CAs) and with which
//! credentials (a Docker-style `config.json`).
//!
//! The file is JSON (`/etc/podhost/registries.json` by default; `podhost serve
//! --registry-config PATH`), read at every pull so edits apply without a
//! restart. A missing file means "defaults": HTTPS everywhere except on
//! loopback hosts, no mirrors, credentials from `/root/.docker/config.json`.
//!
//! ```json
//! {
//!   "authFile": "/etc/podhost/auth.json",
//!   "registries": {
//!     "docker.io": { "mirrors": ["mirror.example.com:5000/hub"], "mirrorsOnly": true },
//!     "registry.lan:5000": { "plainHttp": true },
//!     "registry.example.com": { "caFiles": ["/etc/podhost/certs/example.pem"] }
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// Default credentials file: Docker's, for root.
pub const DEFAULT_AUTH_FILE: &str = "/root/.docker/config.json";

/// Errors reading the registry configuration or the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    /// The file exists but cannot be read.
    #[error("reading registry configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path}: invalid {what}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Registry configuration or credentials.
        what: &'static str,
        /// Why (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A mirror entry is not `host[:port][/path]`.
    #[error(
        "{path}: registry {registry:?}: invalid mirror {mirror:?}: expected host[:port][/path]"
    )]
    BadMirror {
        /// The file.
        path: PathBuf,
        /// Registry the mirror belongs to.
        registry: String,
        /// The entry.
        mirror: String,
    },
    /// A credentials entry does not decode to `user:password`.
    #[error("{path}: credentials for {registry:?}: `auth` is not base64 of user:password")]
    BadAuth {
        /// The file.
        path: PathBuf,
        /// Registry key of the entry.
        registry: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryConfig {
    /// Docker-style `config.json` with `auths` (default [`DEFAULT_AUTH_FILE`]).
    #[serde(default)]
    pub auth_file: Option<PathBuf>,
    /// Settings per registry host (`docker.io`, `host:port`).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryHost>,
    /// Where it was read from, for messages (not part of the file).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Settings of one registry host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryHost {
    /// Mirrors tried in order before the registry itself: `host[:port][/path]`
    /// (the repository path is appended: `mirror/path/library/busybox`).
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// The mirrors replace the registry: it is never contacted, and a pull
    /// fails when no mirror has the image (no silent fallback).
    #[serde(default)]
    pub mirrors_only: bool,
    /// Speak plain HTTP. Default: true for loopback hosts (127.0.0.0/8, ::1,
    /// localhost), as Docker treats them as insecure registries.
    #[serde(default)]
    pub plain_http: Option<bool>,
    /// Accept any TLS certificate (self-signed test registries).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Extra CA certificates (PEM files) trusted for this host.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
}

/// One place to fetch a repository from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` to connect to.
    pub host: String,
    /// Repository path on that host (a mirror's path prefix included).
    pub repository: String,
    /// Use `http://`.
    pub plain_http: bool,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
    /// Extra CA files.
    pub ca_files: Vec<PathBuf>,
    /// True for a mirror, false for the registry named by the reference.
    pub is_mirror: bool,
}

impl RegistryConfig {
    /// Reads the file at `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(RegistryConfig {
                    path: path.to_path_buf(),
                    ..RegistryConfig::default()
                })
            }
            Err(source) => {
                return Err(RegistryConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mut config: RegistryConfig =
            serde_json::from_slice(&bytes).map_err(|source| RegistryConfigError::Parse {
                path: path.to_path_buf(),
                what: "registry configuration",
                source,
            })?;
        config.path = path.to_path_buf();
        for (registry, host) in &config.registries {
            for mirror in &host.mirrors {
                if split_mirror(mirror).is_none() {
                    return Err(RegistryConfigError::BadMirror {
                        path: path.to_path_buf(),
                        registry: registry.clone(),
                        mirror: mirror.clone(),
                    });
                }
            }
        }
        Ok(config)
    }

    /// Where to fetch `repository` of `registry` from, in order: its mirrors,
    /// then the registry itself unless `mirrorsOnly`.
    pub fn endpoints(&self, registry: &str, repository: &str) -> Vec<Endpoint> {
        let own = self.registries.get(registry);
        let mut out = Vec::new();
        for mirror in own.map(|h| h.mirrors.as_slice()).unwrap_or_default() {
            let Some((host, prefix)) = split_mirror(mirror) else {
                continue;
            };
            let repository = match prefix {
                Some(p) => format!("{p}/{repository}"),
                None => repository.to_string(),
            };
            out.push(self.endpoint(host, repository, true));
        }
        if !own.is_some_and(|h| h.mirrors_only && !h.mirrors.is_empty()) {
            out.push(self.endpoint(registry, repository.to_string(), false));
        }
        out
    }

    fn endpoint(&self, host: &str, repository: String, is_mirror: bool) -> Endpoint {
        let settings = self.registries.get(host);
        Endpoint {
            host: host.to_string(),
            repository,
            plain_http: settings
                .and_then(|s| s.plain_http)
                .unwrap_or_else(|| is_loopback_host(host)),
            insecure_skip_verify: settings.is_some_and(|s| s.insecure_skip_verify),
            ca_files: settings.map(|s| s.ca_files.clone()).unwrap_or_default(),
            is_mirror,
        }
    }

    /// Credentials for `host` from the auth file (none when it is missing).
    pub fn credentials(&self, host: &str) -> Result<Option<(String, String)>, RegistryConfigError> {
        let path = self
            .auth_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AUTH_FILE));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RegistryConfigError::Read { path, source }),
        };
        credentials_from_docker_config(&bytes, &path, host)
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Looks `host` up in a Docker `config.json` (`auths` keyed by `host`,
/// `https://host`, `http://host/…`; Docker Hub also as
/// `https://index.docker.io/v1/`).
pub fn credentials_from_docker_config(
    bytes: &[u8],
    path: &Path,
    host: &str,
) -> Result<Option<(String, String)>, RegistryConfigError> {
    let config: DockerConfig =
        serde_json::from_slice(bytes).map_err(|source| RegistryConfigError::Parse {
            path: path.to_path_buf(),
            what: "credentials file (Docker config.json)",
            source,
        })?;
    let wanted = |key: &str| {
        let bare = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let bare = bare.split('/').next().unwrap_or(bare);
        bare == host
            || (host == "docker.io" && matches!(bare, "index.docker.io" | "registry-1.docker.io"))
    };
    let Some((key, entry)) = config.auths.iter().find(|(k, _)| wanted(k)) else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some((u.clone(), p.clone())));
    }
    let Some(encoded) = &entry.auth else {
        return Ok(None);
    };
    let bad = || RegistryConfigError::BadAuth {
        path: path.to_path_buf(),
        registry: key.clone(),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((user.to_string(), password.to_string())))
}

/// `host[:port][/path]` → (`host[:port]`, path).
fn split_mirror(mirror: &str) -> Option<(&str, Option<&str>)> {
    let m = mirror
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (host, prefix) = match m.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (m, None),
    };
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, prefix))
}

/// 127.0.0.0/8, ::1 and localhost, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> RegistryConfig {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registries.json");
        std::fs::write(&path, json).expect("write");
        RegistryConfig::load(&path).expect("load")
    }

    #[test]
    fn loopback_hosts_are_plain_http_by_default() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("127.3.2.1"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(is_loopback_host("localhost:5000"));
        assert!(!is_loopback_host("registry.example.com:5000"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
        let c = RegistryConfig::default();
        assert!(c.endpoints("127.0.0.1:5000", "a")[0].plain_http);
        assert!(!c.endpoints("docker.io", "library/busybox")[0].plain_http);
    }

    #[test]
    fn mirrors_come_first_and_may_replace_the_registry() {
        let c = config(
            r#"{"registries": {
                "docker.io": {"mirrors": ["127.0.0.1:5000/hub"]},
                "quay.io": {"mirrors": ["m.example:443"], "mirrorsOnly": true},
                "m.example:443": {"caFiles": ["/ca.pem"]}
            }}"#,
        );
        let e = c.endpoints("docker.io", "library/busybox");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].host, "127.0.0.1:5000");
        assert_eq!(e[0].repository, "hub/library/busybox");
        assert!(e[0].is_mirror && e[0].plain_http);
        assert_eq!(e[1].host, "docker.io");
        let q = c.endpoints("quay.io", "app");
        assert_eq!(q.len(), 1, "mirrorsOnly: no fallback to the registry");
        assert_eq!(q[0].ca_files, vec![PathBuf::from("/ca.pem")]);
    }

    #[test]
    fn unknown_fields_and_bad_mirrors_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        std::fs::write(&path, r#"{"registries": {"a": {"mirror": []}}}"#).expect("write");
        let e = RegistryConfig::load(&path).expect_err("unknown field");
        assert!(e.to_string().contains("mirror"), "{e}");
        std::fs::write(&path, r#"{"registries": {"a": {"mirrors": ["/x"]}}}"#).expect("write");
        assert!(RegistryConfig::load(&path).is_err());
        let missing = RegistryConfig::load(&dir.path().join("none.json")).expect("defaults");
        assert!(missing.registries.is_empty());
    }

    #[test]
    fn docker_config_credentials() {
        let p = Path::new("config.json");
        let json = br#"{"auths": {
            "127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"},
            "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}
        }}"#;
        assert_eq!(
            credentials_from_docker_config(json, p, "127.0.0.1:5000").expect("ok"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(
            credentials_from_docker_config(json, p, "docker.io").expect("ok"),
            Some(("hub".into(), "pw".into()))
        );
        assert_eq!(
            credentials_from_docker_config(json, p, "other").expect("ok"),
            None
        );
        let bad = br#"{"auths": {"h": {"auth": "!!"}}}"#;
        assert!(credentials_from_docker_config(bad, p, "h").is_err());
    }
}

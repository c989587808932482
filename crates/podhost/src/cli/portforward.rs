//! `podhost port-forward pod/NAME [LOCAL:]REMOTE...`: listens on 127.0.0.1 and forwards
//! each connection to the pod's port through the daemon (one HTTP upgrade per
//! connection), like `kubectl port-forward`.

use anyhow::{bail, Context, Result};
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;

use super::client::Client;

/// One `LOCAL:REMOTE` pair; local 0 is any free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// Port on 127.0.0.1.
    pub local: u16,
    /// Port in the pod.
    pub remote: u16,
}

/// kubectl's forms: `8080:80`, `:80` (a free local port), `80` (the same on both sides).
pub fn parse_mapping(s: &str) -> Result<Mapping> {
    let port = |p: &str, what: &str| -> Result<u16> {
        p.parse::<u16>()
            .with_context(|| format!("invalid {what} port {p:?} in {s:?}"))
    };
    let (local, remote) = match s.split_once(':') {
        Some(("", r)) => (0, port(r, "remote")?),
        Some((l, r)) => (port(l, "local")?, port(r, "remote")?),
        None => {
            let p = port(s, "")?;
            (p, p)
        }
    };
    if remote == 0 {
        bail!("invalid port mapping {s:?}: the remote port cannot be 0");
    }
    Ok(Mapping { local, remote })
}

/// `pod/NAME`, `pods/NAME` or `NAME`.
pub fn pod_name(target: &str) -> Result<&str> {
    match target.split_once('/') {
        None => Ok(target),
        Some(("pod" | "pods" | "po", name)) if !name.is_empty() => Ok(name),
        Some(_) => bail!("only pods can be forwarded to: pod/NAME (got {target:?})"),
    }
}

/// Forwards until SIGINT or SIGTERM.
pub async fn run(client: &Client, namespace: &str, target: &str, ports: &[String]) -> Result<i32> {
    let name = pod_name(target)?.to_string();
    let mappings = ports
        .iter()
        .map(|p| parse_mapping(p))
        .collect::<Result<Vec<_>>>()?;
    // An unknown pod is an error before anything listens.
    let _: Pod = client
        .call(Method::GET, &format!("/v1/pods/{namespace}/{name}"), None)
        .await?;
    for m in mappings {
        let listener = TcpListener::bind(("127.0.0.1", m.local))
            .await
            .with_context(|| format!("unable to listen on 127.0.0.1:{}", m.local))?;
        let local = listener.local_addr()?.port();
        println!("Forwarding from 127.0.0.1:{local} -> {}", m.remote);
        let path = format!("/v1/pods/{namespace}/{name}/portforward?port={}", m.remote);
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                println!("Handling connection for {local}");
                let client = client.clone();
                let path = path.clone();
                tokio::spawn(async move {
                    match client.upgrade(&path).await {
                        Ok(mut io) => {
                            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut io).await;
                        }
                        Err(e) => eprintln!(
                            "error: an error occurred forwarding {local} -> {}: {e:#}",
                            m.remote
                        ),
                    }
                });
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_and_targets_as_kubectl_writes_them() {
        let m = |l, r| Mapping {
            local: l,
            remote: r,
        };
        assert_eq!(parse_mapping("8080:80").unwrap(), m(8080, 80));
        assert_eq!(parse_mapping(":80").unwrap(), m(0, 80));
        assert_eq!(parse_mapping("5000").unwrap(), m(5000, 5000));
        assert!(parse_mapping("80:0").is_err());
        assert!(parse_mapping("x:80").is_err());
        assert!(parse_mapping("80:70000").is_err());
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert_eq!(pod_name("pods/web").unwrap(), "web");
        assert_eq!(pod_name("web").unwrap(), "web");
        assert!(pod_name("svc/web").is_err());
        assert!(pod_name("pod/").is_err());
    }
}

//! What `/proc` says about a pod's processes, for `describe` and `lint pod`: which
//! namespaces a container shares with the pod's pause or the host, and who listens on
//! which address in the pod's network namespace. The CLI runs as root on the same
//! machine as the daemon, so it reads them itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The namespaces of a process, in the order describe prints them.
const NAMESPACES: [&str; 8] = ["net", "ipc", "uts", "pid", "mnt", "cgroup", "user", "time"];

/// Namespace links of a process (`net:[4026…]`), `None` where unreadable.
fn ns_links(pid: u32) -> Vec<(&'static str, Option<String>)> {
    NAMESPACES
        .iter()
        .map(|n| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .ok()
                .map(|p| p.display().to_string());
            (*n, link)
        })
        .collect()
}

/// Namespace inodes of a process (the pause's), for showing who shares what.
pub fn ns_line(pid: u32) -> String {
    ns_links(pid)
        .into_iter()
        .map(|(n, link)| link.unwrap_or_else(|| format!("{n}:?")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A container's namespaces (its first process `pid`) against the pause's and the
/// host's: `net ipc uts (shared with the pod), pid mnt (own), user time (host)`.
pub fn ns_sharing(pid: u32, pause: Option<u32>) -> String {
    classify(
        &ns_links(pid),
        pause.map(ns_links).as_deref(),
        &host_links(),
    )
}

/// The machine's namespaces: PID 1's, or where PID 1 cannot be read (a machine that
/// is itself a sandbox hides its init) this command's own, which runs on the host as
/// the daemon does.
fn host_links() -> Vec<(&'static str, Option<String>)> {
    let own = ns_links(std::process::id());
    ns_links(1)
        .into_iter()
        .zip(own)
        .map(|((kind, init), (_, own))| (kind, init.or(own)))
        .collect()
}

/// The host's namespace comes first: a pod without its own (hostNetwork, no user
/// namespace) shares the machine's, which is what a learner needs to see.
fn classify(
    container: &[(&'static str, Option<String>)],
    pause: Option<&[(&'static str, Option<String>)]>,
    host: &[(&'static str, Option<String>)],
) -> String {
    let same = |list: &[(&str, Option<String>)], kind: &str, link: &str| {
        list.iter()
            .any(|(k, l)| *k == kind && l.as_deref() == Some(link))
    };
    let groups = ["shared with the pod", "own", "host", "unknown"];
    let mut members: Vec<Vec<&str>> = vec![Vec::new(); groups.len()];
    for (kind, link) in container {
        let g = match link {
            None => 3,
            Some(l) if same(host, kind, l) => 2,
            Some(l) if pause.is_some_and(|p| same(p, kind, l)) => 0,
            // Without the pause to compare with, a namespace of its own or the pod's
            // cannot be told apart.
            Some(_) if pause.is_none() => 3,
            Some(_) => 1,
        };
        members[g].push(kind);
    }
    groups
        .iter()
        .zip(members)
        .filter(|(_, m)| !m.is_empty())
        .map(|(g, m)| format!("{} ({g})", m.join(" ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An address of /proc/net/tcp{,6}: hex words in host byte order, then the port.
fn proc_net_addr(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address as a number of this machine's
    // (little-endian) byte order.
    let words: Option<Vec<u32>> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_le_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The listening TCP sockets of the pod network namespace (/proc/PID/net/tcp and
/// tcp6) held by a process of the container whose first process is `pid` (same
/// cgroup), with the program's name, sorted.
pub fn listeners(pid: u32) -> Vec<(SocketAddr, String)> {
    let mut sockets: Vec<(u64, SocketAddr)> = Vec::new();
    for file in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // st 0A: LISTEN.
            if f.len() > 9 && f[3] == "0A" {
                if let (Some(addr), Ok(inode)) = (proc_net_addr(f[1]), f[9].parse::<u64>()) {
                    sockets.push((inode, addr));
                }
            }
        }
    }
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
    let mut owners: HashMap<u64, String> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        if cgroup.is_none() || std::fs::read_to_string(p.join("cgroup")).ok() != cgroup {
            continue;
        }
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        for fd in std::fs::read_dir(p.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(i) = inode {
                owners.insert(i, comm.trim().to_string());
            }
        }
    }
    let mut out: Vec<(SocketAddr, String)> = sockets
        .into_iter()
        .filter_map(|(inode, addr)| owners.get(&inode).map(|c| (addr, c.clone())))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Who listens where, as describe's `Listening:` shows it: `0.0.0.0:80/TCP (httpd)`.
/// The notes' 127.0.0.1-for-the-pod versus 0.0.0.0-for-everyone, made visible.
pub fn listening(pid: u32) -> String {
    let all: Vec<String> = listeners(pid)
        .into_iter()
        .map(|(addr, c)| format!("{addr}/TCP ({c})"))
        .collect();
    if all.is_empty() {
        "<none>".into()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, Option<String>)> {
        pairs
            .iter()
            .map(|(k, l)| (*k, (!l.is_empty()).then(|| format!("{k}:[{l}]"))))
            .collect()
    }

    #[test]
    fn namespaces_shared_own_and_host() {
        let host = links(&[("net", "1"), ("pid", "2"), ("mnt", "3"), ("user", "4")]);
        let pause = links(&[("net", "10"), ("pid", "11"), ("mnt", "12"), ("user", "4")]);
        let c = links(&[("net", "10"), ("pid", "21"), ("mnt", "22"), ("user", "4")]);
        assert_eq!(
            classify(&c, Some(&pause), &host),
            "net (shared with the pod), pid mnt (own), user (host)"
        );
        // shareProcessNamespace: the pause's PID namespace too.
        let c = links(&[("net", "10"), ("pid", "11"), ("mnt", "22"), ("user", "")]);
        assert_eq!(
            classify(&c, Some(&pause), &host),
            "net pid (shared with the pod), mnt (own), user (unknown)"
        );
        // hostNetwork: the pause's network namespace is the machine's.
        let c = links(&[("net", "1"), ("pid", "21"), ("mnt", "22"), ("user", "4")]);
        assert_eq!(
            classify(&c, None, &host),
            "net user (host), pid mnt (unknown)"
        );
    }

    #[test]
    fn proc_net_addresses() {
        let a = |h: &str| proc_net_addr(h).map(|a| a.to_string());
        assert_eq!(a("0100007F:1F90").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(a("00000000:0050").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(
            a("00000000000000000000000000000000:0050").as_deref(),
            Some("[::]:80")
        );
        assert_eq!(
            a("00000000000000000000000001000000:0016").as_deref(),
            Some("[::1]:22")
        );
        assert_eq!(a("0100007F"), None);
    }
}

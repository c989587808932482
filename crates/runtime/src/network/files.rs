//! The pod's `/etc/hosts` and `/etc/resolv.conf`, written the way kubelet does.

use serde::{Deserialize, Serialize};

/// DNS settings of a pod (kubelet's result of `dnsPolicy` + `dnsConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `dnsPolicy: None`: use only these values, not the host's resolv.conf.
    pub replace_host: bool,
    /// `nameserver` lines, added after the host's.
    pub servers: Vec<String>,
    /// `search` domains, added after the host's.
    pub searches: Vec<String>,
    /// `options` (`ndots:5`, `edns0`): one with the same name as a host option replaces it.
    pub options: Vec<String>,
}

/// One `hostAliases` entry: an IP and the names it answers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAlias {
    /// The address.
    pub ip: String,
    /// Its names.
    pub hostnames: Vec<String>,
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// The pod's resolv.conf from the host's text and the pod's settings (kubelet's
/// `appendDNSConfig`: the host's values first, duplicates dropped, options by name).
pub fn resolv_conf(host: &str, dns: Option<&DnsConfig>) -> String {
    let Some(dns) = dns else {
        return host.to_string();
    };
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    if !dns.replace_host {
        for line in host.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => f.for_each(|s| push_unique(&mut servers, s)),
                Some("search" | "domain") => f.for_each(|s| push_unique(&mut searches, s)),
                Some("options") => f.for_each(|s| push_unique(&mut options, s)),
                _ => {}
            }
        }
    }
    for s in &dns.servers {
        push_unique(&mut servers, s);
    }
    for s in &dns.searches {
        push_unique(&mut searches, s);
    }
    let name = |o: &str| o.split(':').next().unwrap_or(o).to_string();
    for o in &dns.options {
        options.retain(|x: &String| name(x) != name(o));
        options.push(o.clone());
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// kubelet's managed hosts file: localhost entries, the pod's IPs with its hostname,
/// then `hostAliases`.
pub fn hosts_file(hostname: &str, ips: &[String], aliases: &[HostAlias]) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file (podhost).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    if ips.is_empty() {
        // No pod IP (no network yet): still let the hostname resolve, like Debian does.
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.join("\t")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# generated\ndomain example.org\nsearch a.example\nnameserver 192.0.2.53\noptions ndots:1 edns0\n";

    #[test]
    fn host_copy_without_settings() {
        assert_eq!(resolv_conf(HOST, None), HOST);
    }

    #[test]
    fn merge_appends_and_overrides_options() {
        let dns = DnsConfig {
            replace_host: false,
            servers: vec!["192.0.2.53".into(), "192.0.2.54".into()],
            searches: vec!["svc.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(HOST, Some(&dns)),
            "search example.org a.example svc.local\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0 ndots:5\n"
        );
    }

    #[test]
    fn policy_none_replaces() {
        let dns = DnsConfig {
            replace_host: true,
            servers: vec!["1.2.3.4".into()],
            ..Default::default()
        };
        assert_eq!(resolv_conf(HOST, Some(&dns)), "nameserver 1.2.3.4\n");
    }

    #[test]
    fn hosts_has_pod_ip_and_aliases() {
        let h = hosts_file(
            "web",
            &["10.77.0.4".into()],
            &[HostAlias {
                ip: "10.1.1.1".into(),
                hostnames: vec!["a".into(), "b".into()],
            }],
        );
        assert!(h.contains("\n10.77.0.4\tweb\n"), "{h}");
        assert!(
            h.ends_with("# Entries added by HostAliases.\n10.1.1.1\ta\tb\n"),
            "{h}"
        );
        assert!(!h.contains("127.0.1.1"));
    }
}

//! The default network's one masquerade rule: traffic from the pod CIDR to anywhere
//! outside it (and not multicast) leaves with the host's address.
//!
//! The bridge plugin's `ipMasq` makes a chain and two rules per pod, with several
//! iptables runs at each ADD and DEL; iptables reads and writes the whole nat table each
//! time, so every pod made the next one slower (100 pods took 8 s to start, the fifth
//! hundred 51 s). The same translation for the whole CIDR is one rule that the first pod
//! puts in place and the last one takes away (`Network` counts them).
//!
//! Its rules carry the comment `name: "<bridge>" podhost shared masquerade`: the same
//! `name: "<network>"` tag as the bridge plugin's, so tools that look for a network's
//! rules (the tests' leak check, scripts/clean-stale-e2e.sh) find these too.

use std::process::Output;

use super::SBIN_PATH;
use crate::config::NetworkSettings;

/// A failed iptables run.
#[derive(Debug, thiserror::Error)]
pub enum MasqueradeError {
    /// The program could not be run.
    #[error("running {program}: {source}")]
    Exec {
        /// iptables or ip6tables.
        program: &'static str,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it said.
        stderr: String,
    },
}

/// The shared rule of one default network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// iptables, or ip6tables for an IPv6 CIDR.
    program: &'static str,
    /// The pod CIDR.
    cidr: String,
    /// The chain POSTROUTING jumps to (iptables allows 28 characters; bridge names 15).
    chain: String,
    /// The comment on every rule.
    comment: String,
    /// Multicast, never masqueraded (as the bridge plugin does).
    multicast: &'static str,
}

impl Rule {
    /// The rule of the network `settings` describe.
    pub fn of(settings: &NetworkSettings) -> Rule {
        let v6 = settings.cluster_cidr.contains(':');
        Rule {
            program: if v6 { "ip6tables" } else { "iptables" },
            cidr: settings.cluster_cidr.clone(),
            chain: format!("PH-MASQ-{}", settings.bridge),
            comment: format!("name: \"{}\" podhost shared masquerade", settings.bridge),
            multicast: if v6 { "ff00::/8" } else { "224.0.0.0/4" },
        }
    }

    /// The jump in POSTROUTING, without the operation.
    fn jump(&self) -> Vec<String> {
        self.tagged(&["POSTROUTING", "-s", &self.cidr], &self.chain)
    }

    /// The chain's rules: within the CIDR and to multicast nothing happens, the rest is
    /// masqueraded.
    fn chain_rules(&self) -> [Vec<String>; 3] {
        [
            self.tagged(&[&self.chain, "-d", &self.cidr], "ACCEPT"),
            self.tagged(&[&self.chain, "-d", self.multicast], "ACCEPT"),
            self.tagged(&[&self.chain], "MASQUERADE"),
        ]
    }

    fn restore_program(&self) -> &'static str {
        match self.program {
            "ip6tables" => "ip6tables-restore",
            _ => "iptables-restore",
        }
    }

    /// iptables-restore input (with `--noflush`) that makes the chain, empties it if a
    /// removal cut short left it, fills it, and adds the jump.
    fn restore_input(&self) -> String {
        let mut s = format!("*nat\n:{} - [0:0]\n", self.chain);
        for r in self.chain_rules().iter().chain([&self.jump()]) {
            let line: Vec<String> = r.iter().map(|a| restore_word(a)).collect();
            s.push_str(&format!("-A {}\n", line.join(" ")));
        }
        s.push_str("COMMIT\n");
        s
    }

    fn tagged(&self, head: &[&str], target: &str) -> Vec<String> {
        let mut v: Vec<String> = head.iter().map(|s| s.to_string()).collect();
        v.extend(["-m", "comment", "--comment", &self.comment, "-j", target].map(String::from));
        v
    }
}

/// One word of an iptables-restore line: quoted, with `"` and `\\` escaped, when it
/// holds anything but plain characters (the comment does).
fn restore_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
    {
        return w.to_string();
    }
    let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

async fn run(rule: &Rule, op: &str, args: &[String]) -> Result<Output, MasqueradeError> {
    tokio::process::Command::new(rule.program)
        .env("PATH", SBIN_PATH)
        .args(["-w", "-t", "nat", op])
        .args(args)
        .output()
        .await
        .map_err(|source| MasqueradeError::Exec {
            program: rule.program,
            source,
        })
}

async fn must(rule: &Rule, op: &str, args: &[String]) -> Result<(), MasqueradeError> {
    let out = run(rule, op, args).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(MasqueradeError::Failed {
        command: format!("{} -t nat {op} {}", rule.program, args.join(" ")),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Whether POSTROUTING jumps to the rule's chain.
pub async fn exists(rule: &Rule) -> bool {
    run(rule, "-C", &rule.jump())
        .await
        .is_ok_and(|o| o.status.success())
}

/// Put the rule in place unless it is (a daemon restarted with pods running).
pub async fn ensure(rule: &Rule) -> Result<(), MasqueradeError> {
    if exists(rule).await {
        return Ok(());
    }
    // One iptables-restore, one transaction, instead of an iptables run per rule (each
    // a process start and a read and write of the whole table; ~13 ms for the six).
    let program = rule.restore_program();
    let mut child = tokio::process::Command::new(program)
        .env("PATH", SBIN_PATH)
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| MasqueradeError::Exec { program, source })?;
    let input = rule.restore_input();
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        // A failed write shows as the program's failure below.
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| MasqueradeError::Exec { program, source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(MasqueradeError::Failed {
        command: format!("{program} -w --noflush <<< {input:?}"),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Take the rule away; what is already gone is no error (best effort: a failure is
/// logged, and the next start's sweep tries again).
pub async fn remove(rule: &Rule) {
    // Every jump, should there be several (two daemons racing once).
    while exists(rule).await {
        if let Err(e) = must(rule, "-D", &rule.jump()).await {
            tracing::warn!("removing the shared masquerade rule: {e}");
            return;
        }
    }
    for op in ["-F", "-X"] {
        let _ = run(rule, op, std::slice::from_ref(&rule.chain)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cidr: &str) -> NetworkSettings {
        NetworkSettings {
            cni_conf_dir: "/nonexistent".into(),
            cni_bin_dirs: Vec::new(),
            cluster_cidr: cidr.into(),
            bridge: "podhost0".into(),
            ipam_data_dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn one_rule_for_the_cidr_tagged_with_the_network_name() {
        let r = Rule::of(&settings("10.99.0.0/16"));
        assert_eq!(r.program, "iptables");
        let tag = "name: \"podhost0\" podhost shared masquerade";
        assert_eq!(
            r.jump(),
            [
                "POSTROUTING",
                "-s",
                "10.99.0.0/16",
                "-m",
                "comment",
                "--comment",
                tag,
                "-j",
                "PH-MASQ-podhost0"
            ]
        );
        let targets: Vec<(String, String)> = r
            .chain_rules()
            .iter()
            .map(|v| (v[..v.len() - 6].join(" "), v[v.len() - 1].clone()))
            .collect();
        assert_eq!(
            targets,
            [
                ("PH-MASQ-podhost0 -d 10.99.0.0/16".into(), "ACCEPT".into()),
                ("PH-MASQ-podhost0 -d 224.0.0.0/4".into(), "ACCEPT".into()),
                ("PH-MASQ-podhost0".into(), "MASQUERADE".into()),
            ]
        );
        assert!(r.chain.len() <= 28);
    }

    #[test]
    fn restore_input_makes_the_chain_and_its_jump_in_one_transaction() {
        let r = Rule::of(&settings("10.99.0.0/16"));
        let tag = r#""name: \"podhost0\" podhost shared masquerade""#;
        assert_eq!(
            r.restore_input(),
            format!(
                "*nat\n:PH-MASQ-podhost0 - [0:0]\n\
                 -A PH-MASQ-podhost0 -d 10.99.0.0/16 -m comment --comment {tag} -j ACCEPT\n\
                 -A PH-MASQ-podhost0 -d 224.0.0.0/4 -m comment --comment {tag} -j ACCEPT\n\
                 -A PH-MASQ-podhost0 -m comment --comment {tag} -j MASQUERADE\n\
                 -A POSTROUTING -s 10.99.0.0/16 -m comment --comment {tag} -j PH-MASQ-podhost0\n\
                 COMMIT\n"
            )
        );
        assert_eq!(restore_word(r#"a\b"#), r#""a\\b""#);
        assert_eq!(restore_word(""), r#""""#);
    }

    #[test]
    fn an_ipv6_cidr_gets_ip6tables_and_its_multicast() {
        let r = Rule::of(&settings("fd00:10::/64"));
        assert_eq!((r.program, r.multicast), ("ip6tables", "ff00::/8"));
    }
}

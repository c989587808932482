//! kubelet's flags for node pressure, in kubelet's syntax: hard eviction thresholds
//! (`--eviction-hard memory.available<100Mi,nodefs.available<10%`) and reservations
//! (`--system-reserved memory=500Mi,cpu=500m`).

use std::collections::BTreeMap;

/// A signal kubelet watches, of those this node measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    /// Memory not in the working set of the node, and of the pods' allocatable cgroup.
    MemoryAvailable,
    /// Free space of the filesystem of the daemon's root directory.
    NodeFsAvailable,
    /// Free inodes of that filesystem.
    NodeFsInodesFree,
    /// Process ids left (kernel.pid_max minus the processes running).
    PidAvailable,
}

impl Signal {
    /// kubelet's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The resource it is about, as kubelet names it in eviction messages.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable => "ephemeral-storage",
            Signal::NodeFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }

    fn parse(s: &str) -> Option<Signal> {
        [
            Signal::MemoryAvailable,
            Signal::NodeFsAvailable,
            Signal::NodeFsInodesFree,
            Signal::PidAvailable,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// How much of a signal must remain.
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    /// An absolute quantity (bytes, inodes, pids), as written and its value.
    Quantity(String, u64),
    /// A share of the capacity, in percent.
    Percent(f64),
}

/// One hard eviction threshold: evict when `signal` < `amount`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub signal: Signal,
    /// The floor.
    pub amount: Amount,
}

impl Threshold {
    /// The floor in the signal's unit, given what the node has of it.
    pub fn floor(&self, capacity: u64) -> u64 {
        match &self.amount {
            Amount::Quantity(_, v) => *v,
            Amount::Percent(p) => (capacity as f64 * p / 100.0).ceil() as u64,
        }
    }

    /// The floor as kubelet prints it in messages (`100Mi`, or the percentage's value).
    pub fn shown(&self, capacity: u64) -> String {
        match &self.amount {
            Amount::Quantity(s, _) => s.clone(),
            Amount::Percent(_) => super::local_storage::quantity(self.floor(capacity)),
        }
    }
}

/// The thresholds of one `--eviction-hard` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds(pub Vec<Threshold>);

/// Why a flag value was refused (the flag is named by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// Not `signal<amount`.
    #[error("{0:?}: expected SIGNAL<QUANTITY or SIGNAL<PERCENT%, e.g. memory.available<100Mi")]
    Malformed(String),
    /// A signal this node does not measure.
    #[error("unknown eviction signal {0:?}: use memory.available, nodefs.available, nodefs.inodesFree or pid.available")]
    UnknownSignal(String),
    /// A bad quantity or percentage.
    #[error("{0:?}: {1}")]
    BadAmount(String, String),
    /// A signal given twice.
    #[error("eviction signal {0} given twice")]
    Duplicate(String),
    /// Not `name=quantity`.
    #[error("{0:?}: expected RESOURCE=QUANTITY, e.g. memory=500Mi")]
    BadReservation(String),
    /// A reservation of something but cpu, memory, ephemeral-storage or pid.
    #[error("cannot reserve {0:?}: use cpu, memory, ephemeral-storage or pid")]
    UnknownResource(String),
}

/// Parse `--eviction-hard` (an empty string: no thresholds).
pub fn parse_thresholds(text: &str) -> Result<Vec<Threshold>, FlagError> {
    let mut out: Vec<Threshold> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('<')
            .ok_or_else(|| FlagError::Malformed(part.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        let signal =
            Signal::parse(name).ok_or_else(|| FlagError::UnknownSignal(name.to_string()))?;
        let amount = if let Some(p) = value.strip_suffix('%') {
            let pct: f64 = p
                .parse()
                .map_err(|_| FlagError::BadAmount(part.into(), "not a percentage".into()))?;
            if !(0.0..=100.0).contains(&pct) {
                return Err(FlagError::BadAmount(
                    part.into(),
                    "a percentage is between 0% and 100%".into(),
                ));
            }
            Amount::Percent(pct)
        } else {
            let v = podhost_api::quantity::parse_bytes(value)
                .map_err(|e| FlagError::BadAmount(part.into(), e.to_string()))?;
            let v = u64::try_from(v).map_err(|_| {
                FlagError::BadAmount(part.into(), "a threshold is not negative".into())
            })?;
            Amount::Quantity(value.to_string(), v)
        };
        if out.iter().any(|t| t.signal == signal) {
            return Err(FlagError::Duplicate(name.to_string()));
        }
        out.push(Threshold { signal, amount });
    }
    Ok(out)
}

/// What `--system-reserved` and `--kube-reserved` set aside, by resource, in its unit
/// (bytes; milli-CPU for cpu; processes for pid).
pub type Reserved = BTreeMap<String, u64>;

/// Parse `--system-reserved` / `--kube-reserved` (`memory=500Mi,cpu=500m`).
pub fn parse_reserved(text: &str) -> Result<Reserved, FlagError> {
    let mut out = Reserved::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| FlagError::BadReservation(part.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        let v = match name {
            "cpu" => podhost_api::quantity::parse_cpu_millis(value),
            "memory" | "ephemeral-storage" | "pid" => podhost_api::quantity::parse_bytes(value),
            other => return Err(FlagError::UnknownResource(other.to_string())),
        }
        .map_err(|e| FlagError::BadAmount(part.into(), e.to_string()))?;
        let v = u64::try_from(v).map_err(|_| {
            FlagError::BadAmount(part.into(), "a reservation is not negative".into())
        })?;
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

/// kubelet's default `--eviction-hard` on Linux (of the signals measured here).
pub const DEFAULT_EVICTION_HARD: &str = "memory.available<100Mi,nodefs.available<10%";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_defaults_parse() {
        let t = parse_thresholds(DEFAULT_EVICTION_HARD).expect("parse");
        assert_eq!(
            t,
            vec![
                Threshold {
                    signal: Signal::MemoryAvailable,
                    amount: Amount::Quantity("100Mi".into(), 100 << 20)
                },
                Threshold {
                    signal: Signal::NodeFsAvailable,
                    amount: Amount::Percent(10.0)
                },
            ]
        );
        assert_eq!(t[1].floor(1000), 100);
        assert_eq!(t[0].floor(1 << 40), 100 << 20);
        assert_eq!(t[0].shown(0), "100Mi");
        assert_eq!(t[1].shown(10 << 30), "1Gi");
        assert_eq!(parse_thresholds("").expect("empty"), vec![]);
    }

    #[test]
    fn bad_thresholds_are_named() {
        assert_eq!(
            parse_thresholds("memory.available>1Mi"),
            Err(FlagError::Malformed("memory.available>1Mi".into()))
        );
        assert_eq!(
            parse_thresholds("memory.free<1Mi"),
            Err(FlagError::UnknownSignal("memory.free".into()))
        );
        assert!(matches!(
            parse_thresholds("nodefs.available<120%"),
            Err(FlagError::BadAmount(..))
        ));
        assert!(matches!(
            parse_thresholds("memory.available<lots"),
            Err(FlagError::BadAmount(..))
        ));
        assert_eq!(
            parse_thresholds("pid.available<10,pid.available<20"),
            Err(FlagError::Duplicate("pid.available".into()))
        );
        let t = parse_thresholds(" nodefs.inodesFree<5% , pid.available<1k ").expect("spaces");
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].floor(0), 1000);
    }

    #[test]
    fn reservations_parse_like_kubelet() {
        let r =
            parse_reserved("memory=500Mi,cpu=500m,ephemeral-storage=1Gi,pid=1000").expect("parse");
        assert_eq!(r["memory"], 500 << 20);
        assert_eq!(r["cpu"], 500);
        assert_eq!(r["ephemeral-storage"], 1 << 30);
        assert_eq!(r["pid"], 1000);
        assert_eq!(parse_reserved("").expect("empty"), Reserved::new());
        assert_eq!(
            parse_reserved("gpu=1"),
            Err(FlagError::UnknownResource("gpu".into()))
        );
        assert_eq!(
            parse_reserved("memory"),
            Err(FlagError::BadReservation("memory".into()))
        );
        assert!(matches!(
            parse_reserved("memory=-1Mi"),
            Err(FlagError::BadAmount(..))
        ));
    }
}

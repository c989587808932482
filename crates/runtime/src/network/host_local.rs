//! Releasing a pod's addresses from the host-local IPAM plugin's store, in-process.
//!
//! Only for podhost's own network once the pod's namespace is gone: the plugins' DEL
//! would then be the bridge plugin (nothing left to do without a netns) handing over to
//! host-local, two process starts, and host-local reads every address file of the
//! network to find the pod's (O(pods) per DEL, O(pods²) for many). The ADD result names
//! the addresses, so their files are looked at directly. The store format and the lock
//! are host-local's own, so plugins running at the same time (ADDs of other pods) and a
//! later plugin DEL see the same store:
//! - `<dataDir>/<network>/<ip>` holds `<container id>\r\n<ifname>` (or, written by old
//!   versions, the container id alone);
//! - every change is made under an exclusive `flock` of `<dataDir>/<network>/lock`.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cni::{plugin_type, ConfList, RuntimeConf};

/// host-local's data directory when the config names none.
const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One network's directory in host-local's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLocalStore {
    dir: PathBuf,
}

impl HostLocalStore {
    /// The store of `list` when its DEL without a netns is nothing but host-local's
    /// release: one plugin, `bridge` without `ipMasq` (its rules would need the netns to
    /// be found), with `host-local` IPAM. `None` for anything else, which goes through
    /// the plugins.
    pub fn of(list: &ConfList) -> Option<Self> {
        let [bridge] = list.plugins.as_slice() else {
            return None;
        };
        if plugin_type(bridge) != "bridge" || bridge.get("ipMasq") == Some(&Value::Bool(true)) {
            return None;
        }
        let ipam = bridge.get("ipam")?;
        if ipam.get("type").and_then(Value::as_str) != Some("host-local") {
            return None;
        }
        let data_dir = match ipam.get("dataDir") {
            None => PathBuf::from(DEFAULT_DATA_DIR),
            Some(Value::String(d)) if !d.is_empty() => PathBuf::from(d),
            Some(_) => return None,
        };
        // host-local joins the name as a path; a name that is not one plain component
        // is left to it.
        if list.name.is_empty()
            || list.name.contains(['/', '\0'])
            || matches!(list.name.as_str(), "." | "..")
        {
            return None;
        }
        Some(HostLocalStore {
            dir: data_dir.join(&list.name),
        })
    }

    /// Release the addresses that `rt`'s container holds on `rt`'s interface among
    /// `ips` (a file of another container, or none, is left alone). Blocking: waits for
    /// the store's lock.
    pub fn release(&self, rt: &RuntimeConf, ips: &[IpAddr]) -> std::io::Result<()> {
        if !self.dir.is_dir() {
            // Nothing was ever allocated here (or it was all removed).
            return Ok(());
        }
        let lock = self.lock()?;
        let id = rt.container_id.trim();
        let owned = format!("{id}\r\n{}", rt.ifname);
        for ip in ips {
            // `IpAddr`'s text is Go's `net.IP.String()` for both families (RFC 5952 for
            // IPv6), the name host-local gives the file.
            let path = self.dir.join(ip.to_string());
            let held = match std::fs::read_to_string(&path) {
                Ok(h) => h,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let held = held.trim();
            if held == owned || held == id {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        drop(lock);
        Ok(())
    }

    fn lock(&self) -> std::io::Result<File> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join("lock"))?;
        // flock(LOCK_EX), as host-local's own lock.
        f.lock()?;
        Ok(f)
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The addresses of an ADD result (`ips[].address`, prefix length cut off); `None` when
/// the result lists none or one that is not an address.
pub fn result_addresses(result: &Value) -> Option<Vec<IpAddr>> {
    let ips = result.get("ips")?.as_array()?;
    let addrs: Option<Vec<IpAddr>> = ips
        .iter()
        .map(|ip| {
            let a = ip.get("address")?.as_str()?;
            a.split('/').next()?.parse().ok()
        })
        .collect();
    addrs.filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            let d = std::env::temp_dir().join(format!(
                "podhost-host-local-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn list(plugins: Value, name: &str) -> ConfList {
        let text = serde_json::json!({ "cniVersion": "1.0.0", "name": name, "plugins": plugins });
        ConfList::parse(&text.to_string(), Path::new("/x.conflist"), false).unwrap()
    }

    fn bridge(ipam: Value) -> Value {
        serde_json::json!({ "type": "bridge", "bridge": "ph0", "ipMasq": false, "ipam": ipam })
    }

    fn rt(id: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: id.into(),
            ifname: "eth0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_lone_bridge_with_host_local_is_released_in_process() {
        let hl = serde_json::json!({ "type": "host-local", "dataDir": "/d" });
        let store = HostLocalStore::of(&list(serde_json::json!([bridge(hl.clone())]), "ph0"));
        assert_eq!(store.unwrap().dir(), Path::new("/d/ph0"));
        let default_dir = HostLocalStore::of(&list(
            serde_json::json!([bridge(serde_json::json!({ "type": "host-local" }))]),
            "n",
        ));
        assert_eq!(
            default_dir.unwrap().dir(),
            Path::new("/var/lib/cni/networks/n")
        );
        let refused = [
            // portmap's rules need its own DEL
            list(
                serde_json::json!([bridge(hl.clone()), { "type": "portmap" }]),
                "ph0",
            ),
            // another IPAM
            list(
                serde_json::json!([bridge(serde_json::json!({ "type": "dhcp" }))]),
                "ph0",
            ),
            // per-pod masquerade rules
            list(
                serde_json::json!([{ "type": "bridge", "ipMasq": true, "ipam": hl }]),
                "ph0",
            ),
            list(serde_json::json!([{ "type": "ptp", "ipam": hl }]), "ph0"),
            list(serde_json::json!([bridge(hl.clone())]), ".."),
        ];
        for l in refused {
            assert_eq!(HostLocalStore::of(&l), None, "{:?}", l.plugins);
        }
    }

    #[test]
    fn release_removes_only_the_containers_own_files() {
        let tmp = TempDir::new();
        let store = HostLocalStore {
            dir: tmp.0.join("ph0"),
        };
        std::fs::create_dir_all(store.dir()).unwrap();
        let put = |name: &str, content: &str| std::fs::write(store.dir().join(name), content);
        put("10.1.0.5", "abc\r\neth0").unwrap();
        put("fd00::5", "abc").unwrap(); // an old version's file: the id alone
        put("10.1.0.6", "other\r\neth0").unwrap();
        put("10.1.0.7", "abc\r\neth1").unwrap();
        put("last_reserved_ip.0", "10.1.0.7").unwrap();
        let ips: Vec<IpAddr> = ["10.1.0.5", "fd00:0::5", "10.1.0.6", "10.1.0.7", "10.1.0.9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        store.release(&rt("abc"), &ips).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["10.1.0.6", "10.1.0.7", "last_reserved_ip.0", "lock"]);
        // Again: nothing to do, no error; a store never made is no error either.
        store.release(&rt("abc"), &ips).unwrap();
        let never = HostLocalStore {
            dir: tmp.0.join("none"),
        };
        never.release(&rt("abc"), &ips).unwrap();
        assert!(!never.dir().exists());
    }

    #[test]
    fn release_waits_for_host_locals_lock() {
        let tmp = TempDir::new();
        let store = HostLocalStore { dir: tmp.0.clone() };
        std::fs::write(tmp.0.join("10.1.0.5"), "abc\r\neth0").unwrap();
        let held = store.lock().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let releaser = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let ip: IpAddr = "10.1.0.5".parse().unwrap();
                store.release(&rt("abc"), &[ip]).unwrap();
                done.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !done.load(Ordering::SeqCst),
            "released under another's lock"
        );
        assert!(tmp.0.join("10.1.0.5").exists());
        drop(held);
        releaser.join().unwrap();
        assert!(!tmp.0.join("10.1.0.5").exists());
    }

    #[test]
    fn addresses_of_a_result() {
        let r = serde_json::json!({ "ips": [
            { "address": "10.1.0.5/16", "interface": 2 },
            { "address": "fd00::5/64" }
        ]});
        let want: Vec<IpAddr> = vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        assert_eq!(result_addresses(&r), Some(want));
        assert_eq!(result_addresses(&serde_json::json!({ "ips": [] })), None);
        assert_eq!(result_addresses(&serde_json::json!({})), None);
        let bad = serde_json::json!({ "ips": [{ "address": "../../etc/passwd" }] });
        assert_eq!(result_addresses(&bad), None);
    }
}

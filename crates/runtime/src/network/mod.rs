//! Pod networking: a pinned network namespace per pod with CNI plugins run on it.
//!
//! - [`cni`]: running plugins (the CNI protocol).
//! - [`files`]: the pod's `/etc/hosts` and `/etc/resolv.conf`.
//! - [`host_local`]: host-local's address store, released in-process for podhost's own
//!   network.
//!
//! An [`Attachment`] is the durable record of one pod's network: the pinned netns, the
//! network config used and the CNI result. It is written to `<state>/networks/<id>.json`
//! before the first plugin runs and removed only after DEL succeeded, so a crash at any
//! point leaves a record that [`Network::collect_garbage`] finishes on the next start.
//! An attachment outlives the pause: a sandbox recreated after its pause died takes it
//! over and the pod keeps its IP.

pub mod cni;
pub mod files;
pub mod host_local;
pub mod masquerade;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use super::netns;
use super::RuntimeError;
use crate::config::NetworkSettings;
use crate::state_file::{read_json, write_json_atomic};
use cni::{plugin_type, Cni, CniError, ConfList, RuntimeConf};
pub use files::{DnsConfig, HostAlias};
use host_local::HostLocalStore;

/// Interface name of the pod's network in the container, as in Kubernetes.
const POD_IFNAME: &str = "eth0";
/// File name of the conflist podhost writes into an empty config directory.
pub const DEFAULT_CONFLIST: &str = "10-podhost.conflist";

/// A `hostPort` to publish (CRI `PortMapping`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// Port in the pod.
    pub container_port: u16,
    /// Port on the host.
    pub host_port: u16,
    /// Host address to bind (empty: all).
    pub host_ip: String,
}

impl PortMapping {
    /// Whether both publish the same host port (an empty host IP overlaps every IP).
    pub fn conflicts(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol.eq_ignore_ascii_case(&other.protocol)
            && (self.host_ip.is_empty()
                || other.host_ip.is_empty()
                || self.host_ip == other.host_ip)
    }
}

/// Which pod an attachment is for (`CNI_ARGS`, messages).
#[derive(Debug, Clone)]
pub struct PodRef<'a> {
    /// Pod name.
    pub name: &'a str,
    /// Pod namespace.
    pub namespace: &'a str,
    /// Pod UID.
    pub uid: &'a str,
    /// A kubelet's sandbox (CRI): it always gets the configured list as it is.
    pub kubelet: bool,
}

/// One pod's attachment to the CNI network: everything DEL needs, even after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox that created it. host-local keys the IP by it, so a
    /// sandbox that takes the attachment over keeps using this id.
    pub id: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    /// The network config used at ADD: DEL must get the same, even if the directory
    /// changed since.
    pub network: ConfList,
    /// Env and args the plugins were called with.
    pub runtime: RuntimeConf,
    /// The final ADD result, once ADD succeeded (DEL's `prevResult`).
    pub result: Option<Value>,
    /// The pod's addresses from the result, IPv4 first.
    pub ips: Vec<String>,
    /// Published host ports.
    pub port_mappings: Vec<PortMapping>,
    /// Set (and saved) before the first DEL: a DEL that runs again finds the interface
    /// gone, and the bridge plugin then forgets the masquerade rules of the address.
    #[serde(default)]
    pub del_started: bool,
    /// Masqueraded by the network's one shared rule (podhost's own default network,
    /// bridge run without `ipMasq`), not by per-pod rules of the bridge plugin.
    #[serde(default)]
    pub shared_masquerade: bool,
}

/// The pod network manager of one daemon.
#[derive(Debug)]
pub struct Network {
    settings: NetworkSettings,
    cni: Cni,
    /// `<state>/networks`: one attachment record per file.
    records_dir: PathBuf,
    /// Where namespaces are pinned (`/run/podhost/netns`).
    netns_dir: PathBuf,
    /// Attachments this daemon process began: no plugin of a previous daemon can still
    /// be working on them.
    begun_here: std::sync::Mutex<HashSet<String>>,
    /// The shared masquerade rule and the attachments that need it.
    shared: tokio::sync::Mutex<SharedMasquerade>,
}

/// A namespace pinned and recorded for a sandbox whose plugins have not run yet
/// ([`Network::begin_attach`]); [`Network::finish_attach`] consumes it.
#[derive(Debug)]
pub struct PendingAttachment {
    att: Attachment,
}

impl PendingAttachment {
    /// The pinned namespace the pause joins.
    pub fn netns(&self) -> &Path {
        &self.att.netns
    }
}

/// Who needs the default network's shared masquerade rule, and whether it is in place.
#[derive(Debug, Default)]
struct SharedMasquerade {
    /// Attachment ids with [`Attachment::shared_masquerade`].
    users: HashSet<String>,
    /// Put in place by this daemon (unknown, so checked, at start).
    installed: bool,
}

impl Network {
    /// Open the manager; write the default conflist when the config dir has none.
    pub fn open(
        settings: &NetworkSettings,
        records_dir: &Path,
        netns_dir: &Path,
    ) -> Result<Network, RuntimeError> {
        for d in [records_dir, netns_dir, &settings.cni_conf_dir] {
            std::fs::create_dir_all(d).map_err(RuntimeError::io("creating", d))?;
        }
        crate::state_file::remove_stale_temps(records_dir);
        let mut net = Network {
            settings: settings.clone(),
            cni: Cni::new(settings.cni_bin_dirs.clone()),
            records_dir: records_dir.to_path_buf(),
            netns_dir: netns_dir.to_path_buf(),
            begun_here: Default::default(),
            shared: Default::default(),
        };
        net.write_default_conflist()?;
        net.shared.get_mut().users = net
            .records()
            .into_iter()
            .filter(|a| a.shared_masquerade)
            .map(|a| a.id)
            .collect();
        Ok(net)
    }

    /// The default network: a bridge with a gateway and masquerading, host-local IPAM on
    /// the cluster CIDR, hostPorts through portmap, and `lo` up by the loopback plugin
    /// (which passes the previous result on). Written once; edits by the user stay.
    pub fn default_conflist(settings: &NetworkSettings) -> Value {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": settings.bridge,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": settings.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": settings.cluster_cidr }]],
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": settings.ipam_data_dir,
                    }
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
                { "type": "loopback" }
            ]
        })
    }

    fn write_default_conflist(&self) -> Result<(), RuntimeError> {
        let dir = &self.settings.cni_conf_dir;
        match ConfList::load_dir(dir) {
            Err(CniError::NoConfig(_)) => {}
            // Any config (even a broken one: its error shows at pod creation) is the user's.
            _ => return Ok(()),
        }
        let path = dir.join(DEFAULT_CONFLIST);
        let text = serde_json::to_string_pretty(&Self::default_conflist(&self.settings))
            .unwrap_or_default();
        std::fs::write(&path, text + "\n").map_err(RuntimeError::io("writing", &path))?;
        tracing::info!("wrote the default CNI network config {}", path.display());
        Ok(())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.records_dir.join(format!("{id}.json"))
    }

    fn save(&self, att: &Attachment) -> Result<(), RuntimeError> {
        write_json_atomic(&self.record_path(&att.id), att)
    }

    fn cni_error(list: &ConfList, source: CniError) -> RuntimeError {
        RuntimeError::Cni {
            network: list.name.clone(),
            source,
        }
    }

    /// Create and pin a network namespace for sandbox `id` and ADD the network on it.
    /// On failure everything done is undone (DEL, unpin, record) before returning.
    pub async fn attach(
        &self,
        id: &str,
        pod: &PodRef<'_>,
        ports: &[PortMapping],
    ) -> Result<Attachment, RuntimeError> {
        let pending = self.begin_attach(id, pod, ports).await?;
        self.finish_attach(pending).await
    }

    /// The first half of [`Self::attach`]: the record, the shared masquerade rule when
    /// the pod uses it, and the pinned namespace, which a pause can join at once while
    /// [`Self::finish_attach`] runs the plugins on it (the sandbox starts its shim
    /// meanwhile). On failure nothing is left.
    pub async fn begin_attach(
        &self,
        id: &str,
        pod: &PodRef<'_>,
        ports: &[PortMapping],
    ) -> Result<PendingAttachment, RuntimeError> {
        let list = ConfList::load_dir(&self.settings.cni_conf_dir).map_err(|source| {
            RuntimeError::Cni {
                network: self.settings.cni_conf_dir.display().to_string(),
                source,
            }
        })?;
        let (list, shared_masquerade) = self.plugins_to_run(list, pod, ports);
        let pin = self.netns_dir.join(id);
        let mut runtime = RuntimeConf {
            container_id: id.to_string(),
            netns: pin.clone(),
            ifname: POD_IFNAME.to_string(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), pod.namespace.into()),
                ("K8S_POD_NAME".into(), pod.name.into()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), id.into()),
                ("K8S_POD_UID".into(), pod.uid.into()),
            ],
            ..Default::default()
        };
        if !ports.is_empty() {
            let pm: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let mut m = serde_json::json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": p.protocol.to_ascii_lowercase(),
                    });
                    if !p.host_ip.is_empty() {
                        m["hostIP"] = Value::String(p.host_ip.clone());
                    }
                    m
                })
                .collect();
            runtime
                .capability_args
                .insert("portMappings".into(), Value::Array(pm));
        }
        let att = Attachment {
            id: id.to_string(),
            netns: pin.clone(),
            network: list,
            runtime,
            result: None,
            ips: Vec::new(),
            port_mappings: ports.to_vec(),
            del_started: false,
            shared_masquerade,
        };
        // The record first: a crash from here on leaves something to clean up from.
        crate::step!("net_record").in_scope(|| self.save(&att))?;
        self.begun_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        if att.shared_masquerade {
            // Before the pod can send anything: its traffic out is masqueraded from the
            // start. Not while the shim starts: iptables' commit and the pause's cgroup
            // move each wait for the kernel, and together both took longer.
            let ensured = self
                .use_shared_masquerade(id)
                .instrument(crate::step!("masquerade"))
                .await;
            if let Err(e) = ensured {
                self.abandon(&att).await;
                return Err(e);
            }
        }
        if let Err(e) = crate::step!("netns").in_scope(|| netns::create_pinned(&pin)) {
            self.abandon(&att).await;
            return Err(e);
        }
        Ok(PendingAttachment { att })
    }

    /// Undo [`Self::begin_attach`] when it fails before any plugin ran: nothing to
    /// DEL, a pin file half made (if any), the record and the masquerade user to drop.
    async fn abandon(&self, att: &Attachment) {
        self.release_shared_masquerade(&att.id).await;
        let _ = self.forget(att);
    }

    /// The second half of [`Self::attach`]: the plugins' ADD. On failure everything
    /// [`Self::begin_attach`] did is undone too.
    pub async fn finish_attach(
        &self,
        pending: PendingAttachment,
    ) -> Result<Attachment, RuntimeError> {
        let PendingAttachment { mut att } = pending;
        match self.cni.add_list(&att.network, &att.runtime).await {
            Ok(result) => {
                att.ips = cni::result_ips(&result);
                att.result = Some(result);
                if let Err(e) = crate::step!("net_record").in_scope(|| self.save(&att)) {
                    return Err(self.undo_failed_add(&att, None, e).await);
                }
                Ok(att)
            }
            Err(failure) => {
                let e = Self::cni_error(&att.network, failure.source);
                let undo_upto = Some((failure.failed_at, failure.partial));
                Err(self.undo_failed_add(&att, undo_upto, e).await)
            }
        }
    }

    /// The plugins to run for a pod: `list` itself, except that podhost's own default
    /// list, unchanged, skips the plugins whose ADD would change nothing for a pod of
    /// podhost's (not a kubelet's): `loopback`, since [`netns::create_pinned`] brought
    /// `lo` up already, and `portmap` when the pod publishes no port (it then passes the
    /// previous result on). Each is a process start, and portmap's DEL runs iptables even
    /// when ADD had no mappings. Its bridge then runs without `ipMasq` (true: the pod
    /// uses the network's shared masquerade rule instead): the plugin's per-pod chain
    /// costs several iptables runs at each ADD and DEL, each slower the more pods have
    /// one (iptables reads the whole table), which made every batch of 100 pods slower
    /// than the last. The attachment records the list that ran, so DEL, also after a
    /// crash, runs the same plugins; any other config runs exactly as written.
    fn plugins_to_run(
        &self,
        list: ConfList,
        pod: &PodRef<'_>,
        ports: &[PortMapping],
    ) -> (ConfList, bool) {
        if pod.kubelet || !self.is_default(&list) {
            return (list, false);
        }
        let mut list = list;
        list.plugins.retain(|p| match plugin_type(p) {
            "loopback" => false,
            "portmap" => !ports.is_empty(),
            _ => true,
        });
        for p in list.plugins.iter_mut() {
            if plugin_type(p) == "bridge" {
                p["ipMasq"] = Value::Bool(false);
            }
        }
        (list, true)
    }

    /// Count attachment `id` as a user of the shared masquerade rule, and put the rule
    /// in place unless this daemon did already.
    async fn use_shared_masquerade(&self, id: &str) -> Result<(), RuntimeError> {
        let mut shared = self.shared.lock().await;
        shared.users.insert(id.to_string());
        if !shared.installed {
            masquerade::ensure(&masquerade::Rule::of(&self.settings))
                .await
                .map_err(|source| RuntimeError::Masquerade {
                    network: self.settings.bridge.clone(),
                    source,
                })?;
            shared.installed = true;
        }
        Ok(())
    }

    /// Attachment `id` no longer needs the shared masquerade rule: the last one out
    /// removes it.
    async fn release_shared_masquerade(&self, id: &str) {
        let mut shared = self.shared.lock().await;
        if !shared.users.remove(id) || !shared.users.is_empty() {
            return;
        }
        masquerade::remove(&masquerade::Rule::of(&self.settings)).await;
        shared.installed = false;
    }

    /// At start, once the garbage is collected: a rule no attachment needs (its last
    /// user's DEL was cut short by a crash) is removed.
    pub async fn sweep_shared_masquerade(&self) {
        let mut shared = self.shared.lock().await;
        if !shared.users.is_empty() {
            return;
        }
        let rule = masquerade::Rule::of(&self.settings);
        if masquerade::exists(&rule).await {
            masquerade::remove(&rule).await;
        }
        shared.installed = false;
    }

    /// Whether `list` is the default conflist podhost wrote, as written.
    fn is_default(&self, list: &ConfList) -> bool {
        if list.source.file_name() != Some(std::ffi::OsStr::new(DEFAULT_CONFLIST)) {
            return false;
        }
        let text = Self::default_conflist(&self.settings).to_string();
        ConfList::parse(&text, &list.source, false).is_ok_and(|d| {
            d.name == list.name && d.cni_version == list.cni_version && d.plugins == list.plugins
        })
    }

    /// DEL what a failed ADD did (plugins up to the failed one, whose own DEL may fail
    /// since it never finished), unpin and drop the record.
    async fn undo_failed_add(
        &self,
        att: &Attachment,
        failed: Option<(usize, Option<Value>)>,
        error: RuntimeError,
    ) -> RuntimeError {
        let del = match &failed {
            Some((at, partial)) => {
                self.cni
                    .del_upto(&att.network, &att.runtime, partial.as_ref(), *at)
                    .await
            }
            None => {
                self.cni
                    .del_list(&att.network, &att.runtime, att.result.as_ref())
                    .await
            }
        };
        let cleanup = match del {
            Ok(()) => self.forget(att),
            Err(c) => Err(Self::cni_error(&att.network, c)),
        };
        if cleanup.is_ok() {
            self.release_shared_masquerade(&att.id).await;
        }
        match cleanup {
            Ok(()) => error,
            Err(c) => RuntimeError::WithCleanup {
                error: Box::new(error),
                cleanup: Box::new(c),
            },
        }
    }

    /// Unpin the namespace and drop the record (after a successful DEL).
    fn forget(&self, att: &Attachment) -> Result<(), RuntimeError> {
        self.begun_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&att.id);
        netns::remove_pinned(&att.netns)?;
        match std::fs::remove_file(self.record_path(&att.id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io {
                action: "removing network record",
                path: self.record_path(&att.id),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// DEL the network with the stored config and result, unpin the namespace, drop the
    /// record. When DEL fails the record and pin stay, for a retry at the next start.
    pub async fn detach(&self, att: &Attachment) -> Result<(), RuntimeError> {
        // A pin file that holds no namespace (a daemon killed between creating the file
        // and bind-mounting the netns, or a reboot) is not a netns: plugins refuse it
        // ("unknown FS magic"). As the CNI spec allows for DEL, they then get no netns
        // and release what they hold outside it (IPAM, host rules).
        let begun_here = self
            .begun_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&att.id);
        if !begun_here {
            wait_for_orphan_plugins(&att.id).await;
        }
        let mut netns_gone = !netns::is_pinned(&att.netns);
        let mut released = false;
        if att.shared_masquerade {
            if !netns_gone {
                // podhost's own network (see `plugins_to_run`): the namespace goes first,
                // and the kernel removes the pod's veth with it, the namespaces of many
                // pods in one batch. The bridge plugin's DEL would delete it from inside,
                // and each such delete waits for an RCU barrier: pods deleted together
                // queued behind one another (100 veths: 2.3 s one by one, 0.2 s with
                // their namespaces, on an idle machine). The address is released without
                // a netns, as the CNI spec allows; only once the host end is gone, so
                // that no other pod gets the address while the old interface has it.
                netns::remove_pinned(&att.netns)?;
                release_host_links(att.result.as_ref(), &self.settings.bridge).await;
                netns_gone = true;
            }
            released = self.release_in_process(att).await?;
        }
        if !released {
            self.del_plugins(att, netns_gone).await?;
        }
        self.forget(att)?;
        self.release_shared_masquerade(&att.id).await;
        Ok(())
    }

    /// The plugins' DEL of `att` (without a netns when it is gone), marked as begun first,
    /// and the sweep of masquerade rules the plugins can no longer find.
    async fn del_plugins(&self, att: &Attachment, netns_gone: bool) -> Result<(), RuntimeError> {
        let mut runtime = att.runtime.clone();
        if netns_gone {
            runtime.netns = PathBuf::new();
        }
        // A DEL killed half-way (the daemon died) may have removed the interface but not
        // yet the masquerade rules; an ADD killed half-way has no result to DEL from.
        // Either way the plugins cannot find the rules again: they are swept by comment.
        // A pod masqueraded by the shared rule never had rules of its own.
        let sweep =
            !att.shared_masquerade && (netns_gone || att.del_started || att.result.is_none());
        if !att.del_started {
            let mut marked = att.clone();
            marked.del_started = true;
            self.save(&marked)?;
        }
        self.cni
            .del_list(&att.network, &runtime, att.result.as_ref())
            .await
            .map_err(|e| Self::cni_error(&att.network, e))?;
        if sweep {
            remove_masquerade(&att.network.name, &att.runtime.container_id).await;
        }
        Ok(())
    }

    /// The DEL of podhost's own network without its namespace, done here: the bridge
    /// plugin has nothing left to do, and host-local would read the address file of
    /// every pod of the network to find this one's. Returns false (nothing done) when the
    /// attachment's plugins or result are not that plain shape; they then run.
    async fn release_in_process(&self, att: &Attachment) -> Result<bool, RuntimeError> {
        let (Some(store), Some(ips)) = (
            HostLocalStore::of(&att.network),
            att.result.as_ref().and_then(host_local::result_addresses),
        ) else {
            return Ok(false);
        };
        let rt = att.runtime.clone();
        let dir = store.dir().to_path_buf();
        let released = tokio::task::spawn_blocking(move || store.release(&rt, &ips))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        released.map_err(RuntimeError::io("releasing the pod's addresses in", dir))?;
        Ok(true)
    }

    /// Every attachment record on disk.
    pub fn records(&self) -> Vec<Attachment> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.records_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            match read_json::<Attachment>(&e.path()) {
                Ok(Some(a)) => out.push(a),
                Ok(None) => {}
                Err(err) => tracing::warn!("skipping network record: {err}"),
            }
        }
        out
    }

    /// What a crash left behind: attachments no sandbox uses and pins no attachment owns.
    /// Listed now (before new sandboxes exist); torn down by [`Network::collect_garbage`].
    pub fn garbage(&self, in_use: &HashSet<String>) -> (Vec<Attachment>, Vec<PathBuf>) {
        let records = self.records();
        let owned: HashSet<PathBuf> = records.iter().map(|a| a.netns.clone()).collect();
        let pins = std::fs::read_dir(&self.netns_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                !owned.contains(p)
                    && !in_use.contains(
                        &p.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .to_string(),
                    )
            })
            .collect();
        let orphans = records
            .into_iter()
            .filter(|a| !in_use.contains(&a.id))
            .collect();
        (orphans, pins)
    }

    /// Tear down what [`Network::garbage`] listed.
    pub async fn collect_garbage(&self, attachments: Vec<Attachment>, pins: Vec<PathBuf>) {
        for a in attachments {
            match self.detach(&a).await {
                Ok(()) => tracing::info!("released the network of gone sandbox {}", a.id),
                Err(e) => tracing::warn!("releasing the network of gone sandbox {}: {e}", a.id),
            }
        }
        for p in pins {
            if let Err(e) = netns::remove_pinned(&p) {
                tracing::warn!("removing stale netns pin: {e}");
            }
        }
        self.sweep_shared_masquerade().await;
    }
}

/// How long the host end of a removed namespace's veth may take to go with it (the
/// kernel removes namespaces in batches, from a work queue).
const HOST_LINK_WAIT: Duration = Duration::from_secs(5);

/// The host-side interfaces of an ADD result (no `sandbox`), the bridge itself left out:
/// the host ends of the pod's veths. Names that are not plain interface names are
/// ignored (they become paths under /sys/class/net).
fn host_links(result: Option<&Value>, bridge: &str) -> Vec<String> {
    let Some(ifaces) = result
        .and_then(|r| r.get("interfaces"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    ifaces
        .iter()
        .filter(|i| {
            i.get("sandbox")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .filter(|n| {
            *n != bridge
                && !n.is_empty()
                && n.len() < 16
                && !matches!(*n, "." | "..")
                && !n.contains(['/', '\0'])
        })
        .map(str::to_string)
        .collect()
}

/// Waits (bounded by [`HOST_LINK_WAIT`]) until the host ends of a removed namespace's
/// veths are gone with it. One still there (some process holds the namespace open) is
/// deleted: removing one end of a veth removes both.
async fn release_host_links(result: Option<&Value>, bridge: &str) {
    let links = host_links(result, bridge);
    let present = |l: &&String| Path::new("/sys/class/net").join(l).exists();
    let deadline = tokio::time::Instant::now() + HOST_LINK_WAIT;
    loop {
        let left: Vec<&String> = links.iter().filter(present).collect();
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            for l in left {
                tracing::warn!("veth {l} outlived its pod's network namespace; deleting it");
                let deleted = tokio::process::Command::new("ip")
                    .env("PATH", SBIN_PATH)
                    .args(["link", "delete", l.as_str()])
                    .output()
                    .await;
                if !deleted.is_ok_and(|o| o.status.success()) {
                    tracing::warn!("could not delete veth {l}");
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until no plugin of a previous daemon (killed while they ran; plugins outlive it,
/// and so do the iptables they run) is still working on attachment `id`: a DEL racing
/// their ADD removes what they add a moment later (rules of a released address). They
/// are found by the `CNI_CONTAINERID` of their environment; past the plugin time limit
/// they are killed.
async fn wait_for_orphan_plugins(id: &str) {
    let deadline = tokio::time::Instant::now() + cni::PLUGIN_TIMEOUT;
    loop {
        let orphans = processes_with_env(&format!("CNI_CONTAINERID={id}"));
        if orphans.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("attachment {id}: killing CNI plugins left running: {orphans:?}");
            for pid in orphans {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose environment holds the entry `entry` (`NAME=value`).
fn processes_with_env(entry: &str) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // Unreadable (gone, a kernel thread): not a plugin.
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == entry.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Where iptables lives on Debian and most distributions (the daemon's PATH may lack sbin).
const SBIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The bridge plugin finds the pod's addresses on its interface to remove its ipMasq
/// rules; with the netns gone (a reboot, a lost pin) its DEL returns before that and the
/// rules stay. They carry the comment `name: "<network>" id: "<container id>"`: the
/// rules with it are deleted and the per-pod chains they jump to flushed and removed.
/// Best effort: a failure is logged, and a real reboot flushes them anyway.
async fn remove_masquerade(network: &str, container_id: &str) {
    let comment = format!("name: \"{network}\" id: \"{container_id}\"");
    let iptables = |args: Vec<String>| async move {
        tokio::process::Command::new("iptables")
            .env("PATH", SBIN_PATH)
            .args(["-w", "-t", "nat"])
            .args(&args)
            .output()
            .await
    };
    let saved = match tokio::process::Command::new("iptables-save")
        .env("PATH", SBIN_PATH)
        .args(["-t", "nat"])
        .output()
        .await
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => {
            tracing::warn!("iptables-save for the rules of {container_id}: {e}");
            return;
        }
    };
    let mut chains: Vec<String> = Vec::new();
    for line in saved.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let args = split_rule(rule);
        if !args.contains(&comment) {
            continue;
        }
        let target = args
            .iter()
            .position(|a| a == "-j")
            .and_then(|i| args.get(i + 1));
        for c in args.first().into_iter().chain(target) {
            if c.starts_with("CNI-") && !chains.contains(c) {
                chains.push(c.clone());
            }
        }
        // Rules of the pod's own chain go with the flush below.
        if args.first().is_some_and(|c| !c.starts_with("CNI-")) {
            let mut del = vec!["-D".to_string()];
            del.extend(args);
            if let Err(e) = iptables(del).await {
                tracing::warn!("iptables -D for {container_id}: {e}");
            }
        }
    }
    for c in chains {
        for op in ["-F", "-X"] {
            if let Err(e) = iptables(vec![op.to_string(), c.clone()]).await {
                tracing::warn!("iptables {op} {c}: {e}");
            }
        }
    }
}

/// Split one `iptables-save` rule into arguments: words, and double-quoted strings with
/// backslash escapes (comments).
fn split_rule(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut word) = (false, false);
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                word = true;
            }
            ' ' if !quoted => {
                if word {
                    out.push(std::mem::take(&mut cur));
                    word = false;
                }
            }
            _ => {
                cur.push(c);
                word = true;
            }
        }
    }
    if word {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod masquerade_tests {
    use super::{processes_with_env, split_rule};

    #[test]
    fn finds_a_process_by_an_entry_of_its_environment() {
        let entry = format!("CNI_CONTAINERID=test-{}", std::process::id());
        let (name, value) = entry.split_once('=').unwrap_or_default();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(name, value)
            .spawn()
            .expect("spawn sleep");
        // Until the child has exec'd, its environment is still the test's own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = processes_with_env(&entry);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = processes_with_env(&entry);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, [child.id() as libc::pid_t]);
        assert!(processes_with_env(&format!("{entry}0")).is_empty());
    }

    #[test]
    fn splits_an_iptables_save_rule_with_a_quoted_comment() {
        let rule = r#"POSTROUTING -s 10.1.2.3/32 -m comment --comment "name: \"ph1\" id: \"abc\"" -j CNI-0123"#;
        assert_eq!(
            split_rule(rule),
            [
                "POSTROUTING",
                "-s",
                "10.1.2.3/32",
                "-m",
                "comment",
                "--comment",
                "name: \"ph1\" id: \"abc\"",
                "-j",
                "CNI-0123"
            ]
        );
    }
}

#[cfg(test)]
mod plugin_tests {
    use super::*;

    #[test]
    fn host_links_are_the_host_ends_of_the_result() {
        let result = serde_json::json!({
            "interfaces": [
                {"name": "podhost0", "mac": "aa"},
                {"name": "veth1234abcd", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/run/podhost/netns/x"},
                {"name": "vethempty", "sandbox": ""},
                {"name": "../etc"},
                {"name": "a-name-far-too-long"},
                {"mac": "no name"}
            ]
        });
        assert_eq!(
            host_links(Some(&result), "podhost0"),
            ["veth1234abcd", "vethempty"]
        );
        assert!(host_links(None, "podhost0").is_empty());
        assert!(host_links(Some(&serde_json::json!({})), "podhost0").is_empty());
    }

    fn types(list: &ConfList) -> Vec<&str> {
        list.plugins.iter().map(plugin_type).collect()
    }

    fn pod(kubelet: bool) -> PodRef<'static> {
        PodRef {
            name: "p",
            namespace: "default",
            uid: "u",
            kubelet,
        }
    }

    #[test]
    fn only_podhosts_own_unchanged_list_skips_the_plugins_that_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = NetworkSettings {
            cni_conf_dir: dir.path().join("net.d"),
            cni_bin_dirs: Vec::new(),
            cluster_cidr: "10.99.0.0/24".into(),
            bridge: "ptest0".into(),
            ipam_data_dir: dir.path().join("ipam"),
        };
        let net = Network::open(&settings, &dir.path().join("rec"), &dir.path().join("ns"))
            .expect("open");
        let list = ConfList::load_dir(&settings.cni_conf_dir).expect("default list");
        let port = PortMapping {
            protocol: "TCP".into(),
            container_port: 80,
            host_port: 8080,
            host_ip: String::new(),
        };
        let all = ["bridge", "portmap", "loopback"];
        assert_eq!(types(&list), all);
        let run = |kubelet, ports: &[PortMapping]| {
            net.plugins_to_run(list.clone(), &pod(kubelet), ports).0
        };
        assert_eq!(types(&run(false, &[])), ["bridge"]);
        // Its bridge masquerades through the shared rule, not per pod.
        let (trimmed, shared) = net.plugins_to_run(list.clone(), &pod(false), &[]);
        assert!(shared);
        assert_eq!(trimmed.plugins[0]["ipMasq"], Value::Bool(false));
        assert_eq!(list.plugins[0]["ipMasq"], Value::Bool(true), "as written");
        let (as_written, shared) = net.plugins_to_run(list.clone(), &pod(true), &[]);
        assert!(!shared);
        assert_eq!(as_written.plugins[0]["ipMasq"], Value::Bool(true));
        assert_eq!(
            types(&run(false, std::slice::from_ref(&port))),
            ["bridge", "portmap"]
        );
        // A kubelet's pod gets the list as written.
        assert_eq!(types(&run(true, &[])), all);
        // Any edit makes it the user's list: it runs as written.
        let mut edited = list.clone();
        edited.plugins[0]["hairpinMode"] = Value::Bool(false);
        assert_eq!(types(&net.plugins_to_run(edited, &pod(false), &[]).0), all);
        let mut renamed = list.clone();
        renamed.source = settings.cni_conf_dir.join("05-mine.conflist");
        let (renamed, shared) = net.plugins_to_run(renamed, &pod(false), &[]);
        assert_eq!(types(&renamed), all);
        assert!(!shared && renamed.plugins[0]["ipMasq"] == Value::Bool(true));
    }
}

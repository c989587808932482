//! One front door's view of a shared runtime: podhost's lifecycle and the CRI server
//! each see, list and touch only the sandboxes (and their containers) they created.
//!
//! A kubelet removes every sandbox it does not know, and podhost's start-time cleanup
//! removes sandboxes no pod record refers to; without this view each would destroy the
//! other's pods. Images are shared: both may pull, list and remove them (a removal is
//! still refused while any container uses the image).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::*;

/// A [`Runtime`] restricted to the sandboxes of one [`Owner`].
#[derive(Clone)]
pub struct Owned {
    /// The shared runtime.
    inner: Arc<dyn Runtime>,
    /// Whose sandboxes this view shows; stamped on every sandbox it creates.
    owner: Owner,
}

impl Owned {
    /// The view of `owner` on `inner`.
    pub fn new(inner: Arc<dyn Runtime>, owner: Owner) -> Self {
        Owned { inner, owner }
    }

    /// Ids of the sandboxes this view owns.
    async fn own_sandboxes(&self) -> Result<HashSet<String>, RuntimeError> {
        Ok(self
            .inner
            .sandbox_refs()
            .await?
            .into_iter()
            .filter(|r| r.owner == self.owner)
            .map(|r| r.id)
            .collect())
    }

    /// One lookup, not a listing: this runs on every per-pod call through the view.
    async fn owns_sandbox(&self, id: &str) -> Result<bool, RuntimeError> {
        Ok(self
            .inner
            .sandbox_ref(id)
            .await?
            .is_some_and(|r| r.owner == self.owner))
    }

    async fn owns_container(&self, id: &str) -> Result<bool, RuntimeError> {
        let Some(c) = self.inner.container_ref(id).await? else {
            return Ok(false);
        };
        self.owns_sandbox(&c.sandbox_id).await
    }

    async fn sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        if self.owns_sandbox(id).await? {
            Ok(())
        } else {
            Err(RuntimeError::SandboxNotFound(id.to_string()))
        }
    }

    async fn container(&self, id: &str) -> Result<(), RuntimeError> {
        if self.owns_container(id).await? {
            Ok(())
        } else {
            Err(RuntimeError::ContainerNotFound(id.to_string()))
        }
    }

    /// `images` with those the other front door's containers use marked pinned.
    async fn pin(&self, mut images: Vec<ImageInfo>) -> Result<Vec<ImageInfo>, RuntimeError> {
        let own = self.own_sandboxes().await?;
        let theirs: HashSet<String> = self
            .inner
            .container_refs()
            .await?
            .into_iter()
            .filter(|c| !own.contains(&c.sandbox_id))
            .map(|c| c.image_id)
            .collect();
        for i in &mut images {
            i.pinned = theirs.contains(&i.id);
        }
        Ok(images)
    }

    fn stamped(&self, config: &SandboxConfig) -> SandboxConfig {
        SandboxConfig {
            owner: self.owner,
            ..config.clone()
        }
    }
}

#[async_trait::async_trait]
impl Runtime for Owned {
    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<String, RuntimeError> {
        self.inner.run_pod_sandbox(&self.stamped(config)).await
    }
    async fn recreate_pod_sandbox(
        &self,
        old_id: &str,
        config: &SandboxConfig,
    ) -> Result<String, RuntimeError> {
        self.sandbox(old_id).await?;
        self.inner
            .recreate_pod_sandbox(old_id, &self.stamped(config))
            .await
    }
    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        // Idempotent like the runtime's own: someone else's sandbox is "already gone".
        if !self.owns_sandbox(sandbox_id).await? {
            return Ok(());
        }
        self.inner.stop_pod_sandbox(sandbox_id).await
    }
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        if !self.owns_sandbox(sandbox_id).await? {
            return Ok(());
        }
        self.inner.remove_pod_sandbox(sandbox_id).await
    }
    async fn pod_sandbox_status(&self, sandbox_id: &str) -> Result<SandboxStatus, RuntimeError> {
        self.sandbox(sandbox_id).await?;
        self.inner.pod_sandbox_status(sandbox_id).await
    }
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let mut all = self.inner.list_pod_sandboxes().await?;
        all.retain(|s| s.config.owner == self.owner);
        Ok(all)
    }
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<String, RuntimeError> {
        self.sandbox(sandbox_id).await?;
        self.inner
            .create_container(sandbox_id, config, &self.stamped(sandbox))
            .await
    }
    async fn start_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        self.container(container_id).await?;
        self.inner.start_container(container_id).await
    }
    async fn stop_container(
        &self,
        container_id: &str,
        timeout: Duration,
        signal: i32,
    ) -> Result<(), RuntimeError> {
        self.container(container_id).await?;
        self.inner
            .stop_container(container_id, timeout, signal)
            .await
    }
    async fn remove_container(&self, container_id: &str) -> Result<(), RuntimeError> {
        if !self.owns_container(container_id).await? {
            return Ok(());
        }
        self.inner.remove_container(container_id).await
    }
    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus, RuntimeError> {
        self.container(container_id).await?;
        self.inner.container_status(container_id).await
    }
    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let own = self.own_sandboxes().await?;
        if sandbox_id.is_some_and(|s| !own.contains(s)) {
            return Ok(Vec::new());
        }
        let mut all = self.inner.list_containers(sandbox_id).await?;
        all.retain(|c| own.contains(&c.sandbox_id));
        Ok(all)
    }
    async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecStream, RuntimeError> {
        self.container(container_id).await?;
        self.inner.exec(container_id, cmd, opts).await
    }
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        self.container(container_id).await?;
        self.inner.exec_sync(container_id, cmd, timeout).await
    }
    async fn attach(
        &self,
        container_id: &str,
        opts: AttachOptions,
    ) -> Result<ExecStream, RuntimeError> {
        self.container(container_id).await?;
        self.inner.attach(container_id, opts).await
    }
    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<ForwardStream, RuntimeError> {
        self.sandbox(sandbox_id).await?;
        self.inner.port_forward(sandbox_id, port).await
    }
    async fn image_status(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        let image = self.inner.image_status(reference).await?;
        Ok(self.pin(image.into_iter().collect()).await?.pop())
    }
    async fn image_info(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        self.inner.image_info(reference).await
    }
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let images = self.inner.list_images().await?;
        self.pin(images).await
    }
    async fn pull_image(
        &self,
        reference: &str,
        auth: Option<AuthConfig>,
        progress: Option<PullProgress>,
    ) -> Result<PulledImage, RuntimeError> {
        self.inner.pull_image(reference, auth, progress).await
    }
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.inner.remove_image(reference).await
    }
    async fn load_image(
        &self,
        path: &Path,
        tag: Option<&str>,
    ) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.inner.load_image(path, tag).await
    }
    async fn prune_images(&self, all: bool) -> Result<PruneResult, RuntimeError> {
        self.inner.prune_images(all).await
    }
    async fn collect_images(&self, high: u8, low: u8) -> Result<PruneResult, RuntimeError> {
        self.inner.collect_images(high, low).await
    }
    async fn image_fs_info(&self) -> Result<FsUsage, RuntimeError> {
        self.inner.image_fs_info().await
    }
    async fn list_pod_sandbox_stats(&self) -> Result<Vec<SandboxStats>, RuntimeError> {
        self.pod_sandbox_stats_walking(&crate::LayerWalk::All).await
    }
    async fn pod_sandbox_stats_walking(
        &self,
        walk: &crate::LayerWalk,
    ) -> Result<Vec<SandboxStats>, RuntimeError> {
        let own = self.own_sandboxes().await?;
        // Only the walks of this owner's sandboxes.
        let walk = match walk {
            crate::LayerWalk::All => crate::LayerWalk::Sandboxes(own.iter().cloned().collect()),
            crate::LayerWalk::Sandboxes(ids) => crate::LayerWalk::Sandboxes(
                ids.iter().filter(|id| own.contains(*id)).cloned().collect(),
            ),
        };
        let mut all = self.inner.pod_sandbox_stats_walking(&walk).await?;
        all.retain(|s| own.contains(&s.id));
        Ok(all)
    }
    async fn update_container_resources(
        &self,
        container_id: &str,
        resources: &ContainerResources,
    ) -> Result<(), RuntimeError> {
        self.container(container_id).await?;
        self.inner
            .update_container_resources(container_id, resources)
            .await
    }
    async fn reopen_container_log(&self, container_id: &str) -> Result<(), RuntimeError> {
        self.container(container_id).await?;
        self.inner.reopen_container_log(container_id).await
    }
    async fn sandbox_refs(&self) -> Result<Vec<SandboxRef>, RuntimeError> {
        let mut all = self.inner.sandbox_refs().await?;
        all.retain(|r| r.owner == self.owner);
        Ok(all)
    }
    async fn container_refs(&self) -> Result<Vec<ContainerRef>, RuntimeError> {
        let own = self.own_sandboxes().await?;
        let mut all = self.inner.container_refs().await?;
        all.retain(|c| own.contains(&c.sandbox_id));
        Ok(all)
    }
    /// Events of every owner: they name their sandbox, and a listener acts only on the
    /// sandboxes it knows (a pod worker on its own).
    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events()
    }
    fn reports_silence(&self) -> bool {
        self.inner.reports_silence()
    }
}

#[cfg(all(test, feature = "fake"))]
pub(crate) mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::fake::FakeRuntime;

    /// A pod's sandbox config for tests.
    pub(crate) fn sandbox(name: &str) -> SandboxConfig {
        SandboxConfig {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            hostname: name.into(),
            log_directory: std::path::PathBuf::from("/tmp"),
            owner: Owner::Podhost,
            ..Default::default()
        }
    }

    /// A busybox container's config for tests.
    pub(crate) fn container(name: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            image: "busybox".into(),
            command: Sensitive(vec!["sleep".into()]),
            log_path: format!("{name}/0.log"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn each_owner_sees_and_touches_only_its_own() {
        let shared: Arc<dyn Runtime> = Arc::new(FakeRuntime::new(Clock::default(), &["busybox"]));
        let cli = Owned::new(shared.clone(), Owner::Podhost);
        let cri = Owned::new(shared.clone(), Owner::Cri);

        let mine = cli
            .run_pod_sandbox(&sandbox("web"))
            .await
            .expect("cli sandbox");
        let theirs = cri
            .run_pod_sandbox(&sandbox("kube"))
            .await
            .expect("cri sandbox");
        let c = cri
            .create_container(&theirs, &container("app"), &sandbox("kube"))
            .await
            .expect("cri container");
        cri.start_container(&c).await.expect("start");

        // Listing: each its own.
        let ids = |v: Vec<SandboxStatus>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(cli.list_pod_sandboxes().await.expect("list")),
            std::slice::from_ref(&mine)
        );
        assert_eq!(
            ids(cri.list_pod_sandboxes().await.expect("list")),
            std::slice::from_ref(&theirs)
        );
        assert!(cli.list_containers(None).await.expect("list").is_empty());
        assert!(cli
            .list_containers(Some(&theirs))
            .await
            .expect("list")
            .is_empty());
        assert_eq!(cri.list_containers(None).await.expect("list").len(), 1);
        assert_eq!(cli.sandbox_refs().await.expect("refs").len(), 1);
        assert!(cli.container_refs().await.expect("refs").is_empty());
        assert!(cli
            .list_pod_sandbox_stats()
            .await
            .expect("stats")
            .iter()
            .all(|s| s.id == mine));

        // The stamp is the view's, whatever the caller put in the config.
        let mut forged = sandbox("forged");
        forged.owner = Owner::Cri;
        let f = cli.run_pod_sandbox(&forged).await.expect("forged");
        assert!(cri.pod_sandbox_status(&f).await.is_err());

        // Touching the other's: not found, and removal is a no-op that leaves it alone.
        assert!(matches!(
            cli.pod_sandbox_status(&theirs).await,
            Err(RuntimeError::SandboxNotFound(_))
        ));
        assert!(matches!(
            cli.container_status(&c).await,
            Err(RuntimeError::ContainerNotFound(_))
        ));
        assert!(cli
            .create_container(&theirs, &container("x"), &sandbox("kube"))
            .await
            .is_err());
        assert!(cli
            .exec_sync(&c, vec!["true".into()], Duration::from_secs(1))
            .await
            .is_err());
        assert!(matches!(
            cli.attach(&c, AttachOptions::default()).await,
            Err(RuntimeError::ContainerNotFound(_))
        ));
        assert!(matches!(
            cli.port_forward(&theirs, 80).await,
            Err(RuntimeError::SandboxNotFound(_))
        ));
        assert!(cli.stop_container(&c, Duration::ZERO, 9).await.is_err());
        assert!(cli
            .update_container_resources(&c, &ContainerResources::default())
            .await
            .is_err());
        assert!(cli.reopen_container_log(&c).await.is_err());
        cli.remove_container(&c).await.expect("no-op");
        cli.stop_pod_sandbox(&theirs).await.expect("no-op");
        cli.remove_pod_sandbox(&theirs).await.expect("no-op");
        assert_eq!(
            shared
                .container_status(&c)
                .await
                .expect("still there")
                .state,
            ContainerState::Running
        );
        assert_eq!(
            shared
                .pod_sandbox_status(&theirs)
                .await
                .expect("still there")
                .state,
            SandboxState::Ready
        );

        // Images are shared; the one CRI's container uses is pinned for the CLI only
        // (a kubelet's GC skips pinned images), whichever way it is asked for.
        let cli_images = cli.list_images().await.expect("images");
        let cri_images = cri.list_images().await.expect("images");
        assert_eq!((cli_images.len(), cri_images.len()), (1, 1));
        assert!(cli_images[0].pinned);
        assert!(!cri_images[0].pinned);
        let status = |v: &Owned| {
            let v = v.clone();
            async move {
                v.image_status("busybox")
                    .await
                    .expect("status")
                    .expect("present")
            }
        };
        assert!(status(&cli).await.pinned);
        assert!(!status(&cri).await.pinned);
        // Once the container is gone, nothing pins it.
        cri.stop_container(&c, Duration::ZERO, 9)
            .await
            .expect("stop");
        cri.remove_container(&c).await.expect("remove");
        assert!(!status(&cli).await.pinned);
    }
}

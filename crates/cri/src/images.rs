//! ImageService: ListImages, ImageStatus, PullImage (with registry credentials),
//! RemoveImage, ImageFsInfo. Images are shared with podhost's own pods; an image a
//! container uses (of either) is never removed.

use base64::Engine as _;
use podhost_cri_api::*;
use podhost_runtime::AuthConfig as Credentials;
use tonic::Status;

use crate::{convert, error, Cri};

fn reference(spec: Option<&ImageSpec>) -> Result<&str, Status> {
    spec.map(|s| s.image.as_str())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| error::invalid("no image given"))
}

/// CRI's credentials: a user and password, or Docker's `auth` (base64 `user:password`).
/// Token logins are not supported by podhost's registry client.
pub fn credentials(auth: Option<&AuthConfig>) -> Result<Option<Credentials>, Status> {
    let Some(a) = auth else { return Ok(None) };
    if !a.username.is_empty() || !a.password.is_empty() {
        return Ok(Some(Credentials {
            username: a.username.clone(),
            password: a.password.clone(),
        }));
    }
    if !a.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| error::invalid("auth is not base64 of user:password"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| error::invalid("auth is not base64 of user:password"))?;
        return Ok(Some(Credentials {
            username: username.into(),
            password: password.into(),
        }));
    }
    if !a.identity_token.is_empty() || !a.registry_token.is_empty() {
        return Err(error::invalid(
            "registry token logins are not supported: give a user and password",
        ));
    }
    Ok(None)
}

impl Cri {
    pub(crate) async fn list_images(
        &self,
        req: ListImagesRequest,
    ) -> Result<ListImagesResponse, Status> {
        let wanted = req
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .filter(|i| !i.is_empty());
        let images = match wanted {
            Some(r) => self
                .runtime
                .image_status(&r)
                .await
                .map_err(error::status)?
                .into_iter()
                .collect(),
            None => self.runtime.list_images().await.map_err(error::status)?,
        };
        Ok(ListImagesResponse {
            images: images.iter().map(convert::image).collect(),
        })
    }

    pub(crate) async fn image_status(
        &self,
        req: ImageStatusRequest,
    ) -> Result<ImageStatusResponse, Status> {
        let r = reference(req.image.as_ref())?;
        // An absent image is no error: the answer has no image.
        let image = self.runtime.image_status(r).await.map_err(error::status)?;
        Ok(ImageStatusResponse {
            image: image.as_ref().map(convert::image),
            info: Default::default(),
        })
    }

    pub(crate) async fn pull_image(
        &self,
        req: PullImageRequest,
    ) -> Result<PullImageResponse, Status> {
        let r = reference(req.image.as_ref())?;
        let auth = credentials(req.auth.as_ref())?;
        let pulled = self
            .runtime
            .pull_image(r, auth, None)
            .await
            .map_err(error::status)?;
        Ok(PullImageResponse {
            image_ref: pulled.image.id,
        })
    }

    pub(crate) async fn remove_image(
        &self,
        req: RemoveImageRequest,
    ) -> Result<RemoveImageResponse, Status> {
        let r = reference(req.image.as_ref())?;
        // Idempotent: an image already gone is fine.
        if self
            .runtime
            .image_status(r)
            .await
            .map_err(error::status)?
            .is_none()
        {
            return Ok(RemoveImageResponse {});
        }
        self.runtime.remove_image(r).await.map_err(error::status)?;
        Ok(RemoveImageResponse {})
    }

    pub(crate) async fn image_fs_info(
        &self,
        _req: ImageFsInfoRequest,
    ) -> Result<ImageFsInfoResponse, Status> {
        let fs = self.runtime.image_fs_info().await.map_err(error::status)?;
        let usage = FilesystemUsage {
            timestamp: now_nanos(),
            fs_id: Some(FilesystemIdentifier {
                mountpoint: fs.mountpoint.display().to_string(),
            }),
            used_bytes: Some(UInt64Value {
                value: fs.used_bytes,
            }),
            inodes_used: Some(UInt64Value {
                value: fs.inodes_used,
            }),
        };
        Ok(ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        })
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_user_password_or_docker_auth() {
        assert_eq!(credentials(None).unwrap(), None);
        let a = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert_eq!(credentials(Some(&a)).unwrap().unwrap().password, "p");
        let a = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("alice:s3:cret"),
            ..Default::default()
        };
        let c = credentials(Some(&a)).unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3:cret")
        );
        let bad = AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(credentials(Some(&bad)).is_err());
        let token = AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert!(credentials(Some(&token)).is_err());
    }
}

//! Root key rotation: a new root key generation is made (by `coffer-rootkey`), every blob
//! sealed under the old one is re-sealed under the new one, and the old generation is
//! destroyed.
//!
//! Reads never stop: both generations stay loaded until the end, every blob names the
//! generation that sealed it, and anything sealed while the rotation runs uses the new one.
//! Each re-seal is its own write that only replaces the blob it read (compare-and-swap), so a
//! rotation interrupted at any point resumes where it stopped, and nothing written
//! concurrently is lost. This module must never hold more than one blob's plaintext at a time.

use coffer_store::{RootSealed, RootSealedKind, Store};

use crate::keyring::{access_key_aad, account_key_aad, key_material_aad, service_key_aad};
use crate::{Coffer, CoreError};

/// How a rotation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRotation {
    /// The root key generation now in use.
    pub generation: u32,
    /// Blobs re-sealed by this run (those already under the new generation are not counted).
    pub resealed: usize,
    /// Blobs under the root key in all.
    pub total: usize,
    /// False when the run stopped early (see [`Coffer::rotate_root_key_partly`]).
    pub finished: bool,
}

fn aad(item: &RootSealed) -> Vec<u8> {
    match item.kind {
        RootSealedKind::AccountKey => account_key_aad(&item.id),
        RootSealedKind::AccessKeySecret => access_key_aad(&item.id),
        RootSealedKind::KeyMaterial => key_material_aad(
            item.key_arn.as_deref().unwrap_or_default(),
            item.material_id.as_deref().unwrap_or_default(),
        ),
        RootSealedKind::ServiceKey => service_key_aad(&item.id),
    }
}

impl<S: Store> Coffer<S> {
    /// Whether a root key rotation was begun and not finished (it resumes when asked again).
    pub fn root_rotation_in_progress(&self) -> bool {
        self.keyring.root().is_ok_and(|r| r.rotation_in_progress())
    }

    /// Rotates the root key (or resumes an interrupted rotation). `progress(done, total)` is
    /// called after every blob.
    pub async fn rotate_root_key(
        &self,
        progress: impl FnMut(usize, usize) + Send,
    ) -> Result<RootRotation, CoreError> {
        self.rotate_root_key_partly(progress, usize::MAX).await
    }

    /// As [`Coffer::rotate_root_key`], stopping after `limit` re-seals without finishing: an
    /// interruption, for tests of resumption.
    #[doc(hidden)]
    pub async fn rotate_root_key_partly(
        &self,
        mut progress: impl FnMut(usize, usize) + Send,
        limit: usize,
    ) -> Result<RootRotation, CoreError> {
        let _one_at_a_time = self.root_rotation.lock().await;
        let data_dir = self.data_dir.clone().ok_or_else(|| {
            CoreError::InvalidRequest("root key rotation needs a data directory".into())
        })?;
        let current = self.keyring.root()?;
        let dir = data_dir.clone();
        let next =
            tokio::task::spawn_blocking(move || coffer_rootkey::begin_rotation(&dir, &current))
                .await
                .map_err(|e| CoreError::Internal(format!("root key rotation task failed: {e}")))?
                .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        // From here on everything new is sealed under the new generation.
        self.keyring.set_root(next.clone())?;

        let items = self.store.root_sealed().await?;
        let total = items.len();
        let mut resealed = 0;
        for (done, item) in items.into_iter().enumerate() {
            if !next.is_current(&item.blob) {
                if resealed == limit {
                    return Ok(RootRotation {
                        generation: next.current().generation(),
                        resealed,
                        total,
                        finished: false,
                    });
                }
                let aad = aad(&item);
                let plain = next.open(&item.blob, &aad).map_err(|e| {
                    CoreError::Internal(format!("cannot open {:?} {}: {e}", item.kind, item.id))
                })?;
                let blob = next
                    .seal(plain.expose(), &aad)
                    .map_err(|e| CoreError::Internal(format!("cannot re-seal: {e}")))?;
                drop(plain);
                // False when the row changed or went away meanwhile: whatever replaced it was
                // sealed under the new generation, or it no longer needs one.
                self.store.replace_root_sealed(item, blob).await?;
                resealed += 1;
            }
            progress(done + 1, total);
        }
        // Anything sealed before `set_root` and written after the listing would still be under
        // the old generation; look once more before the old one is destroyed.
        let stragglers = self
            .store
            .root_sealed()
            .await?
            .into_iter()
            .filter(|i| !next.is_current(&i.blob))
            .count();
        if stragglers > 0 {
            return Err(CoreError::Internal(format!(
                "{stragglers} blobs are still under the old root key; run the rotation again"
            )));
        }
        let dir = data_dir;
        let done = next.clone();
        let finished =
            tokio::task::spawn_blocking(move || coffer_rootkey::finish_rotation(&dir, &done))
                .await
                .map_err(|e| CoreError::Internal(format!("root key rotation task failed: {e}")))?
                .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let generation = finished.current().generation();
        self.keyring.set_root(finished)?;
        tracing::info!(generation, resealed, total, "root key rotated");
        Ok(RootRotation {
            generation,
            resealed,
            total,
            finished: true,
        })
    }
}

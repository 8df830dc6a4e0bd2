//! Where the bytes of files live, behind a small trait: a local directory by default.
//!
//! An S3-compatible store would implement the same three calls (`PutObject`, `GetObject`,
//! `DeleteObject` under the same keys, with a bucket, an endpoint and credentials from config);
//! `put` returning only once the object is durable is what the callers rely on, since a file's row
//! is committed after it. The local directory is shared by svc-queue and its workers, so replicas on
//! several nodes need a volume every pod mounts (ReadWriteMany) or that object store.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no stored object under this key")]
    NotFound,
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

#[tonic::async_trait]
pub trait Storage: Send + Sync {
    /// Stores `bytes` under `key`; durable when it returns.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError>;
    /// Deleting what is not there is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
}

/// The key of a file: chosen here, never from a request, so it cannot climb out of the store.
pub fn key(owner_id: Uuid, file_id: Uuid) -> String {
    format!("{owner_id}/{file_id}")
}

/// Files under one directory, one sub-directory per owner.
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    root: PathBuf,
}

impl LocalDirectory {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let safe = !key.is_empty()
            && key
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b'-' || byte == b'/')
            && !key.starts_with('/');
        if !safe {
            return Err(StorageError::NotFound);
        }
        Ok(self.root.join(key))
    }
}

/// Written to a temporary name, flushed to disk, renamed, and the directory flushed too, so
/// that neither a crash nor a power cut leaves half a file under the key.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory)?;
    let temporary = path.with_extension(format!("partial-{}", Uuid::new_v4()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(directory)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StorageError::Io(std::io::Error::other(err)))?
}

#[tonic::async_trait]
impl Storage for LocalDirectory {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let path = self.path(key)?;
        blocking(move || Ok(write_durably(&path, &bytes)?)).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.path(key)?;
        blocking(move || match std::fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound),
            read => Ok(read?),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        blocking(move || match std::fs::remove_file(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            removed => Ok(removed?),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_reads_and_deletes_under_owner_directories() {
        let root = std::env::temp_dir().join(format!("genie-storage-{}", Uuid::new_v4()));
        let storage = LocalDirectory::new(&root);
        let key = key(Uuid::new_v4(), Uuid::new_v4());
        storage.put(&key, b"bytes".to_vec()).await.unwrap();
        assert_eq!(storage.get(&key).await.unwrap(), b"bytes");
        // Nothing temporary is left beside it.
        let owner_dir = root.join(key.split('/').next().unwrap());
        assert_eq!(std::fs::read_dir(&owner_dir).unwrap().count(), 1);
        storage.delete(&key).await.unwrap();
        storage.delete(&key).await.unwrap();
        assert!(matches!(
            storage.get(&key).await,
            Err(StorageError::NotFound)
        ));
        for bad in ["../etc/passwd", "/etc/passwd", "", "a/../../b"] {
            assert!(matches!(
                storage.get(bad).await,
                Err(StorageError::NotFound)
            ));
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}

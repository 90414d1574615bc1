//! The encrypted local vault: secrets in one JSON file, each sealed with ChaCha20-Poly1305 under
//! a 256-bit key (a random 12-byte nonce per write, the secret's name as associated data so a
//! sealed value cannot be moved to another name).
//!
//! The key comes from `ENTRA_SYNC_VAULT_KEY` (base64, 32 bytes) when set, else from a key file
//! beside the vault created on first use with mode 0600. Chosen over a home-grown scheme because
//! the RustCrypto AEAD crates are audited and widely used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use entra_sync_core::error::VaultError;
use entra_sync_core::ports::{Secret, SecretVault};
use rand::RngCore;
use tokio::sync::Mutex;

/// Environment variable holding the vault key (base64 of 32 bytes).
pub const VAULT_KEY_ENV: &str = "ENTRA_SYNC_VAULT_KEY";

pub struct FileVault {
    path: PathBuf,
    cipher: ChaCha20Poly1305,
    lock: Mutex<()>,
}

fn io(e: std::io::Error) -> VaultError {
    VaultError::Unavailable(Box::new(e))
}

impl FileVault {
    /// Open the vault file at `path`; the key comes from the environment or `key_path`.
    pub fn open(path: &Path, key_path: &Path) -> Result<Self, VaultError> {
        let key = match std::env::var(VAULT_KEY_ENV) {
            Ok(v) => B64
                .decode(v.trim())
                .map_err(|_| VaultError::Decrypt(format!("{VAULT_KEY_ENV} (not base64)")))?,
            Err(_) => load_or_create_key(key_path)?,
        };
        if key.len() != 32 {
            return Err(VaultError::Decrypt(
                "vault key (must be 32 bytes)".to_owned(),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            lock: Mutex::new(()),
        })
    }

    fn read_all(&self) -> Result<BTreeMap<String, String>, VaultError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| VaultError::Decrypt(self.path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(e)),
        }
    }

    fn write_all(&self, all: &BTreeMap<String, String>) -> Result<(), VaultError> {
        let tmp = self.path.with_extension("tmp");
        let body =
            serde_json::to_vec_pretty(all).map_err(|e| VaultError::Unavailable(Box::new(e)))?;
        write_private(&tmp, &body).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    fn seal(&self, name: &str, value: &Secret) -> Result<String, VaultError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Decrypt(name.to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    fn open_sealed(&self, name: &str, sealed: &str) -> Result<Secret, VaultError> {
        let bad = || VaultError::Decrypt(name.to_owned());
        let raw = B64.decode(sealed).map_err(|_| bad())?;
        if raw.len() < 12 {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(pt).map(Secret::new).map_err(|_| bad())
    }
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>, VaultError> {
    match std::fs::read_to_string(path) {
        Ok(s) => B64
            .decode(s.trim())
            .map_err(|_| VaultError::Decrypt(path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            write_private(path, B64.encode(key).as_bytes()).map_err(io)?;
            Ok(key.to_vec())
        }
        Err(e) => Err(io(e)),
    }
}

#[async_trait]
impl SecretVault for FileVault {
    async fn get_secret(&self, name: &str) -> Result<Secret, VaultError> {
        let _g = self.lock.lock().await;
        let all = self.read_all()?;
        let sealed = all
            .get(name)
            .ok_or_else(|| VaultError::NotFound(name.to_owned()))?;
        self.open_sealed(name, sealed)
    }

    async fn put_secret(&self, name: &str, value: &Secret) -> Result<(), VaultError> {
        let _g = self.lock.lock().await;
        let mut all = self.read_all()?;
        all.insert(name.to_owned(), self.seal(name, value)?);
        self.write_all(&all)
    }

    async fn delete_secret(&self, name: &str) -> Result<(), VaultError> {
        let _g = self.lock.lock().await;
        let mut all = self.read_all()?;
        if all.remove(name).is_some() {
            self.write_all(&all)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_round_trip_and_are_not_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let vault = FileVault::open(&dir.path().join("v.json"), &dir.path().join("k")).unwrap();
        let s = Secret::new("very-secret-value-123");
        vault.put_secret("app/client-secret", &s).await.unwrap();
        assert_eq!(vault.get_secret("app/client-secret").await.unwrap(), s);
        let on_disk = std::fs::read_to_string(dir.path().join("v.json")).unwrap();
        assert!(!on_disk.contains("very-secret-value-123"));
        // A reopened vault with the same key reads it back.
        let again = FileVault::open(&dir.path().join("v.json"), &dir.path().join("k")).unwrap();
        assert_eq!(again.get_secret("app/client-secret").await.unwrap(), s);
        vault.delete_secret("app/client-secret").await.unwrap();
        assert!(matches!(
            vault.get_secret("app/client-secret").await,
            Err(VaultError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_sealed_value_cannot_be_moved_to_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        let vault = FileVault::open(&path, &dir.path().join("k")).unwrap();
        vault.put_secret("a", &Secret::new("x")).await.unwrap();
        let mut all: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let sealed = all["a"].clone();
        all.insert("b".into(), sealed);
        std::fs::write(&path, serde_json::to_vec(&all).unwrap()).unwrap();
        assert!(matches!(
            vault.get_secret("b").await,
            Err(VaultError::Decrypt(_))
        ));
    }
}

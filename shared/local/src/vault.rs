//! The encrypted local vault: secrets in one JSON file, each sealed with ChaCha20-Poly1305 under
//! a 256-bit key (a random 12-byte nonce per write, the secret's name as associated data so a
//! sealed value cannot be moved to another name).
//!
//! The key comes from `ENTRA_SYNC_VAULT_KEY` (base64, 32 bytes) when set, else from a key file
//! beside the vault created on first use with mode 0600. Chosen over a home-grown scheme because
//! the RustCrypto AEAD crates are audited and widely used.
//!
//! Opening checks the key before anything is written: a key that does not open the secrets
//! already in the vault, or a key file missing beside a vault that holds secrets, is refused
//! with an [`OpenError`] naming the file or variable, and both files stay as they are. A new key
//! is made only for a vault that holds no secret yet.

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

/// Why a vault could not be opened. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{VAULT_KEY_ENV} is not a vault key (it must be the base64 of 32 bytes); fix or unset it. Nothing was changed."
    )]
    BadEnvKey,
    #[error(
        "{} is not a vault key (it must hold the base64 of 32 bytes); restore it from a backup. Nothing was changed.",
        path.display()
    )]
    BadKeyFile { path: PathBuf },
    #[error(
        "{} is missing, but {} holds secrets sealed with it. Restore {} from a backup, or set {VAULT_KEY_ENV} to that key; no new key was made, because it could not open those secrets. Nothing was changed.",
        key.display(), vault.display(), key.display()
    )]
    MissingKeyFile { key: PathBuf, vault: PathBuf },
    #[error(
        "the key in {key_source} does not open {}: its secrets were sealed with another key. Use the key the vault was made with{}; nothing was changed.",
        vault.display(),
        if key_source == VAULT_KEY_ENV { " (or unset the variable to use the key file beside the vault)" } else { "" }
    )]
    WrongKey { key_source: String, vault: PathBuf },
    #[error(
        "{} is not a vault file (not a JSON object of sealed secrets); restore it from a backup. Nothing was changed.",
        path.display()
    )]
    Corrupt { path: PathBuf },
    #[error("cannot read or write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct FileVault {
    path: PathBuf,
    cipher: ChaCha20Poly1305,
    lock: Mutex<()>,
}

fn io(e: std::io::Error) -> VaultError {
    VaultError::Unavailable(Box::new(e))
}

impl FileVault {
    /// Open the vault file at `path`; the key comes from `ENTRA_SYNC_VAULT_KEY` when set, else
    /// from `key_path` (created for a vault without secrets).
    pub fn open(path: &Path, key_path: &Path) -> Result<Self, OpenError> {
        Self::open_with(path, key_path, std::env::var(VAULT_KEY_ENV).ok())
    }

    /// [`FileVault::open`] with the value of `ENTRA_SYNC_VAULT_KEY` given (`None`: not set).
    pub fn open_with(
        path: &Path,
        key_path: &Path,
        env_key: Option<String>,
    ) -> Result<Self, OpenError> {
        let existing = read_file(path)?;
        let (key, key_source) = match env_key {
            Some(v) => (
                decode_key(&v).ok_or(OpenError::BadEnvKey)?,
                VAULT_KEY_ENV.to_owned(),
            ),
            None => (
                load_or_create_key(key_path, path, existing.is_empty())?,
                key_path.display().to_string(),
            ),
        };
        let vault = Self {
            path: path.to_owned(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            lock: Mutex::new(()),
        };
        // A wrong key is found here, before a write would seal a secret under it.
        if let Some((name, sealed)) = existing.iter().next()
            && vault.open_sealed(name, sealed).is_err()
        {
            return Err(OpenError::WrongKey {
                key_source,
                vault: path.to_owned(),
            });
        }
        Ok(vault)
    }

    fn read_all(&self) -> Result<BTreeMap<String, String>, VaultError> {
        read_file(&self.path).map_err(|e| match e {
            OpenError::Io { source, .. } => io(source),
            _ => VaultError::Decrypt(self.path.display().to_string()),
        })
    }

    fn write_all(&self, all: &BTreeMap<String, String>) -> Result<(), VaultError> {
        let tmp = self.path.with_extension("tmp");
        let body =
            serde_json::to_vec_pretty(all).map_err(|e| VaultError::Unavailable(Box::new(e)))?;
        write_private(&tmp, &body, false).map_err(io)?;
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

/// Write a file only its owner can read; `new`: fail if it exists (a key is never replaced).
fn write_private(path: &Path, body: &[u8], new: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    if new {
        opts.write(true).create_new(true);
    } else {
        opts.write(true).create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

/// The sealed secrets in the vault file (none when it does not exist yet).
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, OpenError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| OpenError::Corrupt {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(OpenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok().filter(|k| k.len() == 32)
}

/// The key in `path`; a new one only when the vault holds no secret (`vault_empty`), since a
/// new key could not open secrets sealed with the lost one.
fn load_or_create_key(path: &Path, vault: &Path, vault_empty: bool) -> Result<Vec<u8>, OpenError> {
    let io_err = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) => decode_key(&s).ok_or_else(|| OpenError::BadKeyFile {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !vault_empty => {
            Err(OpenError::MissingKeyFile {
                key: path.to_owned(),
                vault: vault.to_owned(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            write_private(path, B64.encode(key).as_bytes(), true).map_err(io_err)?;
            Ok(key.to_vec())
        }
        Err(e) => Err(io_err(e)),
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

    fn files(dir: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
        (
            std::fs::read(dir.join("v.json")).unwrap(),
            std::fs::read(dir.join("k")).ok(),
        )
    }

    /// A vault with one secret, sealed with the key file `k`.
    async fn vault_with_a_secret(dir: &Path) {
        let vault = FileVault::open_with(&dir.join("v.json"), &dir.join("k"), None).unwrap();
        vault
            .put_secret("app/client-secret", &Secret::new("s3cret"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_wrong_key_in_the_environment_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        vault_with_a_secret(dir.path()).await;
        let before = files(dir.path());
        let other = B64.encode([7u8; 32]);
        let err = FileVault::open_with(
            &dir.path().join("v.json"),
            &dir.path().join("k"),
            Some(other),
        )
        .err()
        .expect("a key that does not open the vault is refused");
        assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(VAULT_KEY_ENV) && text.contains("v.json"),
            "{text}"
        );
        assert_eq!(files(dir.path()), before, "vault and key file unchanged");
        // And the right key still opens it.
        let right = B64.encode(decode_key(&String::from_utf8(before.1.unwrap()).unwrap()).unwrap());
        let vault = FileVault::open_with(
            &dir.path().join("v.json"),
            &dir.path().join("k"),
            Some(right),
        )
        .unwrap();
        assert_eq!(
            vault.get_secret("app/client-secret").await.unwrap(),
            Secret::new("s3cret")
        );
    }

    #[tokio::test]
    async fn a_missing_key_file_beside_a_vault_with_secrets_is_refused_and_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        vault_with_a_secret(dir.path()).await;
        std::fs::remove_file(dir.path().join("k")).unwrap();
        let before = files(dir.path());
        let err = FileVault::open_with(&dir.path().join("v.json"), &dir.path().join("k"), None)
            .err()
            .expect("no new key for a vault that holds secrets");
        assert!(matches!(err, OpenError::MissingKeyFile { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("k is missing") && text.contains("v.json"),
            "{text}"
        );
        assert_eq!(files(dir.path()), before, "no key file was created");
    }

    #[tokio::test]
    async fn a_key_file_of_another_vault_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        vault_with_a_secret(dir.path()).await;
        std::fs::write(dir.path().join("k"), B64.encode([9u8; 32])).unwrap();
        let before = files(dir.path());
        let err = FileVault::open_with(&dir.path().join("v.json"), &dir.path().join("k"), None)
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::WrongKey { .. }), "{err}");
        assert!(!err.to_string().contains(VAULT_KEY_ENV), "{err}");
        assert_eq!(files(dir.path()), before);
    }

    #[test]
    fn a_malformed_key_names_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileVault::open_with(
            &dir.path().join("v.json"),
            &dir.path().join("k"),
            Some("not a key".into()),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains(VAULT_KEY_ENV), "{err}");
        std::fs::write(dir.path().join("k"), "short").unwrap();
        let err = FileVault::open_with(&dir.path().join("v.json"), &dir.path().join("k"), None)
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::BadKeyFile { .. }), "{err}");
    }
}

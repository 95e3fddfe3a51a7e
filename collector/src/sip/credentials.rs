//! The credentials file: who may register and call (digest, RFC 7616), and
//! the collector's own password towards an external registrar.
//!
//! ```yaml
//! # /etc/sipsensor/credentials.yaml: owner root (or the collector's user),
//! # mode 0600. Reloaded on SIGHUP.
//! users:
//!   sensor-0001: "a long random password"
//!   # or pre-hashed, so the file holds no password: HA1 = H(user:realm:password)
//!   # with realm = sip.domain (`echo -n 'sensor-0002:example.net:pw' | sha256sum`)
//!   sensor-0002:
//!     ha1_sha256: 5e8f...64 hex digits
//!     ha1_md5: 0c3e...32 hex digits
//! ```
//!
//! A user with only one hash can answer only challenges of that algorithm;
//! the collector offers SHA-256 first, then MD5 (RFC 8760 2.3).

use serde::Deserialize;
use sipsensor_protocol::{Ha1, HashFunction, InMemoryCredentials, Password, StoredSecret};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Larger files are refused: 10,000 users take about 400 KB.
const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path} is {len} bytes, more than the {MAX_FILE_BYTES} allowed")]
    TooLarge { path: PathBuf, len: u64 },
    /// serde_yaml's message names the line and column.
    #[error("credentials file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("credentials file {path}: user {user:?}: {reason}")]
    Invalid {
        path: PathBuf,
        user: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: BTreeMap<String, Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Secret {
    Password(String),
    Hashes(Hashes),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hashes {
    #[serde(default)]
    ha1_md5: Option<String>,
    #[serde(default)]
    ha1_sha256: Option<String>,
}

/// A loaded credentials file.
#[derive(Clone)]
pub struct Credentials {
    pub store: InMemoryCredentials,
    passwords: HashMap<String, Password>,
    /// Problems worth a warning (file permissions).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.store.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// No users: only trusted peers get in.
    pub fn empty() -> Self {
        Credentials {
            store: InMemoryCredentials::new(),
            passwords: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The plain password of `user` (for the collector's own registration).
    pub fn password(&self, user: &str) -> Option<Password> {
        self.passwords.get(user).cloned()
    }

    /// Reads `path`; pre-hashed entries are for `realm`.
    pub fn load(path: &Path, realm: &str) -> Result<Credentials, CredentialsError> {
        let meta = std::fs::metadata(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(CredentialsError::TooLarge {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Credentials::parse(&text, path, realm)?;
        if let Some(w) = permission_warning(path, &meta) {
            c.warnings.push(w);
        }
        Ok(c)
    }

    /// Parses the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, realm: &str) -> Result<Credentials, CredentialsError> {
        let file: File = serde_yaml::from_str(text).map_err(|e| CredentialsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut c = Credentials::empty();
        for (user, secret) in file.users {
            let invalid = |reason: String| CredentialsError::Invalid {
                path: path.to_path_buf(),
                user: user.clone(),
                reason,
            };
            // RFC 3261 25.1 `user`: no separators a digest header would break on.
            if user.is_empty()
                || user
                    .chars()
                    .any(|ch| ch.is_control() || "\" @:".contains(ch))
            {
                return Err(invalid("not a usable SIP user name".into()));
            }
            match secret {
                Secret::Password(p) => {
                    if p.is_empty() {
                        return Err(invalid("empty password".into()));
                    }
                    let p = Password::new(p);
                    c.store.insert_password(user.clone(), p.clone());
                    c.passwords.insert(user, p);
                }
                Secret::Hashes(h) => {
                    let mut list = Vec::new();
                    for (hash, value, digits) in [
                        (HashFunction::Sha256, &h.ha1_sha256, 64),
                        (HashFunction::Md5, &h.ha1_md5, 32),
                    ] {
                        if let Some(v) = value {
                            if v.len() != digits || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return Err(invalid(format!(
                                    "{hash:?} HA1 must be {digits} hex digits"
                                )));
                            }
                            list.push(Ha1::new(hash, v.clone()));
                        }
                    }
                    if list.is_empty() {
                        return Err(invalid("needs a password, ha1_sha256 or ha1_md5".into()));
                    }
                    c.store
                        .insert_for_realm(user, realm, StoredSecret::Ha1(list));
                }
            }
        }
        Ok(c)
    }
}

/// A file others may read holds secrets they should not have.
fn permission_warning(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "credentials file {} has mode {mode:03o}: group and others can read the \
             sensors' secrets; chmod 600 it",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::CredentialStore;

    fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        Credentials::parse(text, Path::new("creds.yaml"), "example.net")
    }

    #[test]
    fn passwords_and_hashes() {
        let c =
            parse("users:\n  s1: secret\n  s2:\n    ha1_md5: 0123456789abcdef0123456789ABCDEF\n")
                .unwrap();
        assert_eq!(c.len(), 2);
        assert!(matches!(
            c.store.lookup("s1", "any.realm"),
            Some(StoredSecret::Password(_))
        ));
        assert!(matches!(
            c.store.lookup("s2", "example.net"),
            Some(StoredSecret::Ha1(_))
        ));
        // Pre-hashed secrets are bound to their realm.
        assert!(c.store.lookup("s2", "other.realm").is_none());
        assert!(c.password("s1").is_some());
        assert!(c.password("s2").is_none());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let e = parse("users:\n  s1:\n    ha1_md5: xyz\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("user \"s1\"") && e.contains("32 hex digits"),
            "{e}"
        );
        let e = parse("users:\n  s1: ''\n").unwrap_err().to_string();
        assert!(e.contains("empty password"), "{e}");
        let e = parse("users:\n  'a b': x\n").unwrap_err().to_string();
        assert!(e.contains("not a usable SIP user name"), "{e}");
        let e = parse("people:\n  s1: x\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `people`"), "{e}");
        let e = parse("users:\n  s1: {ha1_sha1: ab}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("creds.yaml"), "{e}");
    }

    #[test]
    fn loose_permissions_are_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "users: {s1: pw}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = Credentials::load(&path, "r").unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("mode 644"), "{:?}", c.warnings);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Credentials::load(&path, "r").unwrap().warnings.is_empty());
        let e = Credentials::load(&dir.path().join("missing"), "r").unwrap_err();
        assert!(
            e.to_string().contains("cannot read credentials file"),
            "{e}"
        );
    }
}

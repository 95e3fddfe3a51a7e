//! The secrets file: the SIP password, kept apart from the config so the
//! config (and the boot-partition override, readable from any laptop) can
//! be shared without it.

use super::{ConfigError, raw::RawSecrets, yaml_error};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A password that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }

    /// The password itself, for the digest computation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

/// What the secrets file holds, and what is wrong with it short of an error.
#[derive(Debug, Default)]
pub struct Secrets {
    pub password: Option<Password>,
    /// Passwords of the callers `sip.callers` names, by user name.
    pub callers: std::collections::BTreeMap<String, String>,
    /// Group-readable, owned by another user.
    pub warnings: Vec<String>,
}

/// Read the secrets file. `Ok(None)` when it does not exist; an error when
/// others can read or write it, or it is not valid.
pub fn load(path: &Path) -> Result<Option<Secrets>, ConfigError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mode = meta.mode() & 0o777;
    let mut warnings = Vec::new();
    if mode & 0o007 != 0 {
        return Err(ConfigError::File {
            path: path.to_owned(),
            message: format!(
                "mode {mode:04o} lets every user read or change the password; \
                 run `chmod 600 {}` (refusing to use it)",
                path.display()
            ),
        });
    }
    if mode & 0o070 != 0 {
        warnings.push(format!(
            "{}: mode {mode:04o} lets the file's group read the password; `chmod 600` it",
            path.display()
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        warnings.push(format!(
            "{}: owned by uid {}, not by the agent's uid {euid}",
            path.display(),
            meta.uid()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let raw: RawSecrets = if text.trim().is_empty() {
        RawSecrets::default()
    } else {
        serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &e))?
    };
    Ok(Some(Secrets {
        password: raw.password.map(Password),
        callers: raw.callers,
        warnings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join("secrets.yaml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn reads_the_password_of_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "password: s3cret\n", 0o600);
        let s = load(&p).unwrap().unwrap();
        assert_eq!(s.password.unwrap().expose(), "s3cret");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn refuses_a_world_readable_file_and_warns_on_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "password: x\n", 0o644);
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        let p = write(dir.path(), "password: x\n", 0o640);
        let s = load(&p).unwrap().unwrap();
        assert!(s.warnings[0].contains("group"), "{:?}", s.warnings);
    }

    #[test]
    fn missing_file_is_none_and_bad_keys_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("nope")).unwrap().is_none());
        let p = write(dir.path(), "password: x\npasword: y\n", 0o600);
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("secrets.yaml:2:1: unknown field `pasword`"),
            "{e}"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(****)");
    }
}

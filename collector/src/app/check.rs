//! `sipsensor-collector check-config`: what `run` would refuse or warn
//! about, found without opening a socket or the database.

use crate::config::Config;
use crate::http::Access;
use crate::sip::control;
use crate::sip::credentials::Credentials;
use crate::storage::StorageUrl;
use crate::storage::sqlite::file_mode;

/// What a check found: errors stop `run`, warnings are logged by it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Checks the files and names the config refers to.
pub fn check(config: &Config) -> Findings {
    let mut f = Findings::default();
    match Access::from_config(&config.http) {
        Ok((_, warnings)) => f.warnings.extend(warnings),
        Err(e) => f.errors.push(e.to_string()),
    }
    if let Err(e) = config.storage.open_options() {
        f.errors.push(e.to_string());
    }
    if let StorageUrl::Sqlite(path) = &config.storage.url {
        f.warnings.extend(file_mode::world_readable_warning(path));
    }
    if config.sip.enabled {
        check_sip(config, &mut f);
    }
    f
}

fn check_sip(config: &Config, f: &mut Findings) {
    let sc = &config.sip;
    // The TLS certificate, key and CA files are readable and the key is the
    // certificate's (what the start would find out later).
    if let Some(tls) = &sc.tls
        && let Err(e) = tls.load()
    {
        f.errors.push(format!("sip.tls: {e}"));
    }
    // A running collector's socket is fine; anything else there is not.
    if let Err(e) = control::inspect(&sc.control_socket) {
        f.errors.push(e.to_string());
    }
    let Some(path) = &sc.credentials_file else {
        if sc.registrar {
            f.warnings.push(
                "sip.credentials_file is not set: the embedded registrar has no users, so \
                 only sip.trusted_peers get in"
                    .into(),
            );
        }
        return;
    };
    match Credentials::load(path, &crate::sip::realm(sc)) {
        Ok(creds) => {
            f.warnings.extend(creds.warnings.iter().cloned());
            if creds.is_empty() {
                f.warnings
                    .push(format!("credentials file {} has no users", path.display()));
            }
            if let Some(user) = sc.register_username()
                && creds.password(&user).is_none()
            {
                f.errors.push(format!(
                    "sip.register: user {user:?} has no plain password in {}",
                    path.display()
                ));
            }
        }
        Err(e) => f.errors.push(e.to_string()),
    }
}

#[cfg(test)]
mod tests;

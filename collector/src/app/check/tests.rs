use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A config in `dir` with SIP; `extra_sip` lines go under `sip:`.
fn config(dir: &Path, extra_sip: &str) -> Config {
    let text = format!(
        "storage:\n  url: sqlite://{db}\nsip:\n  control_socket: {sock}\n{extra_sip}",
        db = dir.join("c.db").display(),
        sock = dir.join("c.sock").display(),
    );
    Config::parse(&text, Path::new("c.yaml")).unwrap()
}

fn with_credentials(dir: &Path, text: &str, mode: u32) -> Config {
    let creds = dir.join("credentials.yaml");
    std::fs::write(&creds, text).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(mode)).unwrap();
    config(dir, &format!("  credentials_file: {}\n", creds.display()))
}

#[test]
fn a_sound_config_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_credentials(dir.path(), "users:\n  s1: \"a long password\"\n", 0o600);
    assert_eq!(check(&c), Findings::default());
}

#[test]
fn the_credentials_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = config(
        dir.path(),
        "  credentials_file: /nonexistent/credentials.yaml\n",
    );
    let f = check(&missing);
    assert!(
        f.errors[0].contains("cannot read credentials file /nonexistent"),
        "{f:?}"
    );

    // Unreadable: a directory fails to read even for root.
    let unreadable = config(
        dir.path(),
        &format!("  credentials_file: {}\n", dir.path().display()),
    );
    let f = check(&unreadable);
    assert!(
        f.errors[0].contains("cannot read credentials file"),
        "{f:?}"
    );

    let malformed = with_credentials(dir.path(), "users:\n  s1: [1, 2\n", 0o600);
    let f = check(&malformed);
    assert!(f.errors[0].contains("line"), "{f:?}");
    let bad_user = with_credentials(dir.path(), "users:\n  \"a b\": pw\n", 0o600);
    assert!(check(&bad_user).errors[0].contains("user \"a b\""));

    let readable = with_credentials(dir.path(), "users:\n  s1: \"a password\"\n", 0o644);
    let f = check(&readable);
    assert!(f.errors.is_empty(), "{f:?}");
    assert!(f.warnings[0].contains("mode 644"), "{f:?}");
}

#[test]
fn a_control_socket_path_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_credentials(dir.path(), "users:\n  s1: \"a password\"\n", 0o600);
    std::fs::write(dir.path().join("c.sock"), b"a database").unwrap();
    let f = check(&c);
    assert!(f.errors[0].contains("regular file is there"), "{f:?}");
    assert_eq!(
        std::fs::read(dir.path().join("c.sock")).unwrap(),
        b"a database"
    );
}

#[test]
fn http_beyond_loopback_without_a_token_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "storage:\n  url: sqlite://{}\nhttp:\n  bind: 0.0.0.0:8080\n",
        dir.path().join("c.db").display()
    );
    let c = Config::parse(&text, Path::new("c.yaml")).unwrap();
    let f = check(&c);
    assert!(f.errors[0].contains("http.token_file"), "{f:?}");
}

#[test]
fn a_world_readable_database_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_credentials(dir.path(), "users:\n  s1: \"a password\"\n", 0o600);
    let db = dir.path().join("c.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = check(&c);
    assert!(f.warnings[0].contains("database"), "{f:?}");
}

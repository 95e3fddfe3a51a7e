//! baresip (Debian's `baresip-core`), a standard SIP phone, on loopback:
//! it registers an account at a registrar and answers every call by
//! itself (`answermode=auto`), with G.711 audio from a sine generator and
//! no sound card.

use crate::ports::{LOCALHOST, free_udp_tcp_port};
use crate::process::ChildGuard;
use crate::{HarnessError, io_err, tool_path};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// Where Debian installs its modules.
const MODULE_PATH: &str = "/usr/lib/baresip/modules";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Baresip {
    child: ChildGuard,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Baresip {
    /// Start a phone for `aor` (e.g. `sip:phone@127.0.0.1:5060`, whose
    /// host is the registrar) with digest password `password`, and wait
    /// until it is registered.
    pub fn start(aor: &str, password: &str) -> Result<Self, HarnessError> {
        let binary = tool_path("baresip").ok_or(HarnessError::MissingTool {
            tool: "baresip".into(),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-baresip-")
            .tempdir()
            .map_err(io_err("creating the baresip directory"))?;
        let port = free_udp_tcp_port(LOCALHOST).map_err(io_err("finding a free port"))?;
        let addr = SocketAddr::new(LOCALHOST, port);
        write_config(dir.path(), addr, aor, password)?;
        let mut cmd = Command::new(binary);
        cmd.arg("-f").arg(dir.path()).arg("-v");
        let mut child = ChildGuard::spawn("baresip", cmd, &dir.path().join("baresip.log"))?;
        // `-v` logs the REGISTER's final response.
        child.wait_log(&["200 OK"], READY_TIMEOUT)?;
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }

    /// Its SIP address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}

fn write_config(
    dir: &Path,
    addr: SocketAddr,
    aor: &str,
    password: &str,
) -> Result<(), HarnessError> {
    let config = format!(
        "poll_method epoll\n\
         sip_listen {addr}\n\
         audio_player aufile,/dev/null\n\
         audio_source ausine,440\n\
         audio_alert aufile,/dev/null\n\
         module_path {MODULE_PATH}\n\
         module g711.so\n\
         module ausine.so\n\
         module aufile.so\n\
         module_app account.so\n\
         module_app menu.so\n"
    );
    std::fs::write(dir.join("config"), config).map_err(io_err("writing baresip config"))?;
    // No spaces or quotes in tests' passwords: baresip's account syntax.
    if password.contains([';', '>', ' ', '"']) {
        return Err(HarnessError::Invalid {
            what: "baresip password".into(),
            detail: password.into(),
        });
    }
    let accounts = format!("<{aor}>;auth_pass={password};answermode=auto;regint=600\n");
    std::fs::write(dir.join("accounts"), accounts).map_err(io_err("writing baresip accounts"))?;
    // Without these files baresip writes templates and may ask questions.
    std::fs::write(dir.join("contacts"), "").map_err(io_err("writing baresip contacts"))?;
    Ok(())
}

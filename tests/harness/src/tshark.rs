//! A tshark capture on loopback and Wireshark's verdict on it.

use crate::process::ChildGuard;
use crate::{HarnessError, io_err, tool_path};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How long tshark gets to report that it captures.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Time for the last packets to reach the capture file before it stops.
const DRAIN: Duration = Duration::from_millis(500);

/// Display filter for packets a dissector could not read: the "Malformed
/// Packet" exception, or any expert item of severity Error.
pub const MALFORMED_FILTER: &str = "_ws.malformed || _ws.expert.severity == error";

/// What to capture and how to decode it.
#[derive(Debug, Clone)]
pub struct TsharkOptions {
    pub interface: String,
    /// Ports whose UDP and TCP traffic is captured and decoded as SIP.
    pub sip_ports: Vec<u16>,
    /// UDP ports decoded as RTP (Wireshark does not guess RTP by default).
    pub rtp_ports: Vec<u16>,
    /// UDP ports decoded as RTCP.
    pub rtcp_ports: Vec<u16>,
}

impl Default for TsharkOptions {
    fn default() -> Self {
        Self {
            interface: "lo".into(),
            sip_ports: Vec::new(),
            rtp_ports: Vec::new(),
            rtcp_ports: Vec::new(),
        }
    }
}

impl TsharkOptions {
    pub fn sip(ports: &[u16]) -> Self {
        Self {
            sip_ports: ports.to_vec(),
            ..Self::default()
        }
    }

    /// The BPF capture filter: every listed port, UDP and TCP.
    pub fn capture_filter(&self) -> String {
        let mut ports: Vec<u16> = self
            .sip_ports
            .iter()
            .chain(&self.rtp_ports)
            .chain(&self.rtcp_ports)
            .copied()
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// `-d` decode-as arguments for reading the capture.
    fn decode_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut decode = |layer: &str, port: u16, proto: &str| {
            args.push("-d".to_string());
            args.push(format!("{layer}.port=={port},{proto}"));
        };
        for &p in &self.sip_ports {
            decode("udp", p, "sip");
            decode("tcp", p, "sip");
        }
        for &p in &self.rtp_ports {
            decode("udp", p, "rtp");
        }
        for &p in &self.rtcp_ports {
            decode("udp", p, "rtcp");
        }
        args
    }
}

/// A running capture. [`Tshark::finish`] stops it and checks it; dropping
/// it without finishing stops it too and, if the test is failing, keeps
/// the capture file and prints its path.
#[derive(Debug)]
pub struct Tshark {
    child: Option<ChildGuard>,
    options: TsharkOptions,
    dir: Option<TempDir>,
    file: PathBuf,
}

impl Tshark {
    /// Start capturing and wait until tshark says it is.
    pub fn start(options: TsharkOptions) -> Result<Self, HarnessError> {
        let filter = options.capture_filter();
        if filter.is_empty() {
            return Err(HarnessError::Invalid {
                what: "capture".into(),
                detail: "no ports given".into(),
            });
        }
        let binary = tool_path("tshark").ok_or(HarnessError::MissingTool {
            tool: "tshark".into(),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-capture-")
            .tempdir()
            .map_err(io_err("creating a capture directory"))?;
        let file = dir.path().join("capture.pcapng");
        let mut cmd = Command::new(binary);
        cmd.args(["-i", &options.interface, "-f", &filter, "-q", "-w"])
            .arg(&file);
        let mut child = ChildGuard::spawn("tshark", cmd, &dir.path().join("tshark.log"))?;
        // "Capturing on 'lo'" comes before dumpcap really captures; this
        // message comes once it does.
        child.wait_log(&["Capture started"], START_TIMEOUT)?;
        Ok(Self {
            child: Some(child),
            options,
            dir: Some(dir),
            file,
        })
    }

    /// Stop capturing (letting the last packets land) and return the file.
    pub fn stop(mut self) -> Result<Capture, HarnessError> {
        self.stop_child()?;
        Ok(Capture {
            file: self.file.clone(),
            decode: self.options.decode_args(),
            dir: self.dir.take(),
        })
    }

    /// Stop, then fail if any packet is malformed or the capture holds no
    /// SIP at all (a check of nothing proves nothing). On failure the file
    /// is kept and its path is in the error.
    pub fn finish(self) -> Result<Capture, HarnessError> {
        let mut capture = self.stop()?;
        let malformed = capture.malformed()?;
        if !malformed.is_empty() {
            return Err(HarnessError::Malformed {
                packets: malformed,
                capture: capture.keep(),
            });
        }
        if capture.count("sip")? == 0 {
            return Err(HarnessError::EmptyCapture {
                capture: capture.keep(),
            });
        }
        Ok(capture)
    }

    fn stop_child(&mut self) -> Result<(), HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        std::thread::sleep(DRAIN);
        // SIGINT makes tshark tell dumpcap to flush and close the file.
        child.signal(libc::SIGINT);
        if child.wait_timeout(Duration::from_secs(10)).is_none() {
            child.stop(Duration::from_secs(1));
            return Err(HarnessError::Timeout {
                name: "tshark".into(),
                seconds: 10,
                log: child.log_tail(),
            });
        }
        Ok(())
    }
}

impl Drop for Tshark {
    fn drop(&mut self) {
        let _ = self.stop_child();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "capture kept at {}",
                dir.keep().join("capture.pcapng").display()
            );
        }
    }
}

/// A finished capture file, removed on drop unless [`Capture::keep`] is called.
#[derive(Debug)]
pub struct Capture {
    file: PathBuf,
    decode: Vec<String>,
    dir: Option<TempDir>,
}

impl Capture {
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Keep the file after the test (for a failure report); returns its path.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
            eprintln!("capture kept at {}", self.file.display());
        }
        self.file.clone()
    }

    /// One line per packet matching `display_filter`: its number,
    /// protocols, expert messages and summary, `|`-separated.
    pub fn packets(&self, display_filter: &str) -> Result<Vec<String>, HarnessError> {
        let rows = self.fields(
            display_filter,
            &[
                "frame.number",
                "frame.protocols",
                "_ws.expert.message",
                "_ws.col.Info",
            ],
        )?;
        Ok(rows.into_iter().map(|r| r.join("|")).collect())
    }

    /// The values of `fields` (tshark field names) of every packet matching
    /// `display_filter`, one row per packet; a field with several
    /// occurrences keeps them comma-separated.
    pub fn fields(
        &self,
        display_filter: &str,
        fields: &[&str],
    ) -> Result<Vec<Vec<String>>, HarnessError> {
        let binary = tool_path("tshark").ok_or(HarnessError::MissingTool {
            tool: "tshark".into(),
        })?;
        let mut cmd = Command::new(binary);
        cmd.arg("-r").arg(&self.file).args(&self.decode).args([
            "-Y",
            display_filter,
            "-T",
            "fields",
            "-E",
            "separator=|",
        ]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let output = cmd.output().map_err(io_err("running tshark -r"))?;
        if !output.status.success() {
            return Err(HarnessError::ToolFailed {
                tool: "tshark -r".into(),
                detail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect())
    }

    /// Packets Wireshark flags as malformed ([`MALFORMED_FILTER`]).
    pub fn malformed(&self) -> Result<Vec<String>, HarnessError> {
        self.packets(MALFORMED_FILTER)
    }

    pub fn count(&self, display_filter: &str) -> Result<usize, HarnessError> {
        self.packets(display_filter).map(|p| p.len())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.keep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_decoding() {
        let options = TsharkOptions {
            sip_ports: vec![5060, 5070],
            rtp_ports: vec![40000],
            rtcp_ports: vec![40001, 5060],
            ..TsharkOptions::default()
        };
        assert_eq!(
            options.capture_filter(),
            "port 5060 or port 5070 or port 40000 or port 40001"
        );
        let args = options.decode_args().join(" ");
        assert!(args.contains("-d udp.port==5070,sip -d tcp.port==5070,sip"));
        assert!(args.contains("-d udp.port==40000,rtp"));
        assert!(args.contains("-d udp.port==40001,rtcp"));
    }
}

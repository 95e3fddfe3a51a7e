//! `sipsensor-bench check -- PREFIX...`: run a sender (another build of
//! this binary, e.g. the armv7 one under qemu-arm-static) against a
//! receiver on 127.0.0.1 and check what arrives: every samples packet
//! decodes to the simulated waveform, sequence numbers and timestamps
//! continue, the first SR comes at the start and SR + SDES + BYE at the
//! end. Exit status 1 on any difference.

use crate::Args;
use crate::bench::stream;
use crate::receive::Receiver;
use crate::send::Shape;
use sipsensor_agent::stream::sim::Checker;
use sipsensor_protocol::{RtcpPacket, parse_rtcp_compound};
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn run(a: &Args) -> Result<(), String> {
    let seconds: f64 = a.get("seconds", 2.0)?;
    // Emulated start-up is slow; the stream itself is `seconds` long.
    let limit = Duration::from_secs_f64(seconds + a.get("startup-limit", 60.0)?);
    let shape = Shape::from_args(a)?;
    let (program, prefix) = a.rest.split_first().ok_or(
        "give the sender command after --, e.g. -- qemu-arm-static path/to/sipsensor-bench",
    )?;
    let rx = Receiver::bind()?;
    let mut cmd = Command::new(program);
    cmd.args(prefix)
        .args(["send", "--to", &rx.rtp_addr()?.to_string()])
        .args(["--rtcp-to", &rx.rtcp_addr()?.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--mlock", a.text("mlock").unwrap_or("onfault")])
        .args(shape.args())
        .stdout(Stdio::piped());
    let (out, arrivals, ok) = stream(&rx, cmd, limit)?;
    print!("{out}");
    if !ok {
        return Err("the sender did not exit successfully".into());
    }
    let mut checker = Checker::new(shape.sim(), shape.description(false));
    for (i, p) in arrivals.iter().enumerate() {
        checker
            .packet(&p.bytes)
            .map_err(|e| format!("packet {i}: {e}"))?;
    }
    let r = &checker.report;
    let expected = seconds * f64::from(shape.rate) / f64::from(shape.spp);
    if (r.sample_packets as f64) < expected * 0.5 {
        return Err(format!(
            "{} samples packets, expected about {expected:.0}",
            r.sample_packets
        ));
    }
    if r.instants_matched == 0 {
        return Err("no instant carried the waveform".into());
    }
    let rtcp: Vec<Vec<RtcpPacket>> = rx
        .rtcp()
        .iter()
        .map(|c| parse_rtcp_compound(c).map_err(|e| format!("RTCP: {e}")))
        .collect::<Result<_, _>>()?;
    if !matches!(
        rtcp.first().and_then(|c| c.first()),
        Some(RtcpPacket::SenderReport(_))
    ) {
        return Err("no SR at the start".into());
    }
    if !matches!(rtcp.last().and_then(|c| c.last()), Some(RtcpPacket::Bye(_))) {
        return Err("no BYE at the end".into());
    }
    println!(
        "check: {} packets, {} instants equal the waveform, {} before the first reading, \
         {} RTCP compounds (SR first, BYE last): OK",
        r.packets,
        r.instants_matched,
        r.instants_missing,
        rtcp.len()
    );
    Ok(())
}

//! `status` as a person reads it (the JSON form is the model's serde).

use super::model::Status;

/// `status` as a person reads it.
pub fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "state:     {}", s.state.as_str());
    let _ = writeln!(
        o,
        "version:   {} (pid {}, up {} s)",
        s.version, s.pid, s.uptime_s
    );
    let files: Vec<String> = s
        .config_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(
        o,
        "config:    {}",
        if files.is_empty() {
            "-".into()
        } else {
            files.join(", ")
        }
    );
    let _ = writeln!(
        o,
        "stream:    {} packets, {} samples, {} missing, {} events ({} dropped)",
        s.packets_sent, s.samples_sent, s.samples_missing, s.events_sent, s.events_dropped
    );
    let b = &s.backfill;
    let _ = writeln!(
        o,
        "backfill:  {} packets, {} bytes, {} restarts; spool released {} bytes",
        b.packets, b.bytes, b.restarts, b.spool_released_bytes
    );
    let r = &s.repair;
    let instant = |ns: Option<u64>| ns.map_or("-".to_owned(), |ns| format!("{ns} ns"));
    let _ = writeln!(
        o,
        "repair:    {} NACKs ({} refused), {} packets resent, {} given up; \
         collector's mark {}, first live sample {}",
        r.nacks_received,
        r.nacks_refused,
        r.packets_resent,
        r.given_up,
        instant(r.committed_mark_ns),
        instant(r.first_live_ns)
    );
    let _ = writeln!(o, "registrations:");
    if s.registrations.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for r in &s.registrations {
        let _ = writeln!(
            o,
            "  {} at {}: {:?}{}{}",
            r.aor,
            r.registrar,
            r.state,
            r.expires_in_s
                .map(|e| format!(", expires in {e} s"))
                .unwrap_or_default(),
            r.last_response
                .as_ref()
                .map(|l| format!(", last: {l}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "sessions:");
    if s.sessions.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for x in &s.sessions {
        let _ = writeln!(
            o,
            "  {:?} {} [{}]: {}, {} Hz, {} channels, {} packets, {} samples, {} missing",
            x.direction,
            x.peer,
            x.call_id,
            x.state,
            x.rate_hz,
            x.channels.len(),
            x.packets_sent,
            x.samples_sent,
            x.samples_missing
        );
    }
    let _ = writeln!(o, "sensors:");
    for x in &s.sensors {
        let _ = writeln!(
            o,
            "  {} ({}): {:?}, {} reads, {} errors{}",
            x.name,
            x.kind,
            x.state,
            x.reads,
            x.errors,
            x.last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    for x in &s.inputs {
        let level = match x.level {
            Some(true) => "active",
            Some(false) => "inactive",
            None => "unknown",
        };
        let _ = writeln!(
            o,
            "  input {} (GPIO {}): {level}, {} edges",
            x.name, x.pin, x.edges
        );
    }
    match &s.last_error {
        Some(e) => {
            let _ = writeln!(
                o,
                "last error: {} ({}, at {} ms since epoch)",
                e.message, e.source, e.at_unix_ms
            );
        }
        None => {
            let _ = writeln!(o, "last error: none");
        }
    }
    o
}

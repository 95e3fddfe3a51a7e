use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(s, Path::new("collector.yaml"))
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse("storage:\n  url: sqlite:///tmp/c.db\n").unwrap();
    assert_eq!(c.storage.url, StorageUrl::Sqlite("/tmp/c.db".into()));
    assert_eq!(c.storage.flush_interval_ms.get(), 100);
    assert_eq!(c.retention.days, None);
    assert_eq!(c.http.bind, "127.0.0.1:8080".parse().unwrap());
    assert!(c.sip.registrar);
    assert_eq!(c.policy.mode, PolicyMode::AcceptAsOffered);
    let w = c.storage.writer_config();
    assert_eq!(w.flush_interval, Duration::from_millis(100));
    assert_eq!(w.batch_rows, 500_000);
    assert_eq!(w.max_flush_interval, Duration::from_secs(1));
}

#[test]
fn full_config() {
    let c = parse(
        "storage:
  url: postgres://sip@db.example.net/sensors
  flush_interval_ms: 250
  batch_rows: 1000
  max_pending_rows: 50000
  integrity_check: header
retention:
  days: 90
  interval_s: 600
http:
  bind: '[::1]:9000'
sip:
  bind: 0.0.0.0:5070
  registrar: false
  credentials_file: /etc/sipsensor/credentials.yaml
  trusted_peers: [127.0.0.1/32, 10.0.0.0/8, '::1/128']
policy:
  mode: cap
  max_rate_hz: 50
  max_channels: 4
",
    )
    .unwrap();
    assert!(matches!(c.storage.url, StorageUrl::Postgres(_)));
    assert_eq!(c.storage.integrity_check, IntegrityCheck::HeaderOnly);
    assert_eq!(c.retention.days.map(|d| d.get()), Some(90));
    assert_eq!(c.http.bind, "[::1]:9000".parse().unwrap());
    assert!(!c.sip.registrar);
    assert_eq!(c.sip.trusted_peers.len(), 3);
    assert_eq!(
        c.policy,
        Policy {
            mode: PolicyMode::Cap,
            max_rate_hz: Some(PositiveRate(50.0)),
            max_channels: NonZeroU32::new(4),
        }
    );
}

fn err(s: &str) -> String {
    parse(s).unwrap_err().to_string()
}

#[test]
fn unknown_keys_name_line_and_column() {
    let e = err("storage:\n  url: sqlite:///tmp/c.db\n  flush_ms: 5\n");
    assert!(e.starts_with("config file collector.yaml: "), "{e}");
    assert!(e.contains("unknown field `flush_ms`"), "{e}");
    assert!(e.contains("line 3 column 3"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\npolicy:\n  mode: cap\n  max_rate: 5\n");
    assert!(e.contains("unknown field `max_rate`"), "{e}");
}

#[test]
fn impossible_values_are_refused() {
    let e = err("storage:\n  url: sqlite:///tmp/c.db\n  flush_interval_ms: 5000\n");
    assert!(e.contains("1..=1000"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    let e = err(
        "storage:\n  url: sqlite:///c.db\n  flush_interval_ms: 500\n  max_flush_interval_ms: 200\n",
    );
    assert!(
        e.contains("flush_interval_ms is above max_flush_interval_ms"),
        "{e}"
    );
    let e = err("storage:\n  url: mysql://x\n");
    assert!(e.contains("expected sqlite:///"), "{e}");
    assert!(e.contains("line 2"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\nretention:\n  days: 0\n");
    assert!(e.contains("line 4"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\npolicy:\n  mode: cap\n  max_rate_hz: -1\n");
    assert!(e.contains("above 0 Hz"), "{e}");
    assert!(e.contains("line 5 column 16"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\npolicy:\n  mode: cap\n");
    assert!(e.contains("needs max_rate_hz or max_channels"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\npolicy:\n  max_channels: 3\n");
    assert!(e.contains("apply only with mode: cap"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\npolicy:\n  mode: anything\n");
    assert!(e.contains("unknown variant `anything`"), "{e}");
    let e = err("storage:\n  url: sqlite:///tmp/c.db\nsip:\n  trusted_peers: [not-an-ip]\n");
    assert!(e.contains("line 4"), "{e}");
    let e =
        err("storage:\n  url: sqlite:///c.db\nhttp:\n  hosts: ['collector.example.net:8080']\n");
    assert!(e.contains("is not a host name"), "{e}");
    let e = err("http:\n  bind: 127.0.0.1:80\n");
    assert!(e.contains("missing field `storage`"), "{e}");
}

#[test]
fn load_names_a_missing_file() {
    let e = Config::load(Path::new("/nonexistent/collector.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read config file /nonexistent/collector.yaml"),
        "{e}"
    );
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/collector.yaml");
    Config::load(&path).unwrap();
}

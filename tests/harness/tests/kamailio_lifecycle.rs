//! The Kamailio guard: credentials changed while it runs, a restart on the
//! same address, and nothing left running afterwards.

// Test code: helpers may unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

use sipsensor_testkit::{Kamailio, KamailioOptions, Sipp, SippOptions, require_tool, scenario};

fn register(kamailio: &Kamailio, password: &str) -> String {
    let mut options = SippOptions::new(scenario("register_auth.xml"))
        .key("contact_port", 5999)
        .key("expires", 300);
    options.remote = Some(kamailio.addr());
    options.service = Some("sensor1".into());
    options.auth = Some(("sensor1".into(), password.into()));
    let outcome = Sipp::run(&options).unwrap();
    assert!(outcome.success(), "{}", outcome.report());
    outcome.log.trim().to_string()
}

#[test]
fn credentials_change_restart_and_cleanup() {
    if !require_tool("kamailio") || !require_tool("sipp") {
        return;
    }
    let mut kamailio =
        Kamailio::start(KamailioOptions::default().with_subscriber("sensor1", "old")).unwrap();
    let addr = kamailio.addr();
    assert_eq!(register(&kamailio, "new"), "final response 401");

    // db_text (db_mode 1) reloads the changed table on the next request.
    kamailio.set_subscriber("sensor1", "new").unwrap();
    assert_eq!(register(&kamailio, "new"), "final response 200");

    let old_pid = kamailio.pid().unwrap();
    kamailio.restart().unwrap();
    assert_eq!(kamailio.addr(), addr);
    assert_ne!(kamailio.pid().unwrap(), old_pid);
    assert_eq!(register(&kamailio, "new"), "final response 200");

    let pid = kamailio.pid().unwrap() as i32;
    drop(kamailio);
    // The whole process group is gone (SIGTERM, then SIGKILL); zombies
    // waiting for init to reap them do not count.
    let gone = (0..100).any(|_| {
        let running = has_running_member(pid);
        if running {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        !running
    });
    assert!(gone, "Kamailio's processes are gone");
}

/// Some process of group `pgid` that is not a zombie.
fn has_running_member(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z")
        })
}

//! Against this crate's registrar, through the wire format.

use super::*;

#[test]
fn hours_of_refreshes_against_the_registrar_then_unregister() {
    let mut reg = registrar();
    let mut c = client_with(RegistrationConfig {
        expires: 600,
        ..config()
    });
    let src: SocketAddr = LOCAL.parse().unwrap();
    c.start(t0());
    exchange(&mut c, &mut reg, src, t0());
    let mut registered = 0;
    let mut now = t0();
    for e in events(&mut c) {
        assert!(matches!(e, RegistrationEvent::Registered { .. }), "{e:?}");
        registered += 1;
    }
    // Six hours: refreshes every ~4-5 min, nonces (300 s) going stale.
    while now < t0() + secs(6 * 3600) {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        exchange(&mut c, &mut reg, src, now);
        for e in events(&mut c) {
            assert!(matches!(e, RegistrationEvent::Registered { .. }), "{e:?}");
            registered += 1;
        }
        assert_eq!(reg.lookup("sip:s1@example.com", now).len(), 1);
    }
    assert!(registered >= 72, "{registered} refreshes");
    c.stop(now);
    exchange(&mut c, &mut reg, src, now);
    assert_eq!(events(&mut c), [RegistrationEvent::Unregistered]);
    assert!(reg.lookup("sip:s1@example.com", now).is_empty());
}

#[test]
fn behind_nat_against_the_registrar() {
    let mut reg = registrar();
    let mut c = client_with(config());
    let public: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    c.start(t0());
    exchange(&mut c, &mut reg, public, t0());
    assert_eq!(
        events(&mut c),
        [RegistrationEvent::Registered {
            expires: secs(3600),
            contact: "sip:s1@203.0.113.5:40000".into()
        }]
    );
    let bindings = reg.lookup("sip:s1@example.com", t0());
    assert_eq!(bindings.len(), 1, "the private Contact was removed");
    assert_eq!(bindings[0].contact.to_string(), "sip:s1@203.0.113.5:40000");
    assert_eq!(bindings[0].source, public);
    assert!(!bindings[0].behind_nat());
}

#[test]
fn wrong_password_against_the_registrar() {
    let mut reg = registrar();
    let mut c = client_with(RegistrationConfig {
        password: Password::new("bad"),
        ..config()
    });
    c.start(t0());
    exchange(&mut c, &mut reg, LOCAL.parse().unwrap(), t0());
    assert_eq!(
        events(&mut c),
        [RegistrationEvent::Failed {
            reason: FailureReason::WrongCredentials {
                realm: "example.com".into()
            }
        }]
    );
    c.set_credentials("s1", Password::new("pw1"), t0() + secs(60));
    exchange(&mut c, &mut reg, LOCAL.parse().unwrap(), t0() + secs(60));
    assert!(matches!(
        events(&mut c)[..],
        [RegistrationEvent::Registered { .. }]
    ));
}

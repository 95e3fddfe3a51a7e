//! The TU's shell: one task that feeds the user agent's events, the control
//! socket's requests, timer wake-ups and SIGHUP to the sans-I/O [`Core`]
//! with the time, and carries out what it asks for.
//!
//! The task never waits for the user agent (the driver would wait for it
//! when its event queue is full): user agent work goes through [`UaPump`]
//! in order, and anything slow (storage, media set-up) runs in spawned
//! tasks that report back as [`Command::Report`]s.

use super::control::{Reply, Request};
use super::core::{Action, Core, Now, ReplyTo, Report};
use super::credentials::Credentials;
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::storage::SensorState;
use crate::update::subscriptions::run::FleetHandle;
use sipsensor_protocol::fleet;
use sipsensor_protocol::{RegistrationEvent, UaEvent};
use sipsensor_runtime::ua_driver::UaHandle;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What the TU is told besides user agent events.
pub enum Command {
    Control(Request, oneshot::Sender<Reply>),
    /// Work done for the core.
    Report(Report),
    /// A SUBSCRIBE the fleet subscriptions' manager asks for.
    Fleet(crate::update::subscriptions::Command),
    Shutdown(oneshot::Sender<()>),
}

mod tasks;

use tasks::{
    Ctx, UaPump, close, now_ns, open, open_and_accept, renegotiate, stamp_mark, state_writer,
    with_mark_of,
};

fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_ns: now_ns(),
    }
}

/// Resolves on SIGHUP (never, if the handler cannot be installed).
async fn hangup(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

pub struct Shell {
    core: Core,
    ctx: Ctx,
    /// Control clients waiting for the core's reply.
    replies: HashMap<ReplyTo, oneshot::Sender<Reply>>,
    next_reply: u64,
    metrics: Arc<Metrics>,
    logs: HashMap<&'static str, RateLimit>,
    /// The fleet subscriptions' manager, when fleet updates run.
    fleet: Option<FleetHandle>,
}

impl Shell {
    pub fn new(
        core: Core,
        handle: UaHandle,
        parts: super::Parts,
        media: MediaHandle,
        tx: mpsc::UnboundedSender<Command>,
    ) -> Shell {
        let cname = core.settings().cname();
        Shell {
            ctx: Ctx {
                ua: UaPump::start(handle),
                states: state_writer(parts.storage.clone()),
                storage: parts.storage,
                streams: parts.streams,
                media,
                tx,
                cname,
            },
            core,
            replies: HashMap::new(),
            next_reply: 0,
            metrics: parts.metrics,
            logs: HashMap::new(),
            fleet: parts.fleet,
        }
    }

    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<UaEvent>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).ok();
        loop {
            let expiry = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                // Commands first: a call's `Placed` must be seen before the
                // events of its session (the driver sends it earlier).
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown(&mut events).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(Command::Control(req, reply)) => {
                        let to = ReplyTo(self.next_reply);
                        self.next_reply += 1;
                        self.replies.insert(to, reply);
                        self.core.handle_control(req, to, now());
                    }
                    Some(Command::Report(r)) => self.core.handle_report(r, now()),
                    Some(Command::Fleet(c)) => self.core.handle_fleet_command(c, now()),
                    None => return,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.core.handle_event(ev, now()),
                    None => return,
                },
                () = tokio::time::sleep_until(expiry.unwrap_or(far)), if expiry.is_some() => {
                    self.core.handle_timeout(Instant::now());
                }
                () = hangup(&mut hup) => self.reload(),
            }
            self.perform();
        }
    }

    /// SIGHUP: read the credentials file again; a bad file keeps the old
    /// users.
    fn reload(&mut self) {
        let settings = self.core.settings();
        let Some(path) = settings.credentials_file.clone() else {
            tracing::info!("SIGHUP: no credentials file to reload");
            return;
        };
        match Credentials::load(&path, &settings.realm) {
            Ok(c) => {
                for w in &c.warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!("SIGHUP: {} users from {}", c.len(), path.display());
                self.core.reload_calling(&c);
                self.core.reload(c);
            }
            Err(e) => tracing::error!("SIGHUP: {e}; keeping the users loaded before"),
        }
    }

    /// Carries out everything the core asked for, in order.
    fn perform(&mut self) {
        while let Some(action) = self.core.poll_action() {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        let ctx = &self.ctx;
        match action {
            Action::Reply { to, reply } => {
                if let Some(r) = self.replies.remove(&to) {
                    let _ = r.send(reply);
                }
            }
            Action::Respond { id, response } => ctx.ua.fire(move |ua, now| {
                let _ = ua.respond(id, response, now);
            }),
            Action::RespondToInvite { session, response } => ctx.ua.fire(move |ua, now| {
                let _ = ua.respond_to_invite(session, response, now);
            }),
            Action::RefuseInviteStatelessly { session, response } => ctx.ua.fire(move |ua, now| {
                let _ = ua.reject_statelessly(session, response, now);
            }),
            Action::RespondStatelessly { id, response } => ctx.ua.fire(move |ua, now| {
                let _ = ua.respond_statelessly(id, response, now);
            }),
            Action::Reject {
                session,
                status,
                reason,
            } => ctx.ua.fire(move |ua, now| {
                let _ = ua.reject(session, status, Some(&reason), now);
            }),
            Action::AnswerReoffer {
                session,
                sensor,
                answer,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let answer = match (answer, sensor) {
                        (Ok(sdp), Some(sensor)) => Ok(with_mark_of(&ctx, sensor, sdp).await),
                        (answer, _) => answer,
                    };
                    ctx.ua.fire(move |ua, now| {
                        let _ = ua.answer_reoffer(session, answer, now);
                    });
                });
            }
            Action::Hangup(session) => ctx.ua.fire(move |ua, now| {
                let _ = ua.hangup(session, now);
            }),
            Action::Call {
                call,
                aor,
                target,
                offer,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let offer = stamp_mark(&ctx, &aor, offer).await;
                    let placing = ctx.clone();
                    ctx.ua.fire(move |ua, now| {
                        let result = ua.call(&target, offer, now);
                        placing.report(Report::Placed { call, result });
                    });
                });
            }
            Action::Reinvite {
                session,
                sensor,
                offer,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let offer = with_mark_of(&ctx, sensor, offer).await;
                    let reporting = ctx.clone();
                    ctx.ua.fire(move |ua, now| {
                        if let Err(error) = ua.reinvite(session, offer, now) {
                            reporting.report(Report::ReinviteFailed { session, error });
                        }
                    });
                });
            }
            Action::Unregister => ctx.ua.fire(|ua, now| ua.unregister(now)),
            Action::SetOwnCredentials { user, password } => ctx.ua.fire(move |ua, now| {
                ua.set_registration_credentials(&user, password.clone(), now);
                ua.set_credentials(Some((user, password)));
            }),
            Action::ExpectSource { ip, until } => ctx.media.expect_source(ip, until),
            Action::ExpectConfig { media, until } => ctx.media.expect_config(media, until),
            Action::Open {
                session,
                args,
                accept,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let result = match accept {
                        Some(answer) => open_and_accept(&ctx, session, args, answer).await,
                        None => open(&ctx, args, false).await,
                    };
                    ctx.report(Report::Opened { session, result });
                });
            }
            Action::Renegotiate {
                session,
                opened,
                call_id,
                agreed,
                recovery,
                answer,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let result = renegotiate(&ctx, opened, &call_id, agreed, recovery).await;
                    ctx.report(Report::Renegotiated {
                        session,
                        answer,
                        result,
                    });
                });
            }
            Action::Recover {
                opened,
                agreed,
                recovery,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if !(ctx.media)
                        .update(opened.media, agreed, recovery, opened.session)
                        .await
                    {
                        tracing::warn!(
                            "session {}: the new recovery agreement could not be installed",
                            opened.session
                        );
                    }
                });
            }
            Action::Close { opened, report } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    close(&ctx, opened, now_ns()).await;
                    if let Some(aor) = report {
                        ctx.report(Report::Closed { aor });
                    }
                });
            }
            Action::CloseSilent {
                opened,
                aor,
                last_heard_ns,
                silent_for,
            } => {
                self.metrics.streams_silent.inc();
                tracing::warn!(
                    "stream of {aor} silent for {:.1} s (media.silence_timeout_s): BYE sent, \
                     session {} closed at the last packet heard",
                    silent_for.as_secs_f64(),
                    opened.session
                );
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    close(&ctx, opened, last_heard_ns).await;
                    ctx.report(Report::Closed { aor });
                });
            }
            Action::Subscribe {
                request,
                target,
                body,
                expires,
            } => {
                let reporting = ctx.clone();
                ctx.ua.fire(move |ua, now| {
                    let result = ua.subscribe(&target, fleet::EVENT, body, expires, now);
                    reporting.report(Report::Subscribed { request, result });
                });
            }
            Action::RefreshSubscription { sub, body } => {
                let reporting = ctx.clone();
                ctx.ua.fire(move |ua, now| {
                    if ua.refresh_subscription(sub, Some(body), now).is_err() {
                        reporting.report(Report::RefreshFailed { sub });
                    }
                });
            }
            Action::Unsubscribe(sub) => ctx.ua.fire(move |ua, now| {
                // Already over in the user agent: nothing left to end.
                let _ = ua.unsubscribe(sub, now);
            }),
            Action::AdmitInDialog(id) => ctx.ua.fire(move |ua, now| {
                let _ = ua.admit_in_dialog(id, now);
            }),
            Action::RefuseInDialog { id, response } => ctx.ua.fire(move |ua, now| {
                let _ = ua.refuse_in_dialog(id, response, now);
            }),
            Action::Fleet(event) => {
                if let Some(fleet) = &self.fleet {
                    fleet.sip_event(event);
                }
            }
            Action::SetState { aor, state } => {
                let _ = ctx.states.send((aor, state));
            }
            Action::Count(reason) => {
                self.metrics
                    .packets_rejected
                    .get_or_create(&[("reason", reason)])
                    .inc();
            }
            Action::CountAuth(outcome) => {
                self.metrics
                    .sip_auth
                    .get_or_create(&[("outcome", outcome)])
                    .inc();
            }
            // Rate-limited by the core, per source and overall.
            Action::LogAuth(line) => tracing::warn!("{line}"),
            Action::Warn { kind, message } => {
                // At most once per 10 s per kind.
                let l = self
                    .logs
                    .entry(kind)
                    .or_insert_with(|| RateLimit::new(Duration::from_secs(10)));
                if let Some(held) = l.allow(tokio::time::Instant::now()) {
                    tracing::warn!("{message} ({held} similar messages suppressed)");
                }
            }
        }
    }

    // ---- SIGTERM ----

    async fn shutdown(&mut self, events: &mut mpsc::Receiver<UaEvent>) {
        let stopping = self.core.stop();
        self.perform();
        let n = stopping.calls;
        let mut tasks = tokio::task::JoinSet::new();
        let ended = now_ns();
        for o in stopping.close {
            let ctx = self.ctx.clone();
            tasks.spawn(async move {
                close(&ctx, o, ended).await;
                // Written directly: the state writer stops with us.
                let _ = ctx
                    .storage
                    .set_sensor_state(o.sensor, SensorState::Offline)
                    .await;
            });
        }
        if n > 0 {
            tracing::info!("shutting down: BYE to {n} sensors");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let _ = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        // Let the BYEs and the un-REGISTER be answered (or retransmitted once).
        let grace =
            tokio::time::Instant::now() + Duration::from_millis(if n > 0 { 300 } else { 50 });
        let wait_unregister = stopping.unregistering;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(UaEvent::Registration(RegistrationEvent::Unregistered)) if wait_unregister => {
                        tracing::info!("unregistered");
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                () = tokio::time::sleep_until(grace), if !wait_unregister => break,
                () = tokio::time::sleep_until(grace + Duration::from_millis(1000)) => break,
            }
        }
    }
}

//! The TU's shell: one task that feeds the user agent's events, the control
//! socket's requests, timer wake-ups and SIGHUP to the sans-I/O [`Core`]
//! with the time, and carries out what it asks for.
//!
//! The task never waits for the user agent (the driver would wait for it
//! when its event queue is full): user agent work goes through [`UaPump`]
//! in order, and anything slow (storage, media set-up) runs in spawned
//! tasks that report back as [`Command::Report`]s.

use super::control::{Reply, Request};
use super::core::{
    Action, Core, Now, OpenArgs, Opened, RenegotiateError, ReplyTo, Report, SetupError,
};
use super::credentials::Credentials;
use crate::media::{MediaHandle, StreamSetup, stream_spec};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::stats::{StreamInfo, StreamsRegistry};
use crate::storage::{NewSession, Order, SampleQuery, SensorId, SensorState, SessionId, Storage};
use sipsensor_protocol::sdp::Agreed;
use sipsensor_protocol::sip::registration::RegistrationEvent;
use sipsensor_protocol::sip::ua::driver::{self, UaHandle};
use sipsensor_protocol::sip::ua::{SessionId as UaSession, UaEvent, UserAgent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What the TU is told besides user agent events.
pub enum Command {
    Control(Request, oneshot::Sender<Reply>),
    /// Work done for the core.
    Report(Report),
    Shutdown(oneshot::Sender<()>),
}

/// Runs user agent commands in order, without making the TU wait.
#[derive(Clone)]
pub struct UaPump(mpsc::UnboundedSender<driver::Command>);

impl UaPump {
    fn start(handle: UaHandle) -> UaPump {
        let (tx, mut rx) = mpsc::unbounded_channel::<driver::Command>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Everything queued runs in one turn of the driver: each
                // turn costs a pass over all transactions and sessions.
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                let ran = handle
                    .with(move |ua, now| {
                        for c in batch {
                            c(ua, now);
                        }
                    })
                    .await;
                if ran.is_none() {
                    break;
                }
            }
        });
        UaPump(tx)
    }

    pub fn fire(&self, f: impl FnOnce(&mut UserAgent, Instant) + Send + 'static) {
        let _ = self.0.send(Box::new(f));
    }

    /// Runs `f` after everything queued before it; its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserAgent, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.fire(move |ua, now| {
            let _ = tx.send(f(ua, now));
        });
        rx.await.ok()
    }
}

/// What spawned tasks share.
#[derive(Clone)]
pub struct Ctx {
    pub ua: UaPump,
    pub storage: Arc<dyn Storage>,
    pub streams: Arc<StreamsRegistry>,
    pub media: MediaHandle,
    pub tx: mpsc::UnboundedSender<Command>,
    pub cname: String,
    /// Sensor states, written in the order they happen.
    pub states: mpsc::UnboundedSender<(String, SensorState)>,
}

impl Ctx {
    fn report(&self, r: Report) {
        let _ = self.tx.send(Command::Report(r));
    }
}

/// Writes sensor states one after the other (creating sensors on first
/// sight), so a later state never lands before an earlier one.
fn state_writer(storage: Arc<dyn Storage>) -> mpsc::UnboundedSender<(String, SensorState)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, SensorState)>();
    tokio::spawn(async move {
        let mut ids: HashMap<String, SensorId> = HashMap::new();
        while let Some((aor, state)) = rx.recv().await {
            let id = match ids.get(&aor) {
                Some(id) => *id,
                None => match storage.upsert_sensor(&aor, None).await {
                    Ok(s) => {
                        ids.insert(aor.clone(), s.id);
                        s.id
                    }
                    Err(e) => {
                        tracing::error!("cannot record sensor {aor}: {e}");
                        continue;
                    }
                },
            };
            if let Err(e) = storage.set_sensor_state(id, state).await {
                tracing::error!("cannot record the state of {aor}: {e}");
            }
        }
    });
    tx
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

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
            Action::Reject {
                session,
                status,
                reason,
            } => ctx.ua.fire(move |ua, now| {
                let _ = ua.reject(session, status, Some(&reason), now);
            }),
            Action::AnswerReoffer { session, answer } => ctx.ua.fire(move |ua, now| {
                let _ = ua.answer_reoffer(session, answer, now);
            }),
            Action::Hangup(session) => ctx.ua.fire(move |ua, now| {
                let _ = ua.hangup(session, now);
            }),
            Action::Call {
                call,
                target,
                offer,
            } => {
                let ctx = ctx.clone();
                self.ctx.ua.fire(move |ua, now| {
                    let result = ua.call(&target, offer, now);
                    ctx.report(Report::Placed { call, result });
                });
            }
            Action::Reinvite { session, offer } => {
                let ctx = ctx.clone();
                self.ctx.ua.fire(move |ua, now| {
                    if let Err(error) = ua.reinvite(session, offer, now) {
                        ctx.report(Report::ReinviteFailed { session, error });
                    }
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
                answer,
            } => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let result = renegotiate(&ctx, opened, &call_id, agreed).await;
                    ctx.report(Report::Renegotiated {
                        session,
                        answer,
                        result,
                    });
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
            Action::SetState { aor, state } => {
                let _ = ctx.states.send((aor, state));
            }
            Action::Count(reason) => {
                self.metrics
                    .packets_rejected
                    .get_or_create(&[("reason", reason)])
                    .inc();
            }
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

/// An incoming call: stored first, then answered with `answer`; what was
/// built is released again when the answer cannot be sent.
async fn open_and_accept(
    ctx: &Ctx,
    session: UaSession,
    args: OpenArgs,
    answer: Vec<u8>,
) -> Result<Opened, SetupError> {
    let o = open(ctx, args, true).await?;
    let accepted = ctx
        .ua
        .run(move |ua, now| ua.accept(session, answer, now))
        .await;
    match accepted {
        Some(Ok(())) => Ok(o),
        other => {
            close(ctx, o, now_ns()).await;
            Err(SetupError::NotAccepted(format!("{other:?}")))
        }
    }
}

/// The time of the sensor's latest stored sample.
async fn last_sample_ns(storage: &dyn Storage, sensor: SensorId) -> Option<i64> {
    storage
        .samples(&SampleQuery {
            sensor,
            from_ns: i64::MIN,
            to_ns: crate::storage::TS_MAX,
            limit: 1,
            order: Order::Desc,
            after: None,
        })
        .await
        .ok()?
        .first()
        .map(|s| s.ts_ns)
}

fn stream_info(a: &OpenArgs, sensor: SensorId, session: SessionId) -> StreamInfo {
    let spec = stream_spec(&a.agreed.description);
    StreamInfo {
        sensor,
        aor: a.aor.clone(),
        session,
        call_id: a.call_id.clone(),
        ssrc: a.agreed.remote_ssrc.unwrap_or(0),
        remote: a.agreed.remote.map(|r| r.rtp),
        rate_hz: spec.rate_hz,
        channels: spec.channels,
        started_ns: a.started_ns,
    }
}

/// Records the session and starts receiving. With `storage_first` the
/// record exists before the media stream (an incoming call is answered only
/// once it can be stored); without, the stream starts first and holds its
/// packets until the record exists (our call: the sensor streams as soon
/// as it answers).
async fn open(ctx: &Ctx, a: OpenArgs, storage_first: bool) -> Result<Opened, SetupError> {
    let storage_err = |e: crate::storage::StorageError| SetupError::Open {
        status: 500,
        reason: format!("storage: {e}"),
    };
    let sensor = match a.sensor {
        Some(s) => s,
        None => {
            ctx.storage
                .upsert_sensor(&a.aor, None)
                .await
                .map_err(storage_err)?
                .id
        }
    };
    let previous = last_sample_ns(ctx.storage.as_ref(), sensor).await;
    let new = NewSession {
        sensor,
        call_id: a.call_id.clone(),
        ssrc: a.agreed.remote_ssrc.unwrap_or(0),
        stream: stream_spec(&a.agreed.description),
        started_ns: a.started_ns,
    };
    let setup = |session: Option<SessionId>, stats| StreamSetup {
        sensor,
        aor: a.aor.clone(),
        session,
        agreed: a.agreed.clone(),
        signalling_ip: a.signalling_ip,
        local_ssrc: a.local_ssrc,
        cname: ctx.cname.clone(),
        previous_sample_ns: previous,
        stats,
    };
    let media_err = |e: crate::media::MediaError| SetupError::Open {
        status: match e {
            crate::media::MediaError::Full(_) => 503,
            _ => 500,
        },
        reason: e.to_string(),
    };
    let (record, key) = if storage_first {
        let record = ctx.storage.open_session(&new).await.map_err(storage_err)?;
        let stats = ctx.streams.open(stream_info(&a, sensor, record.id));
        let key = match ctx.media.add(setup(Some(record.id), stats)).await {
            Ok(k) => k,
            Err(e) => {
                let _ = ctx.storage.close_session(record.id, now_ns()).await;
                return Err(media_err(e));
            }
        };
        (record.id, key)
    } else {
        let stats = ctx.streams.open(stream_info(&a, sensor, SessionId(0)));
        let key = ctx.media.add(setup(None, stats)).await.map_err(media_err)?;
        let record = match ctx.storage.open_session(&new).await {
            Ok(r) => r,
            Err(e) => {
                ctx.media.remove(key).await;
                return Err(storage_err(e));
            }
        };
        ctx.media.update(key, a.agreed.clone(), record.id).await;
        (record.id, key)
    };
    let _ = ctx.states.send((a.aor.clone(), SensorState::Streaming));
    Ok(Opened {
        sensor,
        session: record,
        media: key,
    })
}

/// Ends a call's stream: rows to the writer, BYE (RTCP) to the agent, the
/// record closed.
async fn close(ctx: &Ctx, o: Opened, ended_ns: i64) {
    if let Some(t) = ctx.media.remove(o.media).await {
        tracing::debug!(
            "stream closed: {} packets, {} lost, {} duplicates, {} samples, {} events, {} gaps",
            t.received,
            t.lost,
            t.duplicates,
            t.samples,
            t.events,
            t.gaps
        );
    }
    if let Err(e) = ctx.storage.close_session(o.session, ended_ns).await {
        tracing::error!("cannot close session record {}: {e}", o.session);
    }
}

/// A renegotiated stream (docs/protocol.md 3.4): a new record for the new
/// description (the old one closed), installed in the media thread, which
/// keeps decoding the old `cfg`'s late packets under the old record.
async fn renegotiate(
    ctx: &Ctx,
    o: Opened,
    call_id: &str,
    agreed: Agreed,
) -> Result<(SessionId, Agreed), RenegotiateError> {
    let now = now_ns();
    let record = ctx
        .storage
        .open_session(&NewSession {
            sensor: o.sensor,
            call_id: call_id.to_string(),
            ssrc: agreed.remote_ssrc.unwrap_or(0),
            stream: stream_spec(&agreed.description),
            started_ns: now,
        })
        .await
        .map_err(RenegotiateError::Storage)?;
    if !ctx.media.update(o.media, agreed.clone(), record.id).await {
        return Err(RenegotiateError::Gone);
    }
    if let Err(e) = ctx.storage.close_session(o.session, now).await {
        tracing::error!("cannot close session record {}: {e}", o.session);
    }
    Ok((record.id, agreed))
}

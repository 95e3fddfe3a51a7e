//! The shell's effects: the user agent pump, the storage and media work
//! of a call (each in its own task, reporting back to the core), and the
//! sensor-state writer.

use super::Command;
use crate::media::{MediaHandle, StreamSetup, stream_spec};
use crate::sip::core::{OpenArgs, Opened, RenegotiateError, Report, SetupError};
use crate::sip::offer;
use crate::stats::{StreamInfo, StreamsRegistry};
use crate::storage::{NewSession, Order, SampleQuery, SensorId, SensorState, SessionId, Storage};
use sipsensor_protocol::{Agreed, AgreedRecovery};
use sipsensor_protocol::{SessionId as UaSession, UserAgent};
use sipsensor_runtime::ua_driver::{self as driver, UaHandle};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Runs user agent commands in order, without making the TU wait.
#[derive(Clone)]
pub struct UaPump(mpsc::UnboundedSender<driver::Command>);

impl UaPump {
    pub(super) fn start(handle: UaHandle) -> UaPump {
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
    pub(super) fn report(&self, r: Report) {
        let _ = self.tx.send(Command::Report(r));
    }
}

/// Writes sensor states one after the other (creating sensors on first
/// sight), so a later state never lands before an earlier one.
pub(super) fn state_writer(
    storage: Arc<dyn Storage>,
) -> mpsc::UnboundedSender<(String, SensorState)> {
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

pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// An incoming call: stored first, then answered with `answer`; what was
/// built is released again when the answer cannot be sent.
pub(super) async fn open_and_accept(
    ctx: &Ctx,
    session: UaSession,
    args: OpenArgs,
    answer: Vec<u8>,
) -> Result<Opened, SetupError> {
    let o = open(ctx, args, true).await?;
    let answer = with_mark_of(ctx, o.sensor, answer).await;
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

/// Our SDP with the sensor's committed-through mark (docs/protocol.md
/// 11.1, 11.4) as its backfill `mark`. A mark storage cannot give is 0:
/// one too low costs a backfill of what is stored already (kept once),
/// one too high would lose data.
pub(super) async fn with_mark_of(ctx: &Ctx, sensor: SensorId, sdp: Vec<u8>) -> Vec<u8> {
    let mark = match ctx.storage.committed_through(sensor).await {
        Ok(m) => m.and_then(|ns| u64::try_from(ns).ok()).unwrap_or(0),
        Err(e) => {
            tracing::error!("cannot read the committed mark of sensor {}: {e}", sensor.0);
            0
        }
    };
    offer::with_backfill_mark(&sdp, mark)
}

/// [`with_mark_of`] for a sensor known by its AOR (one we call); a sensor
/// storage does not know yet holds nothing: mark 0.
pub(super) async fn stamp_mark(ctx: &Ctx, aor: &str, sdp: Vec<u8>) -> Vec<u8> {
    match ctx.storage.sensor_by_aor(aor).await {
        Ok(Some(s)) => with_mark_of(ctx, s.id, sdp).await,
        _ => offer::with_backfill_mark(&sdp, 0),
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
pub(super) async fn open(
    ctx: &Ctx,
    a: OpenArgs,
    storage_first: bool,
) -> Result<Opened, SetupError> {
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
    // A sensor we hold nothing of whose agent spooled since `oldest`
    // (docs/protocol.md 11.1): the session's break gap runs from just
    // before it, so the committed mark stops there until backfill fills
    // it. Without it the mark jumped to the first live samples and the
    // agent, told everything before them was held, stopped backfilling.
    let previous = previous.or_else(|| first_break_from(&a.recovery));
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
        recovery: a.recovery.clone(),
        signalling_ip: a.signalling_ip,
        local_ssrc: a.local_ssrc,
        cname: ctx.cname.clone(),
        previous_sample_ns: previous,
        stats,
        // Acknowledgement comes with backfill (docs/protocol.md 11.1, 11.4).
        acknowledge: a.recovery.backfill.is_some(),
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
        ctx.media
            .update(key, a.agreed.clone(), a.recovery.clone(), record.id)
            .await;
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
pub(super) async fn close(ctx: &Ctx, o: Opened, ended_ns: i64) {
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
pub(super) async fn renegotiate(
    ctx: &Ctx,
    o: Opened,
    call_id: &str,
    agreed: Agreed,
    recovery: AgreedRecovery,
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
    if !ctx
        .media
        .update(o.media, agreed.clone(), recovery, record.id)
        .await
    {
        return Err(RenegotiateError::Gone);
    }
    if let Err(e) = ctx.storage.close_session(o.session, now).await {
        tracing::error!("cannot close session record {}: {e}", o.session);
    }
    Ok((record.id, agreed))
}

/// Where a first session's break gap starts for a sensor with no stored
/// sample: just before the agent's oldest spooled instant, when it agreed
/// backfill and stated one.
fn first_break_from(recovery: &sipsensor_protocol::AgreedRecovery) -> Option<i64> {
    let oldest = recovery.backfill.as_ref()?.oldest?;
    i64::try_from(oldest).ok()?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::first_break_from;
    use sipsensor_protocol::{AgreedBackfill, AgreedRecovery};

    /// A first session of a sensor we hold nothing of: the break gap
    /// starts before the agent's oldest spooled instant, so the mark waits
    /// for the backfill (make bench-recovery-catch-up: it jumped to the
    /// live samples, and 4 backfill packets of an hour went out).
    #[test]
    fn a_first_session_breaks_from_just_before_the_agents_oldest_instant() {
        let with = |oldest| AgreedRecovery {
            instant_id: Some(1),
            backfill: Some(AgreedBackfill {
                payload_type: 100,
                mark: 0,
                oldest,
                max_rate: Some(20_000),
                ssrc: None,
            }),
            ..AgreedRecovery::default()
        };
        assert_eq!(first_break_from(&with(Some(1_000))), Some(999));
        assert_eq!(first_break_from(&with(None)), None);
        assert_eq!(first_break_from(&with(Some(u64::MAX))), None);
        assert_eq!(first_break_from(&AgreedRecovery::default()), None);
    }
}

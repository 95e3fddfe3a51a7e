//! `sipsensor-collector call` and `set-rate`: ask the running collector
//! over its control socket ([`super::control`]).

use super::control::{self, CallRequest, Request, WantedChannel, WantedStream};
use crate::config::{self, Config};
use std::path::PathBuf;

/// Where the running collector is.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Read `sip.control_socket` from this config file.
    #[arg(short, long, conflicts_with = "socket")]
    pub config: Option<PathBuf>,
    /// The control socket itself.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl Target {
    pub(crate) fn socket(&self) -> Result<PathBuf, String> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
        match Config::load(&path) {
            Ok(c) => Ok(c.sip.control_socket),
            Err(e) if self.config.is_some() => Err(e.to_string()),
            // No config at the default place: the default socket.
            Err(_) => Ok(PathBuf::from(super::config::DEFAULT_CONTROL_SOCKET)),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct CallArgs {
    /// The sensor's address of record, e.g. sip:sensor-0001@example.net.
    pub aor: String,
    #[command(flatten)]
    pub target: Target,
    /// For a sensor that never called this collector: its RTP clock in Hz
    /// (its highest sample rate).
    #[arg(long)]
    pub clock: Option<u32>,
    /// Sample rate to ask for (default: the clock rate).
    #[arg(long, requires = "clock")]
    pub rate: Option<f64>,
    /// Sampling instants per packet (default 1).
    #[arg(long, requires = "clock")]
    pub spp: Option<u8>,
    /// A channel to ask for, NAME:UNIT:SCALE (SenML unit, decimal
    /// exponent), e.g. temperature:Cel:-2. Repeat for each.
    #[arg(long = "channel", value_name = "NAME:UNIT:SCALE", requires = "clock")]
    pub channels: Vec<WantedChannel>,
    /// An event input to ask for, by name. Repeat for each.
    #[arg(long = "input", value_name = "NAME", requires = "clock")]
    pub inputs: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetRateArgs {
    /// The sensor: its address of record or its user name.
    pub sensor: String,
    /// The new sample rate in Hz (the sensor's clock divided by a whole
    /// number; the nearest allowed rate at or below is taken).
    pub hz: f64,
    #[command(flatten)]
    pub target: Target,
}

fn ask(target: &Target, req: Request) -> Result<(), String> {
    let socket = target.socket()?;
    let reply =
        control::request(&socket, &req, control::CLIENT_TIMEOUT).map_err(|e| e.to_string())?;
    if reply.ok {
        println!("{}", reply.message);
        Ok(())
    } else {
        Err(reply.message)
    }
}

/// `sipsensor-collector call AOR`.
pub fn call(a: CallArgs) -> Result<(), String> {
    let stream = a.clock.map(|clock_hz| WantedStream {
        clock_hz,
        rate_hz: a.rate,
        samples_per_packet: a.spp,
        channels: a.channels.clone(),
        inputs: a.inputs.clone(),
    });
    ask(
        &a.target,
        Request::Call(CallRequest {
            aor: a.aor.clone(),
            stream,
        }),
    )
}

/// `sipsensor-collector set-rate SENSOR HZ`.
pub fn set_rate(a: SetRateArgs) -> Result<(), String> {
    ask(
        &a.target,
        Request::SetRate {
            sensor: a.sensor.clone(),
            hz: a.hz,
        },
    )
}

//! `sipsensor_collector_fleet_sensors{version,update}`: sensors per
//! reported version and update state, read from the view at scrape time.

use super::FleetView;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::{Arc, OnceLock};

/// Registered with the metrics at start; the view is set once loaded.
#[derive(Debug, Default, Clone)]
pub struct FleetCollector(pub Arc<OnceLock<Arc<FleetView>>>);

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(fleet) = self.0.get() else {
            return Ok(());
        };
        let mut m = encoder.encode_descriptor(
            "sipsensor_collector_fleet_sensors",
            "Sensors by the image version and update state they last reported",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for v in fleet.versions() {
            for (update, n) in &v.by_update {
                let labels = [("version", v.version.as_str()), ("update", update.as_str())];
                ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX))
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

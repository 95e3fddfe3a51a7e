//! Units of measurement as SenML unit symbols (RFC 8428 section 12.1).
//!
//! The SDP describes each channel's unit as a SenML symbol, so a collector
//! needs no out-of-band knowledge. The table is the SenML units registry as
//! created by RFC 8428 section 12.1 and extended by RFC 8798 section 2.
//! Symbols are case-sensitive ("Pa" is pascal, "pa" is nothing). Secondary
//! units (RFC 8798 section 3, e.g. `hPa`, `mV`) are absent: SenML has the
//! producer send the primary unit and scale the value instead, which is
//! what a channel's scale does. Symbols RFC 8428 marks NOT RECOMMENDED
//! (g, l, l/s, 1/min, beat/min, beats, Bspl) are accepted because consumers
//! must understand them.

use std::fmt;

/// A registered SenML unit symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit(&'static str);

/// The SenML Units registry: RFC 8428 section 12.1 (Table 6) plus the
/// primary units RFC 8798 section 2 added. Secondary units (RFC 8798
/// section 3, e.g. `hPa`, `mV`) are deliberately absent: SenML requires a
/// producer to send the primary unit and scale the value instead, which is
/// what a channel's `scale` does.
const REGISTRY: &[(&str, &str)] = &[
    // RFC 8428 section 12.1
    ("m", "meter"),
    ("kg", "kilogram"),
    ("g", "gram"),
    ("s", "second"),
    ("A", "ampere"),
    ("K", "kelvin"),
    ("cd", "candela"),
    ("mol", "mole"),
    ("Hz", "hertz"),
    ("rad", "radian"),
    ("sr", "steradian"),
    ("N", "newton"),
    ("Pa", "pascal"),
    ("J", "joule"),
    ("W", "watt"),
    ("C", "coulomb"),
    ("V", "volt"),
    ("F", "farad"),
    ("Ohm", "ohm"),
    ("S", "siemens"),
    ("Wb", "weber"),
    ("T", "tesla"),
    ("H", "henry"),
    ("Cel", "degrees Celsius"),
    ("lm", "lumen"),
    ("lx", "lux"),
    ("Bq", "becquerel"),
    ("Gy", "gray"),
    ("Sv", "sievert"),
    ("kat", "katal"),
    ("m2", "square meter"),
    ("m3", "cubic meter"),
    ("l", "liter"),
    ("m/s", "meter per second"),
    ("m/s2", "meter per square second"),
    ("m3/s", "cubic meter per second"),
    ("l/s", "liter per second"),
    ("W/m2", "watt per square meter"),
    ("cd/m2", "candela per square meter"),
    ("bit", "bit"),
    ("bit/s", "bit per second"),
    ("lat", "degrees latitude"),
    ("lon", "degrees longitude"),
    ("pH", "pH value"),
    ("dB", "decibel"),
    ("dBW", "decibel relative to 1 W"),
    ("Bspl", "bel (sound pressure level)"),
    ("count", "counter value"),
    ("/", "ratio"),
    ("%", "ratio in percent"),
    ("%RH", "relative humidity in percent"),
    ("%EL", "remaining battery energy level in percent"),
    ("EL", "remaining battery energy level in seconds"),
    ("1/s", "events per second"),
    ("1/min", "events per minute"),
    ("beat/min", "heart rate in beats per minute"),
    ("beats", "cumulative number of heart beats"),
    ("S/m", "siemens per meter"),
    // RFC 8798 section 2
    ("B", "byte"),
    ("VA", "volt-ampere"),
    ("VAs", "volt-ampere second"),
    ("var", "volt-ampere reactive"),
    ("vars", "volt-ampere reactive second"),
    ("J/m", "joule per meter"),
    ("kg/m3", "kilogram per cubic meter"),
    ("deg", "degree (angle)"),
];

impl Unit {
    pub const CELSIUS: Unit = Unit("Cel");
    pub const PASCAL: Unit = Unit("Pa");
    pub const RELATIVE_HUMIDITY: Unit = Unit("%RH");
    pub const VOLT: Unit = Unit("V");
    pub const AMPERE: Unit = Unit("A");
    pub const LUX: Unit = Unit("lx");
    pub const METER_PER_SQUARE_SECOND: Unit = Unit("m/s2");
    pub const TESLA: Unit = Unit("T");
    pub const RATIO: Unit = Unit("/");

    /// The registered unit with this exact (case-sensitive) symbol.
    pub fn from_symbol(symbol: &str) -> Option<Unit> {
        REGISTRY
            .iter()
            .find(|(s, _)| *s == symbol)
            .map(|(s, _)| Unit(s))
    }

    pub fn symbol(self) -> &'static str {
        self.0
    }

    /// What the unit measures, for `probe` output and error hints.
    pub fn description(self) -> &'static str {
        REGISTRY
            .iter()
            .find(|(s, _)| *s == self.0)
            .map_or("", |(_, d)| d)
    }

    /// Every registered unit, in registry order.
    pub fn all() -> impl Iterator<Item = Unit> {
        REGISTRY.iter().map(|(s, _)| Unit(s))
    }

    /// Every registered symbol, for "expected one of" messages.
    pub fn all_symbols() -> impl Iterator<Item = &'static str> {
        REGISTRY.iter().map(|(s, _)| *s)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_symbols_are_found_case_sensitively() {
        assert_eq!(Unit::from_symbol("Cel"), Some(Unit::CELSIUS));
        assert_eq!(Unit::from_symbol("%RH"), Some(Unit::RELATIVE_HUMIDITY));
        assert_eq!(Unit::from_symbol("kg/m3").map(Unit::symbol), Some("kg/m3"));
        assert_eq!(Unit::from_symbol("cel"), None);
        assert_eq!(Unit::from_symbol("degC"), None);
        // A secondary unit (RFC 8798 section 3) is not a primary symbol.
        assert_eq!(Unit::from_symbol("hPa"), None);
    }

    #[test]
    fn constants_are_registered() {
        for unit in [
            Unit::CELSIUS,
            Unit::PASCAL,
            Unit::RELATIVE_HUMIDITY,
            Unit::VOLT,
            Unit::AMPERE,
            Unit::LUX,
            Unit::METER_PER_SQUARE_SECOND,
            Unit::TESLA,
            Unit::RATIO,
        ] {
            assert_eq!(Unit::from_symbol(unit.symbol()), Some(unit));
            assert!(!unit.description().is_empty());
        }
    }

    #[test]
    fn registry_has_no_duplicates() {
        let mut all: Vec<_> = Unit::all_symbols().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}

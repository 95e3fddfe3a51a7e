//! Units of measurement as SenML unit symbols.
//!
//! The table is the SenML units registry as created by RFC 8428 section
//! 12.1 and extended by RFC 8798 section 2. Symbols are case-sensitive
//! ("Pa" is pascal, "pa" is nothing).

use std::fmt;

/// RFC 8428 12.1 (first block) and RFC 8798 2 (last line). Symbols marked
/// "NOT RECOMMENDED" there (g, l, l/s, 1/min, beat/min, beats, Bspl) are
/// still accepted because RFC 8428 asks consumers to understand them.
const SENML_UNITS: &[&str] = &[
    "m", "kg", "g", "s", "A", "K", "cd", "mol", "Hz", "rad", "sr", "N", "Pa", "J", "W", "C", "V",
    "F", "Ohm", "S", "Wb", "T", "H", "Cel", "lm", "lx", "Bq", "Gy", "Sv", "kat", "m2", "m3", "l",
    "m/s", "m/s2", "m3/s", "l/s", "W/m2", "cd/m2", "bit", "bit/s", "lat", "lon", "pH", "dB", "dBW",
    "Bspl", "count", "/", "%", "%RH", "%EL", "EL", "1/s", "1/min", "beat/min", "beats",
    "S/m", //
    "B", "VA", "VAs", "var", "vars", "J/m", "kg/m3", "deg",
];

/// A registered SenML unit symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit(&'static str);

impl Unit {
    /// The unit with this exact symbol, if the registry has it.
    pub fn from_symbol(symbol: &str) -> Option<Unit> {
        SENML_UNITS.iter().find(|u| **u == symbol).map(|u| Unit(u))
    }

    /// The symbol as registered, e.g. `"Cel"`.
    pub fn symbol(self) -> &'static str {
        self.0
    }

    /// Every registered unit, in registry order.
    pub fn all() -> impl Iterator<Item = Unit> {
        SENML_UNITS.iter().map(|u| Unit(u))
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
    fn known_symbols_resolve_exactly() {
        assert_eq!(Unit::from_symbol("Cel").unwrap().symbol(), "Cel");
        assert_eq!(Unit::from_symbol("%RH").unwrap().to_string(), "%RH");
        assert!(Unit::from_symbol("kg/m3").is_some());
        assert!(Unit::from_symbol("cel").is_none());
        assert!(Unit::from_symbol("degC").is_none());
        assert!(Unit::from_symbol("").is_none());
    }

    #[test]
    fn symbols_are_unique_and_fit_one_attribute_field() {
        let all: Vec<Unit> = Unit::all().collect();
        assert_eq!(all.len(), 66);
        for (i, u) in all.iter().enumerate() {
            // Fields of a=sensor-channel are separated by spaces.
            assert!(u.symbol().bytes().all(|b| b.is_ascii_graphic()), "{u}");
            assert!(!all[..i].contains(u), "duplicate {u}");
        }
    }
}

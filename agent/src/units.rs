//! SenML unit symbols: the protocol crate's registry, which the stream's
//! SDP carries (docs/protocol.md section 2.3), and the decimal scales the
//! wire gives each channel's integers.

pub use sipsensor_protocol::Unit;

/// `scale` as `10^n`, when it is one (the wire carries decimal exponents,
/// docs/protocol.md 2.3).
pub fn decimal_exponent(scale: f64) -> Option<i8> {
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let exponent = scale.log10().round();
    let exact = 10f64.powi(exponent as i32);
    ((scale - exact).abs() <= exact * 1e-9)
        .then(|| i8::try_from(exponent as i32).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_ten_become_exponents() {
        assert_eq!(decimal_exponent(0.01), Some(-2));
        assert_eq!(decimal_exponent(1.0), Some(0));
        assert_eq!(decimal_exponent(1000.0), Some(3));
        assert_eq!(decimal_exponent(0.001), Some(-3));
        assert_eq!(decimal_exponent(0.5), None);
        assert_eq!(decimal_exponent(0.0), None);
        assert_eq!(decimal_exponent(f64::NAN), None);
    }
}

//! Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `10M`, `1e3`): the
//! project's one parser, exact and in integers.
//!
//! A quantity is held as a whole number of milli-units, the finest grain any
//! rudder component acts on (millicores, bytes, bits per second). Finer
//! values (`100u`, `1n`) round *up* to the next milli-unit, as Kubernetes'
//! `MilliValue()` does, so a request that is not zero never counts as zero.
//! Nothing goes through floating point: `9m` is 9 millicores everywhere.
//!
//! The grammar is Kubernetes' (`k8s.io/apimachinery/pkg/api/resource`):
//! an optional sign, a decimal number (`1`, `1.5`, `.5`, `5.`), then one
//! suffix: binary (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), decimal SI (`n` `u` `m`
//! `k` `M` `G` `T` `P` `E`) or a decimal exponent (`e3`, `E-2`). Note `K`
//! and `GB` are not quantities.

use std::{fmt, str::FromStr};

/// The largest magnitude accepted, in milli-units: 2^63 whole units
/// (8 Ei), far above any real amount, small enough that sums of many such
/// values cannot overflow an `i128`.
const MAX_MILLI: i128 = (1_i128 << 63) * 1000;

/// Significant digits kept exactly; longer mantissas are refused rather
/// than rounded (Kubernetes itself keeps far fewer).
const MAX_DIGITS: usize = 30;

/// A parsed quantity: an exact count of milli-units (rounded up from finer
/// input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    milli: i128,
}

/// Why a text is not a quantity. The messages complete "`x` is not a
/// quantity: ...".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Nothing to parse.
    #[error("it is empty")]
    Empty,
    /// No digits before the suffix.
    #[error("it has no number before its suffix")]
    NoNumber,
    /// More than one decimal point, or a stray character in the number.
    #[error("{0:?} is not a decimal number")]
    BadNumber(String),
    /// A suffix Kubernetes does not know.
    #[error(
        "unknown suffix {0:?} (use one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)"
    )]
    BadSuffix(String),
    /// Too large to represent, or too many digits to keep exactly.
    #[error("it is too large (at most 8Ei)")]
    TooLarge,
}

impl Quantity {
    /// A quantity of `milli` milli-units.
    #[must_use]
    pub const fn from_milli(milli: i128) -> Self {
        Self { milli }
    }

    /// A quantity of `units` whole units.
    #[must_use]
    pub const fn from_units(units: i64) -> Self {
        Self {
            milli: units as i128 * 1000,
        }
    }

    /// The exact value in milli-units (`500m` -> 500, `2` -> 2000).
    #[must_use]
    pub const fn milli(self) -> i128 {
        self.milli
    }

    /// Whole units, rounded up (`1500m` -> 2; a request of `1m` byte is one byte).
    #[must_use]
    pub const fn units_ceil(self) -> i128 {
        self.milli.div_euclid(1000)
            + if self.milli.rem_euclid(1000) == 0 {
                0
            } else {
                1
            }
    }

    /// Whole units, rounded down (a node's `1500m` cpu is one whole cpu).
    #[must_use]
    pub const fn units_floor(self) -> i128 {
        self.milli.div_euclid(1000)
    }

    /// Whether the quantity is below zero.
    #[must_use]
    pub const fn is_negative(self) -> bool {
        self.milli < 0
    }
}

/// Narrows an `i128` to `i64`, saturating at the ends: a quantity beyond
/// `i64` is absurd for every use here and is treated as "as much as possible".
#[must_use]
pub fn saturating_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Narrows an `i128` to `u64`: `None` below zero, saturating above.
#[must_use]
pub fn saturating_u64(value: i128) -> Option<u64> {
    (value >= 0).then(|| u64::try_from(value).unwrap_or(u64::MAX))
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, QuantityError> {
        parse(text)
    }
}

impl fmt::Display for Quantity {
    /// The canonical form: whole units when exact, milli-units otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.milli % 1000 == 0 {
            write!(f, "{}", self.milli / 1000)
        } else {
            write!(f, "{}m", self.milli)
        }
    }
}

/// How a suffix scales the number: `value * 10^decimal * 1024^binary`.
struct Scale {
    decimal: i32,
    binary: u32,
}

fn scale_of(suffix: &str) -> Result<Scale, QuantityError> {
    let decimal = |decimal| Ok(Scale { decimal, binary: 0 });
    let binary = |binary| Ok(Scale { decimal: 0, binary });
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let bad = || QuantityError::BadSuffix(suffix.to_owned());
            let exponent = suffix.strip_prefix(['e', 'E']).ok_or_else(bad)?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            // Beyond +-40 the value is either too large or rounds to 1m;
            // clamping keeps the arithmetic below bounded.
            let value: i32 = exponent.parse().unwrap_or(if exponent.starts_with('-') {
                i32::MIN
            } else {
                i32::MAX
            });
            decimal(value.clamp(-40, 40))
        }
    }
}

/// Parses a Kubernetes quantity exactly.
///
/// # Errors
/// [`QuantityError`] says what is wrong with the text.
pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, unsigned) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let scale = scale_of(suffix)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(QuantityError::NoNumber);
    }
    if fraction.contains('.') {
        return Err(QuantityError::BadNumber(number.to_owned()));
    }
    // The mantissa as an integer of `whole` and `fraction` digits, without
    // leading zeros (they carry no precision).
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(QuantityError::TooLarge);
    }
    let mantissa: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| QuantityError::TooLarge)?
    };
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| QuantityError::TooLarge)?;
    // milli = mantissa * 10^(3 + decimal - fraction_digits) * 1024^binary
    let mut milli = mantissa
        .checked_mul(1024_i128.pow(scale.binary))
        .ok_or(QuantityError::TooLarge)?;
    let exponent = 3 + scale.decimal - fraction_digits;
    if exponent >= 0 {
        let factor = 10_i128
            .checked_pow(exponent.unsigned_abs())
            .ok_or(QuantityError::TooLarge)?;
        milli = milli.checked_mul(factor).ok_or(QuantityError::TooLarge)?;
    } else {
        // Finer than a milli-unit: round up, so a non-zero amount stays
        // non-zero. 10^39 exceeds any mantissa we keep, so the result is 0 or 1.
        let divisor = 10_i128
            .checked_pow(exponent.unsigned_abs())
            .unwrap_or(i128::MAX);
        milli = milli / divisor + i128::from(milli % divisor != 0);
    }
    if milli > MAX_MILLI {
        return Err(QuantityError::TooLarge);
    }
    Ok(Quantity {
        milli: if negative { -milli } else { milli },
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn milli(text: &str) -> i128 {
        parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .milli()
    }

    #[test]
    fn every_suffix_scales_exactly() {
        assert_eq!(milli("9m"), 9);
        assert_eq!(milli("500m"), 500);
        assert_eq!(milli("2"), 2000);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("5."), 5000);
        assert_eq!(milli("1.5Gi"), 1_610_612_736_000);
        assert_eq!(milli("64Mi"), 64 * 1024 * 1024 * 1000);
        assert_eq!(milli("16302124Ki"), 16_302_124 * 1024 * 1000);
        assert_eq!(milli("10M"), 10_000_000_000);
        assert_eq!(milli("1G"), 1_000_000_000_000);
        assert_eq!(milli("500k"), 500_000_000);
        assert_eq!(milli("1e3"), 1_000_000);
        assert_eq!(milli("2E-3"), 2);
        assert_eq!(milli("1Ei"), (1_i128 << 60) * 1000);
        assert_eq!(milli("-1"), -1000);
        assert_eq!(milli("+1"), 1000);
        assert_eq!(milli("0"), 0);
    }

    #[test]
    fn finer_than_a_milli_unit_rounds_up() {
        assert_eq!(milli("100u"), 1);
        assert_eq!(milli("1n"), 1);
        assert_eq!(milli("1500u"), 2);
        assert_eq!(milli("0n"), 0);
        assert_eq!(milli("1e-30"), 1);
        assert_eq!(milli("1e-99999999999"), 1);
    }

    #[test]
    fn units_round_as_their_users_need() {
        let q = parse("1500m").expect("quantity");
        assert_eq!((q.units_ceil(), q.units_floor()), (2, 1));
        let q = parse("-1500m").expect("quantity");
        assert_eq!((q.units_ceil(), q.units_floor()), (-1, -2));
        assert_eq!(saturating_i64(i128::MAX), i64::MAX);
        assert_eq!(saturating_u64(-1), None);
    }

    #[test]
    fn malformed_text_says_why() {
        assert_eq!(parse(""), Err(QuantityError::Empty));
        assert_eq!(parse("m"), Err(QuantityError::NoNumber));
        assert_eq!(parse("."), Err(QuantityError::NoNumber));
        assert_eq!(parse("-"), Err(QuantityError::NoNumber));
        assert!(matches!(parse("1.2.3"), Err(QuantityError::BadNumber(_))));
        for bad in [
            "5 Gi", "abc", "1GB", "1K", "1e", "1e+", "1ee3", "1Gi ", " 1",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(QuantityError::BadSuffix(_) | QuantityError::NoNumber)
                ),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
        assert_eq!(parse("9Ei"), Err(QuantityError::TooLarge));
        assert_eq!(parse("1e40"), Err(QuantityError::TooLarge));
        assert_eq!(parse(&"9".repeat(31)), Err(QuantityError::TooLarge));
        assert_eq!(
            parse("1GB").map_err(|e| e.to_string()),
            Err("unknown suffix \"GB\" (use one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)".to_owned())
        );
    }

    const DECIMAL: [(&str, i32); 10] = [
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("", 0),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    const BINARY: [(&str, u32); 6] = [
        ("Ki", 1),
        ("Mi", 2),
        ("Gi", 3),
        ("Ti", 4),
        ("Pi", 5),
        ("Ei", 6),
    ];

    /// Reference value in nano-units (exact for everything generated below).
    fn nano(mantissa: u64, decimals: u32, decimal: i32, binary: u32) -> i128 {
        let mut value = i128::from(mantissa) * 1024_i128.pow(binary);
        let exponent = 9 + decimal - i32::try_from(decimals).expect("small");
        if exponent >= 0 {
            value *= 10_i128.pow(exponent.unsigned_abs());
        } else {
            value /= 10_i128.pow(exponent.unsigned_abs());
        }
        value
    }

    fn ceil_div(value: i128, by: i128) -> i128 {
        value / by + i128::from(value % by != 0)
    }

    proptest! {
        #[test]
        fn integers_with_any_decimal_suffix_are_exact(n in 0_u64..1_000_000_000, s in 0_usize..DECIMAL.len()) {
            let (suffix, decimal) = DECIMAL[s];
            let expected = ceil_div(nano(n, 0, decimal, 0), 1_000_000);
            let expected = if expected > MAX_MILLI { Err(QuantityError::TooLarge) } else { Ok(Quantity::from_milli(expected)) };
            prop_assert_eq!(parse(&format!("{n}{suffix}")), expected);
        }

        #[test]
        fn decimals_with_binary_suffixes_are_exact(n in 0_u64..10_000_000, point in 0_u32..4, s in 0_usize..BINARY.len()) {
            let (suffix, binary) = BINARY[s];
            let text = format!("{n}");
            let point = point.min(u32::try_from(text.len()).expect("short"));
            let split = text.len() - point as usize;
            let written = format!("{}.{}{suffix}", &text[..split], &text[split..]);
            let expected = ceil_div(
                i128::from(n) * 1024_i128.pow(binary) * 1000,
                10_i128.pow(point),
            );
            let expected = if expected > MAX_MILLI { Err(QuantityError::TooLarge) } else { Ok(Quantity::from_milli(expected)) };
            prop_assert_eq!(parse(&written), expected);
        }

        #[test]
        fn exponent_form_equals_the_suffix_form(n in 0_u64..1_000_000, s in 0_usize..DECIMAL.len()) {
            let (suffix, decimal) = DECIMAL[s];
            prop_assert_eq!(parse(&format!("{n}{suffix}")), parse(&format!("{n}e{decimal}")));
        }

        #[test]
        fn display_round_trips(m in -1_000_000_000_000_i128..1_000_000_000_000) {
            let q = Quantity::from_milli(m);
            prop_assert_eq!(parse(&q.to_string()), Ok(q));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,24}") {
            let _ = parse(&text);
        }

        #[test]
        fn quantity_like_text_never_panics(text in "[+-]?[0-9.]{0,40}([eE][+-]?[0-9]{0,12}|[numkMGTPE]|[KMGTPE]i)?") {
            if let Ok(q) = parse(&text) {
                prop_assert!(q.milli().abs() <= MAX_MILLI);
            }
        }
    }
}

//! Kubernetes resource quantities (`500m`, `0.5`, `64Mi`, `1G`, `129e6`) as integers.
//!
//! Kubernetes keeps quantities exact (no floating point) and rounds *up* when a
//! quantity is asked for an integer in a smaller unit (`MilliValue`, `Value`): `0.1m`
//! CPU is 1 milli-CPU and `0.5` bytes is 1 byte. This module does the same with
//! `i128` arithmetic, so cgroup limits computed from it match a kubelet's.

/// Why a string is not a quantity (messages leave out the input: callers name it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Nothing to parse.
    #[error("quantity is empty")]
    Empty,
    /// The numeric part is missing or malformed.
    #[error("not a quantity: expected a number such as 500m, 0.5, 64Mi or 1G")]
    BadNumber(String),
    /// The text after the number is not a known suffix.
    #[error("unknown suffix {suffix:?}: use one of m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e6")]
    BadSuffix {
        /// The whole quantity, for the message.
        quantity: String,
        /// The unrecognised suffix.
        suffix: String,
    },
    /// The value does not fit in a signed 64-bit integer.
    #[error("too large: a quantity must fit in 64 bits in its smallest unit")]
    TooLarge(String),
}

/// A parsed quantity: `digits × 10^exp10 × 1024^exp1024`, with a sign.
///
/// Keeping the decimal and binary scales apart avoids any rounding before the
/// caller picks its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    digits: u128,
    exp10: i32,
    exp1024: u32,
}

/// Milli-units of a quantity, rounded up (Kubernetes `MilliValue`): CPU `500m` → 500, `1` → 1000, `0.5` → 500.
pub fn parse_cpu_millis(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 3)
}

/// Whole units of a quantity, rounded up (Kubernetes `Value`): memory `64Mi` → 67108864, `1G` → 10^9, `129e6` → 129000000.
pub fn parse_bytes(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 0)
}

/// Checks that `s` is a well-formed quantity without converting it.
pub fn check(s: &str) -> Result<(), QuantityError> {
    parse(s).map(|_| ())
}

/// The quantity in units of `10^-extra_exp10`, rounded away from zero.
fn scaled(s: &str, extra_exp10: i32) -> Result<i64, QuantityError> {
    let p = parse(s)?;
    let too_large = || QuantityError::TooLarge(s.to_string());
    let mut value: u128 = p.digits;
    for _ in 0..p.exp1024 {
        value = value.checked_mul(1024).ok_or_else(too_large)?;
    }
    let exp = p.exp10 + extra_exp10;
    if exp >= 0 {
        for _ in 0..exp {
            value = value.checked_mul(10).ok_or_else(too_large)?;
            // Stop early: anything beyond i64 is rejected anyway, and a huge exponent
            // (`1e999999`) must not loop for long.
            if value > i64::MAX as u128 {
                return Err(too_large());
            }
        }
    } else {
        let mut divisor: u128 = 1;
        let mut underflow = false;
        for _ in 0..(-exp) {
            match divisor.checked_mul(10) {
                Some(d) => divisor = d,
                None => {
                    underflow = true;
                    break;
                }
            }
        }
        value = if underflow {
            // The divisor exceeds any u128 value: the result is a positive fraction < 1.
            u128::from(value != 0)
        } else {
            value.div_ceil(divisor)
        };
    }
    let magnitude = i64::try_from(value).map_err(|_| too_large())?;
    Ok(if p.negative { -magnitude } else { magnitude })
}

/// Splits `s` into sign, digits, decimal exponent and binary exponent.
fn parse(s: &str) -> Result<Parsed, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let bad_number = || QuantityError::BadNumber(s.to_string());
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(bad_number());
    }
    let mut digits: u128 = 0;
    let mut exp10: i32 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        let d = u128::from(c - b'0');
        match digits.checked_mul(10).and_then(|v| v.checked_add(d)) {
            Some(v) => digits = v,
            // More significant digits than u128 holds: drop the extra digits and keep
            // the magnitude with the exponent (only reachable with absurd inputs).
            None => exp10 += 1,
        }
    }
    exp10 -= i32::try_from(frac_part.len()).map_err(|_| bad_number())?;

    let bad_suffix = || QuantityError::BadSuffix {
        quantity: s.to_string(),
        suffix: suffix.to_string(),
    };
    let (suffix_exp10, exp1024) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ if suffix.starts_with(['e', 'E']) => {
            let exp = &suffix[1..];
            let digits_only = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits_only.is_empty() || !digits_only.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_suffix());
            }
            // Exponents beyond this range overflow or round to nothing anyway.
            let e: i32 = exp
                .parse()
                .map_err(|_| QuantityError::TooLarge(s.to_string()))?;
            (e, 0)
        }
        _ => return Err(bad_suffix()),
    };
    Ok(Parsed {
        negative,
        digits,
        exp10: exp10
            .checked_add(suffix_exp10)
            .ok_or_else(|| QuantityError::TooLarge(s.to_string()))?,
        exp1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_millis() {
        let cases: &[(&str, i64)] = &[
            ("500m", 500),
            ("1", 1000),
            ("0.5", 500),
            (".5", 500),
            ("1.", 1000),
            ("2", 2000),
            ("100m", 100),
            ("0.1m", 1), // rounds up like MilliValue
            ("1.0005", 1001),
            ("250000u", 250),
            ("1k", 1_000_000),
            ("1e-3", 1),
            ("+3", 3000),
            ("-1", -1000),
            ("0", 0),
            ("0m", 0),
        ];
        for (input, want) in cases {
            assert_eq!(parse_cpu_millis(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn bytes() {
        let cases: &[(&str, i64)] = &[
            ("64Mi", 64 * 1024 * 1024),
            ("1G", 1_000_000_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("129E6", 129_000_000),
            ("123Mi", 128_974_848),
            ("1Ki", 1024),
            ("1.5Gi", 1_610_612_736),
            ("0.5Ki", 512),
            ("1k", 1000),
            ("1M", 1_000_000),
            ("1T", 1_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1m", 1), // a thousandth of a byte rounds up
            ("0.5", 1),
            ("1e3", 1000),
            ("5e+2", 500),
            ("1e-1000", 1),
            ("0e-1000", 0),
        ];
        for (input, want) in cases {
            assert_eq!(parse_bytes(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("abc", "not a quantity"),
            ("Mi", "not a quantity"),
            (".", "not a quantity"),
            ("1.2.3", "not a quantity"),
            ("64MB", "unknown suffix \"MB\""),
            ("1mi", "unknown suffix"),
            ("1e", "unknown suffix"),
            ("1ex", "unknown suffix"),
            ("10Ei", "too large"),
            ("1e100", "too large"),
            ("1e99999999999", "too large"),
        ];
        for (input, want) in cases {
            let err = parse_bytes(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }
}

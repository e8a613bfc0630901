//! Canonical JSON: the one byte form a JSON value is hashed and stored in.
//!
//! - Object keys are sorted by their UTF-8 bytes; no whitespace anywhere.
//! - Strings escape `"`, `\` and control characters (`\b \f \n \r \t`, otherwise `\u00XX`
//!   in lowercase hex); every other character is written as raw UTF-8.
//! - Integers are written in decimal. Floats are written with their shortest round-trip
//!   digits, always with a `.` or an exponent so they stay floats when parsed back:
//!   `1.0`, `0.25`, `-0.0`, `1.5e300`, `1.0e-7`. Plain notation is used for magnitudes in
//!   `[1e-6, 1e21)`, exponent notation (`d.ddde±x`, at least one fractional digit)
//!   outside it.
//!
//! The writer does not depend on `serde_json`'s own formatting or on its `preserve_order`
//! feature, so the bytes (and every hash over them) stay the same across versions.

use serde_json::{Number, Value};

/// Where canonical bytes go: a buffer, or straight into a hasher.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The canonical encoding of `value`.
pub fn to_canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(value, &mut out);
    out
}

pub(crate) fn write_json(value: &Value, out: &mut impl Sink) {
    match value {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_json(item, out);
            }
            out.put(b"]");
        }
        Value::Object(map) => {
            out.put(b"{");
            // serde_json keeps keys sorted unless its `preserve_order` feature is on somewhere
            // in the build; only then is a sorted copy of the members needed.
            if map.keys().is_sorted_by(|a, b| a.as_bytes() <= b.as_bytes()) {
                write_members(map.iter(), out);
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                write_members(members.into_iter(), out);
            }
            out.put(b"}");
        }
    }
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut impl Sink) {
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.put(b",");
        }
        write_string(k, out);
        out.put(b":");
        write_json(v, out);
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The position of the first byte that needs escaping. Scans 32-byte blocks without early
/// exit (which the compiler vectorises), since long strings rarely need escapes at all.
fn next_escape(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut at = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if block.iter().fold(false, |any, &b| any | needs_escape(b)) {
            break;
        }
        at += BLOCK;
    }
    bytes[at..]
        .iter()
        .position(|&b| needs_escape(b))
        .map(|i| at + i)
}

fn write_string(s: &str, out: &mut impl Sink) {
    out.put(b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(off) = next_escape(&bytes[start..]) {
        let i = start + off;
        out.put(&bytes[start..i]);
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => &[],
        };
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.put(escape);
        }
        start = i + 1;
    }
    out.put(&bytes[start..]);
    out.put(b"\"");
}

fn write_number(n: &Number, out: &mut impl Sink) {
    if n.is_f64() {
        // serde_json only holds finite floats; its text is a shortest round-trip form,
        // which we re-lay in our own fixed notation.
        let text = n.to_string();
        out.put(canonical_float(&text).as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.put(itoa::Buffer::new().format(u).as_bytes());
    } else if let Some(i) = n.as_i64() {
        out.put(itoa::Buffer::new().format(i).as_bytes());
    }
}

/// Re-lays a finite float's shortest round-trip text (any of `1.0`, `1e100`, `1E+100`,
/// `1.5e-7`, `-0.0`, ...) in canonical notation.
fn canonical_float(text: &str) -> String {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = 0.DIGITS × 10^point
    let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let mut point = exp + int_part.len() as i64;
    let leading = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..leading);
    point -= leading as i64;
    digits.truncate(digits.trim_end_matches('0').len());

    let mut s = String::with_capacity(digits.len() + 8);
    if negative {
        s.push('-');
    }
    if digits.is_empty() {
        s.push_str("0.0");
        return s;
    }
    // Magnitude is in [10^(point-1), 10^point).
    if (-5..=21).contains(&point) {
        if point <= 0 {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            s.push_str(&digits);
        } else {
            let p = point as usize;
            if digits.len() <= p {
                s.push_str(&digits);
                s.extend(std::iter::repeat_n('0', p - digits.len()));
                s.push_str(".0");
            } else {
                s.push_str(&digits[..p]);
                s.push('.');
                s.push_str(&digits[p..]);
            }
        }
    } else {
        s.push_str(&digits[..1]);
        s.push('.');
        if digits.len() > 1 {
            s.push_str(&digits[1..]);
        } else {
            s.push('0');
        }
        s.push('e');
        s.push_str(&(point - 1).to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        String::from_utf8(to_canonical_json(v)).unwrap_or_default()
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value = serde_json::from_str(r#"{ "b": 1, "a": [true, null, {"z":0,"y":"s"}] }"#)
            .unwrap_or_default();
        assert_eq!(canon(&v), r#"{"a":[true,null,{"y":"s","z":0}],"b":1}"#);
    }

    #[test]
    fn escapes_strings() {
        let v = json!("q\"b\\n\n\u{1}é\u{7f}");
        assert_eq!(canon(&v), "\"q\\\"b\\\\n\\n\\u0001é\u{7f}\"");
    }

    #[test]
    fn floats_have_one_notation() {
        for (x, want) in [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.25, "0.25"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000.0"),
            (1e21, "1.0e21"),
            (1.5e300, "1.5e300"),
            (1e-6, "0.000001"),
            (1.25e-7, "1.25e-7"),
            (f64::MAX, "1.7976931348623157e308"),
            (5e-324, "5.0e-324"),
        ] {
            let got = canon(&json!(x));
            assert_eq!(got, want, "{x}");
            let back: Value = serde_json::from_str(&got).unwrap_or_default();
            assert_eq!(back.as_f64().map(f64::to_bits), Some(x.to_bits()), "{got}");
        }
    }

    #[test]
    fn integers_stay_integers() {
        assert_eq!(canon(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(canon(&json!(i64::MIN)), "-9223372036854775808");
    }
}

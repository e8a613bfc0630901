//! Values between JSON and PostgreSQL, both ways (the table is in the crate's docs).
//!
//! A parameter takes the type PostgreSQL infers for its placeholder: the common types are
//! sent in binary from the JSON value; any other type is sent as text, which the server
//! parses with the type's own input rules (so `"2026-12-04"` binds a `date`, `"12.50"` a
//! `numeric`, `"{1,2}"` or `[1, 2]` an `int4[]`). A column comes back as JSON by its type;
//! a type with no mapping is an error naming the column and how to cast it.

use std::error::Error;

use crate::unit::{hex, unhex};
use postgres_protocol::types as wire;
use serde_json::{Value, json};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// A JSON value as a statement parameter.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub &'a Value);

/// Whether `v` goes to a parameter of type `ty` in binary (else as text).
fn binary(v: &Value, ty: &Type) -> bool {
    match *ty {
        Type::BOOL => v.is_boolean() || v.as_u64().is_some_and(|n| n <= 1),
        Type::INT2 | Type::INT4 | Type::INT8 => v.is_boolean() || v.is_i64() || v.is_u64(),
        Type::FLOAT4 | Type::FLOAT8 => v.is_number(),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => true,
        Type::BYTEA | Type::JSON | Type::JSONB => true,
        _ => false,
    }
}

/// A value as PostgreSQL's text input for a type it has no binary form for here.
fn text(v: &Value) -> Result<String, BoxError> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            // An array literal: {"a","b"}, NULL for null.
            let mut out = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Null => out.push_str("NULL"),
                    Value::Array(_) => out.push_str(&text(item)?),
                    other => {
                        out.push('"');
                        for c in text(other)?.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
            out.push('}');
            out
        }
        Value::Object(o) if o.contains_key("blob_hex") => {
            return Err("a blob ({\"blob_hex\": ...}) can only be bound to a bytea".into());
        }
        Value::Object(_) => v.to_string(),
        Value::Null => return Err("null has no text".into()),
    })
}

fn blob(v: &Value) -> Option<Result<Vec<u8>, BoxError>> {
    let o = v.as_object().filter(|o| o.len() == 1)?;
    let hex = o.get("blob_hex")?;
    Some(
        hex.as_str()
            .and_then(unhex)
            .ok_or_else(|| "blob_hex must be a string of hex digits".into()),
    )
}

fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_bool().map(i64::from))
}

fn out_of_range(v: &Value, ty: &Type) -> BoxError {
    format!("{v} does not fit a parameter of type {ty}").into()
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let v = self.0;
        if v.is_null() {
            return Ok(IsNull::Yes);
        }
        if !binary(v, ty) {
            wire::text_to_sql(&text(v)?, out);
            return Ok(IsNull::No);
        }
        match *ty {
            Type::BOOL => wire::bool_to_sql(v.as_bool().unwrap_or(v.as_u64() == Some(1)), out),
            Type::INT2 => {
                let n = integer(v).and_then(|n| i16::try_from(n).ok());
                wire::int2_to_sql(n.ok_or_else(|| out_of_range(v, ty))?, out);
            }
            Type::INT4 => {
                let n = integer(v).and_then(|n| i32::try_from(n).ok());
                wire::int4_to_sql(n.ok_or_else(|| out_of_range(v, ty))?, out);
            }
            Type::INT8 => wire::int8_to_sql(integer(v).ok_or_else(|| out_of_range(v, ty))?, out),
            #[expect(clippy::cast_possible_truncation, reason = "a float4 parameter is f32")]
            Type::FLOAT4 => wire::float4_to_sql(v.as_f64().unwrap_or(f64::NAN) as f32, out),
            Type::FLOAT8 => wire::float8_to_sql(v.as_f64().unwrap_or(f64::NAN), out),
            Type::BYTEA => match blob(v) {
                Some(bytes) => wire::bytea_to_sql(&bytes?, out),
                None => wire::bytea_to_sql(text(v)?.as_bytes(), out),
            },
            Type::JSON => wire::text_to_sql(&v.to_string(), out),
            Type::JSONB => {
                out.extend_from_slice(&[1]);
                wire::text_to_sql(&v.to_string(), out);
            }
            _ => {
                if blob(v).is_some() {
                    return Err(format!(
                        "a blob ({{\"blob_hex\": ...}}) can only be bound to a bytea, not {ty}"
                    )
                    .into());
                }
                wire::text_to_sql(&text(v)?, out);
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> tokio_postgres::types::Format {
        if binary(self.0, ty) {
            tokio_postgres::types::Format::Binary
        } else {
            tokio_postgres::types::Format::Text
        }
    }

    to_sql_checked!();
}

/// A column's value as JSON, and about how many bytes it takes.
#[derive(Debug)]
pub(crate) struct Cell(pub Value, pub usize);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(|v| Cell(v, raw.len().max(4)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell(Value::Null, 4))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Why a column's type has no JSON form here.
#[derive(Debug)]
pub(crate) struct Unmapped;

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unmapped type")
    }
}

impl Error for Unmapped {}

fn float(f: f64) -> Value {
    if f.is_finite() {
        json!(f)
    } else if f.is_nan() {
        json!("NaN")
    } else if f > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    Ok(match *ty {
        Type::BOOL => json!(wire::bool_from_sql(raw)?),
        Type::INT2 => json!(wire::int2_from_sql(raw)?),
        Type::INT4 => json!(wire::int4_from_sql(raw)?),
        Type::INT8 => json!(wire::int8_from_sql(raw)?),
        Type::OID => json!(wire::oid_from_sql(raw)?),
        // A real as the digits it shows (0.1, not 0.10000000149011612).
        Type::FLOAT4 => {
            let f = wire::float4_from_sql(raw)?;
            float(f.to_string().parse().unwrap_or(f64::from(f)))
        }
        Type::FLOAT8 => float(wire::float8_from_sql(raw)?),
        Type::NUMERIC => json!(numeric(raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            json!(wire::text_from_sql(raw)?)
        }
        Type::CHAR => json!(char::from(raw.first().copied().unwrap_or(b' ')).to_string()),
        Type::BYTEA => json!({"blob_hex": hex(wire::bytea_from_sql(raw))}),
        Type::JSON => serde_json::from_slice(raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, body)) => serde_json::from_slice(body)?,
            _ => return Err("an unknown jsonb version".into()),
        },
        Type::UUID => {
            let u = hex(&wire::uuid_from_sql(raw)?);
            json!(format!(
                "{}-{}-{}-{}-{}",
                &u[..8],
                &u[8..12],
                &u[12..16],
                &u[16..20],
                &u[20..]
            ))
        }
        Type::DATE => json!(match wire::date_from_sql(raw)? {
            i32::MAX => "infinity".to_string(),
            i32::MIN => "-infinity".to_string(),
            days => date(i64::from(days)),
        }),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => json!(match wire::timestamp_from_sql(raw)? {
            i64::MAX => "infinity".to_string(),
            i64::MIN => "-infinity".to_string(),
            us => {
                let zone = if *ty == Type::TIMESTAMPTZ { "Z" } else { "" };
                let day = 86_400_000_000;
                format!(
                    "{}T{}{zone}",
                    date(us.div_euclid(day)),
                    time(us.rem_euclid(day))
                )
            }
        }),
        Type::TIME => json!(time(wire::time_from_sql(raw)?)),
        _ => match ty.kind() {
            Kind::Enum(_) => json!(wire::text_from_sql(raw)?),
            Kind::Domain(inner) => decode(inner, raw)?,
            Kind::Array(member) => array(member, raw)?,
            // Extension types whose binary form is their text.
            _ if ty.name() == "citext" => {
                json!(wire::text_from_sql(raw)?)
            }
            _ => return Err(Box::new(Unmapped)),
        },
    })
}

/// An array as nested JSON arrays, one level per dimension.
fn array(member: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    use fallible_iterator::FallibleIterator;
    let a = wire::array_from_sql(raw)?;
    let dims: Vec<usize> = a
        .dimensions()
        .map(|d| usize::try_from(d.len).map_err(|_| "a negative array length".into()))
        .collect::<Vec<_>>()?;
    let flat: Vec<Value> = a
        .values()
        .map(|v| match v {
            Some(raw) => decode(member, raw),
            None => Ok(Value::Null),
        })
        .collect()?;
    let mut level = flat;
    for &n in dims.iter().skip(1).rev() {
        level = level
            .chunks(n.max(1))
            .map(|c| Value::Array(c.to_vec()))
            .collect();
    }
    Ok(Value::Array(level))
}

/// The date `days` after 2000-01-01, as `YYYY-MM-DD`.
fn date(days: i64) -> String {
    // Days since 1970-01-01, then the civil calendar (proleptic Gregorian).
    let z = days + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `us` microseconds after midnight, as `HH:MM:SS[.ffffff]`.
fn time(us: i64) -> String {
    let (s, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let hms = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac == 0 {
        hms
    } else {
        let f = format!("{frac:06}");
        format!("{hms}.{}", f.trim_end_matches('0'))
    }
}

/// A `numeric` in its exact decimal text (`"-12.50"`, `"NaN"`).
fn numeric(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<i32, BoxError> {
        let b = raw.get(2 * i..2 * i + 2).ok_or("a truncated numeric")?;
        Ok(i32::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "a negative digit count")?;
    let weight = word(1)?;
    let sign = word(2)? & 0xFFFF;
    let dscale = usize::try_from(word(3)? & 0xFFFF).map_err(|_| "a bad scale")?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digit = |e: i32| -> Result<i32, BoxError> {
        let idx = weight - e;
        match usize::try_from(idx) {
            Ok(i) if i < ndigits => word(4 + i),
            _ => Ok(0),
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for e in (0..=weight).rev() {
            let d = digit(e)?;
            if e == weight {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let groups = i32::try_from(dscale.div_ceil(4)).map_err(|_| "a bad scale")?;
        for e in 1..=groups {
            frac.push_str(&format!("{:04}", digit(-e)?));
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_iso_8601() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(9834), "2026-12-04");
        assert_eq!(date(59), "2000-02-29");
        assert_eq!(time(0), "00:00:00");
        assert_eq!(time(79_539_123_000), "22:05:39.123");
    }

    #[test]
    fn numerics_keep_every_digit() {
        // ndigits, weight, sign, dscale, digits (base 10000).
        let n = |w: &[i16]| -> Vec<u8> { w.iter().flat_map(|x| x.to_be_bytes()).collect() };
        assert_eq!(numeric(&n(&[2, 0, 0, 2, 12, 5000])).unwrap(), "12.50");
        assert_eq!(numeric(&n(&[2, 1, 0x4000, 0, 1, 2345])).unwrap(), "-12345");
        assert_eq!(numeric(&n(&[1, -1, 0, 5, 12])).unwrap(), "0.00120");
        assert_eq!(numeric(&n(&[0, 0, 0, 0])).unwrap(), "0");
        assert_eq!(numeric(&n(&[1, 2, 0, 0, 7])).unwrap(), "700000000");
        #[expect(clippy::cast_possible_wrap, reason = "the NaN marker")]
        let nan = n(&[0, 0, 0xC000_u16 as i16, 0]);
        assert_eq!(numeric(&nan).unwrap(), "NaN");
    }

    #[test]
    fn array_parameters_become_array_literals() {
        assert_eq!(
            text(&json!([1, "a\"b", null, [true]])).unwrap(),
            "{\"1\",\"a\\\"b\",NULL,{\"true\"}}"
        );
    }
}

//! AMF0 (the value encoding of RTMP commands), only what a publisher needs:
//! numbers, booleans, strings, objects, ECMA arrays, null and undefined.
//! Decoding never panics and bounds nesting and sizes: the input is the
//! server's.

use crate::PushError;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
    String(String),
    /// Anonymous object or ECMA array, properties in order.
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
}

const NUMBER: u8 = 0x00;
const BOOL: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const LONG_STRING: u8 = 0x0c;

/// Objects nested deeper than this are refused (a stack bound).
const MAX_DEPTH: usize = 16;

impl Value {
    pub fn str(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    /// A property of an object, if this is one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Number(n) => {
                out.push(NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Value::Bool(b) => {
                out.push(BOOL);
                out.push(u8::from(*b));
            }
            Value::String(s) => {
                if let Ok(len) = u16::try_from(s.len()) {
                    out.push(STRING);
                    out.extend_from_slice(&len.to_be_bytes());
                } else {
                    out.push(LONG_STRING);
                    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                }
                out.extend_from_slice(s.as_bytes());
            }
            Value::Object(props) => {
                out.push(OBJECT);
                for (k, v) in props {
                    // Keys are ours and short; a longer one is cut, never mis-framed.
                    let k = &k.as_bytes()[..k.len().min(u16::MAX as usize)];
                    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
                    out.extend_from_slice(k);
                    v.encode(out);
                }
                out.extend_from_slice(&[0, 0, OBJECT_END]);
            }
            Value::Null => out.push(NULL),
            Value::Undefined => out.push(UNDEFINED),
        }
    }
}

/// Encode a command or data message body: the values one after another.
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// Decode every value of a message body.
pub fn decode_all(mut input: &[u8]) -> Result<Vec<Value>, PushError> {
    let mut values = Vec::new();
    let total = input.len();
    while !input.is_empty() {
        let at = total - input.len();
        let (v, rest) = decode(input, 0)
            .map_err(|e| PushError::Protocol(format!("AMF0 value at byte {at} of {total}: {e}")))?;
        values.push(v);
        input = rest;
    }
    Ok(values)
}

fn take(input: &[u8], n: usize) -> Result<(&[u8], &[u8]), String> {
    if input.len() < n {
        return Err(format!("needs {n} bytes, {} left", input.len()));
    }
    Ok(input.split_at(n))
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn decode_key(input: &[u8]) -> Result<(String, &[u8]), String> {
    let (len, rest) = take(input, 2)?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let (k, rest) = take(rest, len)?;
    Ok((utf8(k), rest))
}

type Props = Vec<(String, Value)>;

fn decode_props(mut input: &[u8], depth: usize) -> Result<(Props, &[u8]), String> {
    let mut props = Vec::new();
    loop {
        if input.len() >= 3 && input[..3] == [0, 0, OBJECT_END] {
            return Ok((props, &input[3..]));
        }
        let (k, rest) = decode_key(input)?;
        let (v, rest) = decode(rest, depth + 1)?;
        props.push((k, v));
        input = rest;
    }
}

fn decode(input: &[u8], depth: usize) -> Result<(Value, &[u8]), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    let (marker, rest) = take(input, 1)?;
    match marker[0] {
        NUMBER => {
            let (b, rest) = take(rest, 8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok((Value::Number(f64::from_be_bytes(a)), rest))
        }
        BOOL => {
            let (b, rest) = take(rest, 1)?;
            Ok((Value::Bool(b[0] != 0), rest))
        }
        STRING => {
            let (k, rest) = decode_key(rest)?;
            Ok((Value::String(k), rest))
        }
        LONG_STRING => {
            let (len, rest) = take(rest, 4)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let (s, rest) = take(rest, len)?;
            Ok((Value::String(utf8(s)), rest))
        }
        OBJECT => {
            let (props, rest) = decode_props(rest, depth)?;
            Ok((Value::Object(props), rest))
        }
        ECMA_ARRAY => {
            // The count is a hint only; the end marker ends it.
            let (_, rest) = take(rest, 4)?;
            let (props, rest) = decode_props(rest, depth)?;
            Ok((Value::Object(props), rest))
        }
        STRICT_ARRAY => {
            let (n, mut rest) = take(rest, 4)?;
            let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
            // Each element takes at least one byte: bound the count by the input.
            if n > rest.len() {
                return Err(format!("strict array of {n} in {} bytes", rest.len()));
            }
            let mut props = Vec::with_capacity(n);
            for i in 0..n {
                let (v, r) = decode(rest, depth + 1)?;
                props.push((i.to_string(), v));
                rest = r;
            }
            Ok((Value::Object(props), rest))
        }
        NULL => Ok((Value::Null, rest)),
        UNDEFINED => Ok((Value::Undefined, rest)),
        m => Err(format!("unsupported marker 0x{m:02x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let values = vec![
            Value::str("connect"),
            Value::Number(1.0),
            Value::Object(vec![
                ("app".into(), Value::str("live")),
                ("fpad".into(), Value::Bool(false)),
                (
                    "nested".into(),
                    Value::Object(vec![("x".into(), Value::Null)]),
                ),
            ]),
            Value::Null,
            Value::Undefined,
        ];
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn known_bytes() {
        // "_result", 1.0 as written by nginx-rtmp.
        let bytes = [
            0x02, 0x00, 0x07, b'_', b'r', b'e', b's', b'u', b'l', b't', 0x00, 0x3f, 0xf0, 0, 0, 0,
            0, 0, 0,
        ];
        assert_eq!(
            decode_all(&bytes).unwrap(),
            vec![Value::str("_result"), Value::Number(1.0)]
        );
    }

    #[test]
    fn ecma_array_and_strict_array() {
        let mut b = vec![ECMA_ARRAY, 0, 0, 0, 9];
        b.extend_from_slice(&[0, 1, b'a', NUMBER]);
        b.extend_from_slice(&2.0f64.to_be_bytes());
        b.extend_from_slice(&[0, 0, OBJECT_END]);
        b.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1, NULL]);
        let v = decode_all(&b).unwrap();
        assert_eq!(v[0].get("a"), Some(&Value::Number(2.0)));
        assert_eq!(v[1].get("0"), Some(&Value::Null));
    }

    #[test]
    fn truncated_and_hostile_inputs_are_errors() {
        let good = encode_all(&[Value::Object(vec![("k".into(), Value::str("v"))])]);
        for n in 0..good.len() - 1 {
            assert!(decode_all(&good[..n]).is_err() || n == 0, "prefix {n}");
        }
        // Deep nesting is bounded.
        let deep = [OBJECT, 0, 1, b'a'].repeat(1000);
        let err = decode_all(&deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
        // A huge strict-array count does not allocate.
        assert!(decode_all(&[STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_all(&[0x11]).is_err());
    }
}

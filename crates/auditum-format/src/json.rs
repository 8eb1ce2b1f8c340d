//! Canonical JSON (docs/FORMAT.md, Stored columns): object keys sorted bytewise, no insignificant whitespace,
//! integers without a fraction. The stored text of `before`, `after` and `metadata` is hashed as
//! it is, so every writer of those columns must produce exactly this form.

use crate::event::ColumnBytes;
use serde_json::Value;

/// The canonical text of a JSON value.
pub fn canonical(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write(&mut out, value);
    out
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Object(fields) => {
            // Sorted here, whatever order the map keeps (serde_json's preserve_order may be on).
            let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
            entries.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            out.push('{');
            for (position, (key, item)) in entries.into_iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(out, item);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A JSON string literal: runs of plain bytes copied at once, `"`, `\\` and control characters
/// escaped (the same escapes serde_json writes). For writers of JSON on hot paths (exports, sink
/// bodies) that do not build a `serde_json::Value` per event.
pub fn write_string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if byte >= 0x20 && byte != b'"' && byte != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..index]);
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(byte >> 4) as usize], HEX[(byte & 0xf) as usize]]),
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// One column of the §7 event object as a JSON value: null, a string, or an integer (`seq`
/// unsigned, the timestamps signed).
pub fn write_column(out: &mut Vec<u8>, name: &str, value: &ColumnBytes<'_>) {
    match value {
        ColumnBytes::Null => out.extend_from_slice(b"null"),
        ColumnBytes::Text(text) => write_string(out, text),
        ColumnBytes::Integer(bytes) if name == "seq" => out.extend_from_slice(u64::from_be_bytes(*bytes).to_string().as_bytes()),
        ColumnBytes::Integer(bytes) => out.extend_from_slice(i64::from_be_bytes(*bytes).to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_without_whitespace() {
        let value = serde_json::json!({"z": [1, "a\"b"], "a": {"y": null, "b": true}, "n": 4411});
        assert_eq!(canonical(&value), r#"{"a":{"b":true,"y":null},"n":4411,"z":[1,"a\"b"]}"#);
    }

    #[test]
    fn json_strings_escape_like_serde_json() {
        for text in ["plain", "", "quote \" backslash \\ slash /", "\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}", "üñí €😀", "{\"a\":[1,\"b\"]}"]
        {
            let mut out = Vec::new();
            write_string(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }
}

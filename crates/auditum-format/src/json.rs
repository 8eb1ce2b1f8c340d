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
/// bodies) that do not build a `serde_json::Value` per event. Bytes are tested eight at a time.
pub fn write_string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut index) = (0, 0);
    while index < bytes.len() {
        if let Some(word) = bytes.get(index..index + 8).and_then(|slice| <[u8; 8]>::try_from(slice).ok()) {
            let mask = escape_mask(u64::from_le_bytes(word));
            if mask == 0 {
                index += 8;
                continue;
            }
            // The lowest flagged byte is exact (false flags only follow a true one).
            index += (mask.trailing_zeros() / 8) as usize;
        } else if !needs_escape(bytes[index]) {
            index += 1;
            continue;
        }
        let byte = bytes[index];
        copy_run(out, bytes, start, index);
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
        index += 1;
        start = index;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The high bit set in each byte of `word` that is `"`, `\\` or below 0x20, and possibly in
/// bytes after such a byte (a borrow carries upward), never before the first.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |value: u64| value.wrapping_sub(ONES) & !value;
    (zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\'))) | (word.wrapping_sub(ONES * 0x20) & !word))
        & HIGH_BITS
}

/// Appends `bytes[start..end]`. A short run (JSON text in a string has a quote every few bytes)
/// goes as one fixed 16-byte copy trimmed after, not a memcpy call per run.
fn copy_run(out: &mut Vec<u8>, bytes: &[u8], start: usize, end: usize) {
    if end - start <= 16
        && let Some(block) = bytes.get(start..start + 16).and_then(|slice| <&[u8; 16]>::try_from(slice).ok())
    {
        let kept = out.len() + (end - start);
        out.extend_from_slice(block);
        out.truncate(kept);
        return;
    }
    out.extend_from_slice(&bytes[start..end]);
}

/// One column of the §7 event object as a JSON value: null, a string, or an integer (`seq`
/// unsigned, the timestamps signed).
pub fn write_column(out: &mut Vec<u8>, name: &str, value: &ColumnBytes<'_>) {
    match value {
        ColumnBytes::Null => out.extend_from_slice(b"null"),
        ColumnBytes::Text(text) => write_string(out, text),
        ColumnBytes::Integer(bytes) if name == "seq" => {
            out.extend_from_slice(itoa::Buffer::new().format(u64::from_be_bytes(*bytes)).as_bytes())
        }
        ColumnBytes::Integer(bytes) => out.extend_from_slice(itoa::Buffer::new().format(i64::from_be_bytes(*bytes)).as_bytes()),
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
        let mut texts: Vec<String> =
            ["plain", "", "quote \" backslash \\ slash /", "\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}", "üñí €😀", "{\"a\":[1,\"b\"]}"]
                .map(String::from)
                .to_vec();
        // Every character needing an escape at every position of runs longer than a word, and
        // bytes just around the escaped ranges (0x1f/0x20, 0x21/0x23, 0x5b/0x5d, 0x7f, UTF-8).
        for special in ['"', '\\', '\u{0}', '\u{1f}', ' ', '!', '#', '[', ']', '\u{7f}', 'é'] {
            for length in [1, 7, 8, 9, 15, 16, 17, 33] {
                for position in 0..length {
                    texts.push((0..length).map(|at| if at == position { special } else { 'x' }).collect());
                }
            }
        }
        // Two in one word: a flagged byte's borrow must not hide or invent the next.
        let pair_specials = ['"', '\\', '\u{0}', '\u{1}', '!', 'é'];
        for first in pair_specials {
            for second in pair_specials {
                for (a, b) in (0..10).flat_map(|a| (a + 1..10).map(move |b| (a, b))) {
                    texts.push(
                        (0..10)
                            .map(|at| {
                                if at == a {
                                    first
                                } else if at == b {
                                    second
                                } else {
                                    'x'
                                }
                            })
                            .collect(),
                    );
                }
            }
        }
        for text in &texts {
            let mut out = b"prefix".to_vec();
            write_string(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), format!("prefix{}", serde_json::to_string(text).unwrap()), "{text:?}");
        }
    }
}

//! Canonical JSON (docs/FORMAT.md, Stored columns): object keys sorted bytewise, no insignificant whitespace,
//! integers without a fraction. The stored text of `before`, `after` and `metadata` is hashed as
//! it is, so every writer of those columns must produce exactly this form.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_without_whitespace() {
        let value = serde_json::json!({"z": [1, "a\"b"], "a": {"y": null, "b": true}, "n": 4411});
        assert_eq!(canonical(&value), r#"{"a":{"b":true,"y":null},"n":4411,"z":[1,"a\"b"]}"#);
    }
}

//! Reading a details document: bounded like a feed page, then the projection's own type.

use serde::de::DeserializeOwned;
use url::Url;

/// Deepest nesting of arrays and objects accepted in a details document. An order is three
/// levels deep; serde_json refuses deeper *typed* structures itself (at 128), but skips the
/// unknown fields a consumer ignores without any bound, so the bound is checked first.
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses `body` fetched from `url` as `T`, refusing documents nested deeper than
/// [`MAX_JSON_DEPTH`]. The error is the reason to park the entry.
pub fn parse<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, String> {
    check_depth(body).map_err(|e| format!("{url}: details refused: {e}"))?;
    serde_json::from_slice(body).map_err(|e| format!("{url}: details do not parse: {e}"))
}

/// The bytes of inline details, the text of an entry's JSON `<content>`: Base64 as RFC 4287
/// §4.1.3.3 requires (line breaks and spaces allowed), or, from publishers that inline the
/// JSON itself, that text as it is.
pub fn inline_bytes(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let trimmed = text.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // Never valid Base64: JSON written inline as text.
        return Ok(trimmed.as_bytes().to_vec());
    }
    let compact: Vec<u8> = trimmed
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("content is neither Base64 nor JSON: {e}"))
}

/// One pass over the bytes, outside strings; linear, allocation-free.
fn check_depth(body: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(format!(
                        "nested deeper than {MAX_JSON_DEPTH} levels (at byte {i})"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_details_are_base64_or_json_text() {
        assert_eq!(inline_bytes("eyJpZCI6MX0=").unwrap(), br#"{"id":1}"#);
        assert_eq!(inline_bytes(" eyJpZC\n  I6MX0=\n").unwrap(), br#"{"id":1}"#);
        assert_eq!(inline_bytes(r#" {"id":1} "#).unwrap(), br#"{"id":1}"#);
        assert!(inline_bytes("not base64!").is_err());
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(check_depth(br#"{"a": [1, {"b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\""}]}"#).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(check_depth(deep.as_bytes()).is_ok());
        let deeper = format!("[{deep}]");
        assert!(check_depth(deeper.as_bytes())
            .unwrap_err()
            .contains("nested deeper than 64"));
    }
}

//! Page tokens: the keyset position after a page's last row, bound to the filter and order
//! that produced it, so a token cannot be replayed against another filter.

use super::filter::{Filter, FilterError, reject};
use base64::Engine;

const TOKEN_VERSION: u8 = 1;

/// Encodes the keyset position after `last`, bound to the filter and order.
pub fn encode_page_token(filter: &Filter, descending: bool, last: (i64, u64)) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(TOKEN_VERSION);
    bytes.extend_from_slice(&filter.digest(descending));
    bytes.extend_from_slice(&last.0.to_be_bytes());
    bytes.extend_from_slice(&last.1.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The keyset position of a page token, which must have been issued for this filter and order.
pub fn decode_page_token(token: &str, filter: &Filter, descending: bool) -> Result<Option<(i64, u64)>, FilterError> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || reject("page_token", "malformed: pass the next_page_token of the previous page unchanged");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    if bytes.len() != 33 || bytes[0] != TOKEN_VERSION {
        return Err(malformed());
    }
    if bytes[1..17] != filter.digest(descending) {
        return Err(reject("page_token", "was issued for another filter or order: repeat the same filter and descending with it"));
    }
    let occurred_at = i64::from_be_bytes(bytes[17..25].try_into().map_err(|_| malformed())?);
    let seq = u64::from_be_bytes(bytes[25..33].try_into().map_err(|_| malformed())?);
    Ok(Some((occurred_at, seq)))
}

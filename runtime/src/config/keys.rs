//! API keys as the configuration holds them: the sha256 of a key, never the key. Here, below
//! both the configuration (which checks the hashes it is given) and tenancy (which compares
//! a presented key with them), so neither needs the other for it.

use sha2::{Digest, Sha256};

/// Parses a configured key hash (`sha256:<64 hex>` or `<64 hex>`).
pub fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let hex_part = text.strip_prefix("sha256:").unwrap_or(text);
    let bytes =
        hex::decode(hex_part).map_err(|_| "not a sha256 hex digest (use `cella hash-key <key>`)".to_string())?;
    bytes.try_into().map_err(|_| "a sha256 digest has 64 hex digits".to_string())
}

/// The sha256 of a key, as configured: `sha256:<hex>`.
pub fn hash_key(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Whether two hashes are equal, compared in constant time.
pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The sha256 of a presented key.
pub(crate) fn hash_of(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

//! Relocatable blobs: a value laid out in the canonical ABI's memory format, with its
//! pointers written as offsets from the blob's start and listed, so the glue can copy the
//! blob anywhere in linear memory and add the new base to each listed pointer.
//!
//! The wire form is `[n: u32][n offsets: u32][payload]`, little-endian; the value's root
//! (a record or a result) is at payload offset 0. The Python driver writes the same form
//! (`_cella_driver.Blob`) for every answer; the build writes the manifest with it.

/// A blob under construction.
#[derive(Debug, Default)]
pub struct Blob {
    bytes: Vec<u8>,
    relocs: Vec<u32>,
}

impl Blob {
    /// A blob whose root takes `size` bytes (zeroed) at offset 0.
    pub fn with_root(size: usize) -> Blob {
        Blob { bytes: vec![0; size], relocs: Vec::new() }
    }

    /// Appends `size` zeroed bytes aligned to 4; returns their offset.
    pub fn reserve(&mut self, size: usize) -> u32 {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
        let at = self.bytes.len();
        self.bytes.resize(at + size, 0);
        at as u32
    }

    /// Writes a little-endian `u32` at `at`.
    pub fn u32(&mut self, at: u32, value: u32) {
        let at = at as usize;
        self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Writes a byte at `at`.
    pub fn u8(&mut self, at: u32, value: u8) {
        self.bytes[at as usize] = value;
    }

    /// Writes a pointer to blob offset `target` at `at`, to be relocated.
    pub fn pointer(&mut self, at: u32, target: u32) {
        self.u32(at, target);
        self.relocs.push(at);
    }

    /// Writes the string `text` (its pointer and length) at `at`.
    pub fn string(&mut self, at: u32, text: &str) {
        let target = self.bytes.len() as u32;
        self.bytes.extend_from_slice(text.as_bytes());
        self.pointer(at, target);
        self.u32(at + 4, text.len() as u32);
    }

    /// The wire form.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.relocs.len() + self.bytes.len());
        out.extend_from_slice(&(self.relocs.len() as u32).to_le_bytes());
        for r in &self.relocs {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// One tool of the manifest.
#[derive(Debug, Clone)]
pub struct Tool {
    /// `type:action`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its parameters, as text.
    pub params_schema: String,
    /// Whether it runs in a session.
    pub needs_session: bool,
}

/// The `manifest` record (`cella:backend/types`) as a blob.
pub fn manifest(name: &str, description: &str, version: &str, tools: &[Tool]) -> Vec<u8> {
    // manifest: name @0, description @8, version @16, tools (list) @24; 32 bytes.
    let mut blob = Blob::with_root(32);
    blob.string(0, name);
    blob.string(8, description);
    blob.string(16, version);
    // tool-info: name @0, description @8, params-schema @16, needs-session @24; 28 bytes.
    let list = blob.reserve(28 * tools.len());
    blob.pointer(24, list);
    blob.u32(28, tools.len() as u32);
    for (i, tool) in tools.iter().enumerate() {
        let at = list + 28 * i as u32;
        blob.string(at, &tool.name);
        blob.string(at + 8, &tool.description);
        blob.string(at + 16, &tool.params_schema);
        blob.u8(at + 24, u8::from(tool.needs_session));
    }
    blob.finish()
}

/// `result<_, error>` or `result<json, error>` holding the error `{code, message}`: both
/// results lay the error out the same way (discriminant @0, error record @4).
pub fn error_result(code: i32, message: &str) -> Vec<u8> {
    // error: code @4, message @8, data (option<string>) @16 (none).
    let mut blob = Blob::with_root(28);
    blob.u8(0, 1);
    blob.u32(4, code as u32);
    blob.string(8, message);
    blob.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_listed_and_relative() {
        let wire = error_result(5000, "no");
        let n = u32::from_le_bytes(wire[0..4].try_into().unwrap());
        assert_eq!(n, 1);
        let at = u32::from_le_bytes(wire[4..8].try_into().unwrap());
        assert_eq!(at, 8);
        let payload = &wire[8..];
        let target = u32::from_le_bytes(payload[8..12].try_into().unwrap()) as usize;
        assert_eq!(&payload[target..target + 2], b"no");
        assert_eq!(payload[0], 1);
    }
}

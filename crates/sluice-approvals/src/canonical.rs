//! The one byte layout that both the statement fingerprint and the grant
//! signature are computed over.
//!
//! Every variable-length field is preceded by its length as a big-endian
//! `u64`, so no two different field lists produce the same bytes
//! (`("ab", "c")` and `("a", "bc")` differ in their first length). Each
//! message starts with a domain-separation tag so bytes signed or hashed for
//! one purpose can never be replayed as another.

/// Builds a canonical message field by field.
pub(crate) struct Canonical {
    bytes: Vec<u8>,
}

impl Canonical {
    pub(crate) fn new(domain: &[u8]) -> Self {
        let mut c = Canonical { bytes: Vec::new() };
        c.field(domain);
        c
    }

    /// A length-prefixed byte string.
    pub(crate) fn field(&mut self, value: &[u8]) -> &mut Self {
        self.count(value.len());
        self.bytes.extend_from_slice(value);
        self
    }

    /// A fixed-width count (of a list that follows, or a length).
    pub(crate) fn count(&mut self, n: usize) -> &mut Self {
        // usize is at most 64 bits on every supported target.
        self.bytes.extend_from_slice(&(n as u64).to_be_bytes());
        self
    }

    /// A one-byte discriminant (e.g. which kind of parameter follows).
    pub(crate) fn tag(&mut self, tag: u8) -> &mut Self {
        self.bytes.push(tag);
        self
    }

    pub(crate) fn int(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

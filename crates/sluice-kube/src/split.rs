//! Streams a Kubernetes list through masking one item at a time.
//!
//! A list is one JSON object whose `items` (or a Table's `rows`) array
//! holds the objects. Masking the whole document would hold all of it;
//! instead the scanner below follows the JSON structure byte by byte
//! (strings and escapes included) and hands out the part before the array,
//! each element, and what follows, so at most one item is held. A document
//! with no such array at its top level comes out whole at the end, exactly
//! as if it had been held: nothing of it is released before it is masked.

/// A piece of the document, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Everything up to and including the array's `[`.
    Head(Vec<u8>),
    /// One element of the array.
    Item(Vec<u8>),
    /// Bytes between elements, and everything after the array.
    Between(Vec<u8>),
    /// The whole document: it held no top-level `items`/`rows` array.
    Whole(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the array: everything is held.
    Head,
    /// Inside the array.
    Items,
    /// After the array.
    Tail,
}

/// Deeper than this is not a Kubernetes object: kept whole and masked as
/// a document (the masker itself bounds its recursion).
const MAX_DEPTH: usize = 512;

pub struct Splitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    phase: Phase,
    /// At depth 1, the next string is a key.
    expect_key: bool,
    key_start: Option<usize>,
    /// The last key read at depth 1, while its value has not started.
    key: Option<Vec<u8>>,
    /// Start of the element being read (in `buf`).
    element: Option<usize>,
    broken: bool,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            buf: Vec::new(),
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            phase: Phase::Head,
            expect_key: false,
            key_start: None,
            key: None,
            element: None,
            broken: false,
        }
    }
}

impl Splitter {
    /// Bytes held (the head, or one element).
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Appends `chunk`, returning the pieces it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Piece> {
        self.buf.extend_from_slice(chunk);
        let mut pieces = Vec::new();
        if self.broken {
            return pieces;
        }
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if let Some(start) = self.key_start.take() {
                        self.key = self.buf.get(start + 1..i).map(<[u8]>::to_vec);
                    }
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    // Keys matter only before the array (the buffer is not
                    // drained then, so positions hold).
                    if self.depth == 1 && self.expect_key && self.phase == Phase::Head {
                        self.key_start = Some(i);
                        self.expect_key = false;
                    }
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        // Leave it whole to the document masker.
                        self.broken = true;
                        self.scanned = self.buf.len();
                        return pieces;
                    }
                    if self.depth == 1 {
                        self.expect_key = b == b'{';
                    } else if self.depth == 2 && self.phase == Phase::Head && b == b'[' {
                        let list = matches!(self.key.as_deref(), Some(b"items") | Some(b"rows"));
                        if list {
                            self.phase = Phase::Items;
                            let head: Vec<u8> = self.buf.drain(..=i).collect();
                            pieces.push(Piece::Head(head));
                            i = 0;
                            continue;
                        }
                    } else if self.depth == 3
                        && self.phase == Phase::Items
                        && self.element.is_none()
                    {
                        if i > 0 {
                            let between: Vec<u8> = self.buf.drain(..i).collect();
                            pieces.push(Piece::Between(between));
                        }
                        self.element = Some(0);
                        i = 1;
                        continue;
                    }
                    self.key = None;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.phase == Phase::Items && self.depth == 2 && self.element.is_some() {
                        self.element = None;
                        let item: Vec<u8> = self.buf.drain(..=i).collect();
                        pieces.push(Piece::Item(item));
                        i = 0;
                        continue;
                    }
                    if self.phase == Phase::Items && self.depth == 1 {
                        self.phase = Phase::Tail;
                    }
                }
                b',' if self.depth == 1 => self.expect_key = true,
                b':' if self.depth == 1 => {}
                _ => {}
            }
            i += 1;
        }
        self.scanned = i;
        // Between elements and after the array nothing is held back.
        if (self.phase == Phase::Items && self.element.is_none()) || self.phase == Phase::Tail {
            if !self.buf.is_empty() {
                pieces.push(Piece::Between(std::mem::take(&mut self.buf)));
            }
            self.scanned = 0;
        }
        pieces
    }

    /// The end of the stream: what is still held.
    pub fn finish(&mut self) -> Option<Piece> {
        let rest = std::mem::take(&mut self.buf);
        if self.phase == Phase::Head || self.broken {
            return (!rest.is_empty()).then_some(Piece::Whole(rest));
        }
        // A list cut off inside an element: the element is incomplete, and
        // is masked as a document (it will not parse, so as text).
        (!rest.is_empty()).then_some(Piece::Item(rest))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split_all(doc: &[u8], chunk: usize) -> Vec<Piece> {
        let mut s = Splitter::default();
        let mut pieces = Vec::new();
        for c in doc.chunks(chunk.max(1)) {
            pieces.extend(s.push(c));
        }
        pieces.extend(s.finish());
        pieces
    }

    fn joined(pieces: &[Piece]) -> Vec<u8> {
        pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Head(b) | Piece::Item(b) | Piece::Between(b) | Piece::Whole(b) => b.clone(),
            })
            .collect()
    }

    const LIST: &[u8] = br#"{"kind":"SecretList","metadata":{"items":[1]},"items":[{"metadata":{"name":"a}]"},"data":{"k":"v"}} , {"b":[{"c":1}]}],"x":"y"}"#;

    #[test]
    fn a_list_comes_out_as_head_items_and_the_rest_at_any_chunking() {
        for chunk in [1, 2, 3, 7, 64, LIST.len()] {
            let pieces = split_all(LIST, chunk);
            assert_eq!(joined(&pieces), LIST, "chunk {chunk}");
            let items: Vec<&[u8]> = pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Item(b) => Some(b.as_slice()),
                    _ => None,
                })
                .collect();
            assert_eq!(
                items,
                [
                    br#"{"metadata":{"name":"a}]"},"data":{"k":"v"}}"#.as_slice(),
                    br#"{"b":[{"c":1}]}"#.as_slice()
                ],
                "chunk {chunk}"
            );
            assert!(matches!(&pieces[0], Piece::Head(h) if h.ends_with(b"\"items\":[")));
        }
    }

    #[test]
    fn a_document_that_is_not_a_list_is_held_whole() {
        let pod = br#"{"kind":"Pod","spec":{"items":[{"a":1}]},"data":"[{"}"#;
        for chunk in [1, 5, pod.len()] {
            let pieces = split_all(pod, chunk);
            assert_eq!(pieces, vec![Piece::Whole(pod.to_vec())]);
        }
    }

    #[test]
    fn escaped_quotes_and_keys_named_items_inside_strings_do_not_confuse_it() {
        let doc = br#"{"note":"\"items\":[{","items":[{"s":"\\\"}"}]}"#;
        let pieces = split_all(doc, 1);
        assert_eq!(joined(&pieces), doc);
        assert!(pieces.contains(&Piece::Item(br#"{"s":"\\\"}"}"#.to_vec())));
    }
}

//! Numeric detectors: card numbers, US SSNs, phone numbers, IBANs.
//!
//! They all start at a digit run, so one loop visits each digit run once.
//! A run that continues a longer numeric structure (the `01` of
//! `2024-01-15`, a part of an IP address or ISBN) is not a start: numbers are
//! only recognised whole, which is what keeps dates, times, IPs, UUIDs and
//! order numbers out.

use super::{is_alnum, run, Span};
use crate::{Detector, DetectorSet};

fn digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// Separators that glue digit runs into one numeric structure.
fn glue(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'/' | b':' | b',')
}

/// A comma glues digits only as a thousands separator (`1,234`, exactly
/// three digits after it, not the start of a dashed number): in CSV a comma
/// between fields must not hide the card or SSN of the next field.
fn glues(s: &[u8], at: usize) -> bool {
    if s[at] != b',' {
        return glue(s[at]);
    }
    let k = run(s, at + 1, digit);
    k == 3 && s.get(at + 4).is_none_or(|&c| c != b'-')
}

/// Whether a number may start at `i`: not inside a word, not the continuation
/// of a number (`2024-01`, `10.0.0`).
fn starts_number(s: &[u8], i: usize) -> bool {
    match i {
        0 => true,
        1 => !is_alnum(s[0]),
        _ => !(is_alnum(s[i - 1]) || (glues(s, i - 1) && digit(s[i - 2]))),
    }
}

/// Whether a number may end at `j`: not followed by a letter or digit, nor by
/// a separator that continues it.
fn ends_number(s: &[u8], j: usize) -> bool {
    match s.get(j) {
        None => true,
        Some(&b) if is_alnum(b) => false,
        Some(&b) if glue(b) => !(glues(s, j) && s.get(j + 1).is_some_and(|&c| digit(c))),
        Some(_) => true,
    }
}

pub(super) fn scan(s: &[u8], on: DetectorSet, out: &mut Vec<Span>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        match s[i..].iter().position(|&b| digit(b)) {
            Some(k) => i += k,
            None => return,
        }
        let run_len = run(s, i, digit);
        if let Some(end) = check_at(s, i, run_len, on, out) {
            i = end;
        } else {
            i += run_len;
        }
    }
}

/// Tries every numeric detector on the digit run at `i`; returns the end of a finding.
fn check_at(
    s: &[u8],
    i: usize,
    run_len: usize,
    on: DetectorSet,
    out: &mut Vec<Span>,
) -> Option<usize> {
    if on.contains(Detector::Iban) && i >= 2 && run_len >= 1 {
        let cc = i - 2;
        if s[cc].is_ascii_uppercase() && s[cc + 1].is_ascii_uppercase() && super::word_start(s, cc)
        {
            if let Some(end) = iban(s, cc) {
                out.push(Span::new(cc, end, Detector::Iban));
                return Some(end);
            }
        }
    }
    // `3704 0044` is one number written in groups: no number starts inside it.
    let after_group = i >= 2 && s[i - 1] == b' ' && digit(s[i - 2]) && {
        let digits = s[..i - 1].iter().rev().take_while(|&&b| digit(b)).count();
        i - 1 - digits == 0 || !is_alnum(s[i - 2 - digits])
    };
    if !starts_number(s, i) || after_group {
        return None;
    }
    let plus = i >= 1 && s[i - 1] == b'+' && (i == 1 || !is_alnum(s[i - 2]));
    if plus {
        if on.contains(Detector::Phone) {
            if let Some(end) = e164(s, i) {
                out.push(Span::new(i - 1, end, Detector::Phone));
                return Some(end);
            }
        }
        return None;
    }
    if run_len >= 4 && on.contains(Detector::CardNumber) {
        if let Some(end) = card(s, i) {
            out.push(Span::new(i, end, Detector::CardNumber));
            return Some(end);
        }
    }
    if run_len == 3 && on.contains(Detector::UsSsn) {
        if let Some(end) = ssn(s, i) {
            out.push(Span::new(i, end, Detector::UsSsn));
            return Some(end);
        }
    }
    if on.contains(Detector::Phone) {
        if let Some((start, end)) = phone(s, i, run_len) {
            out.push(Span::new(start, end, Detector::Phone));
            return Some(end);
        }
    }
    None
}

/// Like [`ends_number`], and not followed by another group after a space.
fn ends_grouped(s: &[u8], j: usize) -> bool {
    ends_number(s, j) && !(s.get(j) == Some(&b' ') && s.get(j + 1).is_some_and(|&c| digit(c)))
}

/// Card number at `i`: 13-19 digits, alone or in groups
/// separated by single spaces or dashes (one separator kind), passing the
/// Luhn check, with the length and prefix of a known issuer. Returns the end.
pub(super) fn card(s: &[u8], i: usize) -> Option<usize> {
    let mut digits = [0u8; 19];
    let mut nd = 0;
    let mut j = i;
    let mut sep: Option<u8> = None;
    let mut best = None;
    loop {
        let g = run(s, j, digit);
        if g == 0 || nd + g > 19 {
            break;
        }
        for k in 0..g {
            digits[nd + k] = s[j + k] - b'0';
        }
        nd += g;
        j += g;
        // A card may be followed by another number after a space ("... 1111 12/27").
        let end_ok = ends_number(s, j) || (s.get(j) == Some(&b' '));
        if nd >= 13 && end_ok && luhn(&digits[..nd]) && known_issuer(&digits[..nd]) {
            best = Some(j);
        }
        match (s.get(j), s.get(j + 1)) {
            (Some(&b), Some(&c))
                if (b == b' ' || b == b'-') && digit(c) && sep.is_none_or(|x| x == b) =>
            {
                sep = Some(b);
                j += 1;
            }
            _ => break,
        }
    }
    best
}

fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn known_issuer(d: &[u8]) -> bool {
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + u32::from(x));
    let len = d.len();
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && len == 16,
        2 => (2221..=2720).contains(&p4) && len == 16,
        3 => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
                || ((p2 == 36 || p2 == 38 || (300..=305).contains(&p3)) && (14..=19).contains(&len))
        }
        6 => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || p2 == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// `ddd-dd-dddd` (or with spaces) with a valid area, group and serial.
fn ssn(s: &[u8], i: usize) -> Option<usize> {
    let sep = *s.get(i + 3)?;
    if !(sep == b'-' || sep == b' ') {
        return None;
    }
    if run(s, i + 4, digit) != 2 || s.get(i + 6) != Some(&sep) || run(s, i + 7, digit) != 4 {
        return None;
    }
    let end = i + 11;
    if !ends_grouped(s, end) {
        return None;
    }
    let num = |a: usize, b: usize| {
        s[a..b]
            .iter()
            .fold(0u32, |v, &x| v * 10 + u32::from(x - b'0'))
    };
    let (area, group, serial) = (num(i, i + 3), num(i + 4, i + 6), num(i + 7, i + 11));
    (area != 0 && area != 666 && area < 900 && group != 0 && serial != 0).then_some(end)
}

/// `+` then 8-15 digits, groups separated by at most two of ` -.()`.
fn e164(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut nd = 0;
    loop {
        let g = run(s, j, digit);
        nd += g;
        j += g;
        let sep = run(s, j, |b| matches!(b, b' ' | b'-' | b'.' | b'(' | b')'));
        if nd < 15 && (1..=2).contains(&sep) && s.get(j + sep).is_some_and(|&c| digit(c)) {
            j += sep;
        } else {
            break;
        }
    }
    // A closing parenthesis right after the number belongs to the text.
    ((8..=15).contains(&nd) && ends_grouped(s, j)).then_some(j)
}

/// National formats: `(555) 123-4567`, `555-123-4567`, `555.123.4567`,
/// `555 123 4567`, `1-555-123-4567`, and trunk-prefixed `020 7946 0958`.
/// Returns the span (it may start one byte early, at the parenthesis).
fn phone(s: &[u8], i: usize, run_len: usize) -> Option<(usize, usize)> {
    // (555) 123-4567
    if run_len == 3 && i >= 1 && s[i - 1] == b'(' && s.get(i + 3) == Some(&b')') {
        let mut j = i + 4;
        if s.get(j) == Some(&b' ') {
            j += 1;
        }
        if run(s, j, digit) == 3 {
            let mut k = j + 3;
            if matches!(s.get(k), Some(b'-' | b'.' | b' ')) {
                k += 1;
            }
            if run(s, k, digit) == 4 && ends_grouped(s, k + 4) {
                return Some((i - 1, k + 4));
            }
        }
        return None;
    }
    // 1-555-123-4567
    let (start, body) =
        if run_len == 1 && s[i] == b'1' && matches!(s.get(i + 1), Some(b'-' | b'.' | b' ')) {
            (i, i + 2)
        } else {
            (i, i)
        };
    if run(s, body, digit) == 3 && s[body] >= b'2' {
        let sep = *s.get(body + 3)?;
        if matches!(sep, b'-' | b'.' | b' ')
            && (body == i || s[i + 1] == sep)
            && run(s, body + 4, digit) == 3
            && s.get(body + 7) == Some(&sep)
            && run(s, body + 8, digit) == 4
            && ends_grouped(s, body + 12)
        {
            return Some((start, body + 12));
        }
    }
    // 020 7946 0958, 01632 960983: trunk prefix 0, 2-3 groups, 10-12 digits.
    if s[i] == b'0' && (3..=5).contains(&run_len) {
        let sep = *s.get(i + run_len)?;
        if sep != b' ' && sep != b'-' {
            return None;
        }
        let mut j = i + run_len;
        let mut nd = run_len;
        let mut groups = 1;
        while s.get(j) == Some(&sep) && groups < 3 {
            let g = run(s, j + 1, digit);
            if g < 3 {
                break;
            }
            nd += g;
            j += 1 + g;
            groups += 1;
        }
        if groups >= 2 && (10..=12).contains(&nd) && ends_grouped(s, j) {
            return Some((i, j));
        }
    }
    None
}

/// IBAN at `i` (the country code): check digits, BBAN, optional spaces every
/// four characters, the country's length when known, mod-97 == 1.
fn iban(s: &[u8], i: usize) -> Option<usize> {
    if !(digit(*s.get(i + 2)?) && digit(*s.get(i + 3)?)) {
        return None;
    }
    let want = country_length(s[i], s[i + 1]);
    let max = want.unwrap_or(34);
    let mut chars = [0u8; 34];
    let mut n = 0;
    let mut j = i;
    while n < max {
        match s.get(j) {
            Some(&b) if b.is_ascii_uppercase() || digit(b) => {
                chars[n] = b;
                n += 1;
                j += 1;
            }
            Some(b' ')
                if n % 4 == 0
                    && n > 0
                    && s.get(j + 1)
                        .is_some_and(|&c| c.is_ascii_uppercase() || digit(c)) =>
            {
                j += 1;
            }
            _ => break,
        }
    }
    let len_ok = match want {
        Some(l) => n == l,
        None => n >= 15,
    };
    if !len_ok || !super::word_end(s, j) {
        return None;
    }
    let mut rem = 0u32;
    for &c in chars[4..n].iter().chain(chars[..4].iter()) {
        let v = if digit(c) {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some(j)
}

/// IBAN lengths by country (ISO 13616 registry, the common countries).
fn country_length(a: u8, b: u8) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE
        .iter()
        .find(|(cc, _)| cc[0] == a && cc[1] == b)
        .map(|(_, l)| *l)
}

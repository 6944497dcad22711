//! Cloud and SaaS credentials recognised by their fixed prefixes (AWS, GCP,
//! GitHub, Slack, Stripe), by a context word (AWS secret keys, Azure
//! `AccountKey=`, SAS `sig=`), or by being the whole value (Azure keys).
//!
//! Each function gets the position of its anchor literal and returns the byte
//! range to redact.

use super::{is_alnum, run, word_start, Span};
use crate::Detector;

fn token_char(b: u8) -> bool {
    is_alnum(b) || b == b'_' || b == b'-'
}

fn b64(b: u8) -> bool {
    is_alnum(b) || b == b'/' || b == b'+'
}

/// Not preceded by a byte of the token alphabet (`[A-Za-z0-9_-]`).
fn token_start(s: &[u8], i: usize) -> bool {
    i == 0 || !token_char(s[i - 1])
}

/// AWS access key id: one of the documented prefixes, then 16 of `[A-Z0-9]`.
pub(super) fn aws_access(s: &[u8], i: usize) -> Option<(usize, usize)> {
    let upper_digit = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    (word_start(s, i) && run(s, i + 4, upper_digit) == 16).then_some((i, i + 20))
}

/// An `aws` word (not the tail of `laws`) or `secret` anywhere: the context
/// that makes a 40-character base64 run an AWS secret key.
pub(super) fn is_aws_context(s: &[u8], start: usize, end: usize) -> bool {
    let word = &s[start..end];
    !word.eq_ignore_ascii_case(b"aws") || word_start(s, start)
}

/// AWS secret access keys have no prefix: 40 characters of `[A-Za-z0-9/+]`.
/// The heuristic: such a run (not part of a longer base64 string) with at
/// least one lower-case letter, one upper-case letter and one digit, `/` or
/// `+` is a secret key when the same text mentions `aws` or `secret`, or when
/// it is the whole value (or, with `embedded`, a run inside a document whose
/// strings are each values of their own). The mixed-case rule keeps git SHAs and hex digests
/// (40 lower-case hex characters) out; a standalone 40-character random
/// base64 blob is the accepted false positive (see BENCHMARKS.md).
pub(super) fn aws_secret(s: &[u8], context: bool, embedded: bool, out: &mut Vec<Span>) {
    let trimmed = s.trim_ascii();
    if trimmed.len() == 40 && trimmed.iter().all(|&b| b64(b)) && mixed(trimmed) {
        let start = s.len() - s.trim_ascii_start().len();
        out.push(Span::new(start, start + 40, Detector::AwsSecretKey));
        return;
    }
    if !(context || embedded) || s.len() < 40 {
        return;
    }
    let mut i = 0;
    while i < s.len() {
        let n = run(s, i, b64);
        if n == 0 {
            i += 1;
            continue;
        }
        let padded = s.get(i + n) == Some(&b'=');
        if n == 40 && !padded && mixed(&s[i..i + n]) {
            out.push(Span::new(i, i + n, Detector::AwsSecretKey));
        }
        // A standalone Azure key quoted inside a larger text (a JSON string).
        if embedded && n == 86 && s[i + n..].starts_with(b"==") {
            out.push(Span::new(i, i + 88, Detector::AzureKey));
        }
        i += n;
    }
}

fn mixed(v: &[u8]) -> bool {
    v.iter().any(u8::is_ascii_lowercase)
        && v.iter().any(u8::is_ascii_uppercase)
        && v.iter()
            .any(|&b| b.is_ascii_digit() || b == b'/' || b == b'+')
}

/// GCP API key: `AIza` then 35 of `[0-9A-Za-z_-]`.
pub(super) fn gcp(s: &[u8], i: usize) -> Option<(usize, usize)> {
    (token_start(s, i) && run(s, i + 4, token_char) == 35).then_some((i, i + 39))
}

/// `AccountKey=<base64>` in an Azure storage connection string.
pub(super) fn azure_account_key(s: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if !word_start(s, start) {
        return None;
    }
    let mut j = end + run(s, end, |b| b == b' ');
    if s.get(j) != Some(&b'=') {
        return None;
    }
    j += 1;
    j += run(s, j, |b| b == b' ');
    let n = run(s, j, |b| b64(b) || b == b'=');
    (n >= 20).then_some((j, j + n))
}

/// `sig=` of a shared access signature URL (`?...&sig=<url-encoded base64>`).
pub(super) fn azure_sig(s: &[u8], i: usize) -> Option<(usize, usize)> {
    if !(i == 0 || matches!(s[i - 1], b'?' | b'&' | b';' | b' ')) {
        return None;
    }
    let j = i + 4;
    let n = run(s, j, |b| b64(b) || b == b'%' || b == b'=');
    (n >= 20).then_some((j, j + n))
}

/// A standalone Azure storage key: the whole value is 86 base64 characters
/// and `==`.
pub(super) fn azure_standalone(s: &[u8], out: &mut Vec<Span>) {
    let t = s.trim_ascii();
    if t.len() == 88 && t.ends_with(b"==") && t[..86].iter().all(|&b| b64(b)) {
        let start = s.len() - s.trim_ascii_start().len();
        out.push(Span::new(start, start + 88, Detector::AzureKey));
    }
}

/// `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` then 36 alphanumerics.
pub(super) fn github(s: &[u8], i: usize) -> Option<(usize, usize)> {
    let n = run(s, i + 4, is_alnum);
    (token_start(s, i) && (36..=251).contains(&n)).then_some((i, i + 4 + n))
}

/// Fine-grained tokens: `github_pat_` then 82 of `[A-Za-z0-9_]`.
pub(super) fn github_pat(s: &[u8], i: usize) -> Option<(usize, usize)> {
    let n = run(s, i + 11, |b| is_alnum(b) || b == b'_');
    (token_start(s, i) && n >= 70).then_some((i, i + 11 + n))
}

/// `xox[abpors]-` then at least 10 of `[0-9A-Za-z-]`.
pub(super) fn slack_token(s: &[u8], i: usize) -> Option<(usize, usize)> {
    if !token_start(s, i)
        || !matches!(s.get(i + 3), Some(b'a' | b'b' | b'p' | b'o' | b'r' | b's'))
        || s.get(i + 4) != Some(&b'-')
    {
        return None;
    }
    let n = run(s, i + 5, |b| is_alnum(b) || b == b'-');
    (n >= 10).then_some((i, i + 5 + n))
}

/// Incoming webhook URL: `hooks.slack.com/services/<path>`.
pub(super) fn slack_webhook(s: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let rest = s.get(end..)?;
    if !rest.starts_with(b"services/") && !rest.starts_with(b"workflows/") {
        return None;
    }
    let p = end
        + if rest.starts_with(b"services/") {
            9
        } else {
            10
        };
    let n = run(s, p, |b| token_char(b) || b == b'/');
    (n >= 10).then_some((start, p + n))
}

/// `sk_live_`, `rk_test_`, `pk_live_`...: the anchor is `_live_`/`_test_`.
pub(super) fn stripe(s: &[u8], i: usize) -> Option<(usize, usize)> {
    if i < 2 || !matches!(&s[i - 2..i], b"sk" | b"rk" | b"pk") || !token_start(s, i - 2) {
        return None;
    }
    let n = run(s, i + 6, is_alnum);
    (n >= 16).then_some((i - 2, i + 6 + n))
}

/// Stripe webhook signing secret `whsec_...`.
pub(super) fn stripe_webhook(s: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let n = run(s, end, is_alnum);
    (token_start(s, start) && n >= 16).then_some((start, end + n))
}

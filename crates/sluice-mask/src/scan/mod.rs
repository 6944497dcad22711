//! The content scanner: finds the byte ranges of sensitive content in a value.
//!
//! Speed comes from never running a precise check where it cannot match:
//! `memchr` finds `@` for emails, one Aho-Corasick pass (SIMD-accelerated
//! for this small set of literals) finds the fixed anchors of the other textual
//! detectors (`://`, key
//! prefixes such as `AKIA` or `ghp_`, `eyJ`, `-----BEGIN`, `Bearer`,
//! `password`...), and one plain loop finds the starts of digit runs for the
//! numeric detectors. Each anchor then gets a precise check (Luhn, mod-97,
//! base64 + JSON header, length and alphabet) on a small window around it.
//! The scanner works on bytes: every detector matches ASCII only, so it needs
//! no UTF-8 validation and handles invalid UTF-8 the same way.

mod keys;
mod numeric;
mod secrets;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::{Detector, DetectorSet};

/// One finding: `value[start..end]` is sensitive content of kind `detector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) detector: Detector,
}

impl Span {
    fn new(start: usize, end: usize, detector: Detector) -> Span {
        Span {
            start,
            end,
            detector,
        }
    }
}

/// What an anchor literal found by the automaton asks to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Anchor {
    SchemeSep,
    AwsAccess,
    AwsContext,
    Gcp,
    AzureAccountKey,
    AzureSig,
    Github,
    GithubPat,
    SlackXox,
    SlackHook,
    Stripe,
    StripeWebhook,
    Pem,
    Jwt,
    Bearer,
    Basic,
    PasswordKey,
}

impl Anchor {
    fn detector(self) -> Detector {
        match self {
            Anchor::SchemeSep | Anchor::PasswordKey => Detector::ConnectionPassword,
            Anchor::AwsAccess => Detector::AwsAccessKey,
            Anchor::AwsContext => Detector::AwsSecretKey,
            Anchor::Gcp => Detector::GcpKey,
            Anchor::AzureAccountKey | Anchor::AzureSig => Detector::AzureKey,
            Anchor::Github | Anchor::GithubPat => Detector::GithubToken,
            Anchor::SlackXox | Anchor::SlackHook => Detector::SlackToken,
            Anchor::Stripe | Anchor::StripeWebhook => Detector::StripeKey,
            Anchor::Pem => Detector::PrivateKey,
            Anchor::Jwt => Detector::Jwt,
            Anchor::Bearer | Anchor::Basic => Detector::BearerToken,
        }
    }
}

/// Spellings of the case-insensitive keywords. Listing the usual spellings
/// (instead of an ASCII-case-insensitive automaton) keeps the automaton
/// eligible for its SIMD prefilter; the checks themselves compare without case.
fn case_variants(word: &str) -> [String; 3] {
    let mut capital = word.to_string();
    if let Some(first) = capital.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    [word.to_string(), capital, word.to_ascii_uppercase()]
}

/// The compiled anchors for one set of enabled detectors.
pub(crate) struct Scanner {
    automaton: Option<AhoCorasick>,
    anchors: Vec<Anchor>,
    enabled: DetectorSet,
    numeric: bool,
}

impl Scanner {
    pub(crate) fn new(enabled: DetectorSet) -> Result<Scanner, aho_corasick::BuildError> {
        let mut literals: Vec<(String, Anchor)> = Vec::new();
        let mut add = |lits: &[&str], anchor: Anchor| {
            if enabled.contains(anchor.detector()) {
                literals.extend(lits.iter().map(|l| (l.to_string(), anchor)));
            }
        };
        add(&["://"], Anchor::SchemeSep);
        add(
            &[
                "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
            ],
            Anchor::AwsAccess,
        );
        add(&["AIza"], Anchor::Gcp);
        add(&["sig="], Anchor::AzureSig);
        add(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], Anchor::Github);
        add(&["github_pat_"], Anchor::GithubPat);
        add(&["xox"], Anchor::SlackXox);
        add(&["hooks.slack.com/"], Anchor::SlackHook);
        add(&["_live_", "_test_"], Anchor::Stripe);
        add(&["whsec_"], Anchor::StripeWebhook);
        add(&["-----BEGIN"], Anchor::Pem);
        add(&["eyJ"], Anchor::Jwt);
        let mut add_words = |words: &[&str], anchor: Anchor| {
            if enabled.contains(anchor.detector()) {
                for w in words {
                    literals.extend(case_variants(w).into_iter().map(|l| (l, anchor)));
                }
            }
        };
        add_words(&["aws", "secret"], Anchor::AwsContext);
        add_words(&["accountkey", "accountKey"], Anchor::AzureAccountKey);
        add_words(&["bearer"], Anchor::Bearer);
        add_words(&["basic"], Anchor::Basic);
        add_words(&["password", "passwd", "pwd"], Anchor::PasswordKey);
        literals.sort();
        literals.dedup();
        let automaton = if literals.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(literals.iter().map(|(l, _)| l.as_bytes()))?,
            )
        };
        let numeric = [
            Detector::CardNumber,
            Detector::UsSsn,
            Detector::Phone,
            Detector::Iban,
        ]
        .into_iter()
        .any(|d| enabled.contains(d));
        Ok(Scanner {
            automaton,
            anchors: literals.into_iter().map(|(_, a)| a).collect(),
            enabled,
            numeric,
        })
    }

    /// Appends every finding in `s` to `out`, sorted by start and with
    /// overlapping findings merged; returns every detector that fired
    /// (including those whose finding was merged into another).
    pub(crate) fn scan(&self, s: &[u8], out: &mut Vec<Span>) -> DetectorSet {
        self.scan_with(s, out, false)
    }

    /// Whether a whole document may hold a finding in one of its values: a
    /// superset of what scanning each value alone would find (the
    /// whole-value checks also run on every embedded base64 run), so a
    /// `false` lets a clean JSON document skip its structural walk.
    pub(crate) fn may_find_in_document(&self, s: &[u8], scratch: &mut Vec<Span>) -> bool {
        scratch.clear();
        self.scan_with(s, scratch, true);
        !scratch.is_empty()
    }

    fn scan_with(&self, s: &[u8], out: &mut Vec<Span>, embedded: bool) -> DetectorSet {
        let first = out.len();
        let mut aws_context = false;
        if let Some(ac) = &self.automaton {
            for m in ac.find_iter(s) {
                let Some(anchor) = self.anchors.get(m.pattern().as_usize()) else {
                    continue;
                };
                self.check_anchor(*anchor, s, m.start(), m.end(), out, &mut aws_context);
            }
        }
        // `@` is one byte: memchr finds it far faster than the automaton,
        // whose SIMD prefilter needs literals of a few bytes.
        if self.enabled.contains(Detector::Email) {
            for at in memchr::memchr_iter(b'@', s) {
                if let Some((a, b)) = secrets::email(s, at) {
                    out.push(Span::new(a, b, Detector::Email));
                }
            }
        }
        if self.numeric {
            numeric::scan(s, self.enabled, out);
        }
        if self.enabled.contains(Detector::AwsSecretKey) || embedded {
            keys::aws_secret(s, aws_context, embedded, out);
        }
        if self.enabled.contains(Detector::AzureKey) {
            keys::azure_standalone(s, out);
        }
        let hits = out[first..].iter().map(|s| s.detector).collect();
        if out.len() > first + 1 {
            let mut found: Vec<Span> = out.drain(first..).collect();
            merge(&mut found);
            out.extend(found);
        }
        hits
    }

    fn check_anchor(
        &self,
        anchor: Anchor,
        s: &[u8],
        start: usize,
        end: usize,
        out: &mut Vec<Span>,
        aws_context: &mut bool,
    ) {
        let found = match anchor {
            Anchor::SchemeSep => secrets::url_password(s, start),
            Anchor::PasswordKey => secrets::password_pair(s, start, end),
            Anchor::AwsAccess => keys::aws_access(s, start),
            Anchor::AwsContext => {
                *aws_context |= keys::is_aws_context(s, start, end);
                None
            }
            Anchor::Gcp => keys::gcp(s, start),
            Anchor::AzureAccountKey => keys::azure_account_key(s, start, end),
            Anchor::AzureSig => keys::azure_sig(s, start),
            Anchor::Github => keys::github(s, start),
            Anchor::GithubPat => keys::github_pat(s, start),
            Anchor::SlackXox => keys::slack_token(s, start),
            Anchor::SlackHook => keys::slack_webhook(s, start, end),
            Anchor::Stripe => keys::stripe(s, start),
            Anchor::StripeWebhook => keys::stripe_webhook(s, start, end),
            Anchor::Pem => secrets::private_key(s, start),
            Anchor::Jwt => secrets::jwt(s, start),
            Anchor::Bearer => secrets::bearer(s, start, end),
            Anchor::Basic => secrets::basic(s, start, end),
        };
        if let Some((a, b)) = found {
            if a < b {
                out.push(Span::new(a, b, anchor.detector()));
            }
        }
    }
}

/// Sorts by start and merges overlapping spans; a merged span keeps the label
/// of the one that starts first (the longer one on a tie).
fn merge(spans: &mut Vec<Span>) {
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans.drain(..) {
        match merged.last_mut() {
            Some(last) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    *spans = merged;
}

/// Whether the whole value (trimmed by the caller) is one email address.
pub(crate) fn whole_value_is_email(s: &[u8]) -> bool {
    memchr::memchr(b'@', s)
        .and_then(|at| secrets::email(s, at))
        .is_some_and(|(a, b)| a == 0 && b == s.len())
}

/// Whether the whole value is one card number.
pub(crate) fn whole_value_is_card(s: &[u8]) -> bool {
    numeric::card(s, 0).is_some_and(|end| end == s.len())
}

// Byte classes shared by the detectors.

#[inline]
pub(super) fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Length of the run of bytes satisfying `pred` starting at `i`.
#[inline]
pub(super) fn run(s: &[u8], i: usize, pred: impl Fn(u8) -> bool) -> usize {
    s.get(i..)
        .map_or(0, |rest| rest.iter().take_while(|&&b| pred(b)).count())
}

/// No alphanumeric byte right before `i`.
#[inline]
pub(super) fn word_start(s: &[u8], i: usize) -> bool {
    i == 0 || !is_alnum(s[i - 1])
}

/// No alphanumeric byte at `j`.
#[inline]
pub(super) fn word_end(s: &[u8], j: usize) -> bool {
    s.get(j).is_none_or(|&b| !is_alnum(b))
}

#[cfg(test)]
mod tests;

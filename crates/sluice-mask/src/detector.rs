//! The content detectors and the small bitset that says which ones are on.
//! A bitset (not a `Vec`) because it is consulted for every value and copied
//! into every result.

use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::MaskError;

/// One kind of sensitive content the masker can recognise inside a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Detector {
    /// `local@domain.tld` addresses.
    Email,
    /// Payment card numbers (Luhn-valid, known issuer prefix).
    CardNumber,
    /// US social security numbers written `ddd-dd-dddd`.
    UsSsn,
    /// Phone numbers in E.164 or common national formats.
    Phone,
    /// International bank account numbers (mod-97 checked).
    Iban,
    /// AWS access key ids (`AKIA...`).
    AwsAccessKey,
    /// AWS secret access keys (40 base64 characters, see the heuristic in `scan::keys`).
    AwsSecretKey,
    /// Google Cloud API keys (`AIza...`).
    GcpKey,
    /// Azure storage account keys and SAS signatures.
    AzureKey,
    /// GitHub personal access, OAuth, app and fine-grained tokens.
    GithubToken,
    /// Slack tokens and incoming-webhook URLs.
    SlackToken,
    /// Stripe API keys and webhook secrets.
    StripeKey,
    /// PEM private key blocks.
    PrivateKey,
    /// JSON Web Tokens.
    Jwt,
    /// `Bearer` tokens and `Basic` credentials of HTTP authorization headers.
    BearerToken,
    /// Passwords inside connection strings and `password=` pairs; also the
    /// label of values redacted because of their JSON key name.
    ConnectionPassword,
}

impl Detector {
    /// Every detector, in declaration order.
    pub const ALL: [Detector; 16] = [
        Detector::Email,
        Detector::CardNumber,
        Detector::UsSsn,
        Detector::Phone,
        Detector::Iban,
        Detector::AwsAccessKey,
        Detector::AwsSecretKey,
        Detector::GcpKey,
        Detector::AzureKey,
        Detector::GithubToken,
        Detector::SlackToken,
        Detector::StripeKey,
        Detector::PrivateKey,
        Detector::Jwt,
        Detector::BearerToken,
        Detector::ConnectionPassword,
    ];

    /// The stable name used in configuration, redaction tokens and logs.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::CardNumber => "card",
            Detector::UsSsn => "ssn",
            Detector::Phone => "phone",
            Detector::Iban => "iban",
            Detector::AwsAccessKey => "aws_access_key",
            Detector::AwsSecretKey => "aws_secret_key",
            Detector::GcpKey => "gcp_key",
            Detector::AzureKey => "azure_key",
            Detector::GithubToken => "github_token",
            Detector::SlackToken => "slack_token",
            Detector::StripeKey => "stripe_key",
            Detector::PrivateKey => "private_key",
            Detector::Jwt => "jwt",
            Detector::BearerToken => "bearer_token",
            Detector::ConnectionPassword => "password",
        }
    }

    /// The detector with this [`Detector::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name.trim()))
    }

    fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of detectors. `Default` is every detector on: a configuration that
/// forgets to list detectors must not silently stop masking.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DetectorSet(u32);

impl DetectorSet {
    /// Every detector.
    pub fn all() -> DetectorSet {
        Detector::ALL
            .into_iter()
            .fold(DetectorSet(0), DetectorSet::with)
    }

    /// No detector (only column and key-name rules mask).
    pub fn none() -> DetectorSet {
        DetectorSet(0)
    }

    /// This set plus `d`.
    #[must_use]
    pub fn with(self, d: Detector) -> DetectorSet {
        DetectorSet(self.0 | d.bit())
    }

    /// This set without `d`.
    #[must_use]
    pub fn without(self, d: Detector) -> DetectorSet {
        DetectorSet(self.0 & !d.bit())
    }

    /// Whether `d` is in the set.
    pub fn contains(self, d: Detector) -> bool {
        self.0 & d.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of both sets.
    #[must_use]
    pub fn union(self, other: DetectorSet) -> DetectorSet {
        DetectorSet(self.0 | other.0)
    }

    /// Adds `d` in place.
    pub fn insert(&mut self, d: Detector) {
        self.0 |= d.bit();
    }

    /// The detectors in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Detector> {
        Detector::ALL.into_iter().filter(move |d| self.contains(*d))
    }

    /// Parses a list of detector names; `"all"` stands for every detector.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<DetectorSet, MaskError> {
        let mut set = DetectorSet::none();
        for name in names {
            let name = name.as_ref();
            if name.trim().eq_ignore_ascii_case("all") {
                set = DetectorSet::all();
                continue;
            }
            let d = Detector::from_name(name)
                .ok_or_else(|| MaskError::UnknownDetector(name.to_string()))?;
            set.insert(d);
        }
        Ok(set)
    }
}

impl Default for DetectorSet {
    fn default() -> Self {
        DetectorSet::all()
    }
}

impl fmt::Debug for DetectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Detector::name))
            .finish()
    }
}

impl FromIterator<Detector> for DetectorSet {
    fn from_iter<I: IntoIterator<Item = Detector>>(iter: I) -> Self {
        iter.into_iter()
            .fold(DetectorSet::none(), DetectorSet::with)
    }
}

impl Serialize for DetectorSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for d in self.iter() {
            seq.serialize_element(d.name())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for DetectorSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = DetectorSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of detector names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DetectorSet, A::Error> {
                let mut names: Vec<String> = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                DetectorSet::from_names(&names).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_seq(Names)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_for_every_detector() {
        for d in Detector::ALL {
            assert_eq!(Detector::from_name(d.name()), Some(d));
        }
        assert_eq!(Detector::from_name("CARD"), Some(Detector::CardNumber));
        assert_eq!(Detector::from_name("nope"), None);
    }

    #[test]
    fn default_set_has_every_detector_on() {
        let set = DetectorSet::default();
        assert!(Detector::ALL.iter().all(|d| set.contains(*d)));
        assert_eq!(set.iter().count(), 16);
    }

    #[test]
    fn with_and_without_toggle_one_detector() {
        let set = DetectorSet::none()
            .with(Detector::Jwt)
            .with(Detector::Email);
        assert!(set.contains(Detector::Jwt));
        let set = set.without(Detector::Jwt);
        assert!(!set.contains(Detector::Jwt));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Detector::Email]);
    }

    #[test]
    fn deserializes_from_a_list_of_names_and_rejects_unknown_ones() {
        let set: DetectorSet = serde_json::from_str(r#"["email","card"]"#).unwrap();
        assert_eq!(
            set,
            DetectorSet::none()
                .with(Detector::Email)
                .with(Detector::CardNumber)
        );
        let all: DetectorSet = serde_json::from_str(r#"["all"]"#).unwrap();
        assert_eq!(all, DetectorSet::all());
        assert!(serde_json::from_str::<DetectorSet>(r#"["emails"]"#).is_err());
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["email","card"]"#);
    }
}

//! Per-detector positives and look-alike negatives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn found(text: &str) -> Vec<(&'static str, String)> {
    let scanner = Scanner::new(DetectorSet::all()).unwrap();
    let mut spans = Vec::new();
    scanner.scan(text.as_bytes(), &mut spans);
    spans
        .iter()
        .map(|s| (s.detector.name(), text[s.start..s.end].to_string()))
        .collect()
}

fn assert_finds(text: &str, detector: &str, secret: &str) {
    let f = found(text);
    assert!(
        f.iter().any(|(d, v)| *d == detector && v == secret),
        "{detector} should find {secret:?} in {text:?}, found {f:?}"
    );
}

fn assert_clean(text: &str) {
    let f = found(text);
    assert!(
        f.is_empty(),
        "nothing should be found in {text:?}, found {f:?}"
    );
}

#[test]
fn email_needs_a_dotted_domain_with_a_letter_tld() {
    assert_finds(
        "contact ann.lee+x@mail.example.com.",
        "email",
        "ann.lee+x@mail.example.com",
    );
    assert_finds(
        "Key (email)=(ann@example.com) already exists.",
        "email",
        "ann@example.com",
    );
    assert_clean("user@localhost");
    assert_clean("a@b.c");
    assert_clean("@ann twitter handle");
    assert_clean("version 1.2@3.4");
    assert_clean("foo@bar.123");
}

#[test]
fn card_numbers_need_luhn_and_a_known_issuer() {
    assert_finds(
        "card 4111 1111 1111 1111 exp",
        "card",
        "4111 1111 1111 1111",
    );
    assert_finds("5555-5555-5555-4444", "card", "5555-5555-5555-4444");
    assert_finds("amex 378282246310005", "card", "378282246310005");
    assert_finds("disc 6011111111111117", "card", "6011111111111117");
    assert_finds("jcb 3530111333300000", "card", "3530111333300000");
    assert_finds("mc2 2223003122003222", "card", "2223003122003222");
    assert_finds("4111111111111111 12/27", "card", "4111111111111111");
    assert_clean("4111 1111 1111 1112");
    assert_clean("order 1234567812345670");
    assert_clean("ts 1700000000000");
    assert_clean("id 94111111111111111111");
    assert_clean("4111-1111 1111-1111");
}

#[test]
fn ssn_requires_separators_and_valid_parts() {
    assert_finds("ssn 123-45-6789", "ssn", "123-45-6789");
    assert_finds("ssn 123 45 6789.", "ssn", "123 45 6789");
    assert_clean("123456789");
    assert_clean("000-12-3456");
    assert_clean("666-12-3456");
    assert_clean("912-12-3456");
    assert_clean("123-00-4567");
    assert_clean("123-45-0000");
    assert_clean("2024-12-01");
    assert_clean("123-45-67890");
}

#[test]
fn phones_need_a_phone_format_not_a_digit_run() {
    assert_finds("call (555) 123-4567 now", "phone", "(555) 123-4567");
    assert_finds("555-123-4567", "phone", "555-123-4567");
    assert_finds("tel 555.123.4567", "phone", "555.123.4567");
    assert_finds("+44 20 7946 0958", "phone", "+44 20 7946 0958");
    assert_finds("+14155552671", "phone", "+14155552671");
    assert_finds("1-800-555-0199", "phone", "1-800-555-0199");
    assert_finds("020 7946 0958", "phone", "020 7946 0958");
    assert_clean("order 5551234567");
    assert_clean("2024-01-15 10:30:00");
    assert_clean("10.0.0.1");
    assert_clean("192.168.100.200");
    assert_clean("+5 points");
    assert_clean("ISBN 978-0-306-40615-7");
    assert_clean("price 1,234.56");
}

#[test]
fn iban_needs_mod97_and_country_length() {
    assert_finds(
        "DE89 3704 0044 0532 0130 00",
        "iban",
        "DE89 3704 0044 0532 0130 00",
    );
    assert_finds(
        "iban: GB82WEST12345698765432;",
        "iban",
        "GB82WEST12345698765432",
    );
    assert_finds(
        "FR1420041010050500013M02606",
        "iban",
        "FR1420041010050500013M02606",
    );
    assert_clean("DE89 3704 0044 0532 0130 01");
    assert_clean("GB82WEST1234569876543");
    assert_clean("SKU AB12CDEF34567890");
}

#[test]
fn aws_keys_need_their_prefix_or_context() {
    assert_finds(
        "key AKIAIOSFODNN7EXAMPLE,",
        "aws_access_key",
        "AKIAIOSFODNN7EXAMPLE",
    );
    assert_clean("AKIAIOSFODNN7EXAMPL");
    assert_clean("XAKIAIOSFODNN7EXAMPLE");
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    assert_finds(
        &format!("aws_secret_access_key={secret}"),
        "aws_secret_key",
        secret,
    );
    assert_finds(secret, "aws_secret_key", secret);
    assert_clean(&format!("laws say {secret} is fine"));
    assert_clean("commit da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_clean("da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

#[test]
fn gcp_azure_github_slack_stripe_keys_are_found_by_prefix() {
    let gcp = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY";
    assert_finds(&format!("key={gcp}&x"), "gcp_key", gcp);
    let azure = format!("{}==", "a".repeat(40) + &"B1".repeat(23));
    assert_eq!(azure.len(), 88);
    assert_finds(
        &format!("DefaultEndpointsProtocol=https;AccountName=x;AccountKey={azure};EndpointSuffix=core.windows.net"),
        "azure_key",
        &azure,
    );
    assert_finds(&azure, "azure_key", &azure);
    assert_finds(
        "https://x.blob.core.windows.net/c?sv=2021&sig=abcDEF123%2Bxyz%2F456ghiJKL%3D",
        "azure_key",
        "abcDEF123%2Bxyz%2F456ghiJKL%3D",
    );
    let gh = "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";
    assert_finds(&format!("token {gh}"), "github_token", gh);
    let pat = format!("github_pat_{}", "A1b2C3d4E5".repeat(8) + "xy");
    assert_finds(&pat, "github_token", &pat);
    assert_clean("ghp_short");
    assert_finds(
        "xoxb-2048-9135-abcdefABCDEF",
        "slack_token",
        "xoxb-2048-9135-abcdefABCDEF",
    );
    assert_finds(
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "slack_token",
        "hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    );
    assert_clean("xoxo hugs and kisses");
    assert_finds(
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "stripe_key",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    );
    assert_finds(
        "whsec_abcdefghijklmnop1234",
        "stripe_key",
        "whsec_abcdefghijklmnop1234",
    );
    assert_clean("run_test_suite_for_feature");
    assert_clean("desk_live_stream");
}

#[test]
fn private_key_blocks_are_redacted_whole_or_to_the_end() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
    assert_finds(&format!("key:\n{pem}\ntrailer"), "private_key", pem);
    let cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg";
    assert_finds(&format!("x {cut}"), "private_key", cut);
    assert_clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    assert_clean("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----");
}

#[test]
fn jwt_needs_a_decodable_header_with_alg() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_finds(&format!("token={jwt};"), "jwt", jwt);
    // header {"typ":"JWT"} without alg
    assert_clean("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln");
    assert_clean("eyJhbGciOiJIUzI1NiJ9 alone");
}

#[test]
fn bearer_and_basic_credentials_are_found_after_their_scheme() {
    assert_finds(
        "Authorization: Bearer abcdef0123456789XYZ",
        "bearer_token",
        "abcdef0123456789XYZ",
    );
    assert_finds(
        "authorization: basic dXNlcjpwYXNzd29yZA==",
        "bearer_token",
        "dXNlcjpwYXNzd29yZA==",
    );
    assert_clean("the bearer of bad news");
    assert_clean("basic research is basic");
    assert_clean("Bearer short");
}

#[test]
fn passwords_in_urls_and_key_value_pairs_are_found() {
    assert_finds(
        "postgres://app:s3cr3t@db.example.com:5432/app",
        "password",
        "s3cr3t",
    );
    assert_finds(
        "mongodb+srv://u:p@ss@cluster0.example.net/db",
        "password",
        "p@ss",
    );
    assert_finds(
        "host=db port=5432 password=hunter2 user=x",
        "password",
        "hunter2",
    );
    assert_finds("Server=x;Pwd='a b c';", "password", "a b c");
    assert_finds(
        "Key (password)=(hunter2) already exists.",
        "password",
        "hunter2",
    );
    assert_clean("https://example.com/path?q=1");
    assert_clean("postgres://app@db.example.com/app");
    assert_clean("password authentication failed for user \"app\"");
    // no email is reported inside a URL authority
    let f = found("redis://default:pw@cache.example.com:6379");
    assert_eq!(f, vec![("password", "pw".to_string())]);
}

#[test]
fn every_detector_can_be_switched_off() {
    let scanner = Scanner::new(DetectorSet::all().without(Detector::Email)).unwrap();
    let mut spans = Vec::new();
    scanner.scan(b"ann@example.com 123-45-6789", &mut spans);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].detector, Detector::UsSsn);
    let none = Scanner::new(DetectorSet::none()).unwrap();
    spans.clear();
    none.scan(
        b"ann@example.com 123-45-6789 AKIAIOSFODNN7EXAMPLE",
        &mut spans,
    );
    assert!(spans.is_empty());
}

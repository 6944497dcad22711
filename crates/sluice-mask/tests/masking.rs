//! Behaviour of the public API: column decisions, value kinds, styles, JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_mask::{
    ColumnInfo, ColumnPattern, ColumnRule, Detector, DetectorSet, MaskConfig, MaskError, Masked,
    Masker, Style, ValueKind,
};

fn masker() -> Masker {
    Masker::new(MaskConfig::default()).unwrap()
}

fn with_style(style: Style, key: Option<&[u8]>) -> Masker {
    Masker::new(MaskConfig {
        style,
        hmac_key: key.map(<[u8]>::to_vec),
        ..MaskConfig::default()
    })
    .unwrap()
}

fn text(m: &Masker, v: &str) -> String {
    match m.mask(v.as_bytes(), ValueKind::Text, None) {
        Masked::Unchanged(b) => String::from_utf8(b.to_vec()).unwrap(),
        Masked::Replaced(b, _) => String::from_utf8(b).unwrap(),
        Masked::Null(_) => panic!("text values are never nulled"),
    }
}

fn json(m: &Masker, v: &str) -> String {
    String::from_utf8(
        m.mask(v.as_bytes(), ValueKind::Json, None)
            .bytes()
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

fn col(name: &str) -> ColumnInfo<'_> {
    ColumnInfo {
        name,
        schema: Some("public"),
        table: Some("users"),
        type_name: Some("text"),
    }
}

#[test]
fn text_values_are_redacted_in_place_and_report_their_detectors() {
    let m = masker();
    let out = m.mask(
        b"mail ann@example.com, ssn 123-45-6789",
        ValueKind::Text,
        None,
    );
    assert_eq!(
        out.bytes().unwrap(),
        b"mail [REDACTED:email], ssn [REDACTED:ssn]"
    );
    assert_eq!(
        out.hits(),
        DetectorSet::none()
            .with(Detector::Email)
            .with(Detector::UsSsn)
    );
    assert_eq!(
        m.mask(b"nothing here", ValueKind::Text, None),
        Masked::Unchanged(b"nothing here")
    );
}

#[test]
fn json_values_under_secret_key_names_are_redacted() {
    let m = masker();
    assert_eq!(
        json(&m, r#"{"db_password": "x", "user": "bob"}"#),
        r#"{"db_password": "[REDACTED:password]", "user": "bob"}"#
    );
    assert_eq!(
        json(
            &m,
            r#"{"apiKey":12345,"credentials":{"user":"u","pw":"p"},"auth_enabled":true,"token":null}"#
        ),
        r#"{"apiKey":"[REDACTED:password]","credentials":"[REDACTED:password]","auth_enabled":true,"token":null}"#
    );
    assert_eq!(json(&m, r#"{"author": "Ann"}"#), r#"{"author": "Ann"}"#);
}

#[test]
fn json_detectors_apply_to_nested_strings_and_keep_the_document_valid() {
    let m = masker();
    let doc = r#"{"b": 1, "a": [{"note": "reach me at ann@example.com"}, "card 4111111111111111"], "n": 4111111111111111}"#;
    let out = json(&m, doc);
    assert_eq!(
        out,
        r#"{"b": 1, "a": [{"note": "reach me at [REDACTED:email]"}, "card [REDACTED:card]"], "n": "[REDACTED:card]"}"#
    );
    serde_json::from_str::<serde_json::Value>(&out).unwrap();
    let escaped = r#"{"pem": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "q": "\"ann@example.com\""}"#;
    let out = json(&m, escaped);
    assert_eq!(
        out,
        r#"{"pem": "[REDACTED:private_key]\n", "q": "\"[REDACTED:email]\""}"#
    );
}

#[test]
fn invalid_json_falls_back_to_text_masking() {
    let m = masker();
    assert_eq!(
        json(&m, r#"{"email": ann@example.com"#),
        r#"{"email": [REDACTED:email]"#
    );
}

#[test]
fn partial_style_keeps_email_domains_and_card_last_four() {
    let m = with_style(Style::Partial, None);
    assert_eq!(
        text(&m, "ann@example.com / 4111 1111 1111 1111"),
        "[REDACTED]@example.com / [REDACTED:card:1111]"
    );
    assert_eq!(text(&m, "ssn 123-45-6789"), "ssn [REDACTED:ssn]");
}

#[test]
fn hash_style_is_stable_for_equal_values_and_depends_on_the_key() {
    let a = with_style(Style::Hash, Some(b"key-one"));
    let b = with_style(Style::Hash, Some(b"key-two"));
    let x1 = text(&a, "ann@example.com");
    let x2 = text(&a, "ann@example.com");
    let y = text(&a, "bob@example.com");
    assert!(
        x1.starts_with("[HASH:email:") && x1.len() == "[HASH:email:]".len() + 16,
        "{x1}"
    );
    assert_eq!(x1, x2);
    assert_ne!(x1, y);
    assert_ne!(x1, text(&b, "ann@example.com"));
}

#[test]
fn hash_style_without_a_key_is_refused() {
    let err = Masker::new(MaskConfig {
        style: Style::Hash,
        ..MaskConfig::default()
    })
    .unwrap_err();
    assert_eq!(err, MaskError::HashWithoutKey);
    let rule = ColumnRule {
        pattern: ColumnPattern::parse("ssn").unwrap(),
        style: Some(Style::Hash),
    };
    let err = Masker::new(MaskConfig {
        columns: vec![rule],
        ..MaskConfig::default()
    })
    .unwrap_err();
    assert_eq!(err, MaskError::HashWithoutKey);
}

#[test]
fn opaque_values_become_null_when_anything_is_found() {
    let m = masker();
    assert_eq!(
        m.mask(b"123-45-6789", ValueKind::Opaque, None),
        Masked::Null(DetectorSet::none().with(Detector::UsSsn))
    );
    assert_eq!(
        m.mask(b"42.50", ValueKind::Opaque, None),
        Masked::Unchanged(b"42.50")
    );
    let mask = m.column(&col("password")).unwrap();
    assert_eq!(
        m.mask(b"42", ValueKind::Opaque, Some(&mask)),
        Masked::Null(DetectorSet::none())
    );
}

#[test]
fn masked_columns_replace_the_whole_value_with_the_rule_style() {
    let rules = vec![
        ColumnRule::new(ColumnPattern::parse("public.users.ssn").unwrap()),
        ColumnRule {
            pattern: ColumnPattern::parse("email").unwrap(),
            style: Some(Style::Partial),
        },
        ColumnRule::new(ColumnPattern::parse("type:inet").unwrap()),
    ];
    let m = Masker::new(MaskConfig {
        columns: rules,
        ..MaskConfig::default()
    })
    .unwrap();
    let ssn = m.column(&col("ssn")).unwrap();
    assert_eq!(ssn.rule, "public.users.ssn");
    assert_eq!(
        m.mask(b"anything", ValueKind::Text, Some(&ssn))
            .bytes()
            .unwrap(),
        b"[REDACTED]"
    );
    assert_eq!(
        m.mask(b"{}", ValueKind::Json, Some(&ssn)).bytes().unwrap(),
        b"\"[REDACTED]\""
    );
    let email = m.column(&col("EMAIL")).unwrap();
    assert_eq!(
        m.mask(b"ann@example.com", ValueKind::Text, Some(&email))
            .bytes()
            .unwrap(),
        b"[REDACTED]@example.com"
    );
    let inet = ColumnInfo {
        name: "addr",
        schema: None,
        table: None,
        type_name: Some("inet"),
    };
    assert_eq!(m.column(&inet).unwrap().rule, "type:inet");
    assert_eq!(m.column(&col("api_key")).unwrap().rule, "key_name:api_key");
    assert!(m.column(&col("display_name")).is_none());
}

#[test]
fn non_utf8_text_fails_closed() {
    let m = masker();
    let mut value = b"\xff\xfe ann@example.com \xc3".to_vec();
    let out = m.mask(&value, ValueKind::Text, None);
    assert_eq!(out.bytes().unwrap(), b"\xff\xfe [REDACTED:email] \xc3");
    assert!(out.is_changed());
    value.extend_from_slice(b" AKIAIOSFODNN7EXAMPLE");
    assert_eq!(
        m.mask(&value, ValueKind::Json, None).hits().iter().count(),
        2
    );
    let mask = m.column(&col("password")).unwrap();
    assert_eq!(
        m.mask(b"\xff\xfe", ValueKind::Text, Some(&mask))
            .bytes()
            .unwrap(),
        b"[REDACTED]"
    );
}

#[test]
fn mask_text_redacts_a_unique_violation_detail() {
    let m = masker();
    assert_eq!(
        m.mask_text("Key (email)=(ann@example.com) already exists.")
            .as_deref(),
        Some("Key (email)=([REDACTED:email]) already exists.")
    );
    assert_eq!(m.mask_text("relation \"users\" does not exist"), None);
}

#[test]
fn describe_lists_detectors_rules_and_whether_a_key_is_set() {
    let m = masker();
    let d = m.describe();
    assert_eq!(d.detectors.len(), 16);
    assert!(d.detectors.contains(&"password"));
    assert!(!d.hash_key_set);
    assert!(serde_json::to_string(&d).unwrap().contains("\"detectors\""));
}

#[test]
fn masker_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Masker>();
}

#[test]
fn config_deserializes_with_secure_defaults() {
    let cfg: MaskConfig = serde_json::from_str(
        r#"{"detectors": ["email"], "columns": ["*_token"], "style": "partial"}"#,
    )
    .unwrap();
    assert_eq!(cfg.detectors, DetectorSet::none().with(Detector::Email));
    assert_eq!(cfg.style, Style::Partial);
    assert!(cfg.key_names.iter().any(|k| k == "password"));
    let empty: MaskConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty.detectors, DetectorSet::all());
}

#[test]
fn json_strings_that_are_whole_keys_are_found_by_the_document_fast_path() {
    let m = masker();
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    assert_eq!(
        json(&m, &format!(r#"{{"k": "{aws}"}}"#)),
        r#"{"k": "[REDACTED:aws_secret_key]"}"#
    );
    let azure = format!("{}==", "Ab1+".repeat(21) + "xy");
    assert_eq!(
        json(&m, &format!(r#"["{azure}"]"#)),
        r#"["[REDACTED:azure_key]"]"#
    );
    let escaped = r#"{"note": "mail ann\u0040example.com"}"#;
    assert_eq!(
        json(&m, escaped),
        r#"{"note":"mail [REDACTED:email]"}"#.replace("\"note\":", "\"note\": ")
    );
}

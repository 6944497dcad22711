//! The shape cache answers exactly what a full parse answers.

use super::*;

/// A classifier without any cache: every answer is a full parse.
fn uncached() -> Classifier {
    Classifier::new(ClassifierConfig {
        cache_entries: 0,
        ..ClassifierConfig::default()
    })
}

fn shaped(classifier: &Classifier, sql: &str) -> bool {
    Shape::of(sql).is_some_and(|shape| classifier.shapes.get(&shape, sql).is_some())
}

/// Groups of texts of one shape; each text after the first is classified
/// after the first has been, so a shared template would answer it.
const GROUPS: &[&[&str]] = &[
    &[
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 987654;",
    ],
    &[
        "UPDATE pgbench_accounts SET abalance = abalance + -4711 WHERE aid = 5;",
        "UPDATE pgbench_accounts SET abalance = abalance + -1 WHERE aid = 123456;",
    ],
    &[
        "  INSERT INTO h (a, b, c) VALUES (1, 'x', 2.5)  ",
        "  INSERT INTO h (a, b, c) VALUES (100, 'it''s; -- not a comment', 0.000001)  ",
        "  INSERT INTO h (a, b, c) VALUES (7, $q$ '; DROP TABLE h; $q$, 1e10)  ",
    ],
    // The literal's value is what set_config acts on.
    &[
        "SELECT set_config('search_path', 'public', false)",
        "SELECT set_config('role', 'admin', false)",
    ],
    // The grammar picks float4 or float8 by the literal.
    &[
        "SELECT CAST(a AS float(10)) FROM t",
        "SELECT CAST(a AS float(30)) FROM t",
    ],
    &["SELECT nextval('a')", "SELECT nextval('pg_authid')"],
    &["SELECT 'pg_authid'::regclass", "SELECT 'x'::regclass"],
    &[
        "SELECT * FROM t WHERE ts > now() - interval '1 day' LIMIT 5",
        "SELECT * FROM t WHERE ts > now() - interval '1 year' LIMIT 50000",
    ],
    &["DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE id = 2"],
    &[
        "SELECT U&'d\\0061t' UESCAPE '\\'",
        "SELECT U&'d!0061t' UESCAPE '!'",
    ],
    &["SET search_path = 'a'", "SET search_path = 'b'"],
    &[
        "EXPLAIN (ANALYZE 'off') DELETE FROM t",
        "EXPLAIN (ANALYZE 'on') DELETE FROM t",
    ],
    &["SELECT 1; SELECT 2", "SELECT 3; SELECT 4"],
    &["SELECT 1 /* 'c' */ FROM t", "SELECT 22 /* 'c' */ FROM t"],
    &["SELECT E'a\\'b' FROM t", "SELECT E'\\\\' FROM t"],
    &["SELECT x'1f', b'101'", "SELECT x'ffff', b'0'"],
    &["SELECT 'unterminated", "SELECT 'unterminated too"],
];

#[test]
fn a_shape_hit_classifies_exactly_as_a_full_parse() {
    let classifier = Classifier::default();
    let reference = uncached();
    for group in GROUPS {
        for sql in *group {
            let got = classifier.classify(sql);
            let want = reference.classify(sql);
            assert_eq!(&*got, &*want, "{sql}");
        }
    }
}

#[test]
fn texts_differing_only_in_values_share_a_shape() {
    let classifier = Classifier::default();
    for group in &GROUPS[..3] {
        classifier.classify(group[0]);
        for sql in &group[1..] {
            assert!(shaped(&classifier, sql), "not shared: {sql}");
        }
    }
}

#[test]
fn literals_the_classifier_or_grammar_reads_are_never_shared() {
    let classifier = Classifier::default();
    for group in &GROUPS[3..] {
        let [first, rest @ ..] = group else { continue };
        classifier.classify(first);
        for sql in rest {
            let shared = shaped(&classifier, sql);
            let safe = first.starts_with("SELECT nextval")
                || first.starts_with("SELECT 'pg_authid'")
                || first.contains("interval")
                || first.starts_with("DELETE")
                || first.contains("/* 'c' */")
                || first.starts_with("SELECT E'")
                || first.starts_with("SELECT x'");
            assert_eq!(shared, safe, "{sql}");
        }
    }
}

#[test]
fn a_shape_key_never_equals_a_real_text() {
    let shape = Shape::of("SELECT 1").map(|s| s.key);
    assert_eq!(shape.as_deref(), Some("SELECT \0i"));
    assert!(
        Shape::of("SELECT a FROM t").is_none(),
        "no literal, no shape"
    );
}

#[test]
fn strings_without_a_token_are_not_scanned() {
    for sql in ["", "   ", "-- '1'", "/* 2 */", ";", "(SELECT 1)"] {
        assert!(Shape::of(sql).is_none(), "{sql:?}");
        let classifier = Classifier::default();
        assert_eq!(
            &*classifier.classify(sql),
            &*uncached().classify(sql),
            "{sql:?}"
        );
    }
}

//! Precision and recall of the detectors on the labelled corpus
//! (`tests/corpus/corpus.tsv`, made by `tests/corpus/generate.py`).
//! Run with `--nocapture` to see the table recorded in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_mask::{Detector, MaskConfig, Masker, ValueKind};

struct Row {
    label: Option<Detector>,
    value: String,
    secret: String,
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn corpus() -> Vec<Row> {
    let text = include_str!("corpus/corpus.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let label = cols.next().unwrap();
            let value = unescape(cols.next().unwrap());
            let secret = unescape(cols.next().unwrap_or(""));
            let label = match label {
                "none" => None,
                name => Some(
                    Detector::from_name(name).unwrap_or_else(|| panic!("unknown label {name}")),
                ),
            };
            Row {
                label,
                value,
                secret,
            }
        })
        .collect()
}

#[test]
fn corpus_recall_is_total_and_false_positives_stay_under_one_percent() {
    let rows = corpus();
    assert!(rows.len() >= 1000, "corpus has {} rows", rows.len());
    let masker = Masker::new(MaskConfig::default()).unwrap();
    // per detector: (labelled, true positives, false positives on negatives,
    // hits on positives of another kind). The last are counted apart: they are
    // second findings in the same value, e.g. the password slot of
    // `https://x-access-token:ghp_...@github.com` holding a GitHub token.
    let mut stats = [(0usize, 0usize, 0usize, 0usize); 16];
    let mut negatives = 0;
    let mut negatives_hit = Vec::new();
    let mut misses = Vec::new();
    let mut leaks = Vec::new();
    let mut cross = Vec::new();
    for row in &rows {
        let masked = masker.mask(row.value.as_bytes(), ValueKind::Text, None);
        let hits = masked.hits();
        for d in hits.iter() {
            if row.label.is_none() {
                stats[d as usize].2 += 1;
            } else if Some(d) != row.label {
                stats[d as usize].3 += 1;
                cross.push((d, row.value.clone()));
            }
        }
        match row.label {
            Some(d) => {
                stats[d as usize].0 += 1;
                if hits.contains(d) {
                    stats[d as usize].1 += 1;
                } else {
                    misses.push((d, row.value.clone()));
                }
                let out = String::from_utf8_lossy(masked.bytes().unwrap_or_default()).into_owned();
                if out.contains(&row.secret) {
                    leaks.push((d, row.value.clone(), out));
                }
            }
            None => {
                negatives += 1;
                if !hits.is_empty() {
                    negatives_hit.push((row.value.clone(), hits));
                }
            }
        }
    }

    println!("| Detector | Positives | Recall | False positives (on negatives) | Precision | Also fired on positives of another kind |");
    println!("|---|--:|--:|--:|--:|--:|");
    let (mut pos, mut tp, mut fp, mut other) = (0, 0, 0, 0);
    for d in Detector::ALL {
        let (n, t, f, o) = stats[d as usize];
        pos += n;
        tp += t;
        fp += f;
        other += o;
        let precision = if t + f == 0 {
            1.0
        } else {
            t as f64 / (t + f) as f64
        };
        println!(
            "| {} | {n} | {:.3} | {f} | {precision:.3} | {o} |",
            d.name(),
            t as f64 / n.max(1) as f64
        );
    }
    let fp_rate = negatives_hit.len() as f64 / negatives as f64;
    println!(
        "| **all** | {pos} | {:.3} | {fp} | {:.3} | {other} |",
        tp as f64 / pos as f64,
        tp as f64 / (tp + fp) as f64
    );
    println!(
        "\n{} values ({pos} positives, {negatives} negatives); negatives with any hit: {} ({:.2}%)",
        rows.len(),
        negatives_hit.len(),
        fp_rate * 100.0
    );
    for (d, v) in &cross {
        println!(
            "  {} also fired on a positive of another kind: {v:?}",
            d.name()
        );
    }
    for (v, hits) in &negatives_hit {
        println!("  false positive {hits:?}: {v:?}");
    }
    assert!(misses.is_empty(), "missed positives: {misses:#?}");
    assert!(leaks.is_empty(), "secrets surviving masking: {leaks:#?}");
    assert!(
        fp_rate <= 0.01,
        "false positive rate {fp_rate}: {negatives_hit:#?}"
    );
}

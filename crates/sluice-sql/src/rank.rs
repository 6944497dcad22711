//! The order in which actions combine when one statement does several things.
//!
//! A statement maps to a single [`Action`], yet one statement can hold several
//! effects: `WITH d AS (DELETE ...) SELECT ...` reads and deletes,
//! `SELECT set_config('role', ...)` reads and changes the role. Policy must
//! see the strongest effect, so effects combine by taking the higher rank.
//! The rank is the blast radius: what a default policy guards most strictly
//! ranks highest, so wrapping a write in a weaker-looking statement never
//! makes it look weaker.

use sluice_core::Action;

/// Higher is stronger. `Select` is the neutral element of [`stronger`].
pub fn rank(action: Action) -> u8 {
    match action {
        Action::Select => 0,
        Action::Explain => 1,
        Action::CopyOut => 2,
        Action::Tcl => 3,
        Action::Session => 4,
        Action::Listen => 5,
        Action::Prepare => 6,
        Action::Insert => 7,
        Action::CopyIn => 8,
        Action::Update => 9,
        Action::Delete => 10,
        Action::Merge => 11,
        // Above every write (the function may do any of them), below DDL:
        // `CREATE VIEW v AS SELECT f()` defines a call, it does not run it.
        Action::Call => 12,
        Action::Ddl => 13,
        Action::Grant => 14,
        Action::Truncate => 15,
        Action::Drop => 16,
        Action::Procedural => 17,
        Action::Role => 18,
        Action::Admin => 19,
        // Never the classification of SQL; ranked only to keep the order
        // total, below `unknown`.
        Action::Get => 20,
        Action::List => 21,
        Action::Watch => 22,
        Action::Discover => 23,
        Action::Create => 24,
        Action::Patch => 25,
        Action::DeleteCollection => 26,
        Action::Proxy => 27,
        Action::PortForward => 28,
        Action::Attach => 29,
        Action::Exec => 30,
        Action::Unknown => u8::MAX,
        // Never SQL either: distinct ranks in their order in `Action::ALL`.
        s3 => Action::ALL
            .iter()
            .position(|a| *a == s3)
            .map_or(u8::MAX - 1, |i| 31u8.saturating_add(i as u8)),
    }
}

/// The stronger of two actions (the first one on a tie).
pub fn stronger(a: Action, b: Action) -> Action {
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_distinct_and_total() {
        let mut seen: Vec<u8> = Action::ALL.iter().map(|a| rank(*a)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), Action::ALL.len());
    }

    #[test]
    fn writes_beat_reads_and_session() {
        assert_eq!(stronger(Action::Select, Action::Delete), Action::Delete);
        assert_eq!(stronger(Action::Session, Action::Delete), Action::Delete);
        assert_eq!(stronger(Action::Delete, Action::Role), Action::Role);
        assert_eq!(stronger(Action::Unknown, Action::Admin), Action::Unknown);
    }
}

//! Naming rules for identities and groups.
//!
//! Names end up in policies, audit records and PostgreSQL startup packets, so
//! they are restricted to a small, unambiguous alphabet; the same rule keeps
//! the comma-separated group column unambiguous.

use crate::AuthError;

/// Longest allowed identity or group name (PostgreSQL's NAMEDATALEN - 1).
pub const MAX_NAME_LEN: usize = 63;

fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("must be at most 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
    {
        return Err("may only contain A-Z, a-z, 0-9, '_', '.', '@' and '-'");
    }
    Ok(())
}

/// Checks an identity name: 1..=63 characters of `[A-Za-z0-9_.@-]`.
pub fn validate_identity(name: &str) -> Result<(), AuthError> {
    check(name).map_err(|reason| AuthError::InvalidIdentity {
        name: name.to_owned(),
        reason,
    })
}

/// Checks a group name with the same rule as identities.
pub fn validate_group(name: &str) -> Result<(), AuthError> {
    check(name).map_err(|reason| AuthError::InvalidGroup {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(validate_identity("ci-bot@team.prod_1").is_ok());
        assert!(validate_identity("").is_err());
        assert!(validate_identity(&"a".repeat(64)).is_err());
        assert!(validate_identity(&"a".repeat(63)).is_ok());
        assert!(validate_identity("has space").is_err());
        assert!(validate_identity("é").is_err());
        assert!(matches!(
            validate_group("a,b"),
            Err(AuthError::InvalidGroup { .. })
        ));
    }
}

//! Parsing of the two client messages of SCRAM-SHA-256 (RFC 5802 section 7),
//! with the same acceptance rules as PostgreSQL's server.
//!
//! Everything here works on `&str` with `split`/`strip_prefix` only, never on
//! indices, so no input can make it panic.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::ScramError;

fn malformed(msg: impl Into<String>) -> ScramError {
    ScramError::Malformed(msg.into())
}

/// The parts of client-first-message the exchange needs later.
#[derive(Debug)]
pub struct ClientFirst {
    /// `n,,` or `y,,`: repeated (base64) in client-final's `c=`.
    pub gs2_header: String,
    /// client-first-message-bare: the first part of AuthMessage.
    pub bare: String,
    pub client_nonce: String,
}

/// The parts of client-final-message.
#[derive(Debug)]
pub struct ClientFinal {
    /// Decoded `c=` value.
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    /// client-final-message-without-proof: the last part of AuthMessage.
    pub without_proof: String,
    pub proof: [u8; 32],
}

/// `printable = %x21-2B / %x2D-7E` (no comma), at least one character.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// An extension attribute: `ALPHA "=" value`.
fn check_extension(attr: &str) -> Result<(), ScramError> {
    let mut chars = attr.chars();
    match (chars.next(), chars.next()) {
        (Some(c), Some('=')) if c.is_ascii_alphabetic() => Ok(()),
        _ => Err(malformed(format!("invalid attribute {attr:?}"))),
    }
}

/// Parses `gs2-header client-first-message-bare`.
///
/// `n` (no binding) and `y` (client could bind but thinks we cannot, which is
/// true: we only offer SCRAM-SHA-256) are accepted; `p=` is refused. An
/// authorization identity and mandatory extensions (`m=`) are refused, as in
/// PostgreSQL. The user name is ignored: the startup packet names the user.
pub fn client_first(message: &str) -> Result<ClientFirst, ScramError> {
    let rest = if let Some(rest) = message.strip_prefix("n,") {
        rest
    } else if let Some(rest) = message.strip_prefix("y,") {
        rest
    } else if message.starts_with("p=") {
        return Err(ScramError::ChannelBindingNotSupported);
    } else {
        return Err(malformed("invalid channel binding flag in gs2 header"));
    };
    let bare = if let Some(bare) = rest.strip_prefix(',') {
        bare
    } else if rest.starts_with("a=") {
        return Err(malformed("authorization identity is not supported"));
    } else {
        return Err(malformed("invalid gs2 header"));
    };
    let gs2_len = message.len() - bare.len();
    let gs2_header = message.get(..gs2_len).unwrap_or_default().to_owned();

    if bare.starts_with("m=") {
        return Err(malformed("mandatory extensions are not supported"));
    }
    let mut attrs = bare.split(',');
    match attrs.next() {
        Some(user) if user.starts_with("n=") => {}
        _ => return Err(malformed("expected user name attribute \"n=\"")),
    }
    let client_nonce = match attrs.next().and_then(|a| a.strip_prefix("r=")) {
        Some(nonce) if is_valid_nonce(nonce) => nonce.to_owned(),
        Some(_) => return Err(malformed("invalid client nonce")),
        None => return Err(malformed("expected nonce attribute \"r=\"")),
    };
    attrs.try_for_each(check_extension)?;
    Ok(ClientFirst {
        gs2_header,
        bare: bare.to_owned(),
        client_nonce,
    })
}

/// Parses `c=...,r=...[,ext...],p=...`; the proof must be the last attribute.
pub fn client_final(message: &str) -> Result<ClientFinal, ScramError> {
    let (without_proof, proof_b64) = message
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("expected proof attribute \"p=\""))?;
    let proof = STANDARD
        .decode(proof_b64)
        .map_err(|_| malformed("proof is not valid base64"))?;
    let proof: [u8; 32] = proof
        .try_into()
        .map_err(|_| malformed("proof must be 32 bytes"))?;

    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| malformed("expected channel binding attribute \"c=\""))?;
    let channel_binding = STANDARD
        .decode(channel_binding)
        .map_err(|_| malformed("channel binding is not valid base64"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| malformed("expected nonce attribute \"r=\""))?;
    if !is_valid_nonce(nonce) {
        return Err(malformed("invalid nonce"));
    }
    let nonce = nonce.to_owned();
    attrs.try_for_each(check_extension)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof: without_proof.to_owned(),
        proof,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn first_accepts_postgres_style() {
        let f = client_first("n,,n=,r=abc").unwrap();
        assert_eq!(f.gs2_header, "n,,");
        assert_eq!(f.bare, "n=,r=abc");
        assert_eq!(f.client_nonce, "abc");
        let f = client_first("y,,n=user,r=x/y+z,e=ext").unwrap();
        assert_eq!(f.gs2_header, "y,,");
        assert_eq!(f.client_nonce, "x/y+z");
    }

    #[test]
    fn first_rejects() {
        assert!(matches!(
            client_first("p=tls-server-end-point,,n=,r=abc"),
            Err(ScramError::ChannelBindingNotSupported)
        ));
        for bad in [
            "",
            "n",
            "n,",
            "n,,",
            "x,,n=,r=a",
            "n,a=bob,n=,r=a",
            "n,,m=ext,n=,r=a",
            "n,,r=a",
            "n,,n=,",
            "n,,n=,r=",
            "n,,n=,r=a b",
            "n,,n=,r=a,1=x",
            "n,,n=,r=a,",
        ] {
            assert!(
                matches!(client_first(bad), Err(ScramError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn final_parses_and_rejects() {
        let proof = STANDARD.encode([7u8; 32]);
        let f = client_final(&format!("c=biws,r=abc,p={proof}")).unwrap();
        assert_eq!(f.channel_binding, b"n,,");
        assert_eq!(f.nonce, "abc");
        assert_eq!(f.without_proof, "c=biws,r=abc");
        assert_eq!(f.proof, [7u8; 32]);
        assert!(client_final(&format!("c=biws,r=abc,x=1,p={proof}")).is_ok());
        for bad in [
            String::new(),
            "c=biws,r=abc".into(),
            "c=biws,r=abc,p=".into(),
            "c=biws,r=abc,p=AAAA".into(),
            format!("c=biws,p={proof}"),
            format!("r=abc,c=biws,p={proof}"),
            format!("c=!!,r=abc,p={proof}"),
            format!("c=biws,r=abc,p={proof},x=1"),
        ] {
            assert!(client_final(&bad).is_err(), "{bad:?}");
        }
    }
}

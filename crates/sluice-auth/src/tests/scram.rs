use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::{groups, store};
use crate::{Authenticated, Credentials, ScramError, ScramServer};

/// Drives a full exchange with the real client of `postgres-protocol`, and
/// has the client verify the server signature on success.
fn exchange(
    creds: Credentials,
    key: &str,
    binding: ChannelBinding,
) -> Result<Authenticated, ScramError> {
    let mut client = ScramSha256::new(key.as_bytes(), binding);
    let mut server = ScramServer::new(creds);
    let server_first = server.client_first(client.message())?;
    client.update(&server_first).unwrap();
    let (auth, server_final) = server.client_final(client.message())?;
    client.finish(&server_final).unwrap();
    Ok(auth)
}

#[test]
fn full_exchange_with_postgres_client() {
    let (_dir, store) = store();
    let k1 = store.create_key("agent", &groups(&["readers"])).unwrap();
    let k2 = store
        .create_key("agent", &groups(&["writers", "ops"]))
        .unwrap();

    let auth = exchange(
        store.credentials("agent").unwrap(),
        &k1.secret,
        ChannelBinding::unsupported(),
    )
    .unwrap();
    assert_eq!(auth.identity.name, "agent");
    assert_eq!(auth.identity.groups, groups(&["readers"]));
    assert_eq!(auth.key_id, k1.info.key_id);

    // Second key of the same identity, and the "y" gs2 flag.
    let auth = exchange(
        store.credentials("agent").unwrap(),
        &k2.secret,
        ChannelBinding::unrequested(),
    )
    .unwrap();
    assert_eq!(auth.identity.groups, groups(&["writers", "ops"]));
    assert_eq!(auth.key_id, k2.info.key_id);
}

#[test]
fn wrong_unknown_and_revoked_all_give_invalid_proof() {
    let (_dir, store) = store();
    let key = store.create_key("agent", &[]).unwrap();
    let other = store.create_key("other", &[]).unwrap();
    let creds = || store.credentials("agent").unwrap();
    let unsupported = ChannelBinding::unsupported;

    let wrong = exchange(creds(), "slk_k000000000000_notthekey", unsupported());
    assert!(matches!(wrong, Err(ScramError::InvalidProof)), "{wrong:?}");
    let foreign = exchange(creds(), &other.secret, unsupported());
    assert!(matches!(foreign, Err(ScramError::InvalidProof)));
    let unknown = exchange(
        store.credentials("ghost").unwrap(),
        &key.secret,
        unsupported(),
    );
    assert!(matches!(unknown, Err(ScramError::InvalidProof)));

    assert!(store.revoke_key(&key.info.key_id).unwrap());
    let revoked = exchange(creds(), &key.secret, unsupported());
    assert!(matches!(revoked, Err(ScramError::InvalidProof)));

    let fresh = store.create_key("agent", &[]).unwrap();
    assert!(exchange(creds(), &fresh.secret, unsupported()).is_ok());
    assert_eq!(store.revoke_identity("agent").unwrap(), 1);
    let all_revoked = exchange(creds(), &fresh.secret, unsupported());
    assert!(matches!(all_revoked, Err(ScramError::InvalidProof)));
}

#[test]
fn unknown_identity_server_first_looks_normal() {
    let (_dir, store) = store();
    store.create_key("known", &[]).unwrap();
    let first = |name: &str| {
        let mut server = ScramServer::new(store.credentials(name).unwrap());
        String::from_utf8(server.client_first(b"n,,n=,r=clientnonce").unwrap()).unwrap()
    };
    for reply in [first("known"), first("ghost")] {
        let parts: Vec<_> = reply.split(',').collect();
        assert_eq!(parts.len(), 3, "{reply}");
        assert!(parts[0].starts_with("r=clientnonce"));
        assert_eq!(parts[0].len(), 2 + 11 + 24);
        assert_eq!(parts[1].len(), 2 + 24, "16-byte salt in base64");
        assert_eq!(parts[2], "i=4096");
    }
}

#[test]
fn channel_binding_and_order_errors() {
    let (_dir, store) = store();
    let key = store.create_key("agent", &[]).unwrap();
    let creds = store.credentials("agent").unwrap();

    let plus = exchange(
        creds.clone(),
        &key.secret,
        ChannelBinding::tls_server_end_point(vec![1, 2, 3]),
    );
    assert!(matches!(plus, Err(ScramError::ChannelBindingNotSupported)));

    let mut server = ScramServer::new(creds.clone());
    assert!(matches!(
        server.client_final(b"c=biws,r=x,p=AAAA"),
        Err(ScramError::OutOfOrder)
    ));
    assert!(matches!(
        server.client_first(b"n,,n=,r=abc"),
        Err(ScramError::OutOfOrder)
    ));

    let mut server = ScramServer::new(creds.clone());
    server.client_first(b"n,,n=,r=abc").unwrap();
    assert!(matches!(
        server.client_first(b"n,,n=,r=abc"),
        Err(ScramError::OutOfOrder)
    ));

    // Nonce and channel-binding data must match what was negotiated.
    let proof = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut server = ScramServer::new(creds.clone());
    server.client_first(b"n,,n=,r=abc").unwrap();
    let msg = format!("c=biws,r=abcNOTSERVERS,p={proof}");
    assert!(matches!(
        server.client_final(msg.as_bytes()),
        Err(ScramError::NonceMismatch)
    ));
    assert!(matches!(
        server.client_final(msg.as_bytes()),
        Err(ScramError::OutOfOrder)
    ));

    let mut server = ScramServer::new(creds);
    let first = String::from_utf8(server.client_first(b"n,,n=,r=abc").unwrap()).unwrap();
    let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
    let msg = format!("c=eSws,r={nonce},p={proof}"); // "y,," while the client sent "n,,"
    assert!(matches!(
        server.client_final(msg.as_bytes()),
        Err(ScramError::ChannelBindingMismatch)
    ));
}

/// Garbage, truncations and byte flips of valid messages: always an error or
/// a success, never a panic.
#[test]
fn malformed_input_never_panics() {
    let (_dir, store) = store();
    let key = store.create_key("agent", &[]).unwrap();
    let creds = store.credentials("agent").unwrap();

    let mut client = ScramSha256::new(key.secret.as_bytes(), ChannelBinding::unsupported());
    let client_first = client.message().to_vec();
    let mut server = ScramServer::new(creds.clone());
    let server_first = server.client_first(&client_first).unwrap();
    client.update(&server_first).unwrap();
    let client_final = client.message().to_vec();

    let mut seed: u32 = 0x1234_5678;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0xff, 0xfe], b",,,,".to_vec(), b"=".to_vec()];
    for base in [&client_first, &client_final] {
        for len in 0..base.len() {
            inputs.push(base[..len].to_vec());
        }
        for _ in 0..300 {
            let mut mutated = base.clone();
            let i = next() as usize % mutated.len();
            mutated[i] = (next() & 0xff) as u8;
            inputs.push(mutated);
        }
    }
    for _ in 0..300 {
        let len = next() as usize % 64;
        inputs.push((0..len).map(|_| (next() & 0xff) as u8).collect());
    }
    for input in &inputs {
        let mut fresh = ScramServer::new(creds.clone());
        let _ = fresh.client_first(input);
        let _ = fresh.client_final(input);
        // Valid first message, then a damaged final one.
        let mut s = ScramServer::new(creds.clone());
        if s.client_first(&client_first).is_ok() {
            let _ = s.client_final(input);
        }
    }
    // The undamaged exchange still works with its own server.
    let (auth, server_final) = server.client_final(&client_final).unwrap();
    client.finish(&server_final).unwrap();
    assert_eq!(auth.key_id, key.info.key_id);
}

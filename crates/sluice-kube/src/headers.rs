//! What of a client's headers reaches the API server, and what of the API
//! server's reaches the client.
//!
//! Order matters: hop-by-hop headers go first (including every header the
//! client's `Connection` names), so `Connection: Authorization` cannot make
//! a proxy drop what Sluice adds; then every client credential; only then
//! does Sluice add its own.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1, and the ones proxies use).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The WebSocket subprotocol that carries a bearer token
/// (`base64url.bearer.authorization.k8s.io.<token>`).
const WS_BEARER_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Why a request's headers are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// The client asks to act as someone else: only Sluice impersonates.
    Impersonation(String),
    /// The client accepts no format Sluice can inspect.
    NotAcceptable(String),
}

/// Drops hop-by-hop headers, and every header the `Connection` header names.
pub fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
}

/// The headers of a client request as they may go to the API server:
/// without hop-by-hop headers, credentials, `Host`, `Accept-Encoding` (Sluice
/// asks for an uncompressed body it can inspect) and `Accept` (set by
/// [`accept`]). Impersonation headers are refused, not dropped: the client
/// asked for something it will not get.
pub fn inbound(mut headers: HeaderMap) -> Result<HeaderMap, HeaderRefusal> {
    drop_hop_by_hop(&mut headers);
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let n = name.as_str();
        if n.starts_with("impersonate-") {
            return Err(HeaderRefusal::Impersonation(n.to_owned()));
        }
        if n.starts_with("x-remote-")
            || matches!(
                n,
                "authorization" | "cookie" | "host" | "accept-encoding" | "accept"
            )
        {
            headers.remove(&name);
        }
    }
    strip_ws_bearer(&mut headers);
    Ok(headers)
}

/// Removes the bearer-token subprotocol from `Sec-WebSocket-Protocol`,
/// keeping the others (`v5.channel.k8s.io`).
fn strip_ws_bearer(headers: &mut HeaderMap) {
    let Some(values) = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .map(|v| v.to_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .ok()
    else {
        headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
        return;
    };
    if values.is_empty() {
        return;
    }
    let kept: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with(WS_BEARER_PREFIX))
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        if !kept.is_empty() {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
}

/// The bearer token of a request: `Authorization: Bearer <t>`, or the
/// WebSocket subprotocol form browsers and kubectl's WebSocket exec use.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_BEARER_PREFIX).map(str::to_owned))
        .and_then(|b64| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .ok()?;
            String::from_utf8(bytes).ok()
        })
}

/// The `Accept` Sluice sends: the client's JSON forms (plain, Table,
/// PartialObjectMetadata, watch streams), never protobuf, YAML or CBOR,
/// which Sluice cannot mask. A client that accepts anything gets JSON; one
/// that accepts only what Sluice cannot inspect is refused (406).
pub fn accept(client: Option<&HeaderValue>) -> Result<HeaderValue, HeaderRefusal> {
    let json = HeaderValue::from_static("application/json");
    let Some(value) = client else {
        return Ok(json);
    };
    let text = value
        .to_str()
        .map_err(|_| HeaderRefusal::NotAcceptable("Accept is not ASCII".into()))?;
    let mut kept = Vec::new();
    let mut anything = text.trim().is_empty();
    for range in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let media = range.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/json") {
            kept.push(range);
        } else if media == "*/*" || media.eq_ignore_ascii_case("application/*") {
            anything = true;
        }
    }
    if kept.is_empty() {
        return if anything {
            Ok(json)
        } else {
            Err(HeaderRefusal::NotAcceptable(format!(
                "Sluice serves Kubernetes responses only as JSON (it masks what it returns); the client accepts only {text}"
            )))
        };
    }
    HeaderValue::from_str(&kept.join(","))
        .map_err(|_| HeaderRefusal::NotAcceptable("Accept cannot be rewritten".into()))
}

/// The API server's response headers as the client may see them: no
/// hop-by-hop headers, and no length when Sluice may rewrite the body.
pub fn outbound(headers: &mut HeaderMap, rewritten: bool) {
    drop_hop_by_hop(headers);
    if rewritten {
        headers.remove(header::CONTENT_LENGTH);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn client_credentials_and_connection_named_headers_never_pass() {
        let h = inbound(map(&[
            ("authorization", "Bearer client"),
            ("connection", "keep-alive, X-Sluice-Keep, authorization"),
            ("x-sluice-keep", "1"),
            ("x-remote-user", "admin"),
            ("x-remote-group", "system:masters"),
            ("cookie", "a=b"),
            ("host", "sluice"),
            ("accept-encoding", "gzip"),
            ("content-type", "application/json"),
            (
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.c2VjcmV0, v5.channel.k8s.io",
            ),
        ]))
        .unwrap();
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "sec-websocket-protocol"]);
        assert_eq!(h["sec-websocket-protocol"], "v5.channel.k8s.io");
    }

    #[test]
    fn impersonation_headers_are_refused_in_any_case() {
        for name in [
            "Impersonate-User",
            "impersonate-group",
            "Impersonate-Extra-scopes",
            "impersonate-uid",
        ] {
            let r = inbound(map(&[(name, "x")]));
            assert!(matches!(r, Err(HeaderRefusal::Impersonation(_))), "{name}");
        }
    }

    #[test]
    fn bearer_comes_from_authorization_or_the_websocket_subprotocol() {
        assert_eq!(
            bearer(&map(&[("authorization", "Bearer slk_a")])).as_deref(),
            Some("slk_a")
        );
        assert_eq!(bearer(&map(&[("authorization", "Basic eA==")])), None);
        let ws = map(&[(
            "sec-websocket-protocol",
            "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.c2xrX2I",
        )]);
        assert_eq!(bearer(&ws).as_deref(), Some("slk_b"));
    }

    #[test]
    fn accept_keeps_json_forms_and_refuses_only_uninspectable_clients() {
        let a = |v: &str| accept(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(
            a("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").unwrap(),
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        );
        assert_eq!(
            a("application/vnd.kubernetes.protobuf, application/json").unwrap(),
            "application/json"
        );
        assert_eq!(
            a("application/vnd.kubernetes.protobuf, */*").unwrap(),
            "application/json"
        );
        assert_eq!(accept(None).unwrap(), "application/json");
        assert!(a("application/vnd.kubernetes.protobuf").is_err());
        assert!(a("application/yaml").is_err());
        assert!(a("application/cbor").is_err());
    }
}

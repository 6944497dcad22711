//! One S3 resource's front as the shared listener serves it. Each request
//! goes through s3s first, which verifies its SigV4 signature exactly as
//! S3 does (header and presigned forms, `UNSIGNED-PAYLOAD`, every chunk
//! of a signed streaming upload as it arrives, trailing checksums'
//! framing, clock skew), then to Sluice's one route, [`crate::proxy`].

use crate::uploads::Uploads;
use crate::upstream::Upstream;
use http::{Request, Response};
use hyper::body::Incoming;
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::SingleDomain;
use s3s::route::S3Route;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result};
use sluice_core::Identity;
use sluice_http::{Connection, HttpGates, Limits};
use std::marker::PhantomData;
use std::sync::Arc;
use tracing::warn;

/// The S3 front's side of the gate seam: SigV4 key pairs.
pub trait S3Gates: HttpGates {
    /// The identity and secret of an active S3 key; `Err` when the key
    /// store failed (the request is refused).
    fn secret(&self, access_key: &str) -> Result<Option<(Identity, String)>, String>;
}

/// What the front serves by, besides the gates.
pub struct Settings {
    pub resource: String,
    pub upstream: Upstream,
    pub limits: Limits,
    /// Virtual-host style: `bucket.<domain>` names the bucket.
    pub domain: Option<String>,
    /// Content types released to a masked identity although Sluice cannot
    /// inspect them (`application/parquet`, `application/gzip`, ...).
    pub pass_types: Vec<String>,
    /// Most bytes of one JSON object or listing held to mask it whole.
    pub max_document_bytes: usize,
}

pub struct S3Front<G: S3Gates> {
    pub gates: Arc<G>,
    pub settings: Settings,
    pub domain: Option<SingleDomain>,
    pub uploads: Uploads,
    service: S3Service,
}

/// What the route needs of the request's connection.
pub(crate) struct Ctx<G: S3Gates> {
    pub front: Arc<S3Front<G>>,
    pub conn: Arc<Connection<G::Gate>>,
}

impl<G: S3Gates> Clone for Ctx<G> {
    fn clone(&self) -> Self {
        Ctx {
            front: self.front.clone(),
            conn: self.conn.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("domain {0:?}: {1}")]
    Domain(String, String),
}

impl<G: S3Gates> S3Front<G> {
    pub fn new(gates: Arc<G>, settings: Settings) -> Result<S3Front<G>, FrontError> {
        let service = service(
            Auth {
                gates: gates.clone(),
            },
            Route::<G>(PhantomData),
            single_domain(&settings.domain)?,
        );
        let domain = single_domain(&settings.domain)?;
        Ok(S3Front {
            gates,
            settings,
            domain,
            uploads: Uploads::default(),
            service,
        })
    }

    /// The identity an access key proves now (it may have been revoked
    /// since its signature was checked).
    pub(crate) fn identity(&self, access_key: &str) -> Option<Identity> {
        match self.gates.secret(access_key) {
            Ok(found) => found.map(|(identity, _)| identity),
            Err(e) => {
                warn!(error = %e, "key store failed: refusing the request");
                None
            }
        }
    }
}

impl<G: S3Gates> sluice_http::Front for S3Front<G> {
    type Gate = G::Gate;
    type Body = s3s::Body;
    const PROTOCOL: &'static str = "S3";

    fn gates(&self) -> &dyn HttpGates<Gate = G::Gate> {
        &*self.gates
    }
    fn resource(&self) -> &str {
        &self.settings.resource
    }
    fn limits(&self) -> Limits {
        self.settings.limits
    }
    async fn handle(
        self: Arc<Self>,
        conn: Arc<Connection<G::Gate>>,
        req: Request<Incoming>,
    ) -> Response<s3s::Body> {
        if let Some(refused) = refuse_v2(&req) {
            warn!(peer = %conn.peer, "S3 request with a Signature Version 2 refused");
            return refused;
        }
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(Ctx {
            front: self.clone(),
            conn,
        });
        let req = Request::from_parts(parts, s3s::Body::from(body));
        match self.service.call(req).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = ?e, "S3 request failed inside the S3 layer");
                let mut r = Response::new(s3s::Body::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}

fn single_domain(domain: &Option<String>) -> Result<Option<SingleDomain>, FrontError> {
    domain
        .as_deref()
        .map(|d| SingleDomain::new(d).map_err(|e| FrontError::Domain(d.to_owned(), e.to_string())))
        .transpose()
}

/// The s3s service every request passes first: it verifies the signature
/// with `auth`'s secrets and hands what passes to `route`. One function, so
/// that the fuzz target checks the configuration the front serves with.
pub(crate) fn service(
    auth: impl S3Auth,
    route: impl S3Route,
    domain: Option<SingleDomain>,
) -> S3Service {
    let mut builder = S3ServiceBuilder::new(NoOperations);
    builder.set_auth(auth);
    builder.set_route(route);
    if let Some(d) = domain {
        builder.set_host(d);
    }
    builder.build()
}

/// The refusal of a Signature Version 2 request, or `None`.
pub(crate) fn refuse_v2<B>(req: &Request<B>) -> Option<Response<s3s::Body>> {
    signature_v2(req).then(|| {
        crate::error::response(
            http::StatusCode::FORBIDDEN,
            "AccessDenied",
            "Sluice accepts Signature Version 4 only (SigV2 signs neither the payload nor the region). aws-cli: `aws configure set default.s3.signature_version s3v4`; boto3: Config(signature_version=\"s3v4\").",
        )
    })
}

/// A request signed with Signature Version 2 (header or presigned).
fn signature_v2<B>(req: &Request<B>) -> bool {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    let query = req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "AWSAccessKeyId" || k == "Signature")
    });
    header || query
}

/// Secrets for s3s' signature check, from Sluice's key store (never the
/// backend's keys: a request signed with those is an unknown key here).
struct Auth<G: S3Gates> {
    gates: Arc<G>,
}

#[async_trait::async_trait]
impl<G: S3Gates> S3Auth for Auth<G> {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.gates.secret(access_key) {
            Ok(Some((_, secret))) => Ok(SecretKey::from(secret)),
            Ok(None) => {
                warn!(
                    access_key,
                    "S3 request with an unknown or revoked access key"
                );
                Err(s3s::s3_error!(
                    InvalidAccessKeyId,
                    "The access key is not an active Sluice S3 key (sluice keys create --s3)"
                ))
            }
            Err(e) => {
                warn!(error = %e, "key store failed: refusing the request");
                Err(crate::error::internal())
            }
        }
    }
}

/// Sluice's one route: every verified request.
struct Route<G>(PhantomData<fn() -> G>);

#[async_trait::async_trait]
impl<G: S3Gates> S3Route for Route<G> {
    fn is_match(
        &self,
        _: &http::Method,
        _: &http::Uri,
        _: &http::HeaderMap,
        _: &mut http::Extensions,
    ) -> bool {
        true
    }

    async fn call(&self, mut req: S3Request<s3s::Body>) -> S3Result<S3Response<s3s::Body>> {
        let Some(ctx) = req.extensions.remove::<Ctx<G>>() else {
            return Err(crate::error::internal());
        };
        crate::proxy::handle(ctx, req).await
    }
}

/// Never reached: the route takes every request.
struct NoOperations;

#[async_trait::async_trait]
impl s3s::S3 for NoOperations {}

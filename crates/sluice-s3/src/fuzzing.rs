//! The front's first phase without a gateway behind it, for the fuzz
//! target: the SigV2 refusal, then s3s's SigV4 verification with one known
//! key pair, then a route that only notes who reached it.

use crate::front::{refuse_v2, service};
use http::{Request, StatusCode};
use s3s::auth::{S3Auth, SecretKey};
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{S3Request, S3Response, S3Result};
use std::sync::{Arc, Mutex};

/// What reached the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// The route was not reached (refused before it).
    No,
    /// Reached without credentials: the proxy refuses these ("Signature is
    /// required").
    Anonymous,
    /// Reached with the access key s3s verified.
    Signed(String),
}

pub struct Verifier {
    service: S3Service,
    reached: Arc<Mutex<Reached>>,
}

impl Verifier {
    pub fn new(access_key: &str, secret: &str, domain: Option<&str>) -> Verifier {
        let reached = Arc::new(Mutex::new(Reached::No));
        let service = service(
            OneKey(access_key.to_owned(), secret.to_owned()),
            Note(reached.clone()),
            domain.and_then(|d| s3s::host::SingleDomain::new(d).ok()),
        );
        Verifier { service, reached }
    }

    /// The status answered and what reached the route.
    pub async fn call(&self, req: Request<s3s::Body>) -> (StatusCode, Reached) {
        if let Ok(mut r) = self.reached.lock() {
            *r = Reached::No;
        }
        if let Some(refused) = refuse_v2(&req) {
            return (refused.status(), Reached::No);
        }
        let status = match self.service.call(req).await {
            Ok(r) => r.status(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let reached = self
            .reached
            .lock()
            .map(|r| r.clone())
            .unwrap_or(Reached::No);
        (status, reached)
    }
}

struct OneKey(String, String);

#[async_trait::async_trait]
impl S3Auth for OneKey {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.0 {
            Ok(SecretKey::from(self.1.clone()))
        } else {
            Err(s3s::s3_error!(InvalidAccessKeyId))
        }
    }
}

struct Note(Arc<Mutex<Reached>>);

#[async_trait::async_trait]
impl S3Route for Note {
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
        // Read the body: a streaming upload's chunk signatures are checked
        // as it is read.
        let _ = req.input.store_all_limited(1 << 20).await;
        let who = match &req.credentials {
            Some(c) => Reached::Signed(c.access_key.clone()),
            None => Reached::Anonymous,
        };
        if let Ok(mut r) = self.0.lock() {
            *r = who;
        }
        Ok(S3Response::new(s3s::Body::empty()))
    }
}

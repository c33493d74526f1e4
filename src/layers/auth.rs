//! Bearer-token auth: with a token configured, calls need `authorization: Bearer <token>`.
//!
//! Health and reflection stay open (probes and tools carry no token). The comparison is
//! constant-time (`subtle`), so response timing does not reveal how much of a guess
//! matched. Without a configured token the layer passes everything through.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use volo::context::Context as _;
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::GrpcService;

/// Requires the bearer token on every call but health and reflection.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    token: Option<Arc<[u8]>>,
}

impl AuthLayer {
    /// `None` disables the check.
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(|t| Arc::from(t.as_bytes())),
        }
    }
}

impl<S> motore::layer::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(self, inner: S) -> Self::Service {
        Auth {
            inner,
            token: self.token,
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    token: Option<Arc<[u8]>>,
}

/// Methods anyone may call: health checks and server reflection.
pub fn is_public(method: &str) -> bool {
    method.starts_with("/grpc.health.v1.Health/") || method.starts_with("/grpc.reflection.")
}

/// Whether `header` is `Bearer <token>` (scheme case-insensitive, as RFC 6750 allows).
fn authorized(header: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(value) = header else { return false };
    let Some((scheme, credentials)) = value.split_at_checked(7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ") && bool::from(credentials.ct_eq(token))
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for Auth<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        if let Some(token) = &self.token {
            if !is_public(cx.rpc_info().method())
                && !authorized(
                    req.metadata().get("authorization").map(|v| v.as_bytes()),
                    token,
                )
            {
                return Err(Status::unauthenticated(
                    "missing or invalid bearer token (authorization: Bearer <token>)",
                ));
            }
        }
        self.inner.call(cx, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = b"s3cret";
        assert!(authorized(Some(b"Bearer s3cret"), token));
        assert!(authorized(Some(b"bearer s3cret"), token));
        assert!(!authorized(Some(b"Bearer s3cre"), token));
        assert!(!authorized(Some(b"Bearer s3cret2"), token));
        assert!(!authorized(Some(b"Basic s3cret"), token));
        assert!(!authorized(Some(b"s3cret"), token));
        assert!(!authorized(Some(b""), token));
        assert!(!authorized(None, token));
    }

    #[test]
    fn health_and_reflection_are_public() {
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(is_public(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_public("/basic.v1.BasicService/Hello"));
    }
}

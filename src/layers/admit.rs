//! Admission: who may call, and whether there is room for the call.
//!
//! - **Auth**: with a token configured, calls need `authorization: Bearer <token>`.
//!   Health and reflection stay open (probes and tools carry no token). The comparison
//!   is constant-time (`subtle`), so response timing does not reveal how much of a
//!   guess matched.
//! - **Load shedding**: a limit on calls in flight for the whole server, and a share of
//!   it per connection; over either, a call fails fast with RESOURCE_EXHAUSTED instead
//!   of queueing without bound. The share keeps one client (one connection) from taking
//!   the whole pool. An admitted call holds its place ([`Call::take_place`]) until its
//!   response ends (for streams, the whole stream), so the limit counts open streams
//!   too. Health checks are never shed: a probe failing under load would get a busy
//!   replica restarted, which makes the overload worse.
//!
//! Auth comes first, so calls without the token never take a place.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::GrpcService;
use crate::{
    call::{Call, Places},
    net::ConnectionInfo,
};

/// Admits calls; see the module docs.
#[derive(Debug, Clone)]
pub struct AdmitLayer {
    token: Option<Arc<[u8]>>,
    places: Arc<Places>,
    per_connection: usize,
}

impl AdmitLayer {
    /// `token`: the bearer token calls need (`None`: no check). At most `max` calls in
    /// flight, `per_connection` of them on one connection.
    pub fn new(token: Option<&str>, max: usize, per_connection: usize) -> Self {
        Self {
            token: token.map(|t| Arc::from(t.as_bytes())),
            places: Arc::new(Places::new(max)),
            per_connection,
        }
    }
}

impl<S> motore::layer::Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(self, inner: S) -> Self::Service {
        Admit { inner, layer: self }
    }
}

/// See [`AdmitLayer`].
#[derive(Debug, Clone)]
pub struct Admit<S> {
    inner: S,
    layer: AdmitLayer,
}

impl AdmitLayer {
    fn admit(&self, req: &Request<BoxBody>) -> Result<(), Status> {
        // Every call has one: the tracking layer above makes sure of it.
        let Some(call) = req.extensions().get::<Arc<Call>>() else {
            return Err(Status::internal("call not tracked"));
        };
        let route = call.route();
        if let Some(token) = &self.token {
            if !route.is_public()
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
        if route.is_health() {
            return Ok(());
        }
        // Counted by the connection (crate::net), this call included.
        let open = req
            .extensions()
            .get::<ConnectionInfo>()
            .map_or(0, |connection| connection.open_calls);
        if open > self.per_connection {
            return Err(Status::resource_exhausted(format!(
                "this connection is at its limit of {} calls in flight; retry later",
                self.per_connection
            )));
        }
        if !call.take_place(&self.places) {
            return Err(Status::resource_exhausted(format!(
                "server is at its limit of {} calls in flight; retry later",
                self.places.max()
            )));
        }
        Ok(())
    }
}

/// Whether `header` is `Bearer <token>` (scheme case-insensitive, as RFC 6750 allows).
fn authorized(header: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(value) = header else { return false };
    let Some((scheme, credentials)) = value.split_at_checked(7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ") && bool::from(credentials.ct_eq(token))
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for Admit<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        self.layer.admit(&req)?;
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
}

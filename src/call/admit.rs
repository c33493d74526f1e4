//! Admission: who may call, and whether there is room for the call.
//!
//! - **Auth**: with a token configured, calls need `authorization: Bearer <token>`.
//!   Health and reflection stay open (probes and tools carry no token). The comparison
//!   is constant-time (`subtle`), so response timing does not reveal how much of a
//!   guess matched.
//! - **Load shedding**: a limit on calls in flight for the whole server, and a share of
//!   it per connection; over either, a call fails fast with RESOURCE_EXHAUSTED instead
//!   of queueing without bound. The share keeps one client (one connection) from taking
//!   the whole pool. An admitted call holds its place ([`Places`]) until its
//!   response ends (for streams, the whole stream), so the limit counts open streams
//!   too. Health checks are never shed: a probe failing under load would get a busy
//!   replica restarted, which makes the overload worse.
//!
//! Auth comes first, so calls without the token never take a place.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use subtle::ConstantTimeEq;
use volo_gen::grpc::{health::v1::HEALTH_RPCS, reflection};
use volo_grpc::Status;

use super::{Call, Route, status};

/// How long a client refused for load is told to wait before it retries
/// (`google.rpc.RetryInfo`).
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Admits calls; see the module docs.
#[derive(Debug)]
pub(crate) struct Admission {
    token: Option<Box<[u8]>>,
    places: Arc<Places>,
    per_connection: usize,
}

impl Admission {
    /// `token`: the bearer token calls need (`None`: no check). At most `max` calls in
    /// flight, `per_connection` of them on one connection.
    pub(crate) fn new(token: Option<&str>, max: usize, per_connection: usize) -> Self {
        Self {
            token: token.map(|t| Box::from(t.as_bytes())),
            places: Arc::new(Places::new(max)),
            per_connection,
        }
    }

    /// Admits `call` (whose request has `headers`), one of `open_calls` on its
    /// connection (itself included), or says why not.
    pub(crate) fn admit(
        &self,
        call: &Call,
        headers: &http::HeaderMap,
        open_calls: usize,
    ) -> Result<(), Status> {
        if let Some(token) = &self.token {
            if !is_public(call.route)
                && !authorized(
                    headers
                        .get(http::header::AUTHORIZATION)
                        .map(|v| v.as_bytes()),
                    token,
                )
            {
                return Err(Status::unauthenticated(
                    "missing or invalid bearer token (authorization: Bearer <token>)",
                ));
            }
        }
        if call.route.is_some_and(is_health) {
            return Ok(());
        }
        if open_calls > self.per_connection {
            return Err(status::retry_later(
                format!(
                    "this connection is at its limit of {} calls in flight; retry later",
                    self.per_connection
                ),
                RETRY_DELAY,
            ));
        }
        if !self.places.take() {
            return Err(status::retry_later(
                format!(
                    "server is at its limit of {} calls in flight; retry later",
                    self.places.max
                ),
                RETRY_DELAY,
            ));
        }
        if let Err(places) = call.place.set(Arc::clone(&self.places)) {
            // Already holding one (admitted twice): keep just that one.
            places.give_back();
        }
        Ok(())
    }
}

/// Health checks: never refused for load (a probe failing under load would get a busy
/// replica restarted).
fn is_health(route: Route) -> bool {
    route.is_of(&HEALTH_RPCS)
}

/// Calls anyone may make without a token: health checks and server reflection (probes
/// and tools carry no token).
fn is_public(route: Option<Route>) -> bool {
    route.is_some_and(|route| {
        is_health(route)
            || route.is_of(&reflection::v1::SERVER_REFLECTION_RPCS)
            || route.is_of(&reflection::v1alpha::SERVER_REFLECTION_RPCS)
    })
}

/// A number of places for calls in flight: taken and given back without a lock.
#[derive(Debug)]
pub(crate) struct Places {
    taken: AtomicUsize,
    max: usize,
}

impl Places {
    /// `max` places.
    fn new(max: usize) -> Self {
        Self {
            taken: AtomicUsize::new(0),
            max,
        }
    }

    fn take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a place back (a call that held one has ended).
    pub(crate) fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
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
    fn places_run_out_and_come_back() {
        let places = Places::new(2);
        assert!(places.take() && places.take());
        assert!(!places.take(), "a third place");
        places.give_back();
        assert!(places.take());
    }

    #[test]
    fn health_and_reflection_are_public_and_only_health_is_never_shed() {
        let route = |service: &volo_gen::rpc::Service| {
            Route::of_path(service.methods[0].path).expect("routed")
        };
        let basic = route(&volo_gen::basic::v1::BASIC_SERVICE_RPCS);
        assert!(!is_public(Some(basic)) && !is_public(None));
        assert!(is_public(Some(route(&HEALTH_RPCS))) && is_health(route(&HEALTH_RPCS)));
        let reflection = route(&reflection::v1alpha::SERVER_REFLECTION_RPCS);
        assert!(is_public(Some(reflection)) && !is_health(reflection));
    }
}

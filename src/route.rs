//! The route table: every RPC this server answers, parsed once from a request path.
//!
//! A call's [`Route`] is parsed when the request arrives ([`crate::call::Call`]); the
//! layers that treat calls differently (auth, load shedding, metrics, message limits)
//! ask it instead of comparing path strings. Service names come from the generated code.

use std::sync::LazyLock;

use volo_gen::{
    basic::v1::BasicServiceServer,
    grpc::{health::v1::HealthServer, reflection},
};
use volo_grpc::server::NamedService;

use crate::{BasicHandler, health::HealthHandler, reflection::Reflection};

const BASIC: &str = <BasicServiceServer<BasicHandler> as NamedService>::NAME;
const HEALTH: &str = <HealthServer<HealthHandler> as NamedService>::NAME;
const REFLECTION_V1: &str =
    <reflection::v1::ServerReflectionServer<Reflection> as NamedService>::NAME;
const REFLECTION_V1ALPHA: &str =
    <reflection::v1alpha::ServerReflectionServer<Reflection> as NamedService>::NAME;

/// One RPC of this server, or a path that names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Hello,
    Talk,
    Background,
    HealthCheck,
    HealthWatch,
    ReflectionV1,
    ReflectionV1Alpha,
    /// Not one of ours (the router answers UNIMPLEMENTED).
    Unknown,
}

/// Every route, in the order of [`Route::index`].
pub const ROUTES: [Route; 8] = [
    Route::Hello,
    Route::Talk,
    Route::Background,
    Route::HealthCheck,
    Route::HealthWatch,
    Route::ReflectionV1,
    Route::ReflectionV1Alpha,
    Route::Unknown,
];

/// `(service, method)` of each route but [`Route::Unknown`], in [`ROUTES`] order.
const NAMES: [(&str, &str); 7] = [
    (BASIC, "Hello"),
    (BASIC, "Talk"),
    (BASIC, "Background"),
    (HEALTH, "Check"),
    (HEALTH, "Watch"),
    (REFLECTION_V1, "ServerReflectionInfo"),
    (REFLECTION_V1ALPHA, "ServerReflectionInfo"),
];

/// The paths of [`NAMES`], made once (the generated names are not literals, so they
/// cannot be joined at compile time).
static PATHS: LazyLock<[&'static str; 7]> =
    LazyLock::new(|| NAMES.map(|(service, method)| &*String::leak(format!("/{service}/{method}"))));

impl Route {
    /// The route of a request path such as `/basic.v1.BasicService/Hello`.
    pub fn of_path(path: &str) -> Self {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return Route::Unknown;
        };
        NAMES
            .iter()
            .position(|&name| name == (service, method))
            .map_or(Route::Unknown, |i| ROUTES[i])
    }

    /// The position of this route in [`ROUTES`] (for per-route tables).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The request path, e.g. `/basic.v1.BasicService/Hello`; `unknown` for any other.
    pub fn path(self) -> &'static str {
        PATHS.get(self.index()).copied().unwrap_or("unknown")
    }

    /// Whether the client sends a stream of messages (else one request message).
    pub fn client_streams(self) -> bool {
        matches!(
            self,
            Route::Talk | Route::ReflectionV1 | Route::ReflectionV1Alpha
        )
    }

    /// Whether the server answers with a stream of messages (else one reply).
    pub fn server_streams(self) -> bool {
        matches!(
            self,
            Route::Talk
                | Route::Background
                | Route::HealthWatch
                | Route::ReflectionV1
                | Route::ReflectionV1Alpha
        )
    }

    /// Health checks: never refused for load (a probe failing under load would get a
    /// busy replica restarted).
    pub fn is_health(self) -> bool {
        matches!(self, Route::HealthCheck | Route::HealthWatch)
    }

    /// Calls anyone may make without a token: health checks and server reflection
    /// (probes and tools carry no token).
    pub fn is_public(self) -> bool {
        self.is_health() || matches!(self, Route::ReflectionV1 | Route::ReflectionV1Alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_and_back() {
        for (path, route) in [
            ("/basic.v1.BasicService/Hello", Route::Hello),
            ("/basic.v1.BasicService/Talk", Route::Talk),
            ("/basic.v1.BasicService/Background", Route::Background),
            ("/grpc.health.v1.Health/Check", Route::HealthCheck),
            ("/grpc.health.v1.Health/Watch", Route::HealthWatch),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Route::ReflectionV1,
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                Route::ReflectionV1Alpha,
            ),
        ] {
            assert_eq!(Route::of_path(path), route, "{path}");
            assert_eq!(route.path(), path);
        }
        for path in [
            "/basic.v1.BasicService/Nope",
            "/basic.v1.BasicService",
            "/grpc.health.v1.Health/Check/",
            "",
        ] {
            assert_eq!(Route::of_path(path), Route::Unknown, "{path}");
        }
        assert_eq!(Route::Unknown.path(), "unknown");
        for (i, route) in ROUTES.iter().enumerate() {
            assert_eq!(route.index(), i);
        }
    }

    #[test]
    fn routes_know_their_shape_and_who_may_call() {
        assert!(Route::Talk.client_streams() && Route::Talk.server_streams());
        assert!(!Route::Hello.client_streams() && !Route::Hello.server_streams());
        assert!(Route::Background.server_streams() && !Route::Background.client_streams());
        assert!(Route::HealthCheck.is_public() && Route::ReflectionV1Alpha.is_public());
        assert!(!Route::Hello.is_public() && !Route::Unknown.is_public());
        assert!(Route::HealthWatch.is_health() && !Route::ReflectionV1.is_health());
    }
}

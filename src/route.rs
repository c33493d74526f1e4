//! The route table: every RPC this server answers, parsed once from a request path.
//!
//! Layers that treat calls differently (by shape, or by service) ask a [`Route`]
//! instead of comparing path strings. Service names come from the generated code.

use volo_gen::{
    basic::v1::BasicServiceServer,
    grpc::{health::v1::HealthServer, reflection},
};
use volo_grpc::server::NamedService;

use crate::{BasicHandler, Reflection, health::HealthHandler};

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
    /// `ServerReflectionInfo` of reflection v1 or v1alpha.
    Reflection,
    /// Not one of ours (the router answers UNIMPLEMENTED).
    Unknown,
}

impl Route {
    /// The route of a request path such as `/basic.v1.BasicService/Hello`.
    pub fn of_path(path: &str) -> Self {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return Route::Unknown;
        };
        match (service, method) {
            (BASIC, "Hello") => Route::Hello,
            (BASIC, "Talk") => Route::Talk,
            (BASIC, "Background") => Route::Background,
            (HEALTH, "Check") => Route::HealthCheck,
            (HEALTH, "Watch") => Route::HealthWatch,
            (REFLECTION_V1 | REFLECTION_V1ALPHA, "ServerReflectionInfo") => Route::Reflection,
            _ => Route::Unknown,
        }
    }

    /// Whether the client sends a stream of messages (else one request message).
    pub fn client_streams(self) -> bool {
        matches!(self, Route::Talk | Route::Reflection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes() {
        for (path, route) in [
            ("/basic.v1.BasicService/Hello", Route::Hello),
            ("/basic.v1.BasicService/Talk", Route::Talk),
            ("/basic.v1.BasicService/Background", Route::Background),
            ("/grpc.health.v1.Health/Check", Route::HealthCheck),
            ("/grpc.health.v1.Health/Watch", Route::HealthWatch),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Route::Reflection,
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                Route::Reflection,
            ),
            ("/basic.v1.BasicService/Nope", Route::Unknown),
            ("/basic.v1.BasicService", Route::Unknown),
            ("", Route::Unknown),
        ] {
            assert_eq!(Route::of_path(path), route, "{path}");
        }
        assert!(Route::Talk.client_streams());
        assert!(!Route::Hello.client_streams());
    }
}

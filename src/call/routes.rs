//! The route table: every RPC this server answers, from the code generated from `idl/`.
//!
//! volo-gen emits a table of each service's RPCs (name, path, stream shape) and lists the
//! services (`volo_gen::SERVICES`); this module indexes them by path once. A call's
//! [`Route`] is looked up when its request arrives ([`super::Call`]) and carried from
//! there: nothing else compares paths, and no RPC is named here.

use std::sync::LazyLock;

use rustc_hash::FxHashMap;
use volo_gen::rpc::{Method, Service};

/// One RPC of this server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    /// Its place in the table (for per-route metric handles).
    pub(crate) id: usize,
    pub(crate) service: &'static Service,
    pub(crate) method: &'static Method,
}

impl Route {
    /// The route of a request path such as `/basic.v1.BasicService/Hello`.
    pub(crate) fn of_path(path: &str) -> Option<Self> {
        TABLE.by_path.get(path).map(|&id| TABLE.routes[id])
    }

    /// Every route, in table order.
    pub(crate) fn all() -> &'static [Route] {
        &TABLE.routes
    }

    /// The request path.
    pub(crate) fn path(self) -> &'static str {
        self.method.path
    }

    /// Whether this is an RPC of `service`.
    pub(crate) fn is_of(self, service: &Service) -> bool {
        std::ptr::eq(self.service, service)
    }
}

struct Table {
    routes: Vec<Route>,
    by_path: FxHashMap<&'static str, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let routes: Vec<Route> = volo_gen::SERVICES
        .iter()
        .flat_map(|&service| service.methods.iter().map(move |method| (service, method)))
        .enumerate()
        .map(|(id, (service, method))| Route {
            id,
            service,
            method,
        })
        .collect();
    let by_path = routes.iter().map(|r| (r.path(), r.id)).collect();
    Table { routes, by_path }
});

#[cfg(test)]
mod tests {
    use volo_gen::basic::v1::BASIC_SERVICE_RPCS;

    use super::*;

    #[test]
    fn every_generated_rpc_is_routed_by_its_path() {
        let total: usize = volo_gen::SERVICES.iter().map(|s| s.methods.len()).sum();
        assert_eq!(Route::all().len(), total);
        for (id, route) in Route::all().iter().enumerate() {
            let found = Route::of_path(route.path()).expect("routed");
            assert_eq!(found.id, id);
            assert_eq!(
                route.path(),
                format!("/{}/{}", route.service.name, route.method.name)
            );
            assert_eq!(route.method.service, route.service.name);
        }
    }

    #[test]
    fn the_shapes_are_the_protos() {
        let shape = |name: &str| {
            let route = Route::of_path(&format!("/{}/{name}", BASIC_SERVICE_RPCS.name)).unwrap();
            (route.method.client_streaming, route.method.server_streaming)
        };
        assert_eq!(shape("Hello"), (false, false));
        assert_eq!(shape("Talk"), (true, true));
        assert_eq!(shape("Background"), (false, true));
    }

    #[test]
    fn other_paths_name_no_route() {
        for path in [
            "/basic.v1.BasicService/Nope",
            "/basic.v1.BasicService",
            "/grpc.health.v1.Health/Check/",
            "basic.v1.BasicService/Hello",
            "",
        ] {
            assert!(Route::of_path(path).is_none(), "{path}");
        }
    }
}

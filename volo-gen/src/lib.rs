//! Code generated from `idl/` by volo-build, plus the small vocabulary ([`rpc`]) its RPC
//! tables are written in.
#![allow(clippy::all, missing_docs, warnings)]

pub mod rpc;

mod r#gen {
    include!(concat!(env!("OUT_DIR"), "/volo_gen.rs"));
}

pub use r#gen::volo_gen::*;

include!(concat!(env!("OUT_DIR"), "/rpc_services.rs"));

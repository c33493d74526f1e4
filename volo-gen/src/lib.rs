//! Code generated from `idl/` by volo-build; nothing here is written by hand.
#![allow(clippy::all, missing_docs, warnings)]

mod r#gen {
    include!(concat!(env!("OUT_DIR"), "/volo_gen.rs"));
}

pub use r#gen::volo_gen::*;

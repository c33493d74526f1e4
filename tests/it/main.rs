//! Integration tests: a real server on an ephemeral loopback port, called with the
//! generated volo client over real sockets.

mod background;
mod common;
mod hello;
mod layers;
mod reflection;
mod shutdown;
mod talk;

//! Integration tests: a real server on an ephemeral loopback port, called with the
//! generated volo client over real sockets.

mod auth;
mod background;
mod binary;
mod common;
mod eliza_oracle;
mod health;
mod hello;
mod keepalive;
mod layers;
mod limits;
mod metrics;
mod reflection;
mod scale;
mod shutdown;
mod talk;
mod tls;

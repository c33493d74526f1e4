//! Integration tests: a real server on an ephemeral loopback port, called with the
//! generated volo client over real sockets.

mod age;
mod auth;
mod background;
mod binary;
mod common;
mod conformance;
mod connect;
mod eliza_oracle;
mod health;
mod hello;
mod hostile;
mod keepalive;
mod layers;
mod limits;
mod metrics;
mod multiplex;
mod process;
mod raw;
mod reflection;
mod scale;
mod shutdown;
mod talk;
mod tls;
mod traces;
mod web;
mod wire;

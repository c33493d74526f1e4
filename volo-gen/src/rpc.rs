//! The vocabulary the generated RPC tables are written in (the one hand-written part of
//! this crate).
//!
//! For every service in `idl/`, `build.rs` emits next to the generated trait (say
//! `BasicService`):
//!
//! - a [`Service`] static (`BASIC_SERVICE_RPCS`): the service's name and, for each RPC, a
//!   [`Method`]: its name, its path and its stream shape;
//! - a `serve_basic_service(handler, index, calls)` function: runs the RPC at `index` in
//!   that table on `handler`, through a [`Calls`] implementation that decodes the request
//!   and encodes the replies of each shape;
//!
//! and [`SERVICES`](crate::SERVICES) lists every service. A server therefore needs no
//! per-RPC code of its own: it looks a request's path up among the [`Method`]s and calls
//! the service's `serve_*` function with its codec.

use std::future::Future;

use pilota::pb::Message;
use volo_grpc::{BoxStream, RecvStream, Request, Response, Status};

/// One service of `idl/` and its RPCs.
pub struct Service {
    /// The fully-qualified name, e.g. `basic.v1.BasicService`.
    pub name: &'static str,
    /// The descriptor of the `.proto` file that declares it (its imports attached).
    pub file_descriptor: fn() -> &'static pilota::pb::reflect::FileDescriptor,
    /// Its RPCs, in the order of the `.proto` (a method's `index` is its place here).
    pub methods: &'static [Method],
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// One RPC, as the `.proto` declares it.
#[derive(Debug, PartialEq, Eq)]
pub struct Method {
    /// The fully-qualified name of its service, e.g. `basic.v1.BasicService`.
    pub service: &'static str,
    /// The method's name, e.g. `Hello`.
    pub name: &'static str,
    /// The HTTP/2 path, e.g. `/basic.v1.BasicService/Hello`.
    pub path: &'static str,
    /// Its place in its service's [`Service::methods`].
    pub index: usize,
    /// The client sends a stream of messages (else exactly one).
    pub client_streaming: bool,
    /// The server answers with a stream of messages (else exactly one).
    pub server_streaming: bool,
}

/// A stream of replies, as the generated traits return it.
pub type Replies<M> = BoxStream<'static, Result<M, Status>>;

/// How a server reads a call's request and turns the handler's reply into its own
/// `Reply`; the generated `serve_*` functions pick, for each RPC, the methods of its
/// stream shape and call the handler between them.
pub trait Calls: Send + Sized {
    /// What a call produces (e.g. an HTTP response).
    type Reply: Send;

    /// The one request message (unary and server-streaming RPCs).
    fn request<Req>(&mut self) -> impl Future<Output = Result<Request<Req>, Status>> + Send
    where
        Req: Message + Default + Send + 'static;

    /// The stream of request messages (client-streaming and bidirectional RPCs).
    fn requests<Req>(&mut self) -> Request<RecvStream<Req>>
    where
        Req: Message + Default + Send + 'static;

    /// The one reply (unary and client-streaming RPCs).
    fn reply<Resp>(self, reply: Response<Resp>) -> Self::Reply
    where
        Resp: Message + Send + 'static;

    /// The stream of replies (server-streaming and bidirectional RPCs).
    fn replies<Resp>(self, replies: Response<Replies<Resp>>) -> Self::Reply
    where
        Resp: Message + Send + 'static;

    /// The status of an index that names no method of the service.
    fn unknown(self) -> Status;
}

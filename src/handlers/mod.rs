//! Thin implementations of the generated service traits: turn requests into domain calls
//! and domain results into replies.
//!
//! One file per RPC. Cross-cutting work (logging, request ids, panics, deadlines, the
//! end of open streams at shutdown) lives in the layers; the logic lives in
//! [`crate::eliza`] and [`crate::simulator`].

mod background;
mod hello;
mod talk;

use std::sync::Arc;

use volo_gen::basic::{
    service::v1::{
        BackgroundRequest, BackgroundResponse, HelloRequest, HelloResponse, TalkRequest,
        TalkResponse,
    },
    v1::BasicService,
};
use volo_grpc::{BoxStream, RecvStream, Request, Response, Status};

use crate::{eliza::Script, simulator::Simulator};

/// A stream of replies as the generated trait wants it.
pub type ReplyStream<T> = BoxStream<'static, Result<T, Status>>;

/// `basic.v1.BasicService`: the state every call shares.
#[derive(Debug, Clone)]
pub struct BasicHandler {
    /// Runs Background's simulated calls.
    pub simulator: Simulator,
    /// The parsed ELIZA script; each Talk stream starts its own conversation with it.
    pub script: Arc<Script>,
    /// Largest `processes` a Background call may ask for.
    pub max_processes: u32,
    /// Longest Talk message accepted, in bytes.
    pub max_talk_message_bytes: usize,
}

impl BasicService for BasicHandler {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        Ok(Response::new(hello::hello(&req.get_ref().message)))
    }

    async fn talk(
        &self,
        req: Request<RecvStream<TalkRequest>>,
    ) -> Result<Response<ReplyStream<TalkResponse>>, Status> {
        Ok(Response::new(talk::talk(self, req.into_inner())))
    }

    async fn background(
        &self,
        req: Request<BackgroundRequest>,
    ) -> Result<Response<ReplyStream<BackgroundResponse>>, Status> {
        background::background(self, req.get_ref().processes).map(Response::new)
    }
}

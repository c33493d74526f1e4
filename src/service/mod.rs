//! The service itself: the `basic.v1.BasicService` handler and the plain modules it calls.
//!
//! [`BasicHandler`] implements the generated trait thinly, one file per RPC: it turns
//! requests into domain calls and domain results into replies. Cross-cutting work
//! (logging, request ids, panics, deadlines, the end of open streams at shutdown) lives
//! in the call pipeline; the logic lives in [`eliza`], [`simulator`], `pacing` (when
//! Background's snapshots go) and [`cloudevent`], which know nothing of gRPC but the
//! generated message types.

mod background;
pub mod cloudevent;
pub mod eliza;
mod hello;
mod pacing;
pub mod simulator;
mod talk;

pub(crate) use simulator::SimConfig;
pub use simulator::Simulator;

use std::sync::Arc;

use volo_gen::basic::{
    service::v1::{
        BackgroundRequest, BackgroundResponse, HelloRequest, HelloResponse, TalkRequest,
        TalkResponse,
    },
    v1::BasicService,
};
use volo_grpc::{RecvStream, Request, Response, Status};

use eliza::Script;

use crate::ops::traces::Traced;

/// A stream of replies as the generated trait wants it.
pub type ReplyStream<T> = volo_gen::rpc::Replies<T>;

/// `basic.v1.BasicService`: the state every call shares.
#[derive(Debug, Clone)]
pub struct BasicHandler {
    /// Runs Background's simulated calls.
    pub(crate) simulator: Simulator,
    /// The parsed ELIZA script; each Talk stream starts its own conversation with it.
    pub(crate) script: Arc<Script>,
    /// Largest `processes` a Background call may ask for.
    pub(crate) max_processes: u32,
    /// Longest Talk message accepted, in bytes.
    pub(crate) max_talk_message_bytes: usize,
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
        let trace = req.extensions().get::<Traced>();
        background::background(self, req.get_ref().processes, trace).map(Response::new)
    }
}

//! The wire side of reflection: the `ServerReflection` trait of `grpc.reflection.v1` and of
//! `v1alpha`, both implemented for [`Reflection`] by one generic stream.
//!
//! The two versions declare the same messages in different packages, so the generated
//! types differ only in their module. [`replies`] is the handler, written once; the
//! `reflection_version!` macro writes, per module, the conversion of a request into a
//! [`Query`] and of an [`Answer`] into a response, plus the trait impl that calls
//! [`replies`]. No task is spawned: each call lives inside its response stream.

use futures::StreamExt;
use volo_grpc::RecvStream;

use super::{Answer, Query, Reflection};
/// A stream of replies as the generated traits want it.
type ReplyStream<T> = volo_grpc::BoxStream<'static, Result<T, volo_grpc::Status>>;

/// The reply stream of one reflection call: one response per request, in order, each
/// as soon as it is ready. The client's half-close ends it with OK; an inbound error is
/// passed on and ends it.
fn replies<Req, Resp>(
    reflection: Reflection,
    mut requests: RecvStream<Req>,
    respond: fn(&Reflection, Req) -> Resp,
) -> ReplyStream<Resp>
where
    Req: pilota::pb::Message + Default + Send + 'static,
    Resp: Send + 'static,
{
    Box::pin(async_stream::stream! {
        loop {
            match requests.next().await {
                None => break,
                Some(Err(status)) => {
                    yield Err(status);
                    break;
                }
                Some(Ok(request)) => yield Ok(respond(&reflection, request)),
            }
        }
    })
}

/// Implements `$module::ServerReflection` for [`Reflection`] with [`replies`], and the
/// conversions between `$module`'s messages and [`Query`]/[`Answer`].
macro_rules! reflection_version {
    ($module:ident) => {
        mod $module {
            use volo_gen::grpc::reflection::$module::{
                ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse,
                ListServiceResponse, ServerReflection, ServerReflectionRequest,
                ServerReflectionResponse, ServiceResponse,
                server_reflection_response::MessageResponse,
            };
            use volo_grpc::{RecvStream, Request, Response, Status};

            use super::{Answer, Query, Reflection, ReplyStream, replies};

            impl ServerReflection for Reflection {
                async fn server_reflection_info(
                    &self,
                    req: Request<RecvStream<ServerReflectionRequest>>,
                ) -> Result<Response<ReplyStream<ServerReflectionResponse>>, Status> {
                    Ok(Response::new(replies(
                        self.clone(),
                        req.into_inner(),
                        respond,
                    )))
                }
            }

            /// Answers `request`, echoing its host and the request itself.
            pub(super) fn respond(
                reflection: &Reflection,
                request: ServerReflectionRequest,
            ) -> ServerReflectionResponse {
                // The upstream oneof, as optional fields in proto order (see the proto).
                let query = if let Some(name) = &request.file_by_filename {
                    Query::FileByFilename(name)
                } else if let Some(symbol) = &request.file_containing_symbol {
                    Query::FileContainingSymbol(symbol)
                } else if let Some(extension) = &request.file_containing_extension {
                    Query::FileContainingExtension {
                        containing_type: &extension.containing_type,
                        number: extension.extension_number,
                    }
                } else if let Some(name) = &request.all_extension_numbers_of_type {
                    Query::AllExtensionNumbersOfType(name)
                } else if request.list_services.is_some() {
                    Query::ListServices
                } else {
                    Query::Unset
                };
                let message_response = match reflection.answer(query) {
                    Answer::Files(files) => {
                        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                            file_descriptor_proto: files,
                        })
                    }
                    Answer::Services(names) => {
                        MessageResponse::ListServicesResponse(ListServiceResponse {
                            service: names
                                .into_iter()
                                .map(|name| ServiceResponse {
                                    name: name.to_string(),
                                })
                                .collect(),
                        })
                    }
                    Answer::ExtensionNumbers {
                        base_type_name,
                        numbers,
                    } => MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                        base_type_name: base_type_name.to_string(),
                        extension_number: numbers,
                    }),
                    Answer::Error { code, message } => {
                        MessageResponse::ErrorResponse(ErrorResponse {
                            error_code: code.into(),
                            error_message: message.into(),
                        })
                    }
                };
                ServerReflectionResponse {
                    valid_host: request.host.clone(),
                    original_request: Some(request),
                    message_response: Some(message_response),
                }
            }
        }
    };
}

reflection_version!(v1);
reflection_version!(v1alpha);

#[cfg(test)]
mod tests {
    use pilota::{Bytes, pb::Message};
    use volo_gen::grpc::reflection::v1::{
        ServerReflectionRequest, server_reflection_response::MessageResponse,
    };

    use super::{Reflection, v1};

    /// Go clients send `list_services: ""` (field 7, length 0). Only raw bytes can show
    /// it: pilota's encoder leaves an empty string out, even inside a oneof.
    #[test]
    fn an_empty_list_services_from_a_go_client_lists_services() {
        let request = ServerReflectionRequest::decode(Bytes::from_static(&[0x3a, 0x00]))
            .expect("a valid request");
        assert_eq!(request.list_services.as_deref(), Some(""));
        let reflection = Reflection::for_basic_server().expect("the generated descriptors index");
        let response = v1::respond(&reflection, request);
        assert!(matches!(
            response.message_response,
            Some(MessageResponse::ListServicesResponse(_))
        ));
    }
}

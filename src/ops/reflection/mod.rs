//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`), so tools such as grpcurl
//! can list the services and call them without the `.proto` files.
//!
//! [`Reflection`] is built once at startup from the descriptors the generated code carries
//! (see `index`); it answers every request from that index and never changes. The logic
//! lives here once, on version-neutral `Query` and `Answer` values; `service` converts
//! them from and to each version's generated types and implements both traits.
//! It advertises every service generated from `idl/` (`volo_gen::SERVICES`).

mod index;
mod service;

use std::sync::Arc;

use pilota::{Bytes, FastStr, pb::reflect::FileDescriptor};
use volo_grpc::Code;

use index::{Index, SymbolKind};

/// The services this server advertises through `list_services`: all of them.
fn services() -> Vec<&'static str> {
    volo_gen::SERVICES
        .iter()
        .map(|service| service.name)
        .collect()
}

/// Why the reflection index could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReflectionError {
    #[error("reflection: cannot serialize the descriptor of {file}")]
    Encode {
        file: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reflection: {file} imports {import}, which has no descriptor")]
    MissingImport { file: String, import: String },
    #[error("reflection: {symbol} is declared in both {first} and {second}")]
    DuplicateSymbol {
        symbol: String,
        first: String,
        second: String,
    },
    #[error("reflection: cannot advertise {0}: no such service in the descriptors")]
    UnknownService(String),
}

/// The reflection service: an immutable descriptor index, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Reflection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    index: Index,
    /// What `list_services` answers, in the order given.
    services: Vec<FastStr>,
}

/// The root descriptors of this server's `.proto` files, one per service (their
/// imports come with them), and the error details some errors carry
/// ([`crate::call::status`]), so that clients can decode them.
fn generated_files() -> Vec<&'static FileDescriptor> {
    volo_gen::SERVICES
        .iter()
        .map(|service| (service.file_descriptor)())
        .chain([
            volo_gen::google::rpc::file_descriptor_status(),
            volo_gen::google::rpc::file_descriptor_error_details(),
        ])
        .collect()
}

impl Reflection {
    /// Indexes `files` and everything they import, advertising `services`, each of
    /// which must be a service declared in those files.
    pub(crate) fn new(
        files: &[&FileDescriptor],
        services: &[&str],
    ) -> Result<Self, ReflectionError> {
        let index = Index::build(files)?;
        for &service in services {
            match index.symbol(service) {
                Some(symbol) if symbol.kind == SymbolKind::Service => {}
                _ => return Err(ReflectionError::UnknownService(service.to_owned())),
            }
        }
        let services = services.iter().map(|&s| FastStr::new(s)).collect();
        Ok(Self {
            inner: Arc::new(Inner { index, services }),
        })
    }

    /// This server's descriptors, advertising [`services`].
    pub(crate) fn for_basic_server() -> Result<Self, ReflectionError> {
        Self::new(&generated_files(), &services())
    }

    /// Every indexed file, as a serialized `FileDescriptorProto` (for the JSON codec's
    /// descriptor pool).
    pub(crate) fn files(&self) -> impl Iterator<Item = &Bytes> {
        self.inner.index.files()
    }

    /// The answer to one request.
    fn answer(&self, query: Query<'_>) -> Answer {
        let index = &self.inner.index;
        match query {
            Query::ListServices => Answer::Services(self.inner.services.clone()),
            Query::FileByFilename(name) => match index.file_with_deps(name) {
                Some(files) => Answer::Files(files),
                None => Answer::not_found(format!("file not found: {name}")),
            },
            Query::FileContainingSymbol(symbol) => {
                match index
                    .symbol(symbol)
                    .and_then(|found| index.file_with_deps(&found.file))
                {
                    Some(files) => Answer::Files(files),
                    None => Answer::not_found(format!("symbol not found: {symbol}")),
                }
            }
            // No file declares extensions (a unit test in `index` checks it).
            Query::FileContainingExtension {
                containing_type,
                number,
            } => Answer::not_found(format!(
                "extension not found: {containing_type} field {number}"
            )),
            // As grpc-go does: a known type with no extensions gets an empty list.
            Query::AllExtensionNumbersOfType(name) => match index.symbol(name) {
                Some(symbol) if symbol.kind == SymbolKind::Message => Answer::ExtensionNumbers {
                    base_type_name: FastStr::new(name),
                    numbers: Vec::new(),
                },
                _ => Answer::not_found(format!("message type not found: {name}")),
            },
            Query::Unset => Answer::Error {
                code: Code::InvalidArgument,
                message: "message_request is not set".to_owned(),
            },
        }
    }
}

/// One reflection request, whichever protocol version it came in.
#[derive(Debug, Clone, Copy)]
enum Query<'a> {
    ListServices,
    FileByFilename(&'a str),
    FileContainingSymbol(&'a str),
    FileContainingExtension {
        containing_type: &'a str,
        number: i32,
    },
    AllExtensionNumbersOfType(&'a str),
    /// The request's `message_request` oneof is empty.
    Unset,
}

/// One reflection answer, converted into the version the request came in.
#[derive(Debug)]
enum Answer {
    /// Serialized `FileDescriptorProto`s: the file asked for first, then its imports.
    Files(Vec<Bytes>),
    Services(Vec<FastStr>),
    ExtensionNumbers {
        base_type_name: FastStr,
        numbers: Vec<i32>,
    },
    /// An `ErrorResponse`; the stream goes on.
    Error {
        code: Code,
        message: String,
    },
}

impl Answer {
    fn not_found(message: String) -> Self {
        Self::Error {
            code: Code::NotFound,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reflection() -> Reflection {
        Reflection::for_basic_server().expect("the generated descriptors index")
    }

    fn error_code(answer: Answer) -> Code {
        match answer {
            Answer::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn lists_the_advertised_services_in_order() {
        match reflection().answer(Query::ListServices) {
            Answer::Services(names) => assert_eq!(
                names,
                [
                    "basic.v1.BasicService",
                    "grpc.health.v1.Health",
                    "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection",
                ]
            ),
            other => panic!("expected services, got {other:?}"),
        }
    }

    #[test]
    fn advertising_a_service_not_in_the_descriptors_is_refused() {
        let err = Reflection::new(&generated_files(), &["basic.v1.NoSuchService"])
            .expect_err("unknown service");
        assert!(
            matches!(err, ReflectionError::UnknownService(name) if name == "basic.v1.NoSuchService")
        );
        // A message is not a service.
        assert!(Reflection::new(&generated_files(), &["basic.service.v1.HelloRequest"]).is_err());
    }

    #[test]
    fn unknown_names_are_not_found_and_an_empty_request_is_invalid() {
        let reflection = reflection();
        for query in [
            Query::FileByFilename("nope.proto"),
            Query::FileContainingSymbol("basic.v1.Nope"),
            Query::FileContainingExtension {
                containing_type: "basic.service.v1.HelloRequest",
                number: 100,
            },
            Query::AllExtensionNumbersOfType("basic.v1.Nope"),
            Query::AllExtensionNumbersOfType("basic.v1.BasicService"),
        ] {
            assert_eq!(
                error_code(reflection.answer(query)),
                Code::NotFound,
                "{query:?}"
            );
        }
        assert_eq!(
            error_code(reflection.answer(Query::Unset)),
            Code::InvalidArgument
        );
    }

    #[test]
    fn a_known_message_has_no_extension_numbers() {
        match reflection().answer(Query::AllExtensionNumbersOfType(
            "basic.service.v1.HelloRequest",
        )) {
            Answer::ExtensionNumbers {
                base_type_name,
                numbers,
            } => {
                assert_eq!(base_type_name, "basic.service.v1.HelloRequest");
                assert!(numbers.is_empty());
            }
            other => panic!("expected extension numbers, got {other:?}"),
        }
    }
}

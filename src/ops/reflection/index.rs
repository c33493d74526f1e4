//! The descriptor index behind reflection: every `.proto` file the server was generated
//! from, serialized once, and every fully-qualified symbol mapped to the file declaring it.
//!
//! It is built from pilota's `FileDescriptor`s, which the generated code provides per file
//! with their dependencies attached (the well-known types such as `google/protobuf/any.proto`
//! come from the descriptors pilota embeds). Walking that graph from the roots reaches every
//! file a client needs to build the file set, so nothing here can drift from `idl/`.

use std::collections::{HashMap, HashSet, VecDeque};

use pilota::{
    Bytes,
    pb::{
        PbMessage,
        descriptor::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto},
        reflect::FileDescriptor,
    },
};

use super::ReflectionError;

/// What a fully-qualified symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymbolKind {
    Service,
    Method,
    Message,
    Field,
    Enum,
    EnumValue,
}

/// Files by name and symbols by fully-qualified name (no leading dot).
#[derive(Debug, Default)]
pub(crate) struct Index {
    files: HashMap<String, File>,
    symbols: HashMap<String, Symbol>,
}

/// One `.proto` file.
#[derive(Debug)]
struct File {
    /// The serialized `FileDescriptorProto`, as reflection sends it.
    bytes: Bytes,
    /// Names of the files it imports.
    deps: Vec<String>,
}

/// Where a symbol is declared, and what it is.
#[derive(Debug, Clone)]
pub(crate) struct Symbol {
    /// The name of the declaring file.
    pub file: String,
    pub kind: SymbolKind,
}

impl Index {
    /// Indexes `roots` and every file they import, directly or not.
    pub(crate) fn build(roots: &[&FileDescriptor]) -> Result<Self, ReflectionError> {
        let mut index = Index::default();
        let mut pending: Vec<FileDescriptor> = roots.iter().map(|&file| file.clone()).collect();
        while let Some(file) = pending.pop() {
            let name = file.proto().name();
            if index.files.contains_key(name) || name == CODEGEN_OPTIONS_FILE {
                continue;
            }
            index.add_file(&without_codegen_options(file.proto()))?;
            pending.extend(file.deps().iter().cloned());
        }
        // The walk follows pilota's dependency links; check they agree with the imports
        // named in the protos, so every answer can be complete.
        for (name, file) in &index.files {
            if let Some(missing) = file.deps.iter().find(|dep| !index.files.contains_key(*dep)) {
                return Err(ReflectionError::MissingImport {
                    file: name.clone(),
                    import: missing.clone(),
                });
            }
        }
        Ok(index)
    }

    /// The file named `name` followed by everything it imports transitively, each once,
    /// as serialized `FileDescriptorProto`s; `None` if no such file is indexed.
    pub(crate) fn file_with_deps(&self, name: &str) -> Option<Vec<Bytes>> {
        let (name, _) = self.files.get_key_value(name)?;
        let mut seen = HashSet::from([name.as_str()]);
        let mut queue = VecDeque::from([name.as_str()]);
        let mut out = Vec::new();
        while let Some(name) = queue.pop_front() {
            // `build` checked that every import is indexed.
            let Some(file) = self.files.get(name) else {
                continue;
            };
            out.push(file.bytes.clone());
            for dep in &file.deps {
                if seen.insert(dep.as_str()) {
                    queue.push_back(dep.as_str());
                }
            }
        }
        Some(out)
    }

    /// Every file, serialized, in no particular order.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Bytes> {
        self.files.values().map(|file| &file.bytes)
    }

    /// The symbol named `name` (fully qualified, e.g. `basic.v1.BasicService.Hello`).
    pub(crate) fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.get(name)
    }

    fn add_file(&mut self, proto: &FileDescriptorProto) -> Result<(), ReflectionError> {
        let name = proto.name();
        let bytes = proto
            .write_to_bytes()
            .map_err(|source| ReflectionError::Encode {
                file: name.to_owned(),
                source: source.into(),
            })?;
        self.files.insert(
            name.to_owned(),
            File {
                bytes: bytes.into(),
                deps: proto.dependency.clone(),
            },
        );
        let package = proto.package();
        for message in &proto.message_type {
            self.add_message(name, package, message)?;
        }
        for enumeration in &proto.enum_type {
            self.add_enum(name, package, enumeration)?;
        }
        for service in &proto.service {
            let service_name = qualify(package, service.name());
            for method in &service.method {
                let method_name = qualify(&service_name, method.name());
                self.add_symbol(name, method_name, SymbolKind::Method)?;
            }
            self.add_symbol(name, service_name, SymbolKind::Service)?;
        }
        Ok(())
    }

    fn add_message(
        &mut self,
        file: &str,
        scope: &str,
        message: &DescriptorProto,
    ) -> Result<(), ReflectionError> {
        let name = qualify(scope, message.name());
        for field in &message.field {
            self.add_symbol(file, qualify(&name, field.name()), SymbolKind::Field)?;
        }
        for nested in &message.nested_type {
            self.add_message(file, &name, nested)?;
        }
        for enumeration in &message.enum_type {
            self.add_enum(file, &name, enumeration)?;
        }
        self.add_symbol(file, name, SymbolKind::Message)
    }

    fn add_enum(
        &mut self,
        file: &str,
        scope: &str,
        enumeration: &EnumDescriptorProto,
    ) -> Result<(), ReflectionError> {
        // Enum values are siblings of their enum, as in C++: `basic.service.v1.STATE_PROCESS`.
        for value in &enumeration.value {
            self.add_symbol(file, qualify(scope, value.name()), SymbolKind::EnumValue)?;
        }
        self.add_symbol(file, qualify(scope, enumeration.name()), SymbolKind::Enum)
    }

    fn add_symbol(
        &mut self,
        file: &str,
        name: String,
        kind: SymbolKind,
    ) -> Result<(), ReflectionError> {
        if let Some(first) = self.symbols.get(&name) {
            return Err(ReflectionError::DuplicateSymbol {
                symbol: name,
                first: first.file.clone(),
                second: file.to_owned(),
            });
        }
        let file = file.to_owned();
        self.symbols.insert(name, Symbol { file, kind });
        Ok(())
    }
}

/// `idl/pilota.proto`: declares the codegen option `(pilota.rust_type)`, which matters to
/// the generated Rust only. Reflection serves the files as if it had never been imported.
const CODEGEN_OPTIONS_FILE: &str = "pilota.proto";

/// The field number of `(pilota.rust_type)` in `FieldOptions`.
const RUST_TYPE_OPTION: u32 = 1215204;

/// `proto` without the import of [`CODEGEN_OPTIONS_FILE`] and without its option on
/// fields: what clients see is the contract, not how this server generates code for it.
fn without_codegen_options(proto: &FileDescriptorProto) -> FileDescriptorProto {
    fn strip(message: &mut DescriptorProto) {
        for field in &mut message.field {
            if let Some(options) = field.options.as_mut() {
                let unknown = options.special_fields.mut_unknown_fields();
                unknown.remove(RUST_TYPE_OPTION);
                if unknown.iter().next().is_none() {
                    // `remove` leaves an empty map behind; make it compare as no options.
                    *unknown = Default::default();
                }
                if *options == Default::default() {
                    field.options.clear();
                }
            }
        }
        message.nested_type.iter_mut().for_each(strip);
    }
    let mut proto = proto.clone();
    // Only plain imports are used in idl/, so no public/weak index needs renumbering.
    proto.dependency.retain(|dep| dep != CODEGEN_OPTIONS_FILE);
    proto.message_type.iter_mut().for_each(strip);
    proto
}

/// `scope.name`, or `name` at the root (a file without a package).
fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::generated_files;
    use super::*;

    fn index() -> Index {
        Index::build(&generated_files()).expect("the generated descriptors index")
    }

    fn names(files: &[Bytes]) -> Vec<String> {
        files
            .iter()
            .map(|bytes| {
                FileDescriptorProto::parse_from_bytes(bytes)
                    .expect("a FileDescriptorProto")
                    .name()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn symbols_of_every_kind_resolve_to_their_file() {
        let index = index();
        for (symbol, file, kind) in [
            (
                "basic.v1.BasicService",
                "basic/v1/basic.proto",
                SymbolKind::Service,
            ),
            (
                "basic.v1.BasicService.Talk",
                "basic/v1/basic.proto",
                SymbolKind::Method,
            ),
            (
                "basic.service.v1.HelloRequest",
                "basic/service/v1/service.proto",
                SymbolKind::Message,
            ),
            (
                "basic.service.v1.HelloRequest.message",
                "basic/service/v1/service.proto",
                SymbolKind::Field,
            ),
            (
                "basic.service.v1.State",
                "basic/service/v1/service.proto",
                SymbolKind::Enum,
            ),
            (
                "basic.service.v1.STATE_PROCESS",
                "basic/service/v1/service.proto",
                SymbolKind::EnumValue,
            ),
            (
                "cloudevents.v1.CloudEvent.CloudEventAttributeValue",
                "cloudevents/v1/cloudevents.proto",
                SymbolKind::Message,
            ),
            (
                "cloudevents.v1.CloudEvent.AttributesEntry",
                "cloudevents/v1/cloudevents.proto",
                SymbolKind::Message,
            ),
            (
                "google.protobuf.Any",
                "google/protobuf/any.proto",
                SymbolKind::Message,
            ),
            (
                "google.protobuf.Timestamp",
                "google/protobuf/timestamp.proto",
                SymbolKind::Message,
            ),
            (
                "grpc.health.v1.HealthCheckResponse.ServingStatus",
                "grpc/health/v1/health.proto",
                SymbolKind::Enum,
            ),
            (
                "grpc.health.v1.HealthCheckResponse.SERVING",
                "grpc/health/v1/health.proto",
                SymbolKind::EnumValue,
            ),
            (
                "grpc.health.v1.Health.Watch",
                "grpc/health/v1/health.proto",
                SymbolKind::Method,
            ),
            (
                "grpc.reflection.v1.ServerReflection",
                "grpc/reflection/v1/reflection.proto",
                SymbolKind::Service,
            ),
            (
                "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo",
                "grpc/reflection/v1alpha/reflection.proto",
                SymbolKind::Method,
            ),
        ] {
            let found = index
                .symbol(symbol)
                .unwrap_or_else(|| panic!("{symbol} is indexed"));
            assert_eq!((found.file.as_str(), found.kind), (file, kind), "{symbol}");
        }
        assert!(index.symbol("basic.v1.Nope").is_none());
        assert!(index.symbol(".basic.v1.BasicService").is_none());
    }

    #[test]
    fn a_file_comes_first_then_all_its_imports_each_once() {
        let index = index();
        let files = names(
            &index
                .file_with_deps("basic/v1/basic.proto")
                .expect("indexed"),
        );
        assert_eq!(files[0], "basic/v1/basic.proto");
        let mut rest = files[1..].to_vec();
        rest.sort();
        assert_eq!(
            rest,
            [
                "basic/service/v1/service.proto",
                "cloudevents/v1/cloudevents.proto",
                "google/protobuf/any.proto",
                "google/protobuf/timestamp.proto",
            ]
        );

        let files = names(
            &index
                .file_with_deps("google/protobuf/any.proto")
                .expect("indexed"),
        );
        assert_eq!(files, ["google/protobuf/any.proto"]);
        assert!(index.file_with_deps("basic/v1/nope.proto").is_none());
    }

    #[test]
    fn every_file_is_indexed_with_its_imports() {
        let index = index();
        let mut files: Vec<_> = index.files.keys().map(String::as_str).collect();
        files.sort_unstable();
        assert_eq!(
            files,
            [
                "basic/service/v1/service.proto",
                "basic/v1/basic.proto",
                "cloudevents/v1/cloudevents.proto",
                "google/protobuf/any.proto",
                "google/protobuf/duration.proto",
                "google/protobuf/timestamp.proto",
                "google/rpc/error_details.proto",
                "google/rpc/status.proto",
                "grpc/health/v1/health.proto",
                "grpc/reflection/v1/reflection.proto",
                "grpc/reflection/v1alpha/reflection.proto",
            ]
        );
        for name in files {
            let answer = names(&index.file_with_deps(name).expect("indexed"));
            let unique: HashSet<_> = answer.iter().collect();
            assert_eq!(unique.len(), answer.len(), "{name}: each file once");
        }
    }

    /// Reflection answers every extension query with NOT_FOUND because of this; a file
    /// that declares extensions needs them indexed first.
    #[test]
    fn no_file_declares_extensions() {
        let index = index();
        for name in index.files.keys() {
            let bytes = &index.files[name].bytes;
            let proto = FileDescriptorProto::parse_from_bytes(bytes).expect("parses");
            fn declares(message: &DescriptorProto) -> bool {
                !message.extension.is_empty() || message.nested_type.iter().any(declares)
            }
            assert!(
                proto.extension.is_empty() && !proto.message_type.iter().any(declares),
                "{name} declares extensions"
            );
        }
    }

    /// The codegen option (UTF-8 validated strings) is ours, not part of the contract.
    #[test]
    fn served_files_carry_no_codegen_options() {
        let index = index();
        for (name, file) in &index.files {
            let proto = FileDescriptorProto::parse_from_bytes(&file.bytes).expect("parses");
            assert!(
                !proto.dependency.iter().any(|d| d == CODEGEN_OPTIONS_FILE),
                "{name}"
            );
            fn clean(message: &DescriptorProto) -> bool {
                message.field.iter().all(|f| f.options.is_none())
                    && message.nested_type.iter().all(clean)
            }
            assert!(
                proto.message_type.iter().all(clean),
                "{name} has field options"
            );
        }
    }
}

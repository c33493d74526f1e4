//! Runs volo-build over the workspace's `volo.yml`; every path in it is relative to here.
//!
//! A plugin ([`RpcTable`]) adds, for every service, its table of RPCs and the function that
//! runs one of them (see `src/rpc.rs`), and lists the services in `rpc_services.rs`: the
//! per-RPC facts a server needs come from `idl/` and nowhere else.
//!
//! Then it checks the generated code: pilota decodes a `string` field into `FastStr`
//! without validating UTF-8 (an unchecked conversion), so hostile bytes would become a
//! `&str` that is not UTF-8. Every string field in `idl/` therefore carries
//! `[(pilota.rust_type) = "string"]` (a `String`, validated on decode), and the build
//! fails here if any generated field or oneof variant is still a `FastStr`, so a new field
//! cannot forget it. The only exceptions are listed in [`ALLOWED`], each with its reason.

use std::{
    env, fs,
    path::Path,
    sync::{Arc, Mutex},
};

use pilota_build::{
    Context, DefId, Plugin,
    db::RirDatabase,
    plugin::walk_item,
    rir::Item,
    tags::protobuf::{ClientStreaming, ServerStreaming},
};

/// `(type, field or oneof variant)` pairs that may stay `FastStr`, each with its reason.
/// Every type under the `google` package (pilota's built-in well-known types and
/// `descriptor.proto`, pulled in by `idl/pilota.proto`) is exempt too: the server never
/// decodes one from the network.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "CloudEvent",
        "attributes",
        "a map key cannot carry the option; CloudEvents are responses, never decoded by the server",
    ),
    ("Data", "TextData", RESPONSE_ONEOF),
    ("Attr", "CeString", RESPONSE_ONEOF),
    ("Attr", "CeUri", RESPONSE_ONEOF),
    ("Attr", "CeUriRef", RESPONSE_ONEOF),
    (
        "HealthListResponse",
        "statuses",
        "a map key cannot carry the option; a response, never decoded by the server",
    ),
];

const RESPONSE_ONEOF: &str = "pilota ignores the option on oneof members; CloudEvent is a \
                              response type, never decoded by the server";

fn main() {
    println!("cargo:rerun-if-changed=../volo.yml");
    println!("cargo:rerun-if-changed=../idl");
    let services = Arc::new(Mutex::new(Vec::new()));
    volo_build::ConfigBuilder::new("../volo.yml".into())
        .plugin(RpcTable {
            services: Arc::clone(&services),
        })
        .write()
        .expect("volo-build code generation failed");

    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    keep_pilota_proto_old(Path::new(&out_dir));
    let mut services = services.lock().expect("the plugin has finished").clone();
    services.sort();
    let services = services
        .into_iter()
        .map(|(_, path)| path)
        .collect::<Vec<_>>()
        .join(",\n    ");
    let list = format!(
        "/// Every service in `idl/`, by name.\n\
         pub static SERVICES: &[&crate::rpc::Service] = &[\n    {services}\n];\n"
    );
    write_if_changed(&Path::new(&out_dir).join("rpc_services.rs"), &list);

    let out = Path::new(&out_dir).join("volo_gen.rs");
    let code = fs::read_to_string(&out).expect("read the generated code");
    let unchecked = unvalidated_strings(&code);
    if !unchecked.is_empty() {
        panic!(
            "string fields decoded without UTF-8 validation (add \
             [(pilota.rust_type) = \"string\"] to each in idl/): {}",
            unchecked.join(", ")
        );
    }
}

/// volo-build copies pilota's option file into `OUT_DIR` on every run and tells cargo
/// to watch the copy, which is then always newer than the run: every build would run
/// this script again and recompile everything that depends on this crate. The copy is
/// given the time of the file it copies (`idl/pilota.proto`, which cargo watches too),
/// so a build with nothing changed does nothing.
fn keep_pilota_proto_old(out_dir: &Path) {
    let copy = out_dir.join("pilota_proto").join("pilota.proto");
    let Ok(source) = fs::metadata("../idl/pilota.proto").and_then(|m| m.modified()) else {
        return;
    };
    if let Ok(file) = fs::File::options().write(true).open(&copy) {
        let _ = file.set_modified(source);
    }
}

/// Writes `contents` to `path` unless it already holds exactly that.
fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return;
    }
    fs::write(path, contents).expect("write a generated file");
}

/// The plugin that emits each service's RPC table and `serve_*` function.
#[derive(Clone)]
struct RpcTable {
    /// The full names of the services and the paths of their tables, for `SERVICES`.
    services: Arc<Mutex<Vec<(String, String)>>>,
}

impl Plugin for RpcTable {
    fn on_item(&mut self, cx: &Context, def_id: DefId, item: Arc<Item>) {
        if let Item::Service(service) = &*item {
            let code = rpc_table(cx, def_id, service, &mut self.services.lock().unwrap());
            cx.with_adjust_mut(def_id, |adjust| adjust.add_nested_item(code.into()));
        }
        walk_item(self, cx, def_id, item)
    }
}

/// `BasicService` -> `BASIC_SERVICE`, `basic_service`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The table and the `serve_*` function of one service (emitted in its module).
fn rpc_table(
    cx: &Context,
    def_id: DefId,
    service: &pilota_build::rir::Service,
    services: &mut Vec<(String, String)>,
) -> String {
    let node = cx.node(def_id).expect("a service has a node");
    let file = cx.file(node.file_id).expect("a service has a file");
    let package = file
        .package
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(".");
    let full = format!("{package}.{}", service.name);
    // The descriptor of the service's `.proto` file, as pilota names its getter.
    let descriptor = format!(
        "file_descriptor_{}",
        cx.file_name(node.file_id)
            .expect("a service's file has a name")
            .replace('.', "_")
            .to_lowercase()
    );
    let rust = cx.rust_name(def_id).to_string();
    let snake = snake(&rust);
    let table = format!("{}_RPCS", snake.to_ascii_uppercase());
    let mut methods = String::new();
    let mut arms = String::new();
    for (index, method) in service.methods.iter().enumerate() {
        let client = cx.node_contains_tag::<ClientStreaming>(method.def_id);
        let server = cx.node_contains_tag::<ServerStreaming>(method.def_id);
        let name = &method.name;
        methods.push_str(&format!(
            "crate::rpc::Method {{ service: {full:?}, name: \"{name}\", \
             path: \"/{full}/{name}\", index: {index}, client_streaming: {client}, \
             server_streaming: {server} }},\n"
        ));
        let request = if client {
            "calls.requests()"
        } else {
            "calls.request().await?"
        };
        let reply = if server { "replies" } else { "reply" };
        let call = cx.rust_name(method.def_id);
        arms.push_str(&format!(
            "{index} => {{\n\
             let req = {request};\n\
             let reply = handler.{call}(req).await?;\n\
             ::std::result::Result::Ok(calls.{reply}(reply))\n\
             }}\n"
        ));
    }
    let path = cx
        .item_path(def_id)
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    let module = path[..path.len() - 1].join("::");
    services.push((
        full.clone(),
        format!("&crate::r#gen::volo_gen::{module}::{table}"),
    ));
    format!(
        r#"
/// The RPCs of `{full}`, as its `.proto` declares them.
pub static {table}: crate::rpc::Service = crate::rpc::Service {{
    name: {full:?},
    file_descriptor: {descriptor},
    methods: &[
{methods}    ],
}};

/// Runs the RPC at `index` in [`{table}`] on `handler`, through `calls`.
pub async fn serve_{snake}<S, C>(
    handler: &S,
    index: usize,
    mut calls: C,
) -> ::std::result::Result<C::Reply, ::volo_grpc::Status>
where
    S: {rust} + ?Sized + Sync,
    C: crate::rpc::Calls,
{{
    match index {{
{arms}        _ => ::std::result::Result::Err(calls.unknown()),
    }}
}}
"#
    )
}

/// `Type.field` for every generated field or oneof variant of type `FastStr` (directly,
/// in an `Option`/`Vec`, or as a map key) outside `google` that [`ALLOWED`] does not list.
fn unvalidated_strings(code: &str) -> Vec<String> {
    // Open `pub mod` blocks as (name, brace depth inside it), to know the package.
    let mut modules: Vec<(&str, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut owner = "";
    let mut found = Vec::new();
    for line in code.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|r| r.strip_suffix(" {"))
        {
            modules.push((name, depth + 1));
        }
        if let Some(rest) = line
            .strip_prefix("pub struct ")
            .or_else(|| line.strip_prefix("pub enum "))
        {
            owner = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("");
        }
        depth = (depth + opens).saturating_sub(closes);
        while modules.last().is_some_and(|&(_, d)| depth < d) {
            modules.pop();
        }
        let in_google = modules.iter().any(|&(name, _)| name == "google");
        if in_google
            || !line.contains("::pilota::FastStr")
            || line.contains("fn ")
            || line.contains("::faststr::")
        {
            continue;
        }
        // `pub name: Type,` (a field) or `Name(Type),` (a oneof variant).
        let field = if let Some(rest) = line.strip_prefix("pub ") {
            rest.split(':').next()
        } else if line.ends_with("),") && line.contains('(') {
            line.split('(').next()
        } else {
            None
        };
        let Some(field) = field.map(|f| f.trim().trim_start_matches("r#")) else {
            continue;
        };
        if field.is_empty() || !field.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if !ALLOWED.iter().any(|&(o, f, _)| o == owner && f == field) {
            found.push(format!("{owner}.{field}"));
        }
    }
    found
}

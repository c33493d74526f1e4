//! Runs volo-build over the workspace's `volo.yml`; every path in it is relative to here.
//!
//! Then it checks the generated code: pilota decodes a `string` field into `FastStr`
//! without validating UTF-8 (an unchecked conversion), so hostile bytes would become a
//! `&str` that is not UTF-8. Every string field in `idl/` therefore carries
//! `[(pilota.rust_type) = "string"]` (a `String`, validated on decode), and the build
//! fails here if any generated field or oneof variant is still a `FastStr`, so a new field
//! cannot forget it. The only exceptions are listed in [`ALLOWED`], each with its reason.

use std::{env, fs, path::Path};

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
    volo_build::ConfigBuilder::new("../volo.yml".into())
        .write()
        .expect("volo-build code generation failed");

    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("volo_gen.rs");
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

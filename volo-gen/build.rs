//! Runs volo-build over the workspace's `volo.yml`; every path in it is relative to here.
fn main() {
    println!("cargo:rerun-if-changed=../volo.yml");
    println!("cargo:rerun-if-changed=../idl");
    volo_build::ConfigBuilder::new("../volo.yml".into())
        .write()
        .expect("volo-build code generation failed");
}

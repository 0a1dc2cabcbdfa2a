//! Compiles the store's .proto files with protox (pure Rust, no protoc) and
//! generates the prost messages and tonic services from them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/mvccpb.proto",
        "proto/etcdserverpb.proto",
        "proto/raft.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}

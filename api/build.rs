//! Compiles rudder's API .proto with protox (pure Rust, no protoc) into
//! prost messages and tonic services.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/rudder.proto";
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([file], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}

//! Rebuild the kernel programs when the shared types change.
fn main() {
    println!("cargo:rerun-if-changed=../dataplane-common/src");
}

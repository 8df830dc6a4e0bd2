use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh machine has no protoc: use the vendored one unless the caller chose another.
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("genie_descriptor.bin");
    let protos = [
        "genie/auth/v1/auth.proto",
        "genie/usage/v1/usage.proto",
        "genie/credentials/v1/credentials.proto",
        "genie/skills/v1/skills.proto",
        "genie/queue/v1/queue.proto",
    ];
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        // Plaintext secrets: their Debug is written by hand in lib.rs and prints no value.
        .skip_debug(["genie.credentials.v1.Secret"])
        .compile_with_config(config, &protos, &["."])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}

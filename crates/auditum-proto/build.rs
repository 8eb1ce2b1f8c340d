// Protos are compiled with a vendored protoc so a fresh machine needs no system install.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let include = protoc_bin_vendored::include_path()?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("auditum_descriptor.bin"))
        // Export chunks are handed to the encoder without a copy.
        .bytes(".auditum.v1.ExportResponse.chunk")
        // A request that does not decode is INVALID_ARGUMENT, not INTERNAL (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_protos(
            &[
                "../../proto/auditum/v1/event.proto",
                "../../proto/auditum/v1/ingest.proto",
                "../../proto/auditum/v1/query.proto",
                "../../proto/auditum/v1/proof.proto",
                "../../proto/auditum/v1/admin.proto",
            ],
            &["../../proto", include.to_str().ok_or("non-utf8 include path")?],
        )?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}

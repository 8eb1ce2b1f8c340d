//! auditum's wire contract (docs/API.md): the code generated from `proto/auditum/v1/`, the one
//! conversion table between protobuf and the domain (`convert`), and wire validation
//! (`validate`: wire event → stored record, with redaction).

pub mod codec;
pub mod convert;
pub mod sample;
pub mod validate;

/// Generated gRPC types and services of `proto/auditum/v1/`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("auditum.v1");

    /// Encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("auditum_descriptor");
}

//! Generated gRPC types of `proto/auditum/v1/` (DESIGN §8).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("auditum.v1");

/// Encoded file descriptor set, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("auditum_descriptor");

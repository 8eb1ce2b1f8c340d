"""Generated protobuf and gRPC stubs of auditum.v1 (tools/generate_stubs.py)."""

"""The Pachyderm file system domain (no gRPC here)."""

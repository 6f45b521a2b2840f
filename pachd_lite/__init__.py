"""pachd-lite: a single-process server speaking Pachyderm 2.12 gRPC API for one machine."""

"""gRPC adapters: betterproto messages in and out, domain calls in between."""

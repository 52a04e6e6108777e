"""Generated protobuf and gRPC code for `kosmos.v1` (`make proto`). Never edited by hand."""

"""Sans-IO protocol code: bytes in, request objects out; results in, bytes out. No sockets."""

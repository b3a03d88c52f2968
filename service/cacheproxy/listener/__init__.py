"""The accept loop: one listening socket per process (SO_REUSEPORT across workers)."""

"""The ring: one cache across every proxy of a tier, each key served by its owner's memcached."""

"""Connections from the proxy to memcached backends (unix socket or TCP), speaking meta."""

"""Handlers: how one logical operation is laid out on one backend (plain or chunked)."""

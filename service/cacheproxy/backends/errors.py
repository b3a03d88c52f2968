"""The one error type a backend reports to the layers above it."""

from __future__ import annotations


class BackendError(Exception):
    """A backend could not answer; ``reason`` goes to the client as ``SERVER_ERROR <reason>``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = b"SERVER_ERROR " + reason.encode() + b"\r\n"

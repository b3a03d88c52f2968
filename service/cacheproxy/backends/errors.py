"""The one error type a backend reports to the layers above it."""

from __future__ import annotations


class BackendError(Exception):
    """A backend could not answer; ``reason`` goes to the client as ``SERVER_ERROR <reason>``.

    ``written`` is False only when the request is known never to have left this process (its
    connection was down, closed or still connecting): the backend cannot have run it, so it may be
    sent again. True means it may have run."""

    def __init__(self, reason: str, *, written: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.written = written
        self.line = b"SERVER_ERROR " + reason.encode() + b"\r\n"

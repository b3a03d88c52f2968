"""Backend and listen addresses: ``HOST:PORT`` or ``unix:/path``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """Parse ``unix:/path``, ``HOST:PORT`` or ``[v6]:PORT``; raise ValueError otherwise."""
    if text.startswith("unix:"):
        if len(text) <= 5:
            raise ValueError(f"empty unix socket path in {text!r}")
        return Address(path=text[5:])
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {text!r} is not HOST:PORT or unix:/path")
    host = host.strip("[]") or "0.0.0.0"
    return Address(host=host, port=int(port))

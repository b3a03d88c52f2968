"""The credentials of memcached's ``-Y`` authfile: ``user:password`` lines.

memcached 1.6.18 (``authfile.c``) reads each line as the user up to the first ``:`` and the
password after it up to the line's end (``\\r``, ``\\n`` or a NUL byte); a line without a ``:``
(an empty line included) makes the whole file malformed, and memcached refuses to start. The
proxy reads the file the same way and refuses it the same way, with two differences: every entry
counts (memcached silently keeps only the first 8) and a line is not cut at 255 bytes.

:class:`Credentials` is shared by every connection; :meth:`Credentials.reload` replaces its
entries in place (on SIGHUP or when the file changes, as memcached reloads on SIGHUP), and a file
that no longer parses leaves the previous entries in force. Passwords are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import os

log = logging.getLogger(__name__)


def parse(text: bytes) -> list[tuple[bytes, bytes]]:
    """(user, password) pairs; ValueError for a malformed file."""
    entries = []
    lines = text.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file's last newline ends a line, it does not start one
    for number, line in enumerate(lines, 1):
        user, colon, rest = line.partition(b":")
        if not colon or b"\0" in user:
            raise ValueError(f"line {number} is malformed: memcached wants 'user:password'")
        end = len(rest)
        for stop in (b"\r", b"\n", b"\0"):
            i = rest.find(stop)
            if i >= 0:
                end = min(end, i)
        entries.append((user, rest[:end]))
    return entries


class Credentials:
    """Who may talk to the cache: the entries of an authfile."""

    def __init__(self, entries: list[tuple[bytes, bytes]], path: str | None = None) -> None:
        self.entries = entries
        self.path = path
        self.stamp: tuple | None = None

    @classmethod
    def load(cls, path: str) -> Credentials:
        creds = cls([], path)
        if not creds.reload(strict=True):
            log.warning("auth_file %s has no entries: no client can authenticate", path)
        return creds

    def check(self, user: bytes, password: bytes) -> bool:
        """True when USER with PASSWORD is an entry (an empty password never is: memcached's
        token parser cannot produce one). Every entry is compared, in constant time."""
        found = False
        for u, p in self.entries:
            # (& not and: no short cut that would tell a right user from a right password by time)
            found |= hmac.compare_digest(u, user) & hmac.compare_digest(p, password)
        return found and bool(password)

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path or "")
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def changed(self) -> bool:
        return self.path is not None and self._file_stamp() != self.stamp

    def reload(self, strict: bool = False) -> bool:
        """Read the file again; on an error keep the old entries (raise if STRICT)."""
        if self.path is None:
            return False
        stamp = self._file_stamp()
        try:
            with open(self.path, "rb") as f:
                entries = parse(f.read())
        except (OSError, ValueError) as exc:
            if strict:
                raise ValueError(f"auth_file {self.path}: {exc}") from None
            log.warning("auth_file %s does not load (%s); keeping the previous entries", self.path, exc)
            self.stamp = stamp
            return False
        self.entries, self.stamp = entries, stamp
        return bool(entries)

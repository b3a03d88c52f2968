"""memcached's ASCII authentication (``memcached -Y authfile``), sans-IO.

Until a text client authenticates, memcached 1.6.18 (``proto_text.c``,
``try_read_command_asciiauth``) reads nothing but a ``set`` whose data is ``user password``:

- any line that is not ``set`` with at least five space-separated tokens and a number (C
  ``strtoul``) as the fifth is answered ``CLIENT_ERROR unauthenticated`` -- ``get``, meta
  commands, ``quit`` (which does not close), ``version`` and empty lines alike;
- otherwise its data block (that many bytes and ``\\r\\n``; key, flags and exptime are ignored)
  must end with ``\\r\\n`` (else ``CLIENT_ERROR bad command line termination``), must hold two
  space-separated tokens (else ``CLIENT_ERROR bad authentication token format``; a NUL byte ends
  the data, so an empty password is a format error), and they must be an authfile entry:
  ``STORED`` and the connection is a normal one from the next byte on, or ``CLIENT_ERROR
  authentication failure``;
- 2048 bytes without a newline close the connection, and so does a data block that cannot fit
  memcached's 16 KB read buffer once the buffer is full.

memcached writes these answers through one response object that each answer overwrites until
the connection's output is flushed, which happens when it runs out of input and after every 21
commands of one read event (``-R``, 20 by default). So pipelined commands before authentication
get *one* answer per read (per 21 commands), the last; a successful ``set`` pipelined after
refused commands gets only ``STORED``. :class:`AsciiAuth` reproduces that per ``feed`` call (one
read); a test sending a script in one write sees memcached's bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .limits import LINE_LIMIT, READ_BUFFER_SIZE
from .numbers import safe_strtoul

UNAUTHENTICATED: Final = b"CLIENT_ERROR unauthenticated\r\n"
BAD_TERMINATION: Final = b"CLIENT_ERROR bad command line termination\r\n"
BAD_FORMAT: Final = b"CLIENT_ERROR bad authentication token format\r\n"
FAILURE: Final = b"CLIENT_ERROR authentication failure\r\n"
STORED: Final = b"STORED\r\n"

ANSWERS_PER_READ: Final = 21  # commands per read event before memcached flushes (-R 20, plus one)


def _tokens(line: bytes) -> list[bytes]:
    """memcached's tokenize_command: split on spaces only, the string ends at a NUL."""
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    return [t for t in line.split(b" ") if t]


class AuthResult:
    """What one feed produced: answers to write in order, then either nothing more, a close, or
    an authenticated connection whose remaining input (``rest``) belongs to the normal session."""

    __slots__ = ("answers", "authenticated", "close", "failures", "rest", "successes")

    def __init__(self) -> None:
        self.answers: list[bytes] = []
        self.authenticated = False
        self.close = False
        self.failures = 0  # "authentication failure" answers
        self.successes = 0
        self.rest = b""


class AsciiAuth:
    """One unauthenticated text connection's input, until it authenticates."""

    __slots__ = ("_buf", "_need", "check")

    def __init__(self, check: Callable[[bytes, bytes], bool]) -> None:
        self.check = check
        self._buf = bytearray()
        self._need: int | None = None  # data-block bytes (with \r\n) awaited after an auth set line

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> AuthResult:
        result = AuthResult()
        buf = self._buf
        buf += data
        pending: bytes | None = None  # memcached's one response object of this read
        count = 0
        while True:
            answer: bytes
            if self._need is None:
                if len(buf) < 2:
                    break
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > LINE_LIMIT:
                        result.close = True
                    break
                tokens = _tokens(bytes(buf[:nl]))
                del buf[: nl + 1]
                size = safe_strtoul(tokens[4]) if len(tokens) >= 5 and tokens[0] == b"set" else None
                if size is None:
                    answer = UNAUTHENTICATED
                else:
                    self._need = (size + 2) & 0xFFFFFFFF
                    continue
            else:
                need = self._need
                if need < 2 or need > READ_BUFFER_SIZE:  # can never fit memcached's read buffer
                    if len(buf) >= READ_BUFFER_SIZE:
                        result.close = True  # (memcached flushed the answers before it filled)
                        if pending is not None:
                            result.answers.append(pending)
                            pending = None
                    break
                if len(buf) < need:
                    break
                block = bytes(buf[:need])
                del buf[:need]
                self._need = None
                if not block.endswith(b"\r\n"):
                    answer = BAD_TERMINATION
                else:
                    words = _tokens(block[:-2])
                    if len(words) < 2:
                        answer = BAD_FORMAT
                    elif self.check(words[0], words[1]):
                        result.authenticated = True
                        result.successes += 1
                        result.answers.append(STORED)  # overwrites whatever was pending
                        result.rest = bytes(buf)
                        buf.clear()
                        return result
                    else:
                        answer = FAILURE
                        result.failures += 1
            pending = answer
            count += 1
            if count == ANSWERS_PER_READ:
                result.answers.append(pending)
                pending, count = None, 0
        if result.close:
            buf.clear()  # a line too long: closed with this read's answer unsent, as memcached does
        elif pending is not None:
            result.answers.append(pending)
        return result

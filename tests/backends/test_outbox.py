"""The outbox: what backend connections queue during one turn leaves in one write per connection.

The connections are real; their transports only record what they are given, because what is
checked is how many ``write`` calls the outbox makes and when, which a socket does not show.
"""

from __future__ import annotations

import asyncio

import pytest
from cacheproxy.backends import outbox
from cacheproxy.backends.address import Address
from cacheproxy.backends.connection import OPEN, BackendConnection
from cacheproxy.protocol.meta import META


class RecordingTransport:
    """Each ``write`` call is kept; ``then`` runs after the first one (a writer queuing more mid-flush)."""

    def __init__(self, then=None, fail: bool = False) -> None:
        self.writes: list[bytes] = []
        self.then, self.fail = then, fail

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if self.fail:
            raise RuntimeError("transport broke")
        if self.then is not None:
            then, self.then = self.then, None
            then()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def connection(transport: RecordingTransport) -> BackendConnection:
    conn = BackendConnection(Address("127.0.0.1", 1))
    conn.transport, conn.state = transport, OPEN  # type: ignore[assignment]
    return conn


def ignore(resp: object) -> None:
    pass


@pytest.fixture(autouse=True)
async def empty_outbox():
    outbox.DIRTY.clear()
    yield
    outbox.DIRTY.clear()
    await asyncio.sleep(0)  # the end-of-turn flush that mark() scheduled runs on this test's loop


async def test_requests_of_one_turn_leave_in_one_write_per_connection():
    first, second = RecordingTransport(), RecordingTransport()
    a, b = connection(first), connection(second)
    a.send(b"mg x v\r\n", META, ignore)
    b.send(b"mg y v\r\n", META, ignore)
    a.send(b"mg z v\r\n", META, ignore)
    assert first.writes == [] and second.writes == []  # nothing leaves before the flush
    outbox.flush()
    assert first.writes == [b"mg x v\r\nmg z v\r\n"]
    assert second.writes == [b"mg y v\r\n"]
    assert outbox.DIRTY == []


async def test_a_writer_queued_during_the_flush_leaves_in_the_same_flush():
    late = RecordingTransport()
    b = connection(late)
    a = connection(RecordingTransport(then=lambda: b.send(b"mg late v\r\n", META, ignore)))
    a.send(b"mg x v\r\n", META, ignore)
    outbox.flush()
    assert late.writes == [b"mg late v\r\n"]
    assert outbox.DIRTY == []


async def test_a_failing_write_leaves_the_writers_after_it_queued():
    after = RecordingTransport()
    broken, b = connection(RecordingTransport(fail=True)), connection(after)
    broken.send(b"mg x v\r\n", META, ignore)
    b.send(b"mg y v\r\n", META, ignore)
    with pytest.raises(RuntimeError):
        outbox.flush()
    assert after.writes == []  # not written yet, and not forgotten:
    outbox.flush()
    assert after.writes == [b"mg y v\r\n"]
    assert outbox.DIRTY == []

"""A backend connection's errors say whether the request may have run: `written` is False only for
requests that never left the process (nothing listening, the connection down or closed), and True
for one written before the other end closed without answering (a peer that may have run it)."""

from __future__ import annotations

import asyncio

from cacheproxy.backends.address import parse_address
from cacheproxy.backends.connection import BackendConnection
from cacheproxy.backends.errors import BackendError
from cacheproxy.protocol.meta import META

from tests.support.procs import free_port


async def answer_of(conn: BackendConnection, payload: bytes) -> object:
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    conn.send(payload, META, done.set_result)
    return await asyncio.wait_for(done, 5.0)


def test_a_request_to_nothing_listening_was_not_written() -> None:
    async def scenario() -> None:
        conn = BackendConnection(parse_address(f"127.0.0.1:{free_port()}"), "nothing")
        first = await answer_of(conn, b"mn\r\n")
        assert isinstance(first, BackendError) and first.written is False, first
        again = await answer_of(conn, b"mn\r\n")  # while backing off: refused without a connect
        assert isinstance(again, BackendError) and again.written is False, again
        conn.close()
        closed = await answer_of(conn, b"mn\r\n")
        assert isinstance(closed, BackendError) and closed.written is False, closed

    asyncio.run(scenario())


def test_a_request_read_by_a_server_that_closes_unanswered_was_written() -> None:
    async def scenario() -> None:
        received = asyncio.Event()

        async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            received.set()
            writer.close()

        server = await asyncio.start_server(read_then_close, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = BackendConnection(parse_address(f"127.0.0.1:{port}"), "closer")
        try:
            answer = await answer_of(conn, b"mn\r\n")
            assert received.is_set()
            assert isinstance(answer, BackendError) and answer.written is True, answer
        finally:
            conn.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())

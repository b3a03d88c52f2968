"""Hold N client connections open at once and check every answer (run as its own process).

    python -m tests.support.manyconns HOST:PORT N [ROUNDS]

Connections are opened in waves (the listen backlog is finite), then every connection does
ROUNDS of set+get on its own key while all N stay open. Prints one JSON line:
{"connected": N, "ok": answers that were right, "wrong": ..., "errors": ...}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from tests.support.procs import client_process_setup

WAVE = 500


async def one_round(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int, r: int) -> bool:
    key, value = b"k%d" % i, b"v%d-%d" % (i, r)
    writer.write(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (key, len(value), value, key))
    expected = b"STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)
    got = await reader.readexactly(len(expected))
    return got == expected


async def main(addr: str, n: int, rounds: int, deadline_s: float = 120.0) -> dict:
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + deadline_s
    conns: list = []
    errors = 0
    for start in range(0, n, WAVE):
        results = await asyncio.gather(
            *(asyncio.open_connection(host, int(port)) for _ in range(start, min(n, start + WAVE))),
            return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException):
                errors += 1
            else:
                conns.append(res)
        if time.monotonic() > deadline:
            break
    ok = wrong = 0
    for r in range(rounds):
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(one_round(rd, wr, i, r), max(1.0, deadline - time.monotonic()))
              for i, (rd, wr) in enumerate(conns)), return_exceptions=True)
        for o in outcomes:
            if o is True:
                ok += 1
            elif o is False:
                wrong += 1
            else:
                errors += 1
    connected = len(conns)
    for _, wr in conns:
        wr.close()
    return {"connected": connected, "ok": ok, "wrong": wrong, "errors": errors}


if __name__ == "__main__":
    client_process_setup()
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), rounds))))

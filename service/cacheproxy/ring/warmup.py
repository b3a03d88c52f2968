"""Moving a key's value from its previous owner to its new one, on demand (warm-up).

While a ring change warms up, a read that misses on the key's new owner asks the previous owner
(``mg <key> v f t c``: value, client flags, remaining TTL, CAS) and, on a hit, adds the value to
the new owner with that remaining TTL (``ms ... ME c``: an *add*, so a write that reached the new
owner meanwhile is never overwritten); the client's request is then served by the new owner as
usual (:func:`warm_read`).

Writes by other proxies race a fill: a proxy still preparing writes the previous owner, then
deletes the new owner's copy; one already serving writes the new owner, then deletes the previous
copy. So a fill re-reads the previous copy afterwards and undoes itself when that copy changed or
went (its CAS differs, or it is gone), and a read that still misses after a fill (a racing write
deleted the filled copy) pulls again, a bounded number of times.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from ..backends.connection import Callback
from ..backends.errors import BackendError
from ..metrics.stats import STATS
from ..protocol.meta import MetaResponse, code_of

Handler = Any  # an Orca (the local orca, or a forwarding handler on a peer connection)
META_MISS = MetaResponse(b"EN", b"EN", None, b"EN\r\n")  # a plain miss, as memcached answers it
PULLS = 3  # fills a read may try before it answers the new owner's miss


def read_previous(prev: Handler, token: bytes, b64: bool, cb: Callback) -> None:
    """The previous owner's copy: a VA answer with ``f``, ``t`` and ``c``, or EN / an error."""
    if b64:
        prev.meta(b"mg " + token + b" v f t c b", None, False, cb)
    else:
        prev.get(token, cb, cas=True, ttl=True)


def fill(new: Handler, token: bytes, b64: bool, resp: MetaResponse, then: Callable[[int | None], None]) -> None:
    """Add RESP's value to the new owner with its remaining TTL, then call THEN with the CAS value
    of the item it stored (0 when stored without one), or None when nothing was stored.

    ``ms <key> <len> F<flags> T<ttl> ME c``: an add that answers the new item's CAS. A value too
    large for one item (a chunked value) is added through the orca's own store, without a CAS."""
    flags, ttl = resp.flag(b"f"), resp.flag(b"t")
    value = resp.value if resp.value is not None else b""
    try:
        remaining = int(ttl) if ttl is not None else -1
        client_flags = int(flags) if flags is not None else 0
    except ValueError:
        then(None)
        return
    if remaining == 0:  # expires this second: nothing worth moving
        then(None)
        return
    exptime = 0 if remaining < 0 else remaining

    def stored_chunked(r: MetaResponse | BackendError | None) -> None:
        if code_of(r) == b"HD":
            STATS.ring_warmup["fill"] += 1
            then(0)
        else:
            then(None)

    def stored(r: MetaResponse | BackendError | None) -> None:
        code = code_of(r)
        if code == b"HD" and isinstance(r, MetaResponse):
            STATS.ring_warmup["fill"] += 1
            cas = r.flag(b"c")
            then(int(cas) if cas is not None and cas.isdigit() else 0)
        elif code in (b"NS", b"EX", b"NF") or b64:
            then(None)  # a newer write got there first
        else:  # SERVER_ERROR object too large: a chunked value
            new.store(b"E", token, client_flags, exptime, value, 0, stored_chunked)

    line = b"ms %s %d F%d T%d ME c%s" % (token, len(value), client_flags, exptime, b" b" if b64 else b"")
    new.meta(line, value + b"\r\n", False, stored)


def pull(prev: Handler, new: Handler, token: bytes, b64: bool, then: Callable[[bool], None]) -> None:
    """Move the previous owner's copy (if any) to the new owner, then call THEN with whether the
    previous owner had one.

    After a fill the previous owner is asked again: a write or delete that ran there between the
    first read and the fill changed its CAS or removed it, so the filled value may be older than
    the key's latest, and the fill is undone if the new owner still holds exactly the item filled
    (``md <key> C<cas>``: a write that replaced it since is kept)."""

    def recheck(first: MetaResponse, cas: int | None) -> None:
        if not cas:  # nothing filled (a newer write got there first), or no CAS to undo it safely
            then(True)
            return

        def still_there(resp: MetaResponse | BackendError | None) -> None:
            if isinstance(resp, MetaResponse) and (
                    resp.code == b"EN" or (resp.code == b"VA" and resp.flag(b"c") != first.flag(b"c"))):
                def undone(r: MetaResponse | BackendError | None) -> None:
                    if code_of(r) == b"HD":
                        STATS.ring_warmup["fill_undone"] += 1
                    then(True)

                new.meta(b"md %s C%d%s" % (token, cas, b" b" if b64 else b""), None, False, undone)
            else:
                then(True)

        read_previous(prev, token, b64, still_there)

    def got(resp: MetaResponse | BackendError | None) -> None:
        if isinstance(resp, MetaResponse) and resp.code == b"VA":
            STATS.ring_warmup["read_hit"] += 1
            fill(new, token, b64, resp, lambda cas: recheck(resp, cas))
        else:
            STATS.ring_warmup["read_miss"] += 1
            then(False)

    read_previous(prev, token, b64, got)


def warm_read(prev: Handler, new: Handler, token: bytes, b64: bool, read: Callable[[Callback], None],
              is_miss: Callable[[Any], bool], cb: Callback) -> None:
    """READ on the new owner, answered to CB; a miss pulls the previous owner's copy over and
    reads again. The second read is needed even when the previous owner had nothing: a write
    through a proxy already serving lands on the new owner before it deletes the previous copy, so
    a read that missed both in between finds it there. A read that still misses although the
    previous owner had a copy lost a race with a write (which deleted the filled copy, or changed
    the previous one): it pulls again, up to :data:`PULLS` fills in all, then answers the miss."""
    pulls = PULLS

    def got(resp: Any) -> None:
        nonlocal pulls
        if pulls == 0 or not is_miss(resp):
            cb(resp)
            return
        pulls -= 1
        pull(prev, new, token, b64, lambda moved: read(got if moved else cb))

    read(got)


def decode_key(token: bytes, b64: bool) -> bytes:
    """The key a meta command names (base64-decoded with the ``b`` flag): what is hashed."""
    if not b64:
        return token
    try:
        return binascii.a2b_base64(token)
    except (binascii.Error, ValueError):
        return token  # memcached refuses it anyway; any owner will answer that


def meta_miss(line_flags: list[bytes], token: bytes) -> MetaResponse:
    """memcached's miss for an ``mg`` with these flags: ``EN`` plus the k/O/b flags it echoes."""
    extra = b""
    for flag in line_flags:
        first = flag[:1]
        if first == b"O":
            extra += b" " + flag
        elif first == b"k":
            extra += b" k" + token
        elif first == b"b" and any(f[:1] == b"k" for f in line_flags):
            extra += b" b"
    if not extra:
        return META_MISS
    return MetaResponse(b"EN", b"EN" + extra, None, b"EN" + extra + b"\r\n")

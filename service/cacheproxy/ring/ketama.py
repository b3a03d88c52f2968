"""Ketama consistent hashing, point for point as libmemcached's weighted ketama
(``MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED``) and twemproxy's ``distribution: ketama`` + ``hash: md5``
build it. Sans-IO: names in, owners out.

For each member ``name`` (``host``, or ``host:port`` when the port is not 11211), the strings
``"<name>-<k>"`` for ``k`` in ``0 .. n/4 - 1`` are hashed with MD5, and each digest gives four
little-endian 32-bit points. ``n`` is 160 per member at equal weight; with weights, both libraries
compute it in C ``float`` arithmetic, reproduced here bit for bit. A key's point is the first four
bytes of ``MD5(key)``, little-endian; its owner is the member of the first point ``>= `` it,
wrapping to the first point of the circle.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import struct
from collections.abc import Sequence

POINTS_PER_MEMBER = 160  # libmemcached's MEMCACHED_POINTS_PER_SERVER_KETAMA, twemproxy's KETAMA_POINTS_PER_SERVER
POINTS_PER_HASH = 4
DEFAULT_PORT = 11211

_F32 = struct.Struct("<f")
_LE4 = struct.Struct("<4I")


def _f32(x: float) -> float:
    """X rounded to a C float (both libraries compute the share of points in float)."""
    return float(_F32.unpack(_F32.pack(x))[0])


def member_name(host: str, port: int = DEFAULT_PORT) -> str:
    """The string a client hashes for a server: ``host``, or ``host:port`` when port != 11211."""
    return host if port == DEFAULT_PORT else f"{host}:{port}"


def points_for(weight: int, total_weight: int, live: int) -> int:
    """How many points a member of WEIGHT gets: ``floor(pct * 160/4 * live + 1e-10) * 4`` with
    ``pct`` and the product in float, the sum in double (as both libraries write it)."""
    pct = _f32(_f32(weight) / _f32(total_weight))
    scaled = _f32(_f32(pct * (POINTS_PER_MEMBER // POINTS_PER_HASH)) * _f32(live))
    return math.floor(scaled + 0.0000000001) * POINTS_PER_HASH


def key_point(key: bytes) -> int:
    """A key's place on the circle: the first four bytes of MD5(key), little-endian."""
    return int.from_bytes(hashlib.md5(key).digest()[:4], "little")


class Continuum:
    """The sorted points of a member list; :meth:`owner` maps a key to a member's index."""

    __slots__ = ("names", "owners", "points")

    def __init__(self, names: Sequence[str], weights: Sequence[int] | None = None) -> None:
        self.names = list(names)
        weights = list(weights) if weights is not None else [1] * len(self.names)
        if len(weights) != len(self.names):
            raise ValueError("one weight per member")
        total = sum(weights)
        pairs: list[tuple[int, int]] = []
        for index, (name, weight) in enumerate(zip(self.names, weights, strict=True)):
            count = points_for(weight, total, len(self.names))
            for k in range(count // POINTS_PER_HASH):
                digest = hashlib.md5(f"{name}-{k}".encode()).digest()
                pairs.extend((point, index) for point in _LE4.unpack(digest))
        pairs.sort()
        self.points = [p for p, _ in pairs]
        self.owners = [i for _, i in pairs]

    def __len__(self) -> int:
        return len(self.points)

    def owner_of_point(self, point: int) -> int:
        """The member index of the first point >= POINT, wrapping; -1 for an empty ring."""
        points = self.points
        if not points:
            return -1
        i = bisect.bisect_left(points, point)
        return self.owners[i if i < len(points) else 0]

    def owner(self, key: bytes) -> int:
        return self.owner_of_point(key_point(key))

    def owner_name(self, key: bytes) -> str | None:
        i = self.owner(key)
        return self.names[i] if i >= 0 else None

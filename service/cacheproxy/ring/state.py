"""The ring as it is now: who owns each key, who owned it before, which members are peers.

:class:`RingState` holds the current :class:`View` (immutable: a request routes on the view it
started with, so a reload never moves a request in flight) and the :class:`Peer` of every
member that is not this proxy. :meth:`RingState.apply` installs new settings:

* phase ``prepare``: reads are routed by ``previous``; writes reach both owners (the previous one
  written, the new one's copy deleted);
* phase ``serve``: everything is routed by ``members``; for ``warmup_seconds`` after the proxy
  entered ``serve`` with a non-empty ``previous`` (or saw the member list change on a reload with
  no ``previous`` given, the old list then being the previous ring) a miss on the new owner is
  read from the previous owner (see :mod:`cacheproxy.ring.router`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence

from ..config.ring import Member, RingSettings
from ..metrics.stats import STATS, clock
from .handover import Handover
from .ketama import Continuum, key_point
from .peers import Peer
from .sweep import OrphanSweep

log = logging.getLogger("cacheproxy.ring")

Target = Peer | None  # None: this proxy's own (local) orca


class _NoTarget:
    """No previous owner to consult (not warming, or it is the same member)."""


NO_TARGET = _NoTarget()


class Placement:
    """One member list on the circle, with each member's target."""

    __slots__ = ("members", "ring", "targets")

    def __init__(self, members: Sequence[Member], peers: dict[str, Peer], self_name: str) -> None:
        self.members = list(members)
        self.ring = Continuum([m.name for m in members])
        self.targets: list[Target] = [None if m.name == self_name else peers[m.name] for m in members]

    def owner(self, point: int) -> Target:
        return self.targets[self.ring.owner_of_point(point)]

    def names(self) -> list[str]:
        return [m.name for m in self.members]


class View:
    """An immutable routing snapshot (one per applied config)."""

    __slots__ = ("current", "generation", "owner_down_miss", "prepare", "previous", "settings", "warm",
                 "warm_started", "warm_started_unix", "warm_until", "warm_until_unix")

    def __init__(self, settings: RingSettings, peers: dict[str, Peer], warm: Sequence[Member] | None,
                 started: tuple[float, float], until: tuple[float, float | None]) -> None:
        self.settings = settings
        self.generation = settings.generation
        self.current = Placement(settings.members, peers, settings.self_name)
        self.previous = Placement(settings.previous, peers, settings.self_name) if settings.previous else None
        self.prepare = settings.phase == "prepare"
        self.owner_down_miss = settings.owner_down == "miss"
        self.warm = Placement(warm, peers, settings.self_name) if warm else None
        self.warm_started, self.warm_started_unix = started
        self.warm_until, self.warm_until_unix = until

    def read_owner(self, point: int) -> Target:
        if self.prepare and self.previous is not None:
            return self.previous.owner(point)
        return self.current.owner(point)

    def write_owners(self, point: int) -> tuple[Target, Target | _NoTarget]:
        """(the owner whose answer the client gets, the other owner or NO_TARGET). In prepare the
        first is the previous owner (reads come from it) and the second the new one."""
        new = self.current.owner(point)
        if self.prepare and self.previous is not None:
            old = self.previous.owner(point)
            return old, (new if new is not old else NO_TARGET)
        return new, self.invalidated_owner(point, new)

    def settled(self) -> bool:
        """Every request has one owner by ``members``: not preparing, no ``previous`` listed, the
        warm-up window over."""
        return not self.prepare and not self.settings.previous and (self.warm is None or clock() >= self.warm_until)

    def invalidated_owner(self, point: int, new: Target) -> Target | _NoTarget:
        """The previous owner whose copy a write removes: while warming up, and as long as
        ``previous`` is listed even once the window is over. The operator ends the window (reads
        of previous owners) everywhere before it clears ``previous``, so no proxy still reads a
        previous copy that another proxy has stopped removing."""
        warm = self.warm
        if warm is None or (clock() >= self.warm_until and not self.settings.previous):
            return NO_TARGET
        old = warm.owner(point)
        return NO_TARGET if old is new else old

    def warm_owner(self, point: int, new: Target) -> Target | _NoTarget:
        """The previous owner to read a miss from (and to remove copies from), while warming."""
        warm = self.warm
        if warm is None or clock() >= self.warm_until:
            return NO_TARGET
        old = warm.owner(point)
        return NO_TARGET if old is new else old


class RingState:
    """The current view plus the peers it routes to; replaced as a whole on reload."""

    def __init__(self, timeout: float, max_batch: int = 64, ssl_context: ssl.SSLContext | None = None,
                 sweep: OrphanSweep | None = None, handover: Handover | None = None) -> None:
        self.timeout, self.max_batch = timeout, max_batch
        self.sweep = sweep  # deletes this member's orphans once a ring settles (ring/sweep.py)
        self._sweep_requested = 0  # the generation a sweep was last asked for
        self.handover = handover  # pushes moved keys to their new owners while warming (ring/handover.py)
        self._handover_requested: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (previous, members)
        self.ssl_context = ssl_context  # the peer port's client side (mTLS), or None: plain
        self.peers: dict[str, Peer] = {}
        self.view: View | None = None

    def _peer(self, member: Member, s: RingSettings) -> Peer:
        peer = self.peers.get(member.name)
        if peer is not None and peer.peer == member.peer:
            peer.down_after, peer.probe_interval, peer.down_wait = s.down_after, s.probe_interval, s.down_wait
            return peer
        if peer is not None:
            peer.retire()
        peer = Peer(member, timeout=self.timeout, connections=s.peer_connections, down_after=s.down_after,
                    probe_interval=s.probe_interval, max_batch=self.max_batch, ssl_context=self.ssl_context,
                    down_wait=s.down_wait)
        self.peers[member.name] = peer
        return peer

    def apply(self, s: RingSettings) -> View:
        old = self.view
        now, now_unix = clock(), time.time()
        warm: list[Member] | None = None
        started, started_unix = now, now_unix  # when the warm-up began (kept across reloads)
        if s.phase == "serve":
            if s.previous:
                entering = old is None or old.prepare or [m.name for m in old.settings.previous] != [
                    m.name for m in s.previous]
                warm = list(s.previous)
                if not entering and old is not None and old.warm is not None:
                    started, started_unix = old.warm_started, old.warm_started_unix
            elif old is not None and old.current.names() != [m.name for m in s.members]:
                warm = list(old.current.members)
            elif old is not None and old.warm is not None:
                warm, started, started_unix = list(old.warm.members), old.warm_started, old.warm_started_unix
        # warmup_seconds applies live, also to a warm-up under way.
        until = started + s.warmup_seconds if warm else 0.0
        until_unix = started_unix + s.warmup_seconds if warm else None
        if warm and not s.previous and until <= now:  # an implicit warm-up that ended: forget the old ring
            warm, until, until_unix = None, 0.0, None
        wanted = {m.name: m for m in [*s.members, *s.previous, *(warm or [])] if m.name != s.self_name}
        for name in list(self.peers):
            if name not in wanted:
                self.peers.pop(name).retire()
        for member in wanted.values():
            self._peer(member, s)
        view = View(s, self.peers, warm, (started, started_unix), (until, until_unix))
        if old is None or old.generation != s.generation or old.current.names() != view.current.names() \
                or old.prepare != view.prepare:
            STATS.ring_changes += old is not None
            log.info("ring generation %d, phase %s: %d members (%s)%s%s", s.generation, s.phase,
                     len(s.members), ", ".join(m.name for m in s.members),
                     f", previous {len(s.previous)}" if s.previous else "",
                     f", warming up for {s.warmup_seconds:.0f}s" if warm and until > now else "")
        self.view = view
        self._request_sweep(view, now)
        self._request_handover(view, now)
        STATS.ring_members = len(s.members)
        STATS.ring_generation = s.generation
        return view

    def _request_sweep(self, view: View, now: float) -> None:
        """A settled ring (serve, no previous): sweep once its warm-up window is over."""
        s = view.settings
        if self.sweep is None or s.phase != "serve" or s.previous or self._sweep_requested == s.generation:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # composed before the loop runs (at start, a restarted memcached is empty anyway)
        self._sweep_requested = s.generation
        generation, placement = s.generation, view.current

        def owned(key: bytes) -> bool:
            return placement.owner(key_point(key)) is None

        def current() -> bool:
            return self.view is not None and self.view.generation == generation

        delay = view.warm_until - now if view.warm is not None else 0.0
        self.sweep.request(generation, owned, current, delay)

    def _request_handover(self, view: View, now: float) -> None:
        """A warm-up window just opened (serve, a previous ring): hand over the moved keys."""
        warm = view.warm
        if self.handover is None or not view.settings.handover or view.prepare or warm is None \
                or view.warm_until <= now:
            return
        rings = (tuple(warm.names()), tuple(view.current.names()))
        if rings == self._handover_requested:
            return  # the same change, reloaded (the operator's later steps): under way or done
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # composed before the loop runs: nothing to hand over from a memcached just started
        self._handover_requested = rings
        current = view.current

        def moved(key: bytes) -> bool:
            point = key_point(key)
            return warm.owner(point) is None and current.owner(point) is not None

        def still() -> bool:
            v = self.view
            return (v is not None and v.warm is not None and not v.prepare and v.settings.handover
                    and clock() < v.warm_until and (tuple(v.warm.names()), tuple(v.current.names())) == rings)

        self.handover.request(view.generation, moved, still)

    def set_timeout(self, timeout: float) -> None:
        self.timeout = timeout
        for peer in self.peers.values():
            peer.set_timeout(timeout)

    def describe(self) -> dict:
        """GET /ring's answer (see docs/ring.md)."""
        view = self.view
        if view is None:
            return {}
        s = view.settings

        def state(m: Member) -> str:
            if m.name == s.self_name:
                return "self"
            peer = self.peers.get(m.name)
            return "up" if peer is None or peer.up else "down"

        return {
            "generation": s.generation,
            "phase": s.phase,
            "self": s.self_name,
            "members": [{"name": m.name, "peer": m.peer, "state": state(m)} for m in s.members],
            "previous": [{"name": m.name, "peer": m.peer} for m in s.previous],
            "warmup_until": view.warm_until_unix,
            "swept_generation": self.sweep.swept_generation if self.sweep is not None else None,
            "handing_over": self.handover is not None and self.handover.running,
            "handed_over_generation": self.handover.done_generation if self.handover is not None else None,
        }

"""Membership changes as a pure state machine: (state, wanted size, what each proxy reports, time) in,
(next state: the ring to publish, the StatefulSet's replicas, events) out. No API calls here.

Steps (the ring's `phase` is what the proxies are told; `step` is where the change stands):

- Stable: the ring has `members` members in phase serve; the StatefulSet has as many pods.
- AddingPods (scale-out): the StatefulSet grows first while the ring stays as it is, so the new pods
  are up and have read the current config before anything is routed to them.
- Preparing: the new ring is published in phase prepare with the old one as `previous`: proxies read
  by the old ring and write/delete on both owners, so no owner can hold a value older than the other.
  It waits until every pod of either ring reports this generation on GET /ring.
- WarmingUp: phase serve. Reads follow the new ring; a miss on a new owner is filled from the previous
  owner for `warmupSeconds`. Members leaving the ring (scale-in) stay in `previous` and keep serving
  as previous owners; only when the window ends does the StatefulSet shrink (back to Stable, with
  `previous` cleared).

One transition per call: each one changes the config, and the next needs fresh reports. A change of
the wanted size during Preparing waits for it to finish (the proxies must agree on one ring first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cacheproxy_operator.manifests.ring import PHASE_PREPARE, PHASE_SERVE, RingView

STABLE, ADDING_PODS, PREPARING, WARMING_UP = "Stable", "AddingPods", "Preparing", "WarmingUp"
Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class RingState:
    generation: int
    phase: str
    step: str
    members: int  # the ring is ordinals 0 .. members-1
    previous: int  # the ring before the change (0: none)
    pods: int  # StatefulSet replicas
    since: float  # when this step started (unix seconds)

    @property
    def view(self) -> RingView:
        return RingView(generation=self.generation, phase=self.phase, members=self.members, previous=self.previous)

    def waits_on(self) -> range:
        """Ordinals whose proxy must report this generation before the next step (empty: none)."""
        if self.step == ADDING_PODS:
            return range(self.pods)
        if self.step == PREPARING:
            return range(max(self.members, self.previous))
        return range(0)


@dataclass(frozen=True)
class Decision:
    state: RingState
    events: list[Event] = field(default_factory=list)
    waiting_for: list[int] = field(default_factory=list)  # ordinals not yet at the generation


def initial(target: int, now: float) -> RingState:
    return RingState(generation=1, phase=PHASE_SERVE, step=STABLE, members=target, previous=0, pods=target, since=now)


def _lagging(state: RingState, reports: Mapping[int, int | None]) -> list[int]:
    return [i for i in state.waits_on() if (reports.get(i) or 0) < state.generation]


def _prepare(state: RingState, new_members: int, now: float) -> Decision:
    nxt = RingState(
        generation=state.generation + 1,
        phase=PHASE_PREPARE,
        step=PREPARING,
        members=new_members,
        previous=state.members,
        pods=max(state.pods, new_members, state.members),
        since=now,
    )
    message = (
        f"generation {nxt.generation}: preparing a ring of {new_members} (was {state.members}); "
        "reads follow the old ring, writes go to both owners"
    )
    return Decision(nxt, [("Normal", "RingPrepare", message)], _lagging(nxt, {}))


def _from_settled(state: RingState, target: int, now: float) -> Decision | None:
    """Start a change from a ring every proxy serves (Stable, or WarmingUp with no pod leaving)."""
    if target > state.members:
        nxt = replace(state, step=ADDING_PODS, pods=target, since=now)
        message = f"generation {state.generation}: adding pods for a ring of {target} (was {state.members})"
        return Decision(nxt, [("Normal", "RingAddingPods", message)], list(range(state.members, target)))
    if target < state.members:
        return _prepare(state, target, now)
    return None


def advance(
    state: RingState | None,
    target: int,
    reports: Mapping[int, int | None],
    now: float,
    warmup_seconds: float,
) -> Decision:
    """The next state for wanted size TARGET, given the generation each pod ordinal's proxy reports."""
    if state is None:
        nxt = initial(target, now)
        return Decision(nxt, [("Normal", "RingCreated", f"generation 1: a ring of {target}")])
    lagging = _lagging(state, reports)
    if state.step == STABLE:
        return _from_settled(state, target, now) or Decision(state)
    if state.step == ADDING_PODS:
        if target <= state.members:
            nxt = replace(state, step=STABLE, pods=state.members, since=now)
            message = f"generation {state.generation}: scale-out withdrawn, the ring stays at {state.members}"
            return Decision(nxt, [("Normal", "RingScaleOutWithdrawn", message)])
        if target != state.pods:
            return Decision(replace(state, pods=target), [], list(range(state.members, target)))
        if lagging:
            return Decision(state, [], lagging)
        return _prepare(state, state.pods, now)
    if state.step == PREPARING:
        if lagging:
            return Decision(state, [], lagging)
        nxt = replace(state, generation=state.generation + 1, phase=PHASE_SERVE, step=WARMING_UP, since=now)
        message = (
            f"generation {nxt.generation}: serving from the ring of {state.members}; misses are filled "
            f"from the previous owners for {warmup_seconds:g}s"
        )
        return Decision(nxt, [("Normal", "RingServe", message)])
    # WARMING_UP
    leaving = state.previous > state.members
    if not leaving and target != state.members:
        started = _from_settled(state, target, now)
        if started is not None:
            return started
    if now - state.since < warmup_seconds:
        return Decision(state)
    nxt = replace(state, generation=state.generation + 1, step=STABLE, previous=0, pods=state.members, since=now)
    if leaving:
        message = f"generation {nxt.generation}: warm-up over, removing {state.pods - state.members} pod(s)"
    else:
        message = f"generation {nxt.generation}: warm-up over, the ring of {state.members} is settled"
    return Decision(nxt, [("Normal", "RingSettled", message)])

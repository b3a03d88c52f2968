"""Membership changes as a pure state machine: (state, wanted size, what each pod's proxy reports, time)
in, (next state: the ring to publish, the StatefulSet's replicas, events) out. No API calls here.

Steps (the ring's `phase` is what the proxies are told; `step` is where the change stands). "Every pod
reports" means every pod ordinal of the StatefulSet (leaving ones too) answers GET /ring with the
step's generation: the proxies read the ring from a mounted ConfigMap, which reaches them late.

- Stable: the ring has `members` members in phase serve and the StatefulSet as many pods.
- AddingPods (scale-out): the StatefulSet grows first; the ring stays as it is until every pod
  reports its generation, so the new pods have read the config before anything is routed to them.
- Preparing: the new ring in phase prepare with the old one as `previous` (reads by the old ring,
  writes and deletes on the previous owner, the new owner's copy removed), until every pod reports it.
- WarmingUp: phase serve (reads by the new ring, a miss on a new owner filled from the previous one,
  writes remove the previous copy). The proxies are told to hold their window open (a proxy counts
  it from when it read the serve phase, and one that closed early would stop removing previous
  copies while a late one still reads them); the operator counts `warmupSeconds` from the moment
  every pod reports this generation with its hand-over done (each previous owner has pushed the
  keys it no longer owns to their new owners), and ends the window for all by publishing the next
  ring.
- ClosingWarmUp: the window is over: the same ring is published with the window closed
  (`warmup_seconds: 0`, `previous` still listed): proxies stop reading previous owners, but writes
  still remove their copies, until every pod reports it. (Were `previous` cleared at once, a proxy
  already settled would stop removing previous copies while one still warming reads them.)
- Settling: the settled ring (`previous` cleared) with every pod kept, until every pod reports it
  and its orphan sweep is done (reconcile counts a settled report once swept).
- RemovingPods (scale-in, or a withdrawn scale-out): the StatefulSet shrinks only now; the step ends
  when the leaving pods are gone (or terminating), so a pod that was a member never rejoins with the
  values it held: a later scale-out gets fresh pods.
- Withdrawing: a scale-out in Preparing whose wanted size dropped below it: the old ring is published
  again in phase serve (every owner in it is current: prepare wrote there first), until the pods that
  stay report it; the added pods are not waited for (they may be the ones that never came up).

Ordering rules (tests/operator/test_membership.py has one test per rule):
- the StatefulSet shrinks only after every pod reports a ring without the leaving members;
- reads move to a new ring (serve) only after every pod reports its prepare phase;
- `previous` is dropped only `warmupSeconds` after every proxy serves the new ring, every proxy's
  window held open until then;
- a size change waits for the current change (until the ring is settled and swept) except: a
  scale-out is withdrawn from AddingPods
  (never-members: shrunk at once) or Preparing (Withdrawing); a scale-in cannot be withdrawn once
  prepared (the staying owners may hold copies written for it), so a scale-out waits for it to end.

A step that waits on pods longer than `deadline_seconds` is reported as stalled (Decision.stalled):
the state stays where it is (the safe place), and the caller surfaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cacheproxy_operator.manifests.ring import PHASE_PREPARE, PHASE_SERVE, RingView

STABLE, ADDING_PODS, PREPARING, WARMING_UP = "Stable", "AddingPods", "Preparing", "WarmingUp"
CLOSING_WARM_UP, SETTLING, REMOVING_PODS, WITHDRAWING = "ClosingWarmUp", "Settling", "RemovingPods", "Withdrawing"
STEPS = (STABLE, ADDING_PODS, PREPARING, WARMING_UP, CLOSING_WARM_UP, SETTLING, REMOVING_PODS, WITHDRAWING)
DEFAULT_DEADLINE_SECONDS = 300.0
Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Report:
    """One pod's proxy's GET /ring: the ring generation it applies."""

    generation: int


@dataclass(frozen=True)
class Observed:
    """What the pods say: REPORTS by ordinal (missing: no answer), PODS the ordinals that exist and are
    not being deleted."""

    reports: Mapping[int, Report] = field(default_factory=dict)
    pods: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Timing:
    warmup_seconds: float
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS


@dataclass(frozen=True)
class RingState:
    generation: int
    phase: str
    step: str
    members: int  # the ring is ordinals 0 .. members-1
    previous: int  # the ring before the change (0: none)
    pods: int  # StatefulSet replicas
    since: float  # when this step started (unix seconds)
    # while a warm-up is under way: the earliest its window may end (set once every pod reported the
    # serve generation); None before that, and when there is no warm-up
    warmup_ends: float | None = None

    @property
    def view(self) -> RingView:
        closing = self.step == CLOSING_WARM_UP
        return RingView(generation=self.generation, phase=self.phase, members=self.members, previous=self.previous,
                        hold_warmup=self.warming and not closing, close_warmup=closing)

    def waits_on(self) -> range:
        """Ordinals whose proxy must report this generation before the next step (empty: none)."""
        if self.step in (ADDING_PODS, PREPARING, WARMING_UP, CLOSING_WARM_UP, SETTLING):
            return range(self.pods)
        if self.step == WITHDRAWING:
            return range(self.members)
        return range(0)

    @property
    def warming(self) -> bool:
        return self.phase == PHASE_SERVE and self.previous > 0


@dataclass(frozen=True)
class Decision:
    state: RingState
    events: list[Event] = field(default_factory=list)
    waiting_for: list[int] = field(default_factory=list)  # ordinals the step waits on
    stalled: bool = False  # waiting_for has held the step past the deadline


def initial(target: int, now: float) -> RingState:
    return RingState(generation=1, phase=PHASE_SERVE, step=STABLE, members=target, previous=0, pods=target, since=now)


def _lagging(state: RingState, observed: Observed) -> list[int]:
    lagging = []
    for i in state.waits_on():
        report = observed.reports.get(i)
        if report is None or report.generation < state.generation:
            lagging.append(i)
    return lagging


def _event(state: RingState, reason: str, text: str) -> Event:
    return ("Normal", reason, f"generation {state.generation}: {text}")


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
    text = (f"preparing a ring of {new_members} (was {state.members}); reads follow the old ring, "
            "writes go to the previous owner and clear the new one")
    return Decision(nxt, [_event(nxt, "RingPrepare", text)], list(nxt.waits_on()))


def _add_pods(state: RingState, target: int, now: float) -> Decision:
    nxt = replace(state, step=ADDING_PODS, pods=target, since=now)
    text = f"adding pods for a ring of {target} (was {state.members})"
    return Decision(nxt, [_event(nxt, "RingAddingPods", text)], list(range(state.members, target)))


def _start(state: RingState, target: int, now: float) -> Decision | None:
    """Start a change from a ring no proxy warms up from any more (None: nothing to change)."""
    if target > state.members:
        return _add_pods(state, target, now)
    if target < state.members:
        return _prepare(state, target, now)
    return None


def _close_warm_up(state: RingState, now: float) -> Decision:
    nxt = replace(state, generation=state.generation + 1, step=CLOSING_WARM_UP, since=now)
    text = "warm-up over: previous owners are no longer read; writes remove their copies until every proxy stops"
    return Decision(nxt, [_event(nxt, "RingWarmUpClosing", text)], list(nxt.waits_on()))


def _settle(state: RingState, now: float) -> Decision:
    nxt = replace(state, generation=state.generation + 1, step=SETTLING, previous=0, since=now, warmup_ends=None)
    leaving = state.pods - state.members if state.previous > state.members else 0
    text = f"warm-up over, settling the ring of {state.members}"
    if leaving > 0:
        text += f"; {leaving} pod(s) kept until every proxy has it"
    return Decision(nxt, [_event(nxt, "RingSettled", text)], list(nxt.waits_on()))


def _remove_pods(state: RingState, observed: Observed, now: float, why: str) -> Decision:
    nxt = replace(state, step=REMOVING_PODS, pods=state.members, since=now)
    text = f"{why}; removing {state.pods - state.members} pod(s)"
    return Decision(nxt, [_event(nxt, "RingRemovingPods", text)], _still_there(nxt, observed))


def _still_there(state: RingState, observed: Observed) -> list[int]:
    return sorted(i for i in observed.pods if i >= state.members)


def _stable(state: RingState, now: float) -> Decision:
    nxt = replace(state, step=STABLE, pods=state.members, since=now, warmup_ends=None)
    return Decision(nxt, [_event(nxt, "RingStable", f"every proxy serves the ring of {state.members}")])


def _warm_up_over(state: RingState, now: float) -> bool:
    """The window has passed since every pod served the ring (each proxy's own window is held open
    by the config until the next ring is published: RingView.hold_warmup)."""
    return state.warmup_ends is not None and now >= state.warmup_ends


def _warm_up_confirmed(state: RingState, now: float, timing: Timing) -> Decision:
    nxt = replace(state, warmup_ends=now + timing.warmup_seconds)
    text = f"every proxy serves it; misses are filled from the previous owners for {timing.warmup_seconds:g}s"
    return Decision(nxt, [_event(nxt, "RingWarmingUp", text)])


def _step(state: RingState, target: int, observed: Observed, now: float, timing: Timing) -> Decision:
    lagging = _lagging(state, observed)
    if state.step == STABLE:
        return _start(state, target, now) or Decision(state)
    if state.step == ADDING_PODS:
        if target <= state.members:  # the added pods were never in a ring: they go at once
            back = STABLE if not state.warming else WARMING_UP
            nxt = replace(state, step=back, pods=max(state.members, state.previous), since=now)
            text = f"scale-out withdrawn, the ring stays at {state.members}"
            return Decision(nxt, [_event(nxt, "RingScaleOutWithdrawn", text)])
        if target != state.pods:
            return Decision(replace(state, pods=target), [], _lagging(replace(state, pods=target), observed))
        if lagging:
            return Decision(state, [], lagging)
        if state.warming:  # started during a warm-up: that ring settles first, the new pods kept
            if state.warmup_ends is None:
                return _warm_up_confirmed(state, now, timing)
            if not _warm_up_over(state, now):
                return Decision(state)
            return _close_warm_up(state, now)
        return _prepare(state, state.pods, now)
    if state.step == PREPARING:
        if state.members > state.previous and target < state.members:
            nxt = replace(state, generation=state.generation + 1, phase=PHASE_SERVE, step=WITHDRAWING,
                          members=state.previous, previous=0, since=now)
            text = (f"scale-out withdrawn, serving the ring of {nxt.members} again; "
                    f"{state.members - nxt.members} pod(s) go once the others have it")
            return Decision(nxt, [_event(nxt, "RingScaleOutWithdrawn", text)], list(nxt.waits_on()))
        if lagging:
            return Decision(state, [], lagging)
        nxt = replace(state, generation=state.generation + 1, phase=PHASE_SERVE, step=WARMING_UP, since=now)
        text = (f"serving from the ring of {state.members}; misses are filled from the previous owners "
                "once every proxy serves it")
        return Decision(nxt, [_event(nxt, "RingServe", text)], list(nxt.waits_on()))
    if state.step == WARMING_UP:
        if state.warmup_ends is None:
            return Decision(state, [], lagging) if lagging else _warm_up_confirmed(state, now, timing)
        if lagging or not _warm_up_over(state, now):
            return Decision(state, [], lagging)
        return _close_warm_up(state, now)  # a scale-in wanted meanwhile starts once the ring is settled
    if state.step == CLOSING_WARM_UP:
        return Decision(state, [], lagging) if lagging else _settle(state, now)
    if state.step == SETTLING:
        if lagging:
            return Decision(state, [], lagging)
        if state.pods > state.members:
            return _remove_pods(state, observed, now, "every proxy has the settled ring")
        return _stable(state, now)
    if state.step == WITHDRAWING:
        if lagging:
            return Decision(state, [], lagging)
        return _remove_pods(state, observed, now, "every staying proxy has the ring again")
    # REMOVING_PODS
    still_there = _still_there(state, observed)
    if still_there:
        return Decision(state, [], still_there)
    return _stable(state, now)


def _blocked_since(state: RingState) -> float:
    """When the step started waiting on pods (a warm-up's own window is not a wait on pods)."""
    if state.step == WARMING_UP and state.warmup_ends is not None:
        return max(state.since, state.warmup_ends)
    return state.since


def advance(
    state: RingState | None,
    target: int,
    observed: Observed,
    now: float,
    timing: Timing,
) -> Decision:
    """The next state for wanted size TARGET, given what each pod ordinal's proxy reports."""
    if state is None:
        nxt = initial(target, now)
        return Decision(nxt, [_event(nxt, "RingCreated", f"a ring of {target}")])
    decision = _step(state, target, observed, now, timing)
    if decision.state == state and decision.waiting_for:
        stalled = now - _blocked_since(state) >= timing.deadline_seconds
        return replace(decision, stalled=stalled)
    return decision

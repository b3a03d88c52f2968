"""The membership state machine: scale-out and scale-in go through their phases in order, wait for
every proxy to report the new generation, and never shrink the StatefulSet before the warm-up ends."""

from __future__ import annotations

from cacheproxy_operator.membership import (
    ADDING_PODS,
    PREPARING,
    STABLE,
    WARMING_UP,
    RingState,
    advance,
    initial,
)

WARMUP = 600.0


def everyone_at(state: RingState, count: int = 16) -> dict[int, int]:
    """Every pod ordinal reports STATE's generation (what the proxies do once the ConfigMap syncs)."""
    return {i: state.generation for i in range(count)}


def run_until_stable(state: RingState, target: int, now: float) -> list[RingState]:
    """Drive the machine with prompt proxies and a clock past every warm-up; the states passed through."""
    seen = []
    for _ in range(10):
        state = advance(state, target, everyone_at(state), now, WARMUP).state
        seen.append(state)
        now += WARMUP
        if state.step == STABLE and state.members == target:
            return seen
    raise AssertionError(f"no settled ring after 10 steps: {seen}")


def test_a_new_tier_starts_settled() -> None:
    decision = advance(None, 2, {}, 0.0, WARMUP)
    assert decision.state == initial(2, 0.0)
    assert (decision.state.generation, decision.state.phase, decision.state.step) == (1, "serve", STABLE)
    assert decision.state.view.members == 2 and decision.state.pods == 2
    assert [e[1] for e in decision.events] == ["RingCreated"]


def test_nothing_changes_while_the_size_stays() -> None:
    state = initial(3, 0.0)
    decision = advance(state, 3, {}, 10_000.0, WARMUP)
    assert decision.state == state and decision.events == []


def test_scale_out_adds_pods_then_prepares_then_serves_then_settles() -> None:
    start = initial(2, 0.0)
    steps = run_until_stable(start, 3, 1.0)
    assert [(s.step, s.phase, s.generation, s.members, s.previous, s.pods) for s in steps] == [
        (ADDING_PODS, "serve", 1, 2, 0, 3),  # pods first; the ring is untouched
        (PREPARING, "prepare", 2, 3, 2, 3),  # reads by the old ring, writes to both owners
        (WARMING_UP, "serve", 3, 3, 2, 3),  # reads by the new ring, misses filled from previous owners
        (STABLE, "serve", 4, 3, 0, 3),
    ]


def test_scale_in_takes_members_out_first_and_shrinks_only_after_the_warm_up() -> None:
    start = initial(3, 0.0)
    steps = run_until_stable(start, 2, 1.0)
    assert [(s.step, s.phase, s.generation, s.members, s.previous, s.pods) for s in steps] == [
        (PREPARING, "prepare", 2, 2, 3, 3),
        (WARMING_UP, "serve", 3, 2, 3, 3),  # the leaving pod keeps serving as a previous owner
        (STABLE, "serve", 4, 2, 0, 2),  # only now does the StatefulSet shrink
    ]


def test_prepare_waits_for_every_pod_of_either_ring() -> None:
    state = advance(initial(3, 0.0), 2, {}, 1.0, WARMUP).state
    assert state.step == PREPARING
    reports: dict[int, int | None] = {0: state.generation, 1: state.generation, 2: state.generation - 1}
    held = advance(state, 2, reports, 2.0, WARMUP)
    assert held.state == state and held.waiting_for == [2]  # the leaving member must agree too
    reports[2] = None  # unreachable is not agreement either
    assert advance(state, 2, reports, 3.0, WARMUP).state == state
    reports[2] = state.generation
    assert advance(state, 2, reports, 4.0, WARMUP).state.step == WARMING_UP


def test_adding_pods_waits_until_the_new_pods_answer() -> None:
    state = advance(initial(2, 0.0), 4, {}, 1.0, WARMUP).state
    assert (state.step, state.pods) == (ADDING_PODS, 4)
    partial = advance(state, 4, {0: 1, 1: 1, 2: 1}, 2.0, WARMUP)
    assert partial.state == state and partial.waiting_for == [3]


def test_the_warm_up_window_is_respected() -> None:
    preparing = advance(initial(3, 0.0), 2, {}, 0.0, WARMUP).state
    state = advance(preparing, 2, everyone_at(preparing), 100.0, WARMUP).state
    assert state.step == WARMING_UP and state.since == 100.0 and state.pods == 3
    assert advance(state, 2, {}, 100.0 + WARMUP - 1, WARMUP).state == state
    settled = advance(state, 2, {}, 100.0 + WARMUP, WARMUP)
    assert settled.state.pods == 2 and settled.state.previous == 0
    assert [e[1] for e in settled.events] == ["RingSettled"]


def test_a_size_change_mid_prepare_waits_for_the_current_change() -> None:
    state = advance(initial(2, 0.0), 1, {}, 1.0, WARMUP).state
    assert state.step == PREPARING
    assert advance(state, 5, {}, 2.0, WARMUP).state == state


def test_scale_out_during_a_scale_out_warm_up_starts_at_once() -> None:
    steps = run_until_stable(initial(2, 0.0), 3, 1.0)
    warming = steps[2]
    assert warming.step == WARMING_UP
    nxt = advance(warming, 4, everyone_at(warming), 2.0, WARMUP).state
    assert (nxt.step, nxt.pods, nxt.members) == (ADDING_PODS, 4, 3)


def test_scale_out_withdrawn_before_the_ring_changed() -> None:
    state = advance(initial(2, 0.0), 3, {}, 1.0, WARMUP).state
    back = advance(state, 2, {}, 2.0, WARMUP)
    assert (back.state.step, back.state.pods, back.state.generation) == (STABLE, 2, 1)


def test_every_change_gets_an_event_and_generations_only_grow() -> None:
    state = initial(2, 0.0)
    reasons, generations = [], [state.generation]
    for target in (3, 2):
        now = 1.0
        for _ in range(10):
            decision = advance(state, target, everyone_at(state), now, WARMUP)
            reasons += [e[1] for e in decision.events]
            state = decision.state
            generations.append(state.generation)
            now += WARMUP
            if state.step == STABLE and state.members == target:
                break
    assert reasons == [
        "RingAddingPods", "RingPrepare", "RingServe", "RingSettled",
        "RingPrepare", "RingServe", "RingSettled",
    ]
    assert generations == sorted(generations)

"""The membership state machine, one test per ordering rule: scale-out and scale-in go through their
steps in order, every step that changes what the proxies route by waits until every pod reports it,
the StatefulSet shrinks only after every pod has a ring without the leaving members, `previous` is
dropped only after every proxy's warm-up window closed, withdrawals are safe, and a step held on
silent pods past its deadline says so without moving."""

from __future__ import annotations

from cacheproxy_operator.membership import (
    ADDING_PODS,
    CLOSING_WARM_UP,
    PREPARING,
    REMOVING_PODS,
    SETTLING,
    STABLE,
    WARMING_UP,
    WITHDRAWING,
    Observed,
    Report,
    RingState,
    Timing,
    advance,
    initial,
)

WARMUP = 600.0
DEADLINE = 300.0
TIMING = Timing(WARMUP, DEADLINE)


def prompt(state: RingState, silent: tuple[int, ...] = (), behind: tuple[int, ...] = (),
           extra_pods: tuple[int, ...] = ()) -> Observed:
    """The StatefulSet has STATE's pods (plus EXTRA_PODS not yet gone); each proxy reports STATE's
    generation, except SILENT (no answer) and BEHIND (the generation before)."""
    reports = {}
    for i in range(state.pods):
        if i in silent:
            continue
        reports[i] = Report(state.generation - (i in behind))
    return Observed(reports, frozenset(range(state.pods)) | frozenset(extra_pods))


def shape(state: RingState) -> tuple[str, str, int, int, int, int]:
    return (state.step, state.phase, state.generation, state.members, state.previous, state.pods)


def run_until_stable(state: RingState, target: int, now: float) -> list[RingState]:
    """Drive the machine with prompt proxies and a clock past every warm-up; the states passed through."""
    seen = []
    for _ in range(12):
        state = advance(state, target, prompt(state), now, TIMING).state
        seen.append(state)
        now += WARMUP
        if state.step == STABLE and state.members == target:
            return seen
    raise AssertionError(f"no settled ring after 12 steps: {seen}")


def run_until_step(state: RingState, target: int, step: str, now: float) -> list[RingState]:
    """Drive the machine with prompt proxies, a second apart, until STEP; the states passed through."""
    seen = []
    for _ in range(10):
        state = advance(state, target, prompt(state), now, TIMING).state
        seen.append(state)
        now += 1
        if state.step == step:
            return seen
    raise AssertionError(f"no {step} after 10 steps: {seen}")


def warming(members: int, previous: int, confirmed_at: float | None = 0.0) -> RingState:
    """A WarmingUp state (confirmed at CONFIRMED_AT, or not yet when None)."""
    ends = None if confirmed_at is None else confirmed_at + WARMUP
    return RingState(generation=3, phase="serve", step=WARMING_UP, members=members, previous=previous,
                     pods=max(members, previous), since=0.0, warmup_ends=ends)


def test_a_new_tier_starts_settled() -> None:
    decision = advance(None, 2, Observed(), 0.0, TIMING)
    assert decision.state == initial(2, 0.0)
    assert shape(decision.state) == (STABLE, "serve", 1, 2, 0, 2)
    assert [e[1] for e in decision.events] == ["RingCreated"]


def test_nothing_changes_while_the_size_stays() -> None:
    state = initial(3, 0.0)
    decision = advance(state, 3, Observed(), 10_000.0, TIMING)
    assert decision.state == state and decision.events == [] and not decision.stalled


def test_scale_out_adds_pods_prepares_serves_warms_up_settles() -> None:
    steps = run_until_stable(initial(2, 0.0), 3, 1.0)
    assert [shape(s) for s in steps] == [
        (ADDING_PODS, "serve", 1, 2, 0, 3),  # pods first; the ring is untouched
        (PREPARING, "prepare", 2, 3, 2, 3),  # reads by the old ring, writes to both owners
        (WARMING_UP, "serve", 3, 3, 2, 3),  # reads by the new ring; the window not counted yet
        (WARMING_UP, "serve", 3, 3, 2, 3),  # every proxy serves it: the window counts from now
        (CLOSING_WARM_UP, "serve", 4, 3, 2, 3),  # the window closed, previous copies still removed
        (SETTLING, "serve", 5, 3, 0, 3),  # previous cleared, published
        (STABLE, "serve", 5, 3, 0, 3),  # every proxy has it
    ]
    assert steps[2].warmup_ends is None and steps[3].warmup_ends is not None


def test_scale_in_publishes_the_settled_ring_before_the_statefulset_shrinks() -> None:
    steps = run_until_stable(initial(3, 0.0), 2, 1.0)
    assert [shape(s) for s in steps] == [
        (PREPARING, "prepare", 2, 2, 3, 3),
        (WARMING_UP, "serve", 3, 2, 3, 3),  # the leaving pod keeps serving as a previous owner
        (WARMING_UP, "serve", 3, 2, 3, 3),
        (CLOSING_WARM_UP, "serve", 4, 2, 3, 3),
        (SETTLING, "serve", 5, 2, 0, 3),  # the ring without it, every pod kept
        (REMOVING_PODS, "serve", 5, 2, 0, 2),  # only now does the StatefulSet shrink
        (STABLE, "serve", 5, 2, 0, 2),
    ]


def test_the_statefulset_shrinks_only_after_every_pod_reports_the_settled_ring() -> None:
    """The scale-in window: a proxy still holding the leaving member in `previous` writes and
    deletes there, so the leaving pod must outlive every proxy's old config, its own included."""
    closing = advance(warming(2, 3), 2, prompt(warming(2, 3)), WARMUP, TIMING).state
    assert shape(closing) == (CLOSING_WARM_UP, "serve", 4, 2, 3, 3)
    settling = advance(closing, 2, prompt(closing), WARMUP, TIMING).state
    assert shape(settling) == (SETTLING, "serve", 5, 2, 0, 3)
    for lagging in ({"behind": (1,)}, {"behind": (2,)}, {"silent": (2,)}):
        held = advance(settling, 2, prompt(settling, **lagging), WARMUP + 1, TIMING)
        assert held.state == settling and held.state.pods == 3, lagging
        assert held.waiting_for == list(next(iter(lagging.values())))
    shrinking = advance(settling, 2, prompt(settling), WARMUP + 2, TIMING)
    assert shape(shrinking.state) == (REMOVING_PODS, "serve", 5, 2, 0, 2)
    assert [e[1] for e in shrinking.events] == ["RingRemovingPods"]


def test_removing_pods_ends_only_when_the_leaving_pods_are_gone() -> None:
    """So a pod that was a member never rejoins a ring with the values it held."""
    removing = RingState(4, "serve", REMOVING_PODS, members=2, previous=0, pods=2, since=0.0)
    held = advance(removing, 3, prompt(removing, extra_pods=(2,)), 1.0, TIMING)
    assert held.state == removing and held.waiting_for == [2]  # a scale-out waits for it too
    stable = advance(removing, 3, prompt(removing), 2.0, TIMING).state
    assert shape(stable) == (STABLE, "serve", 4, 2, 0, 2)
    adding = advance(stable, 3, prompt(stable), 3.0, TIMING).state
    assert shape(adding) == (ADDING_PODS, "serve", 4, 2, 0, 3)  # a fresh pod-2


def test_prepare_waits_for_every_pod_of_either_ring() -> None:
    state = advance(initial(3, 0.0), 2, Observed(), 1.0, TIMING).state
    assert state.step == PREPARING
    held = advance(state, 2, prompt(state, behind=(2,)), 2.0, TIMING)
    assert held.state == state and held.waiting_for == [2]  # the leaving member must agree too
    assert advance(state, 2, prompt(state, silent=(2,)), 3.0, TIMING).state == state  # silence is not agreement
    assert advance(state, 2, prompt(state), 4.0, TIMING).state.step == WARMING_UP


def test_adding_pods_waits_until_the_new_pods_answer() -> None:
    state = advance(initial(2, 0.0), 4, Observed(), 1.0, TIMING).state
    assert (state.step, state.pods) == (ADDING_PODS, 4)
    partial = advance(state, 4, prompt(state, silent=(3,)), 2.0, TIMING)
    assert partial.state == state and partial.waiting_for == [3]


def test_the_warm_up_counts_from_when_every_proxy_serves_the_ring() -> None:
    """A proxy that reads the serve phase late starts warming up late: the window is counted from
    when every pod serves the ring, not from its publication."""
    serving = warming(3, 2, confirmed_at=None)
    late = advance(serving, 3, prompt(serving, behind=(1,)), 100.0, TIMING)
    assert late.state == serving and late.waiting_for == [1]
    confirmed = advance(serving, 3, prompt(serving), 150.0, TIMING)
    assert confirmed.state.warmup_ends == 150.0 + WARMUP and confirmed.state.step == WARMING_UP
    assert [e[1] for e in confirmed.events] == ["RingWarmingUp"]
    state = confirmed.state
    assert advance(state, 3, prompt(state), 150.0 + WARMUP - 1, TIMING).state == state
    assert advance(state, 3, prompt(state, silent=(0,)), 150.0 + WARMUP, TIMING).state == state
    assert advance(state, 3, prompt(state), 150.0 + WARMUP, TIMING).state.step == CLOSING_WARM_UP


def test_every_proxys_window_is_held_open_until_the_settled_ring() -> None:
    """Each proxy counts its window from when it read the serve phase: a window of its own length
    would close early on a proxy that read it early, and that proxy would stop removing previous
    copies while a late one still reads them. So the config holds it open while the ring warms up."""
    steps = run_until_stable(initial(3, 0.0), 2, 1.0)
    held = [(s.step, s.view.hold_warmup, s.view.close_warmup) for s in steps]
    assert held == [(PREPARING, False, False), (WARMING_UP, True, False), (WARMING_UP, True, False),
                    (CLOSING_WARM_UP, False, True), (SETTLING, False, False), (REMOVING_PODS, False, False),
                    (STABLE, False, False)]


def test_a_size_change_mid_prepare_of_a_scale_in_waits_for_it() -> None:
    """Prepare of a scale-in wrote copies to the staying owners: it cannot be taken back safely."""
    state = advance(initial(3, 0.0), 2, Observed(), 1.0, TIMING).state
    assert state.step == PREPARING
    assert advance(state, 5, prompt(state, silent=(2,)), 2.0, TIMING).state == state
    assert advance(state, 3, prompt(state), 3.0, TIMING).state.step == WARMING_UP


def test_a_scale_out_stuck_in_prepare_is_withdrawn_by_scaling_back() -> None:
    """The new pod never reports the prepare phase; scaling back serves the old ring again (every
    old owner is current: prepare wrote there first) and removes the new pod without waiting on it."""
    adding = advance(initial(2, 0.0), 3, Observed(), 1.0, TIMING).state
    preparing = advance(adding, 3, prompt(adding), 2.0, TIMING).state
    assert shape(preparing) == (PREPARING, "prepare", 2, 3, 2, 3)
    withdrawn = advance(preparing, 2, prompt(preparing, silent=(2,)), 3.0, TIMING)
    assert shape(withdrawn.state) == (WITHDRAWING, "serve", 3, 2, 0, 3)
    assert [e[1] for e in withdrawn.events] == ["RingScaleOutWithdrawn"]
    state = withdrawn.state
    assert advance(state, 2, prompt(state, behind=(1,), silent=(2,)), 4.0, TIMING).state == state
    removing = advance(state, 2, prompt(state, silent=(2,)), 5.0, TIMING).state
    assert shape(removing) == (REMOVING_PODS, "serve", 3, 2, 0, 2)
    assert shape(advance(removing, 2, prompt(removing), 6.0, TIMING).state) == (STABLE, "serve", 3, 2, 0, 2)


def test_scale_out_withdrawn_before_the_ring_changed() -> None:
    """Pods that never came up were never in a ring: they go at once."""
    state = advance(initial(2, 0.0), 3, Observed(), 1.0, TIMING).state
    back = advance(state, 2, prompt(state, silent=(2,)), 2.0, TIMING)
    assert shape(back.state) == (STABLE, "serve", 1, 2, 0, 2)
    assert [e[1] for e in back.events] == ["RingScaleOutWithdrawn"]


def test_scale_out_during_a_scale_out_warm_up_waits_for_the_ring_to_settle() -> None:
    """Each change starts from a settled, swept ring: a copy left by the first change on an old
    owner is gone before the second can hand the key back."""
    state = warming(3, 2, confirmed_at=0.0)
    assert advance(state, 4, prompt(state), 10.0, TIMING).state == state  # the warm-up runs on
    steps = run_until_step(state, 4, PREPARING, WARMUP)
    assert [(s.step, s.pods) for s in steps] == [(CLOSING_WARM_UP, 3), (SETTLING, 3), (STABLE, 3),
                                                     (ADDING_PODS, 4), (PREPARING, 4)]
    assert shape(steps[-1]) == (PREPARING, "prepare", 6, 4, 3, 4)


def test_a_new_ring_is_published_during_a_warm_up_only_after_it_settles() -> None:
    """Dropping `previous` while a proxy still fills from it would let that proxy read a copy the
    others no longer delete: a scale-in wanted during a scale-out's warm-up waits for the window to
    close everywhere and the ring to settle."""
    state = warming(3, 2, confirmed_at=0.0)
    assert advance(state, 2, prompt(state), 10.0, TIMING).state == state
    steps = run_until_step(state, 2, PREPARING, WARMUP)
    assert [s.step for s in steps] == [CLOSING_WARM_UP, SETTLING, STABLE, PREPARING]
    assert shape(steps[-1]) == (PREPARING, "prepare", 6, 2, 3, 3)
    unconfirmed = warming(3, 2, confirmed_at=None)
    assert advance(unconfirmed, 4, prompt(unconfirmed, behind=(0,)), 10.0, TIMING).state == unconfirmed


def test_a_size_change_during_a_scale_in_warm_up_or_settling_waits_for_the_pods_to_go() -> None:
    state = warming(2, 3, confirmed_at=0.0)
    assert advance(state, 3, prompt(state), 10.0, TIMING).state == state
    seen = run_until_step(state, 3, ADDING_PODS, WARMUP)
    assert [s.step for s in seen] == [CLOSING_WARM_UP, SETTLING, REMOVING_PODS, STABLE, ADDING_PODS]
    assert [s.pods for s in seen] == [3, 3, 2, 2, 3]  # the old pod-2 goes before a new one comes


def test_a_silent_pod_stalls_the_step_after_the_deadline_and_holds_it() -> None:
    preparing = advance(initial(3, 0.0), 2, Observed(), 100.0, TIMING).state
    early = advance(preparing, 2, prompt(preparing, silent=(2,)), 100.0 + DEADLINE - 1, TIMING)
    assert early.state == preparing and not early.stalled
    late = advance(preparing, 2, prompt(preparing, silent=(2,)), 100.0 + DEADLINE, TIMING)
    assert late.state == preparing and late.stalled and late.waiting_for == [2]
    assert not advance(preparing, 2, prompt(preparing), 100.0 + DEADLINE, TIMING).stalled
    # during a warm-up the window itself is no stall: the deadline counts from its end
    state = warming(2, 3, confirmed_at=0.0)
    assert not advance(state, 2, prompt(state, silent=(2,)), DEADLINE + 1, TIMING).stalled
    assert advance(state, 2, prompt(state, silent=(2,)), WARMUP + DEADLINE, TIMING).stalled
    # a pod that does not go away
    removing = RingState(4, "serve", REMOVING_PODS, members=2, previous=0, pods=2, since=0.0)
    assert advance(removing, 2, prompt(removing, extra_pods=(2,)), DEADLINE, TIMING).stalled


def test_every_change_gets_an_event_and_generations_only_grow() -> None:
    state = initial(2, 0.0)
    reasons, generations = [], [state.generation]
    for target in (3, 2):
        now = 1.0
        for _ in range(12):
            decision = advance(state, target, prompt(state), now, TIMING)
            reasons += [e[1] for e in decision.events]
            assert all(e[2].startswith(f"generation {decision.state.generation}: ") for e in decision.events)
            state = decision.state
            generations.append(state.generation)
            now += WARMUP
            if state.step == STABLE and state.members == target:
                break
    assert reasons == [
        "RingAddingPods", "RingPrepare", "RingServe", "RingWarmingUp", "RingWarmUpClosing", "RingSettled",
        "RingStable", "RingPrepare", "RingServe", "RingWarmingUp", "RingWarmUpClosing", "RingSettled",
        "RingRemovingPods", "RingStable",
    ]
    assert generations == sorted(generations)

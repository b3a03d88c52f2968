"""The ring: section is validated with messages that name the key; --ring-self and
CACHEPROXY_RING_SELF override ring.self; /ring answers the contract's JSON."""

from __future__ import annotations

import json
import urllib.request

import pytest
from cacheproxy.config import load
from cacheproxy_operator.manifests import Owner, RingView
from cacheproxy_operator.manifests.config import config_text
from cacheproxy_operator.spec import with_defaults

from tests.ring.load import deadline_poll
from tests.ring.tier import Tier

M = [{"name": "a", "peer": "127.0.0.1:1"}, {"name": "b", "peer": "127.0.0.1:2"}]


def write(tmp_path, ring: dict) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"ring": ring}))
    return str(path)


@pytest.mark.parametrize(("ring", "message"), [
    ({"self": "a", "members": []}, "ring.members must list at least one member"),
    ({"self": "a", "members": [M[0], M[0]]}, "listed twice"),
    ({"self": "a", "members": [{"name": "a", "peer": "nope"}]}, "ring.members[0].peer"),
    ({"self": "a", "members": M, "phase": "later"}, "ring.phase must be one of"),
    ({"self": "a", "members": M, "phase": "prepare"}, "needs ring.previous"),
    ({"self": "a", "members": M, "owner_down": "panic"}, "ring.owner_down"),
    ({"self": "a", "members": M, "colour": 1}, "unknown ring keys: colour"),
    ({"members": M}, "ring.self is empty"),
    ({"self": "a", "members": M, "generation": "7"}, "ring.generation must be an integer"),
    ({"self": "a", "members": M, "handover": "yes"}, "ring.handover must be true or false"),
])
def test_bad_ring_sections_are_refused(tmp_path, monkeypatch, ring: dict, message: str) -> None:
    monkeypatch.delenv("CACHEPROXY_RING_SELF", raising=False)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(write(tmp_path, ring))


def test_self_overrides(tmp_path, monkeypatch) -> None:
    path = write(tmp_path, {"self": "a", "members": M})
    assert load(path).ring.self_name == "a"
    monkeypatch.setenv("CACHEPROXY_RING_SELF", "b")
    assert load(path).ring.self_name == "b"
    assert load(path, {"ring_self": "a"}).ring.self_name == "a"  # the flag wins
    assert load(path).ring.phase == "serve" and load(path).ring.owner_down == "miss"


def test_ring_endpoint_answers_the_contract() -> None:
    tier = Tier.start(2)
    try:
        deadline_poll(lambda: tier.ring_json(0)["swept_generation"] == 1, 10)  # settled at start: swept
        view = tier.ring_json(0)
        assert view == {"generation": 1, "phase": "serve", "self": tier.pairs[0].name,
                        "members": [{**tier.member_entry(0), "state": "self"}, {**tier.member_entry(1), "state": "up"}],
                        "previous": [], "warmup_until": None, "swept_generation": 1, "handing_over": False,
                        "handed_over_generation": 0}
        with urllib.request.urlopen(f"http://{tier.pairs[0].admin}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert "cacheproxy_ring_members 2.0" in body and "cacheproxy_ring_generation 1.0" in body
    finally:
        tier.stop()


@pytest.mark.parametrize("view", [
    {"generation": 1, "phase": "serve", "members": 3, "previous": 0},
    {"generation": 4, "phase": "prepare", "members": 4, "previous": 3},
    {"generation": 5, "phase": "serve", "members": 3, "previous": 4},
])
def test_the_operators_config_file_loads_as_written(tmp_path, monkeypatch, view: dict) -> None:
    """The ConfigMap the operator writes (with the self name from CACHEPROXY_RING_SELF, as the pod
    gets it) is accepted, with the members, phase and previous it says."""
    owner = Owner(name="cache", namespace="apps", uid="u")
    spec = with_defaults({"replicas": view["members"], "ring": {"warmupSeconds": 30, "ownerDown": "error"}})
    path = tmp_path / "config.yaml"
    path.write_text(config_text(owner, spec, RingView(**view)))
    monkeypatch.setenv("CACHEPROXY_RING_SELF", "cache-1.cache-headless.apps.svc")
    ring = load(path).ring
    assert ring is not None and ring.self_name == "cache-1.cache-headless.apps.svc"
    assert [m.name for m in ring.members] == [f"cache-{i}.cache-headless.apps.svc" for i in range(view["members"])]
    assert ring.members[0].peer == "cache-0.cache-headless.apps.svc:11212"
    assert (ring.generation, ring.phase, len(ring.previous)) == (view["generation"], view["phase"], view["previous"])
    assert (ring.warmup_seconds, ring.owner_down) == (30.0, "error")

"""kopf wiring, kept thin: every trigger asks for a reconcile of one CacheProxy by name.

Triggers: create/update/resume of the CacheProxy, events on the built-in children (a child deleted
or edited by hand, a StatefulSet or pod changing readiness), and one background loop: every few
seconds it reconciles the CacheProxies in the middle of a ring change (their proxies' GET /ring
decides the next step), and every RESYNC_SECONDS all of them (catches anything missed, e.g. the
ServiceMonitor API appearing). The children whose kinds come from other projects' CRDs
(ServiceMonitor, Certificate) are not watched, only resynced: kopf stops the whole operator when a
watched kind's CRD is deleted and its re-watch answers 404 before kopf has noticed the deletion.
The loop is not a kopf timer: kopf puts a finalizer on every object with a timer, and a finalizer
outliving the operator makes deleting a CacheProxy hang. Requests for the same CacheProxy are
coalesced: while one reconcile runs, further requests mark it dirty and it runs once more afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from cacheproxy_operator import GROUP, KIND, PLURAL, VERSION
from cacheproxy_operator.kube import Kube, new_api_client
from cacheproxy_operator.manifests.common import MANAGED_BY
from cacheproxy_operator.reconcile import CR_API, RingFetch, fetch_ring_http, reconcile

log = logging.getLogger(__name__)
RESYNC_SECONDS = float(os.environ.get("CACHEPROXY_RESYNC_SECONDS", "60"))
RING_POLL_SECONDS = float(os.environ.get("CACHEPROXY_RING_POLL_SECONDS", "3"))
# How the operator reads a pod's GET /ring; tests replace it (no network needed).
fetch_ring: RingFetch = fetch_ring_http
CHILD_LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY}
# (group or group/version, plural); a group without version follows the server's preferred version.
CHILD_RESOURCES = [
    ("v1", "configmaps"),
    ("v1", "services"),
    ("v1", "pods"),
    ("v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io/v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "rolebindings"),
    ("apps/v1", "statefulsets"),
    ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "networkpolicies"),
]


class Coalescer:
    """Runs reconciles for one key at a time; requests arriving meanwhile collapse into one rerun."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._running: set[tuple[str, str]] = set()
        self._dirty: set[tuple[str, str]] = set()

    def run(self, key: tuple[str, str], work: Any) -> bool:
        """Run WORK() now (and again while requests arrive); False if another thread has it."""
        with self._guard:
            if key in self._running:
                self._dirty.add(key)
                return False
            self._running.add(key)
        try:
            while True:
                with self._guard:
                    self._dirty.discard(key)
                work()
                with self._guard:
                    if key not in self._dirty:
                        return True
        finally:
            with self._guard:
                self._running.discard(key)


_coalescer = Coalescer()
_kube: Kube | None = None


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube(new_api_client())
    return _kube


def _emitter(body: dict[str, Any]):
    """Events are posted directly (not with kopf.event, which works only inside kopf's handlers)."""

    def emit(event_type: str, reason: str, message: str) -> None:
        try:
            kube().post_event(body, event_type, reason, message[:1000])
        except ApiException as exc:
            log.warning("event %s on %s not posted: HTTP %s", reason, body["metadata"]["name"], exc.status)

    return emit


def request_reconcile(namespace: str, name: str) -> None:
    """Reconcile the CacheProxy NAMESPACE/NAME as it is on the server right now."""

    def work() -> None:
        body = kube().get(CR_API, KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return  # gone or going: the garbage collector removes the children via owner references
        reconcile(kube(), body, _emitter(body), fetch_ring=lambda pod, port: fetch_ring(pod, port))

    try:
        _coalescer.run((namespace, name), work)
    except Exception as exc:
        # kopf retries create/update/resume handlers on TemporaryError; the timer covers the rest.
        raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=5) from exc


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cacheproxy.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="cacheproxy.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # only our explicit events, not kopf's handler chatter
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    kube()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def on_cacheproxy(namespace: str, name: str, **_: Any) -> None:
    request_reconcile(namespace, name)


# Every CacheProxy seen, and whether a ring change is under way in it (what the loop polls).
_known: dict[tuple[str, str], bool] = {}


@kopf.on.event(GROUP, VERSION, PLURAL, id="track")
def track(event: dict[str, Any], namespace: str, name: str, **_: Any) -> None:
    key = (namespace, name)
    if event.get("type") == "DELETED":
        _known.pop(key, None)
        return
    ring = ((event.get("object") or {}).get("status") or {}).get("ring") or {}
    _known[key] = ring.get("step", "Stable") != "Stable"


def _reconcile_quietly(namespace: str, name: str) -> None:
    try:
        request_reconcile(namespace, name)
    except kopf.TemporaryError as exc:
        log.warning("resync of %s/%s failed: %s", namespace, name, exc)


async def resync_loop() -> None:
    loop = asyncio.get_running_loop()
    last_full = loop.time()
    while True:
        await asyncio.sleep(RING_POLL_SECONDS)
        full = loop.time() - last_full >= RESYNC_SECONDS
        if full:
            last_full = loop.time()
        for (namespace, name), changing in list(_known.items()):
            if full or changing:
                # to_thread copies the context: kopf.event needs the operator's context variables
                await asyncio.to_thread(_reconcile_quietly, namespace, name)


_tasks: list[asyncio.Task[None]] = []


@kopf.on.startup(id="resync-loop")
async def start_resync(**_: Any) -> None:
    _tasks.append(asyncio.get_running_loop().create_task(resync_loop()))


@kopf.on.cleanup(id="resync-loop")
async def stop_resync(**_: Any) -> None:
    while _tasks:
        _tasks.pop().cancel()


def on_child_event(namespace: str, labels: dict[str, str], **_: Any) -> None:
    owner = labels.get("app.kubernetes.io/instance")
    if owner:
        try:
            request_reconcile(namespace, owner)
        except kopf.TemporaryError as exc:  # event handlers are not retried; the timer will be
            log.warning("child-triggered reconcile of %s/%s failed: %s", namespace, owner, exc)


for _api, _plural in CHILD_RESOURCES:
    kopf.on.event(_api, _plural, labels=CHILD_LABELS, id=f"child-{_plural}")(on_child_event)

"""`helm uninstall` of the chart while a CacheProxy still exists, then deleting that CacheProxy and its
namespace: nothing may hang on the operator's finalizer once the operator is gone. Runs last in the
package (it removes the release the other e2e modules share).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import RELEASE, Tier

# The first test also builds the image (minutes when cold) and starts the tier, inside its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


def test_uninstall_with_a_cacheproxy_left_does_not_leave_it_stuck(tier: Tier, operator_release: str) -> None:
    cluster = tier.cluster
    cluster.helm("uninstall", RELEASE, "-n", operator_release, "--wait", "--timeout", "120s", timeout=180)
    deleted = cluster.kubectl("delete", "cacheproxy", tier.name, "-n", tier.namespace, "--timeout=30s",
                              check=False, timeout=60)
    if deleted.returncode != 0:
        # leave the cluster usable for the rest of the session: drop the finalizer by hand
        cluster.kubectl("patch", "cacheproxy", tier.name, "-n", tier.namespace, "--type=merge", "-p",
                        json.dumps({"metadata": {"finalizers": None}}), check=False)
    assert deleted.returncode == 0, f"CacheProxy stuck after uninstall: {deleted.stderr}"

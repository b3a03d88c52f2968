"""The supported Kubernetes range is stated once, in the chart's `kubeVersion`, and everything the
project puts on a cluster is schema-valid for each minor version in it: the rendered chart (default and
maximal values) and every child the operator creates (default and maximal spec), checked with
kubernetes-validate in strict mode for every minor from the chart's minimum to the newest it knows.
The test node runs a version inside the range too.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from cacheproxy_operator.manifests import Capabilities, Owner, build
from cacheproxy_operator.spec import with_defaults

from tests.chart.helm import CHART, REPO, VALUES_MAX, documents, render
from tests.operator.specs import MAXIMAL_SPEC

PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
OWNER = Owner(name="cache", namespace="apps", uid="5f1c1e9a-0000-4000-8000-000000000001")
NODE_VERSION = re.search(r"KVER=\$\{KVER:-v(\d+\.\d+)\.\d+\}", (REPO / "scripts/k8s/build.sh").read_text())


def minimum_minor() -> tuple[int, int]:
    stated = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)\.0-0", stated)
    assert match, f"kubeVersion should be a plain lower bound like '>=1.31.0-0', got {stated!r}"
    return int(match[1]), int(match[2])


def supported_minors() -> list[str]:
    low = minimum_minor()
    known = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    return sorted((v for v in known if tuple(map(int, v.split("."))) >= low), key=lambda v: int(v.split(".")[1]))


SUPPORTED = supported_minors()


def crd_schema(path: str) -> dict[str, Any]:
    crd = yaml.safe_load((REPO / path).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


# Children of CRD kinds have no core schema: they are checked against the CRD the tests install.
CRD_SCHEMAS = {"ServiceMonitor": "scripts/k8s/servicemonitor-crd.yaml",
               "Certificate": "tests/operator/certificate-crd-minimal.yaml"}


def test_the_range_starts_at_a_maintained_release_and_holds_the_test_node() -> None:
    assert minimum_minor() >= (1, 31)
    assert len(SUPPORTED) >= 4, SUPPORTED
    assert NODE_VERSION and NODE_VERSION[1] in SUPPORTED, (NODE_VERSION, SUPPORTED)


@pytest.mark.parametrize("version", SUPPORTED)
def test_rendered_chart_is_valid_for(version: str) -> None:
    for values, apis in (([], []), ([VALUES_MAX], [PROMETHEUS_RULE_API])):
        docs = documents(render(values=values, api_versions=apis))
        core = [doc for doc in docs if doc["kind"] != "PrometheusRule"]  # a CRD kind: no core schema
        assert core
        for doc in core:
            assert kubernetes_validate.validate(doc, version, strict=True) == version, doc["kind"]


@pytest.mark.parametrize("version", SUPPORTED)
def test_operator_children_are_valid_for(version: str) -> None:
    for spec in ({}, MAXIMAL_SPEC):
        for manifest in build(OWNER, with_defaults(spec), Capabilities()).desired:
            if manifest["kind"] in CRD_SCHEMAS:
                jsonschema.validate(manifest, crd_schema(CRD_SCHEMAS[manifest["kind"]]))
                continue
            assert kubernetes_validate.validate(manifest, version, strict=True) == version, manifest["kind"]


def test_crd_is_valid_for_every_supported_version() -> None:
    crd = yaml.safe_load((REPO / "operator/cacheproxy_operator/crd/cacheproxies.yaml").read_text())
    for version in SUPPORTED:
        assert kubernetes_validate.validate(crd, version, strict=True) == version

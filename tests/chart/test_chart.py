"""The chart renders valid, secure Kubernetes objects: helm lint, helm template and kubernetes-validate."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.chart.helm import CHART, KUBERNETES_VERSION, VALUES_MAX, by_kind, documents, helm, one, render

PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
ALL_KINDS_DEFAULT = {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Service",
                     "Deployment", "Pod"}


@pytest.mark.parametrize("values", [[], [VALUES_MAX]], ids=["default", "max"])
def test_helm_lint_is_clean(values: list) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("values", "api_versions"),
    [([], []), ([VALUES_MAX], [PROMETHEUS_RULE_API])],
    ids=["default", "max"],
)
def test_rendered_manifests_pass_strict_schema_validation(values: list, api_versions: list) -> None:
    rendered = render(values=values, api_versions=api_versions)
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "-k", KUBERNETES_VERSION, "-"],
        input=rendered, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    docs = documents(rendered)
    # Every object except the PrometheusRule (a CRD kubernetes-validate has no schema for) is validated.
    core = [d for d in docs if d["kind"] != "PrometheusRule"]
    assert len(passed) == len(core), result.stdout + result.stderr


def test_default_renders_the_cluster_wide_operator() -> None:
    docs = documents(render())
    assert {d["kind"] for d in docs} == ALL_KINDS_DEFAULT
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["cacheproxy-operator"]
    assert container["args"] == ["--liveness", "http://0.0.0.0:8080/healthz", "--all-namespaces"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")


def test_operator_runs_non_root_read_only_without_capabilities() -> None:
    deployment = one(documents(render(values=[VALUES_MAX])), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in security["capabilities"]
    assert security["runAsUser"] == 10001


@pytest.mark.parametrize(
    "override",
    [
        "securityContext.readOnlyRootFilesystem=false",
        "securityContext.allowPrivilegeEscalation=true",
        "podSecurityContext.runAsNonRoot=false",
        "operator.watchNamespace=Not_A_Namespace",
        "image.pullPolicy=Sometimes",
        "unknownTopLevelKey=1",
    ],
)
def test_schema_rejects_insecure_or_invalid_values(override: str) -> None:
    with pytest.raises(AssertionError, match="values don't meet the specifications of the schema"):
        render(sets=[override])


def test_single_namespace_mode_uses_a_role_in_the_watched_namespace() -> None:
    docs = documents(render(sets=["operator.watchNamespace=caches"]))
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--namespace", "caches"]
    assert "--all-namespaces" not in container["args"]
    role, binding = one(docs, "Role"), one(docs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "caches"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-cacheproxy",
                                    "namespace": "cache-system"}]
    # The ClusterRole keeps only cluster-scoped reads: no write verb anywhere in it.
    cluster_verbs = {v for rule in one(docs, "ClusterRole")["rules"] for v in rule["verbs"]}
    assert cluster_verbs == {"get", "list", "watch"}


def test_prometheus_rule_only_when_the_cluster_serves_monitoring_coreos_com() -> None:
    assert not by_kind(documents(render()), "PrometheusRule")
    # A cluster with only the ServiceMonitor CRD serves monitoring.coreos.com/v1 but not PrometheusRule.
    assert not by_kind(documents(render(api_versions=["monitoring.coreos.com/v1",
                                                      "monitoring.coreos.com/v1/ServiceMonitor"])),
                       "PrometheusRule")
    docs = documents(render(values=[VALUES_MAX], api_versions=[PROMETHEUS_RULE_API]))
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules_file = yaml.safe_load((CHART / "alerts" / "cacheproxy-rules.yaml").read_text())
    assert rule["spec"] == rules_file
    disabled = render(sets=["prometheusRule.enabled=false"], api_versions=[PROMETHEUS_RULE_API])
    assert not by_kind(documents(disabled), "PrometheusRule")


def test_dashboard_config_map_carries_the_dashboard_file() -> None:
    default = one(documents(render()), "ConfigMap")
    assert default["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert default["metadata"]["namespace"] == "cache-system"
    on_disk = json.loads((CHART / "dashboards" / "cacheproxy.json").read_text())
    assert json.loads(default["data"]["cacheproxy.json"]) == on_disk
    custom = one(documents(render(values=[VALUES_MAX])), "ConfigMap")
    assert custom["metadata"]["namespace"] == "monitoring"
    assert custom["metadata"]["labels"]["grafana_dashboard_custom"] == "yes"
    assert "grafana_dashboard" not in custom["metadata"]["labels"]
    assert custom["metadata"]["annotations"]["grafana_folder"] == "Caches"
    assert not by_kind(documents(render(sets=["dashboard.enabled=false"])), "ConfigMap")


def test_helm_test_hook_checks_the_operator_health_service() -> None:
    docs = documents(render())
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "health"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert f"http://{service['metadata']['name']}.cache-system.svc:8080/healthz" in script
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with a key given twice (plain yaml keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = {k for k in keys if keys.count(k) > 1}
        assert not repeated, f"repeated keys {repeated} at {node.start_mark}"
        return super().construct_mapping(node, deep=deep)


@pytest.mark.parametrize("values", [[], [VALUES_MAX]], ids=["default", "max"])
def test_no_rendered_mapping_repeats_a_key(values: list) -> None:
    for doc in yaml.load_all(render(values=values), Loader=_UniqueKeyLoader):
        assert doc is None or isinstance(doc, dict)


def test_helm_test_pod_is_not_selected_as_the_operator() -> None:
    docs = documents(render())
    pod, operator = one(docs, "Pod"), one(docs, "Deployment")
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    selector = operator["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()


def test_the_chart_image_is_the_tiers_default_for_both_containers() -> None:
    container = one(documents(render(values=[VALUES_MAX])), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CACHEPROXY_TIER_IMAGE"] == container["image"] == "registry.example.com/team/cacheproxy:0.1.0-test"
    assert env["CACHEPROXY_TIER_IMAGE_PULL_POLICY"] == container["imagePullPolicy"] == "Always"
    assert env["CACHEPROXY_TIER_IMAGE_PULL_SECRETS"] == "registry-credentials"
    default = one(documents(render()), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "CACHEPROXY_TIER_IMAGE_PULL_SECRETS" not in {e["name"] for e in default["env"]}


def test_the_operator_has_a_readiness_probe() -> None:
    container = one(documents(render()), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["periodSeconds"] == 5

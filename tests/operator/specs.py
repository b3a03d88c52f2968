"""CacheProxy specs shared by the operator tests: the minimal one and one using every feature."""

from __future__ import annotations

from typing import Any

MAXIMAL_SPEC: dict[str, Any] = {
    "replicas": 3,
    "memcached": {
        "image": "registry.example/memcached:1.6.18",
        "imagePullPolicy": "Always",
        "memoryMiB": 2048,
        "maxItemSize": 2097152,
        "threads": 8,
        "maxConnections": 8192,
        "extraArgs": ["-o", "modern", "-v"],
        "resources": {"requests": {"cpu": "500m", "memory": "2304Mi"}, "limits": {"memory": "2304Mi"}},
    },
    "l2": {
        "enabled": True,
        "memoryMiB": 128,
        "extstoreSize": "20Gi",
        "storage": {"type": "persistentVolumeClaim", "storageClassName": "fast-ssd", "size": "24Gi"},
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
    },
    "proxy": {
        "image": "registry.example/cacheproxy:0.2.0",
        "orca": "l1l2",
        "locked": True,
        "workers": 2,
        "maxConnections": 30000,
        "idleTimeoutSeconds": 300,
        "readTimeoutSeconds": 10,
        "backendTimeoutMilliseconds": 500,
        "shutdownGraceSeconds": 20,
        "preStopDelaySeconds": 3,
        "logLevel": "debug",
        "chunking": {"enabled": True, "threshold": 1048576, "chunkSize": 1000000},
        "batching": {"enabled": True, "maxConnections": 4, "maxBatch": 32, "flushMicroseconds": 100},
        "batchPort": {"enabled": True},
        "ports": {"client": 21211, "metrics": 29150, "batch": 21212},
        "resources": {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
    },
    "service": {
        "type": "LoadBalancer",
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
        "labels": {"team": "caching"},
    },
    "monitoring": {
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "10s",
            "labels": {"release": "kube-prometheus-stack"},
        }
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": "60%"},
    "placement": {
        "antiAffinity": "hard",
        "topologyKey": "topology.kubernetes.io/zone",
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "nodeSelector": {"node-role/cache": "true"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "cache", "effect": "NoSchedule"}],
        "priorityClassName": "cache-critical",
    },
    "securityContext": {"runAsUser": 20000, "runAsGroup": 20000, "fsGroup": 20000},
    "networkPolicy": {
        "enabled": True,
        "clientSelector": {"matchLabels": {"cache-client": "true"}},
        "clientNamespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["web", "api"]}]},
        "metricsNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    },
    "podAnnotations": {"example.com/owner": "caching"},
    "podLabels": {"tier": "cache"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "tls": {"issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer"}, "clientAuth": True},
    "auth": {"secretName": "cache-auth"},
}

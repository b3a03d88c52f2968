{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "cacheproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects; the release name alone when it already contains the chart name. */}}
{{- define "cacheproxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cacheproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cacheproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cacheproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object but the component, for objects that are not the operator (helm test). */}}
{{- define "cacheproxy.commonLabels" -}}
helm.sh/chart: {{ include "cacheproxy.chart" . }}
app.kubernetes.io/name: {{ include "cacheproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cacheproxy
{{- end -}}

{{- define "cacheproxy.labels" -}}
{{ include "cacheproxy.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "cacheproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cacheproxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The one image: the operator's, and the default of every CacheProxy's proxy and memcached. */}}
{{- define "cacheproxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
RBAC: exactly the API calls the operator makes (kept equal to cacheproxy_operator.rbac.RULES by
tests/chart/test_rbac.py). Namespaced rules go into a ClusterRole when the operator watches every
namespace and into a Role in the watched namespace otherwise; cluster-scoped reads (CRDs, namespaces)
always need a ClusterRole.
*/}}
{{- define "cacheproxy.rbac.namespacedRules" -}}
- apiGroups: [cacheproxy.io]
  resources: [cacheproxies]
  verbs: [get, list, watch, patch]
- apiGroups: [cacheproxy.io]
  resources: [cacheproxies/status]
  verbs: [get, patch]
{{- /* owned children: never deleted by the operator (the garbage collector follows ownerReferences) */}}
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, delete]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch]
{{- /* optional children: deleted (reconcile.prune) when the spec turns them off */}}
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
{{- /* other projects' CRDs: not watched (the operator's resync keeps them right), so no watch */}}
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, create, patch, delete]
- apiGroups: [cert-manager.io]
  resources: [certificates]
  verbs: [get, list, create, patch, delete]
{{- /* each tier's pods: a ServiceAccount, and a Role + RoleBinding to read their own ConfigMap */}}
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch, create, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch]
{{- /* get only, by the names in spec.tls / spec.auth: no list or watch of any Secret */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{- define "cacheproxy.rbac.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end -}}

{{/* imagePullSecrets as a comma-separated list of names (the operator's env for the tiers). */}}
{{- define "cacheproxy.pullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

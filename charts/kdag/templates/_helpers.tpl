{{/* Name stem of the chart's objects. */}}
{{- define "kdag.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name when the release name lacks it. */}}
{{- define "kdag.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kdag.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kdag.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kdag.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kdag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels of every object the chart makes (not `managed-by: kdag`: that marks what the controller makes). */}}
{{- define "kdag.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kdag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kdag
{{- end }}

{{- define "kdag.serviceAccountName" -}}
{{- default (include "kdag.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* An image reference `repository:tag`, or `repository:tag@digest` when a digest pins it. */}}
{{- define "kdag.imageReference" -}}
{{- $reference := printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- with .image.digest }}{{ $reference = printf "%s@%s" $reference . }}{{ end }}
{{- $reference }}
{{- end }}

{{- define "kdag.image" -}}
{{- include "kdag.imageReference" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "kdag.runnerImage" -}}
{{- include "kdag.imageReference" (dict "image" .Values.runnerImage "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The namespaces the controller watches, as a JSON list; [] means every namespace. */}}
{{- define "kdag.watchNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- toJson .Values.watch.namespaces }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- toJson (list .Release.Namespace) }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/* The namespaces that get the task ServiceAccount, Role and RoleBinding, as a JSON list. */}}
{{- define "kdag.taskNamespaces" -}}
{{- $watched := include "kdag.watchNamespaces" . | fromJsonArray }}
{{- if .Values.taskRbac.namespaces }}
{{- toJson .Values.taskRbac.namespaces }}
{{- else if $watched }}
{{- toJson $watched }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{- define "kdag.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "kdag.fullname" .) }}
{{- end }}

{{/* Fail early on values that cannot work together. */}}
{{- define "kdag.validateValues" -}}
{{- if not (has .Values.rbac.scope (list "cluster" "namespace")) }}
{{- fail (printf "rbac.scope must be `cluster` or `namespace`, not %q" .Values.rbac.scope) }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.peering.enabled) }}
{{- fail "replicas > 1 needs peering.enabled=true: without peering every replica would act on every run" }}
{{- end }}
{{- end }}

{{/* The ServiceAccount task pods run as, and its RoleBinding's name, in every namespace. */}}
{{- define "kdag.taskServiceAccountName" -}}
{{- .Values.taskRbac.serviceAccountName | default "kdag-task" }}
{{- end }}

{{/*
The XCom guard's match condition: a token of the task ServiceAccount, in any namespace. The same expression as
kdag.policy.task_token_condition (tests/helm/test_chart_render.py renders both for a renamed account).
*/}}
{{- define "kdag.taskTokenCondition" -}}
{{- printf "request.userInfo.username.startsWith(\"system:serviceaccount:\") && request.userInfo.username.endsWith(\":%s\")" (include "kdag.taskServiceAccountName" .) }}
{{- end }}

{{/* The ClusterRole task pods get through a RoleBinding in each namespace (kdag.policy.task_cluster_role). */}}
{{- define "kdag.taskClusterRoleName" -}}
{{- printf "%s-task" (include "kdag.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
What the controller may do in a namespace it watches: exactly the calls it makes (docs/security.md lists
each with its caller; tests/helm/test_rbac.py holds the reviewed list). Nothing here reads or writes a
ConfigMap or a Secret, and nothing updates or deletes a DAG or a TaskRun.
*/}}
{{- define "kdag.controllerRules" -}}
# DAGs: read and watched (kopf; the DAGRun webhook reads a new run's DAG), patched by kopf (its annotations;
# it removes the finalizer earlier versions put on scheduled DAGs).
- apiGroups: [kdag.dev]
  resources: [dags]
  verbs: [get, list, watch, patch]
# DAGRuns: scheduled and @once runs are created, kopf patches its annotations, finished runs are pruned.
- apiGroups: [kdag.dev]
  resources: [dagruns]
  verbs: [get, list, watch, create, patch, delete]
# TaskRuns: one per task of a run; they go with their run (ownerReferences), never deleted here. Watched:
# a pass reads a run's TaskRuns from what the watch brought (handlers/run_objects.py), not a list per pass.
- apiGroups: [kdag.dev]
  resources: [taskruns]
  verbs: [get, list, watch, create]
# DAGVersions: the version of its DAG's spec a run starts with, made if absent (one of that name is read to
# see whose it is) and read on later passes; they go with their DAG (ownerReferences), never deleted here.
- apiGroups: [kdag.dev]
  resources: [dagversions]
  verbs: [get, create]
- apiGroups: [kdag.dev]
  resources: [dags/status, dagruns/status, taskruns/status]
  verbs: [patch]
# One pod per task attempt, watched for its end; a rescheduled sensor's earlier pods are deleted. A pod that
# exists under the name of a new attempt is read to see whose it is: kdag adopts only its own.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# Events on DAGs and runs (kopf's own posting is off).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The task ServiceAccount and its RoleBinding to the task ClusterRole, made before a namespace's first task
# pod (kdag.policy.task_rbac). `bind` on that one ClusterRole is what lets the controller create the binding
# without holding ConfigMap write access itself (RBAC's escalation check).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  resourceNames: [{{ include "kdag.taskClusterRoleName" . }}]
  verbs: [bind]
{{- end }}

{{/* Read the task ClusterRole (cluster-scoped, so always in a ClusterRole): its uid owns the task RBAC. */}}
{{- define "kdag.taskClusterRoleReadRule" -}}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  resourceNames: [{{ include "kdag.taskClusterRoleName" . }}]
  verbs: [get]
{{- end }}

{{/*
The webhook's certificate as YAML (tls.crt, tls.key, ca.crt, base64): the Secret's data when it exists (so
upgrades keep it), else a new CA and a certificate for the Service's DNS names. Made once per render.
*/}}
{{- define "kdag.webhookTls" -}}
{{- if not (hasKey .Values "__webhookTls") }}
{{- $secretName := include "kdag.webhookSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- if and $existing $existing.data (hasKey $existing.data "tls.crt") (hasKey $existing.data "ca.crt") }}
{{- $_ := set .Values "__webhookTls" (dict "tls.crt" (index $existing.data "tls.crt") "tls.key" (index $existing.data "tls.key") "ca.crt" (index $existing.data "ca.crt")) }}
{{- else }}
{{- $service := printf "%s-controller" (include "kdag.fullname" .) }}
{{- $names := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) }}
{{- $days := int .Values.webhook.certificateDays }}
{{- $ca := genCA (printf "%s-webhook-ca" (include "kdag.fullname" .)) $days }}
{{- $cert := genSignedCert (index $names 2) nil $names $days $ca }}
{{- $_ := set .Values "__webhookTls" (dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc)) }}
{{- end }}
{{- end }}
{{- toYaml (get .Values "__webhookTls") }}
{{- end }}

{{/*
Labels of the objects that are the same as `kdag.policy` makes (task RBAC, XCom guard): kdag's own
managed-by label, so `kubectl get -l app.kubernetes.io/managed-by=kdag` finds them, plus the release's.
*/}}
{{- define "kdag.policyLabels" -}}
app.kubernetes.io/managed-by: kdag
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kdag
{{- end }}

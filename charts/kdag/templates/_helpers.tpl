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

{{- define "kdag.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "kdag.runnerImage" -}}
{{- printf "%s:%s" .Values.runnerImage.repository (default .Chart.AppVersion .Values.runnerImage.tag) }}
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

{{/* What the controller may do in a namespace it watches. */}}
{{- define "kdag.controllerRules" -}}
# The kdag resources: the controller reads DAGs, creates runs and TaskRuns, and writes their status.
- apiGroups: [kdag.dev]
  resources: [dags, dagruns, taskruns]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [kdag.dev]
  resources: [dags/status, dagruns/status, taskruns/status]
  verbs: [get, patch, update]
# One pod per task attempt.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# XCom ConfigMaps (the task pods write them; the controller reads and cleans up).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# Kubernetes Events, from the controller and from kopf.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# kopf peering between replicas.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
# The task ServiceAccount, Role and RoleBinding: the controller makes them in a namespace before its first
# task pod there (kdag.policy.task_rbac), so DAGs also run where taskRbac.namespaces did not reach.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create]
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

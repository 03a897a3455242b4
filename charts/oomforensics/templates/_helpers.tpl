{{/* The release's resource names, labels and the service account. */}}

{{- define "oomforensics.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "oomforensics.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oomforensics.labels" -}}
{{ include "oomforensics.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "oomforensics.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "oomforensics.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "oomforensics.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The rules on MemoryInvestigations, pods, PodMetrics and Events in a watched scope. */}}
{{- define "oomforensics.watchRules" -}}
# The custom resources: kopf lists and watches them and patches them for its finalizer and
# annotations; the operator merge-patches their status.
- apiGroups: ["oomforensics.io"]
  resources: ["memoryinvestigations"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["oomforensics.io"]
  resources: ["memoryinvestigations/status"]
  verbs: ["patch"]
# The pods the investigations select (kopf's index and pod events): read only.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
{{- if .Values.rbac.proxyAccess }}
# endpoint.access: apiserver-proxy: GET the pprof endpoints through the API server.
- apiGroups: [""]
  resources: ["pods/proxy"]
  verbs: ["get"]
{{- end }}
# Working sets: one PodMetrics list per namespace per sampling interval.
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods"]
  verbs: ["list"]
# Events about investigations and pods (the operator's and kopf's own).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* OOMF_STORAGE_OPTIONS: key=value,key=value in key order. */}}
{{- define "oomforensics.storageOptions" -}}
{{- $pairs := list -}}
{{- range $key := keys . | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%v" $key (get $ $key)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{- define "worker.fullname" -}}
{{- printf "%s-worker" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "worker.workPool" -}}
{{- $id := required "global.institution is required" .Values.global.institution -}}
{{- .Values.global.workPool | default (printf "lms-sync-%s" $id) -}}
{{- end -}}

{{- define "worker.jobNamespace" -}}
{{- .Values.global.jobNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "worker.labels" -}}
app.kubernetes.io/name: lms-sync-worker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
lms-sync/institution: {{ .Values.global.institution }}
{{- end -}}

{{- define "worker.selectorLabels" -}}
app.kubernetes.io/name: lms-sync-worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

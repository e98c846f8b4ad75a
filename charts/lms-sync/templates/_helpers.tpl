{{/* Names: <release>-<suffix>, 63 characters at most. */}}
{{- define "lms-sync.name" -}}
{{- printf "%s-%s" .root.Release.Name .suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lms-sync.institution" -}}
{{- $id := required "global.institution is required (the institution id, e.g. state-u)" .Values.global.institution -}}
{{- if not (regexMatch "^[a-z0-9][a-z0-9-]{0,62}$" $id) -}}
{{- fail (printf "global.institution %q: use lowercase letters, digits and '-'" $id) -}}
{{- end -}}
{{- $id -}}
{{- end -}}

{{- define "lms-sync.labels" -}}
app.kubernetes.io/name: lms-sync
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
lms-sync/institution: {{ include "lms-sync.institution" . }}
{{- end -}}

{{- define "lms-sync.workPool" -}}
{{- .Values.global.workPool | default (printf "lms-sync-%s" (include "lms-sync.institution" .)) -}}
{{- end -}}

{{- define "lms-sync.jobNamespace" -}}
{{- .Values.global.jobNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "lms-sync.image" -}}
{{- printf "%s:%s" .Values.global.image.repository (.Values.global.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "lms-sync.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "lms-sync.name" (dict "root" . "suffix" "flows")) -}}
{{- end -}}

{{- define "lms-sync.configMapName" -}}
{{- include "lms-sync.name" (dict "root" . "suffix" "config") -}}
{{- end -}}

{{- define "lms-sync.hmacPath" -}}
{{- printf "/var/run/secrets/lms-sync/hmac/%s" .Values.secrets.hmac.key -}}
{{- end -}}

{{/* The institution config file: values.config + the id and the HMAC key reference. */}}
{{- define "lms-sync.institutionConfig" -}}
{{- range $forbidden := list "token" "client_secret" "hmac_key_ref" "institution_id" }}
{{- if hasKey $.Values.config $forbidden }}
{{- fail (printf "config.%s must not be set in values: secrets come from `secrets` (existingSecret), the id from global.institution" $forbidden) }}
{{- end }}
{{- end }}
{{- $_ := required "config.base_url is required (the LMS root URL)" .Values.config.base_url -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "institution_id" (include "lms-sync.institution" .) -}}
{{- if not (hasKey $cfg "shard_deployment") -}}
{{- $_ := set $cfg "shard_deployment" (printf "sync-shard/%s-sync-shard" (include "lms-sync.institution" .)) -}}
{{- end -}}
{{- if eq .Values.secrets.hmac.mountAs "file" -}}
{{- $_ := set $cfg "hmac_key_ref" (printf "file:%s" (include "lms-sync.hmacPath" .)) -}}
{{- else if eq .Values.secrets.hmac.mountAs "env" -}}
{{- $_ := set $cfg "hmac_key_ref" "env:LMS_SYNC_HMAC_KEY" -}}
{{- else -}}
{{- fail "secrets.hmac.mountAs must be file or env" -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* EnvVar list: vendor credentials and (env mode) the HMAC key, all as secretKeyRef. */}}
{{- define "lms-sync.secretEnv" -}}
{{- $vendor := .Values.secrets.vendor -}}
{{- $env := list -}}
{{- if or $vendor.existingSecret (not .Values.secrets.extraEnv) }}
{{- $secret := required "secrets.vendor.existingSecret is required (the Secret with the vendor token or client credentials)" $vendor.existingSecret -}}
{{- range $pair := list (list "LMS_SYNC_TOKEN" $vendor.tokenKey) (list "LMS_SYNC_CLIENT_ID" $vendor.clientIdKey) (list "LMS_SYNC_CLIENT_SECRET" $vendor.clientSecretKey) }}
{{- if index $pair 1 }}
{{- $env = append $env (dict "name" (index $pair 0) "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" (index $pair 1)))) }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.secrets.extraEnv }}
{{- $env = append $env (dict "name" (required "secrets.extraEnv[].name is required" .name) "valueFrom" (dict "secretKeyRef" (dict "name" (required "secrets.extraEnv[].existingSecret is required" .existingSecret) "key" (required "secrets.extraEnv[].key is required" .key)))) }}
{{- end }}
{{- if eq .Values.secrets.hmac.mountAs "env" }}
{{- $hmac := required "secrets.hmac.existingSecret is required (the Secret with the HMAC key)" .Values.secrets.hmac.existingSecret -}}
{{- $env = append $env (dict "name" "LMS_SYNC_HMAC_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $hmac "key" .Values.secrets.hmac.key))) }}
{{- end }}
{{- toYaml $env -}}
{{- end -}}

{{/* Prefect API settings for any pod: the URL as a value, the Cloud API key by reference. */}}
{{- define "lms-sync.prefectEnv" -}}
- name: PREFECT_API_URL
  value: {{ required "global.prefect.apiUrl is required (the Prefect API URL)" .Values.global.prefect.apiUrl | quote }}
{{- with .Values.global.prefect.apiKeySecret }}
{{- if .name }}
- name: PREFECT_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}
{{- end }}
{{- end }}
- name: PREFECT_HOME
  value: /tmp/prefect
{{- end -}}

{{- define "lms-sync.volumes" -}}
- name: config
  configMap:
    name: {{ include "lms-sync.configMapName" . }}
    items:
      - {key: institution.yaml, path: institution.yaml}
{{- if eq .Values.secrets.hmac.mountAs "file" }}
- name: hmac-key
  secret:
    secretName: {{ required "secrets.hmac.existingSecret is required (the Secret with the HMAC key)" .Values.secrets.hmac.existingSecret | quote }}
    defaultMode: 0400
    items:
      - {key: {{ .Values.secrets.hmac.key | quote }}, path: {{ .Values.secrets.hmac.key | quote }}}
{{- end }}
- name: tmp
  emptyDir: {sizeLimit: 1Gi}
- name: data
{{- if .Values.storage.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.existingClaim | quote }}
{{- else }}
  emptyDir: {sizeLimit: {{ .Values.storage.sizeLimit | quote }}}
{{- end }}
{{- end -}}

{{- define "lms-sync.volumeMounts" -}}
- {name: config, mountPath: /etc/lms-sync, readOnly: true}
{{- if eq .Values.secrets.hmac.mountAs "file" }}
- {name: hmac-key, mountPath: /var/run/secrets/lms-sync/hmac, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
- {name: data, mountPath: /var/lib/lms-sync}
{{- end -}}

{{/* Job variables shared by every deployment of this institution (the pool's defaults too). */}}
{{- define "lms-sync.jobVariables" -}}
{{- $res := .Values.flowRun.resources -}}
image: {{ include "lms-sync.image" . | quote }}
image_pull_policy: {{ .Values.global.image.pullPolicy | quote }}
namespace: {{ include "lms-sync.jobNamespace" . | quote }}
service_account_name: {{ include "lms-sync.serviceAccountName" . | quote }}
cpu_request: {{ $res.requests.cpu | quote }}
memory_request: {{ $res.requests.memory | quote }}
cpu_limit: {{ $res.limits.cpu | quote }}
memory_limit: {{ $res.limits.memory | quote }}
finished_job_ttl: {{ .Values.flowRun.finishedJobTtlSeconds | int }}
env:
  PREFECT_HOME: /tmp/prefect
  {{- range $k, $v := .Values.flowRun.env }}
  {{ $k }}: {{ $v | toString | quote }}
  {{- end }}
secret_env:
  {{- include "lms-sync.secretEnv" . | nindent 2 }}
volumes:
  {{- include "lms-sync.volumes" . | nindent 2 }}
volume_mounts:
  {{- include "lms-sync.volumeMounts" . | nindent 2 }}
{{- end -}}

{{/* The work pool's base job template: files/base-job-template.yaml with this institution's defaults. */}}
{{- define "lms-sync.baseJobTemplate" -}}
{{- $tpl := .Files.Get "files/base-job-template.yaml" | fromYaml -}}
{{- $props := $tpl.variables.properties -}}
{{- range $name, $value := include "lms-sync.jobVariables" . | fromYaml }}
{{- $_ := set (index $props $name) "default" $value }}
{{- end }}
{{- $_ := set $tpl "variables" (mergeOverwrite $tpl.variables .Values.workPool.baseJobTemplateOverrides) -}}
{{- toPrettyJson $tpl -}}
{{- end -}}

{{/* What the hook deploys: prefect.yaml's kubernetes deployments, renamed and parameterized. */}}
{{- define "lms-sync.deployments" -}}
{{- $d := .Values.deployments -}}
institution: {{ include "lms-sync.institution" . }}
work_pool: {{ include "lms-sync.workPool" . }}
job_variables:
  {{- include "lms-sync.jobVariables" . | nindent 2 }}
deployments:
{{- range $key, $name := dict "fullSync" "full-sync" "incrementalSync" "incremental-sync" "syncShard" "sync-shard" }}
{{- $spec := index $d $key }}
{{- if $spec.enabled }}
  {{ $name }}:
    parameters:
      config_file: /etc/lms-sync/institution.yaml
    {{- if eq $name "sync-shard" }}
    job_variables:
      cpu_request: {{ $.Values.flowRun.shardResources.requests.cpu | quote }}
      memory_request: {{ $.Values.flowRun.shardResources.requests.memory | quote }}
      cpu_limit: {{ $.Values.flowRun.shardResources.limits.cpu | quote }}
      memory_limit: {{ $.Values.flowRun.shardResources.limits.memory | quote }}
    {{- end }}
    {{- if hasKey $spec "schedules" }}
    schedules:
      {{- range $spec.schedules }}
      - {{ merge (dict "timezone" $d.timezone) . | toYaml | nindent 8 | trim }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end }}
{{- end -}}

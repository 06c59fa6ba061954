{{/* Object names: <release>-<chart> unless overridden, at most 63 characters. */}}
{{- define "sprechzimmer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sprechzimmer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object; pass (dict "ctx" $ "component" "operator"). */}}
{{- define "sprechzimmer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "sprechzimmer.selectorLabels" . }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sprechzimmer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sprechzimmer.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The labels the operator puts on media pods (sprechzimmer.contract: LABEL_MANAGED_BY, Component.MEDIA). */}}
{{- define "sprechzimmer.mediaPodLabels" -}}
app.kubernetes.io/managed-by: sprechzimmer-operator
app.kubernetes.io/component: media-pod
{{- end }}

{{/* An image reference; pass (dict "ctx" $ "repository" "..."). */}}
{{- define "sprechzimmer.image" -}}
{{- printf "%s%s:%s" .ctx.Values.image.registry .repository (default .ctx.Chart.AppVersion .ctx.Values.image.tag) }}
{{- end }}

{{- define "sprechzimmer.sharedKeySecret" -}}
{{- default (printf "%s-shared-key" (include "sprechzimmer.fullname" .)) .Values.sharedKey.existingSecret }}
{{- end }}

{{- define "sprechzimmer.signalingPort" -}}8080{{- end }}
{{- define "sprechzimmer.operatorPort" -}}8080{{- end }}
{{/* The media pods' control API (sprechzimmer.contract.mediapod.CONTROL_PORT). */}}
{{- define "sprechzimmer.mediaControlPort" -}}8080{{- end }}

{{/* Pod Security "restricted": the pod level. */}}
{{- define "sprechzimmer.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod Security "restricted": the container level. */}}
{{- define "sprechzimmer.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Preferred spreading of a component's replicas over nodes, unless affinity is set. */}}
{{- define "sprechzimmer.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "sprechzimmer.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end }}

{{/* Pod spec parts shared by the operator and signaling Deployments. */}}
{{- define "sprechzimmer.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
affinity:
  {{- include "sprechzimmer.affinity" (dict "ctx" .ctx "component" .component "affinity" .values.affinity) | trim | nindent 2 }}
enableServiceLinks: false
securityContext:
  {{- include "sprechzimmer.podSecurityContext" . | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}

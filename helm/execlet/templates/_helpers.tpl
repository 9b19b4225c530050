{{/* Names, labels and the values other templates derive from the settings. */}}

{{- define "execlet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "execlet.fullname" -}}
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

{{- define "execlet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "execlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "execlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "execlet.labels" -}}
helm.sh/chart: {{ include "execlet.chart" . }}
{{ include "execlet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: execlet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "execlet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "execlet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "execlet.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The headless Service's DNS name; every agent's certificate must name it (and *.it). */}}
{{- define "execlet.serviceHost" -}}
{{- printf "%s.%s.svc" (include "execlet.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The TLS Secret (user-made, or filled by cert-manager). */}}
{{- define "execlet.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "execlet.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "execlet.nsenterEnabled" -}}
{{- if eq .Values.agent.nsenter "enabled" -}}true{{- end -}}
{{- end -}}

{{- define "execlet.policyConfigMap" -}}
{{- if .Values.auth.policy.existingConfigMap -}}
{{- .Values.auth.policy.existingConfigMap -}}
{{- else if .Values.auth.policy.rules -}}
{{- printf "%s-policy" (include "execlet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "execlet.tokenSecret" -}}
{{- if .Values.auth.tokenFile.existingSecret -}}
{{- .Values.auth.tokenFile.existingSecret -}}
{{- else if .Values.auth.tokenFile.hashedTokens -}}
{{- printf "%s-tokens" (include "execlet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Paths inside the container. The config file has the same path as in a systemd install
(/etc/execlet/config.yaml), so both start the agent with the same arguments.
*/}}
{{- define "execlet.paths" -}}
config: /etc/execlet/config.yaml
tlsDir: /etc/execlet/tls
tokenDir: /etc/execlet/tokens
policyDir: /etc/execlet/policy
clientCADir: /etc/execlet/client-ca
{{- end -}}

{{/*
The agent's config file (keys as in `execlet serve --print-config`). Rendered from a dict with
toYaml, so values cannot break out of their keys.
*/}}
{{- define "execlet.config" -}}
{{- $paths := include "execlet.paths" . | fromYaml -}}
{{- $a := .Values.agent -}}
{{- $tls := dict -}}
{{- if ne .Values.tls.source "insecureSelfSigned" -}}
{{- $_ := set $tls "certFile" (printf "%s/tls.crt" $paths.tlsDir) -}}
{{- $_ := set $tls "keyFile" (printf "%s/tls.key" $paths.tlsDir) -}}
{{- end -}}
{{- if .Values.tls.clientCA.existingSecret -}}
{{- $_ := set $tls "clientCAFile" (printf "%s/%s" $paths.clientCADir .Values.tls.clientCA.key) -}}
{{- end -}}
{{- $audit := dict "stdout" $a.audit.stdout "maxBytes" (int64 $a.audit.maxBytes) "keep" (int64 $a.audit.keep) "failClosed" $a.audit.failClosed "redact" $a.audit.redact -}}
{{- if $a.audit.file -}}
{{- $_ := set $audit "file" $a.audit.file -}}
{{- end -}}
{{- $sessions := dict -}}
{{- range $key, $value := $a.sessions -}}
{{- $_ := set $sessions $key (int64 $value) -}}
{{- end -}}
{{- $config := dict
  "listen" (printf "0.0.0.0:%d" (int64 $a.port))
  "dockerHost" (printf "unix://%s" $a.dockerSocket)
  "stateDir" $a.stateDir
  "tls" $tls
  "insecureSelfSignedOnNetwork" (eq .Values.tls.source "insecureSelfSigned")
  "logLevel" $a.logLevel
  "nsenter" $a.nsenter
  "console" $a.console
  "allowedOrigins" $a.allowedOrigins
  "audit" $audit
  "sessions" $sessions
  "shutdownGraceSeconds" (int64 $a.shutdownGraceSeconds)
  "reaperIntervalSeconds" (int64 $a.reaperIntervalSeconds)
  "killGraceMs" (int64 $a.killGraceMs)
  "maxConnections" (int64 $a.maxConnections)
-}}
{{- with (include "execlet.tokenSecret" .) -}}
{{- $_ := set $config "tokenFile" (printf "%s/%s" $paths.tokenDir $.Values.auth.tokenFile.key) -}}
{{- end -}}
{{- with (include "execlet.policyConfigMap" .) -}}
{{- $_ := set $config "policyFile" (printf "%s/%s" $paths.policyDir $.Values.auth.policy.key) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Cross-value checks the schema cannot express. */}}
{{- define "execlet.validate" -}}
{{- if and .Values.auth.tokenFile.existingSecret .Values.auth.tokenFile.hashedTokens -}}
{{- fail "auth.tokenFile: set existingSecret or hashedTokens, not both" -}}
{{- end -}}
{{- if and .Values.auth.policy.existingConfigMap .Values.auth.policy.rules -}}
{{- fail "auth.policy: set existingConfigMap or rules, not both" -}}
{{- end -}}
{{- if and (eq .Values.agent.audit.file "none") (not .Values.agent.audit.stdout) -}}
{{- fail "agent.audit: with file \"none\", set stdout: true — an agent without any audit record is not supported by this chart" -}}
{{- end -}}
{{- if le (int64 .Values.agent.maxConnections) (int64 .Values.agent.sessions.maxPerNode) -}}
{{- fail "agent.maxConnections must be above agent.sessions.maxPerNode: every session is a connection, and probes, scrapes and API calls need more" -}}
{{- end -}}
{{- end -}}

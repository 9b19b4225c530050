{{/* Shared by the ServiceMonitor and the PodMonitor. */}}

{{/* /metrics needs a bearer token: the monitors send one from a Secret in this namespace. */}}
{{- define "execlet.metricsAuthorization" -}}
authorization:
  type: Bearer
  credentials:
    name: {{ required "metrics.bearerTokenSecret.name is required with a ServiceMonitor or PodMonitor: /metrics needs a bearer token the agents accept (listed in auth.tokenFile)" .Values.metrics.bearerTokenSecret.name }}
    key: {{ .Values.metrics.bearerTokenSecret.key }}
{{- end -}}

{{/* How Prometheus verifies the agents: explicit, or the TLS Secret's CA and the Service's name. */}}
{{- define "execlet.metricsTLSConfig" -}}
{{- if .Values.metrics.tlsConfig -}}
{{- toYaml .Values.metrics.tlsConfig -}}
{{- else if eq .Values.tls.source "insecureSelfSigned" -}}
# Each agent has its own self-signed certificate: nothing to verify it against.
insecureSkipVerify: true
{{- else -}}
serverName: {{ include "execlet.serviceHost" . }}
ca:
  secret:
    name: {{ include "execlet.tlsSecretName" . }}
    key: ca.crt
{{- end -}}
{{- end -}}

{{/* The node label on every series: which agent (node) a metric is about. */}}
{{- define "execlet.metricsRelabelings" -}}
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
  action: replace
{{- with . }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Names, labels and the checks that make inconsistent values fail to render. */}}

{{- define "wasmfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wasmfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "wasmfleet.labels" -}}
{{ include "wasmfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "wasmfleet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The URL the operator and hosts connect to. */}}
{{- define "wasmfleet.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- $fullname := include "wasmfleet.fullname" . -}}
{{- $scheme := ternary "tls" "nats" .Values.tls.enabled -}}
{{- if gt (int .Values.nats.replicas) 1 -}}
{{- /* Every server by name: clients fail over among them (the servers advertise no pod IPs). */ -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.nats.replicas) -}}
{{- $urls = append $urls (printf "%s://%s-nats-%d.%s-nats-headless.%s.svc:4222" $scheme $fullname $i $fullname $.Release.Namespace) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- printf "%s://%s-nats.%s.svc:4222" $scheme $fullname .Release.Namespace -}}
{{- end -}}
{{- else -}}
{{- required "nats.url is required when nats.enabled is false (the URL of an external NATS with JetStream)" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Secret holding role's certificate ("nats", "operator", "host", "data" or "logs"). */}}
{{- define "wasmfleet.tlsSecret" -}}
{{- if .root.Values.tls.generate -}}
{{- printf "%s-%s-tls" (include "wasmfleet.fullname" .root) .role -}}
{{- else -}}
{{- $name := index .root.Values.tls.existingSecrets .role -}}
{{- if has .role (list "nats" "operator" "host") -}}
{{- required (printf "tls.existingSecrets.%s is required when tls.enabled is true and tls.generate is false (a kubernetes.io/tls Secret with ca.crt)" .role) $name -}}
{{- else -}}
{{- $name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The NATS user a role's client certificate maps to (verify_and_map: the certificate's subject, as
nats-server writes it, RFC 2253). tls.clientSubjects overrides it for certificates not made here. */}}
{{- define "wasmfleet.natsUser" -}}
{{- $given := index (.root.Values.tls.clientSubjects | default dict) .role -}}
{{- $given | default (printf "CN=%s-%s" (include "wasmfleet.fullname" .root) .role) -}}
{{- end -}}

{{/* Checks of values that no single template would notice. */}}
{{- define "wasmfleet.validate" -}}
{{- $_ := include "wasmfleet.natsUrl" . -}}
{{- if and .Values.nats.enabled (eq (int .Values.nats.replicas) 2) -}}
{{- fail "nats.replicas must be 1, or 3 or more: a clustered JetStream needs a majority of its servers" -}}
{{- end -}}
{{- if and .Values.nats.enabled (lt (int .Values.nats.replicas) 1) -}}
{{- fail "nats.replicas must be at least 1 when nats.enabled is true" -}}
{{- end -}}
{{- if and .Values.nats.enabled (not .Values.tls.enabled) -}}
{{- fail "tls.enabled must be true when nats.enabled is true: the release's NATS authenticates every client by its certificate (no anonymous access); with tls off, use an external NATS (nats.enabled false) and give its credentials in extraEnv" -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- range $role := list "nats" "operator" "host" -}}
{{- if or (ne $role "nats") $.Values.nats.enabled -}}
{{- $_ := include "wasmfleet.tlsSecret" (dict "root" $ "role" $role) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.generate (ne (empty .Values.tls.ca.cert) (empty .Values.tls.ca.key)) -}}
{{- fail "tls.ca.cert and tls.ca.key go together: give both (a CA to sign with) or neither (one is generated)" -}}
{{- end -}}
{{- end -}}
{{- $enabled := 0 -}}
{{- range $name, $group := .Values.hostGroups -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "hostGroups.%s: a host group name must be a DNS label (lower-case letters, digits, '-')" $name) -}}
{{- end -}}
{{- if gt (len $name) 53 -}}
{{- fail (printf "hostGroups.%s: the name is too long (53 characters at most, for Service hostgroup-<name>)" $name) -}}
{{- end -}}
{{- if $group.enabled -}}
{{- $enabled = add1 $enabled -}}
{{- if lt (int $group.workers) 1 -}}
{{- fail (printf "hostGroups.%s.workers must be at least 1" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.gateway.service.type (list "ClusterIP" "NodePort" "LoadBalancer")) -}}
{{- fail (printf "gateway.service.type must be ClusterIP, NodePort or LoadBalancer, not %q" .Values.gateway.service.type) -}}
{{- end -}}
{{- include "wasmfleet.validateDashboard" . -}}
{{- end -}}

{{/* Volumes and variables every wasmfleet pod that talks to NATS shares. .role: operator or host. */}}
{{- define "wasmfleet.natsEnv" -}}
{{- $prefix := printf "WASMFLEET_%s_" (upper .role) -}}
- name: {{ $prefix }}NATS
  value: {{ include "wasmfleet.natsUrl" .root | quote }}
{{- if .root.Values.tls.enabled }}
- name: {{ $prefix }}NATS_TLS_CA
  value: /etc/wasmfleet/nats-tls/ca.crt
- name: {{ $prefix }}NATS_TLS_CERT
  value: /etc/wasmfleet/nats-tls/tls.crt
- name: {{ $prefix }}NATS_TLS_KEY
  value: /etc/wasmfleet/nats-tls/tls.key
{{- end }}
{{- end -}}

{{- define "wasmfleet.natsTlsVolume" -}}
{{- if .root.Values.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ include "wasmfleet.tlsSecret" . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "wasmfleet.natsTlsMount" -}}
{{- if .Values.tls.enabled }}
- name: nats-tls
  mountPath: /etc/wasmfleet/nats-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The kubeconfig the operator and the gateway read: this pod's service account, in-cluster. */}}
{{- define "wasmfleet.kubeconfigVolume" -}}
- name: kubeconfig
  configMap:
    name: {{ include "wasmfleet.fullname" . }}-kubeconfig
{{- end -}}

{{/* The Secret holding the dashboard's viewer token ("" when it has none: dashboard.authHeader alone,
an authenticating proxy in front). */}}
{{- define "wasmfleet.dashboardTokenSecret" -}}
{{- $values := .Values.dashboard -}}
{{- if $values.existingSecret -}}
{{- $values.existingSecret -}}
{{- else if or $values.token (and $values.generateToken (not $values.authHeader)) -}}
{{- printf "%s-dashboard-token" (include "wasmfleet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The /metrics URLs the dashboard charts traffic from, as a JSON list: the gateway's Service
(dashboard.scrapeGateway) and dashboard.metricsUrls. */}}
{{- define "wasmfleet.dashboardMetricsUrls" -}}
{{- $urls := list -}}
{{- if .Values.dashboard.scrapeGateway -}}
{{- $urls = append $urls (printf "http://%s-gateway.%s.svc:%d/metrics" (include "wasmfleet.fullname" .) .Release.Namespace (int .Values.gateway.service.port)) -}}
{{- end -}}
{{- $urls = concat $urls (.Values.dashboard.metricsUrls | default list) -}}
{{- toJson $urls -}}
{{- end -}}

{{/* Checks of the dashboard's values (only when it is enabled). */}}
{{- define "wasmfleet.validateDashboard" -}}
{{- $values := .Values.dashboard -}}
{{- if $values.enabled -}}
{{- if and (not $values.token) (not $values.existingSecret) (not $values.authHeader) (not $values.generateToken) -}}
{{- fail "dashboard: it listens on 0.0.0.0, so viewers need a token or an authenticating proxy: set dashboard.token, dashboard.existingSecret, dashboard.authHeader, or leave dashboard.generateToken true" -}}
{{- end -}}
{{- if and $values.token $values.existingSecret -}}
{{- fail "dashboard.token and dashboard.existingSecret are alternatives: give one (the token, or the Secret holding it)" -}}
{{- end -}}
{{- if and $values.existingSecret (not $values.existingSecretKey) -}}
{{- fail "dashboard.existingSecretKey must name the key of dashboard.existingSecret that holds the token" -}}
{{- end -}}
{{- if and $values.authHeader (not (regexMatch "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" $values.authHeader)) -}}
{{- fail (printf "dashboard.authHeader must be an HTTP header name (e.g. X-Forwarded-User), not %q" $values.authHeader) -}}
{{- end -}}
{{- if and $values.namespace (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $values.namespace)) -}}
{{- fail (printf "dashboard.namespace must be a namespace name (a DNS label), not %q" $values.namespace) -}}
{{- end -}}
{{- range $url := $values.metricsUrls | default list -}}
{{- if not (regexMatch "^https?://" $url) -}}
{{- fail (printf "dashboard.metricsUrls: %q is not an http(s) URL" $url) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "port" "service.port" -}}
{{- $port := int (ternary $values.port $values.service.port (eq $key "port")) -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "dashboard.%s must be a port number (1-65535)" $key) -}}
{{- end -}}
{{- end -}}
{{- if lt (float64 $values.metricsInterval) 0.2 -}}
{{- fail "dashboard.metricsInterval must be at least 0.2 (seconds between scrapes)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

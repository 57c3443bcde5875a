{{/* The nats-server configuration (in its own define so pods can carry its checksum). */}}
{{- define "wasmfleet.natsConf" -}}
server_name: $POD_NAME
pid_file: /var/run/nats/nats.pid
port: 4222
http_port: 8222
lame_duck_duration: 30s
lame_duck_grace_period: 10s
jetstream {
  store_dir: /data
  max_memory_store: {{ $.Values.nats.jetstream.maxMemoryStore }}
  {{- if $.Values.nats.jetstream.storage.enabled }}
  max_file_store: {{ $.Values.nats.jetstream.storage.size }}
  {{- end }}
}
# Every client shows a certificate signed by the release's CA; its subject names its user (one per
# role), and the user's permissions come from bus/permissions.py (files/nats-permissions.json).
tls {
  cert_file: /etc/nats/tls/tls.crt
  key_file: /etc/nats/tls/tls.key
  ca_file: /etc/nats/tls/ca.crt
  verify_and_map: true
  timeout: 5
}
{{- $table := $.Files.Get "files/nats-permissions.json" | fromJson }}
# Control (runtime.>, the artifacts bucket) and data plane (JetStream, workloads' subjects) are separate accounts.
accounts {
  {{- range $account, $spec := $table.accounts }}
  {{ $account }} {
    {{- if kindIs "map" $spec.jetstream }}
    # JetStream with account limits (CONTROL: the artifacts bucket's one stream, bus/permissions.py).
    jetstream {
      {{- range $limit, $value := $spec.jetstream }}
      {{ $limit }}: {{ $value }}
      {{- end }}
    }
    {{- else if $spec.jetstream }}
    jetstream: enabled
    {{- end }}
    users: [
      {{- range $role, $user := $table.users }}
      {{- if eq $user.account $account }}
      {user: {{ include "wasmfleet.natsUser" (dict "root" $ "role" $role) | toRawJson }}, permissions: {{ $user.permissions | toRawJson }}}
      {{- end }}
      {{- end }}
    ]
  }
  {{- end }}
}
{{- if gt (int $.Values.nats.replicas) 1 }}
# Clustered JetStream: full mesh of routes between the StatefulSet's pods.
cluster {
  name: {{ (include "wasmfleet.fullname" $) }}
  port: 6222
  # Clients get the servers' DNS names from their URL list (covered by the certificate), not pod IPs.
  no_advertise: true
  routes: [
    {{- range $i := until (int $.Values.nats.replicas) }}
    nats://{{ (include "wasmfleet.fullname" $) }}-nats-{{ $i }}.{{ (printf "%s-nats-headless" (include "wasmfleet.fullname" $)) }}.{{ $.Release.Namespace }}.svc:6222
    {{- end }}
  ]
  tls {
    cert_file: /etc/nats/tls/tls.crt
    key_file: /etc/nats/tls/tls.key
    ca_file: /etc/nats/tls/ca.crt
    verify: true
    timeout: 5
  }
}
{{- end }}
{{- end -}}

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
{{- if $.Values.tls.enabled }}
# Every client shows a certificate signed by the release's CA.
tls {
  cert_file: /etc/nats/tls/tls.crt
  key_file: /etc/nats/tls/tls.key
  ca_file: /etc/nats/tls/ca.crt
  verify: true
  timeout: 5
}
{{- end }}
{{- if gt (int $.Values.nats.replicas) 1 }}
# Clustered JetStream: full mesh of routes between the StatefulSet's pods.
cluster {
  name: {{ (include "wasmfleet.fullname" $) }}
  port: 6222
  routes: [
    {{- range $i := until (int $.Values.nats.replicas) }}
    nats://{{ (include "wasmfleet.fullname" $) }}-nats-{{ $i }}.{{ (printf "%s-nats-headless" (include "wasmfleet.fullname" $)) }}.{{ $.Release.Namespace }}.svc:6222
    {{- end }}
  ]
  {{- if $.Values.tls.enabled }}
  tls {
    cert_file: /etc/nats/tls/tls.crt
    key_file: /etc/nats/tls/tls.key
    ca_file: /etc/nats/tls/ca.crt
    verify: true
    timeout: 5
  }
  {{- end }}
}
{{- end }}
{{- end -}}

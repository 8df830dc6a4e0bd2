{{/* Names, labels and the per-component wiring shared by every template. */}}

{{- define "genie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "genie.fullname" -}}
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

{{- define "genie.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The components, in order: values key, `genie serve` argument, protocol, gRPC service name,
     the Secret keys the component reads (key:required), and the gRPC services it calls
     (`upstreams`: the chart sets their URL variables and lets it reach them through the
     NetworkPolicies). `service: false`: no Service and no ingress at all (nothing calls it; its
     port answers the kubelet's probes only). `fileStorage`: mounts the file volume and gets
     QUEUE_STORAGE_DIR. `sharedEnv`: the settings of another component's `env` it takes too,
     because the two must agree (the worker consumes what svc-queue publishes). Resource names
     and labels use the key in kebab case (queueWorker: <release>-queue-worker). */}}
{{- define "genie.components" -}}
gateway:
  serve: gateway
  protocol: http
  upstreams: [auth, usage, credentials, skills, queue]
  secrets:
    INTERNAL_TOKEN: true
    DIRECTUS_SECRET: true
    RBAC_SYNC_WEBHOOK_SECRET: true
    REDIS_URL: false
auth:
  serve: auth
  protocol: grpc
  grpcService: genie.auth.v1.Auth
  addrVariable: AUTH_GRPC_ADDR
  urlVariable: AUTH_GRPC_URL
  secrets:
    INTERNAL_TOKEN: true
    DIRECTUS_SECRET: true
    AUTH_DATABASE_URL: true
    ADMIN_PASSWORD: false
    DIRECTUS_ADMIN_TOKEN: false
usage:
  serve: usage
  protocol: grpc
  grpcService: genie.usage.v1.Usage
  addrVariable: USAGE_GRPC_ADDR
  urlVariable: USAGE_GRPC_URL
  secrets:
    INTERNAL_TOKEN: true
    USAGE_DATABASE_URL: true
credentials:
  serve: credentials
  protocol: grpc
  grpcService: genie.credentials.v1.Credentials
  addrVariable: CREDENTIALS_GRPC_ADDR
  urlVariable: CREDENTIALS_GRPC_URL
  upstreams: [usage]
  secrets:
    INTERNAL_TOKEN: true
    CREDENTIALS_DATABASE_URL: true
    CREDENTIALS_ENC_KEY_B64: true
    CREDENTIALS_ENC_KEYS_B64: false
skills:
  serve: skills
  protocol: grpc
  grpcService: genie.skills.v1.Skills
  addrVariable: SKILLS_GRPC_ADDR
  urlVariable: SKILLS_GRPC_URL
  secrets:
    INTERNAL_TOKEN: true
    SKILLS_DATABASE_URL: true
queue:
  serve: queue
  protocol: grpc
  grpcService: genie.queue.v1.Queue
  addrVariable: QUEUE_GRPC_ADDR
  urlVariable: QUEUE_GRPC_URL
  upstreams: [usage]
  fileStorage: true
  secrets:
    INTERNAL_TOKEN: true
    QUEUE_DATABASE_URL: true
    QUEUE_AMQP_URL: true
    QUEUE_PUBLISH_WEBHOOK_SECRET: false
queueWorker:
  serve: queue-worker
  protocol: grpc
  addrVariable: QUEUE_WORKER_HEALTH_ADDR
  service: false
  upstreams: [usage]
  fileStorage: true
  sharedEnv:
    from: queue
    keys: [QUEUE_NAME_PREFIX, QUEUE_DELIVERY_LIMIT, QUEUE_MAX_FILE_BYTES, QUEUE_ALLOW_PRIVATE_URLS, QUEUE_PUBLISH_WEBHOOK_URL]
  secrets:
    INTERNAL_TOKEN: true
    QUEUE_DATABASE_URL: true
    QUEUE_AMQP_URL: true
    QUEUE_PUBLISH_WEBHOOK_SECRET: false
{{- end }}

{{- define "genie.componentNames" -}}
gateway auth usage credentials skills queue queueWorker
{{- end }}

{{- define "genie.labels" -}}
helm.sh/chart: {{ include "genie.chart" . }}
app.kubernetes.io/name: {{ include "genie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: genie
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "auth"). */}}
{{- define "genie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "genie.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ kebabcase .component }}
{{- end }}

{{- define "genie.componentLabels" -}}
{{ include "genie.labels" .root }}
app.kubernetes.io/component: {{ kebabcase .component }}
{{- end }}

{{/* The resource name of one component, e.g. genie-auth, genie-queue-worker. */}}
{{- define "genie.componentName" -}}
{{- printf "%s-%s" (include "genie.fullname" .root) (kebabcase .component) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The PersistentVolumeClaim of the files (svc-queue's uploads and the workers' outputs). */}}
{{- define "genie.filesClaimName" -}}
{{- default (printf "%s-files" (include "genie.fullname" .)) .Values.fileStorage.existingClaim }}
{{- end }}

{{- define "genie.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "genie.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "genie.secretName" -}}
{{- default (printf "%s-secrets" (include "genie.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* The image of one component: its own repository/tag, else the top-level ones. */}}
{{- define "genie.image" -}}
{{- $values := index .root.Values .component }}
{{- $repository := default .root.Values.image.repository $values.image.repository }}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) $values.image.tag }}
{{- if and .root.Values.image.digest (not $values.image.repository) (not $values.image.tag) }}
{{- printf "%s@%s" $repository .root.Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* A value as a ConfigMap string; integers stay integers (Helm reads YAML numbers as floats). */}}
{{- define "genie.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* The non-secret environment of one component: the chart's wiring (its listen address and
     the URL of each of its upstreams), commonEnv, then the component's own env (which wins). */}}
{{- define "genie.env" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $values := index $root.Values $component }}
{{- $components := include "genie.components" $root | fromYaml }}
{{- $spec := index $components $component }}
{{- $env := dict }}
{{- if eq $component "gateway" }}
{{- $_ := set $env "GATEWAY_ADDR" (printf "0.0.0.0:%v" (int64 $values.port)) }}
{{- else }}
{{- $_ := set $env $spec.addrVariable (printf "0.0.0.0:%v" (int64 $values.port)) }}
{{- end }}
{{- range $name := default (list) $spec.upstreams }}
{{- $upstream := index $components $name }}
{{- $_ := set $env $upstream.urlVariable (printf "http://%s:%v" (include "genie.componentName" (dict "root" $root "component" $name)) (int64 (index $root.Values $name).port)) }}
{{- end }}
{{- if and (eq $component "usage") $values.tiers }}
{{- $_ := set $env "USAGE_TIERS_PATH" "/etc/genie/tiers/tiers.json" }}
{{- end }}
{{- if $spec.fileStorage }}
{{- $_ := set $env "QUEUE_STORAGE_DIR" $root.Values.fileStorage.mountPath }}
{{- end }}
{{- range $key, $value := $root.Values.commonEnv }}
{{- $_ := set $env $key $value }}
{{- end }}
{{- with $spec.sharedEnv }}
{{- $from := (index $root.Values .from).env }}
{{- range $key := .keys }}
{{- if hasKey $from $key }}
{{- $_ := set $env $key (index $from $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $value := $values.env }}
{{- $_ := set $env $key $value }}
{{- end }}
{{- range $key, $value := $env }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }}: {{ include "genie.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Names and labels. */}}
{{- define "iamgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iamgate.fullname" -}}
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

{{- define "iamgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iamgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iamgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "iamgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "iamgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iamgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Refuses combinations that would not start or would not be safe. */}}
{{- define "iamgate.validate" -}}
{{- $b := .Values.bundle }}
{{- $sources := 0 }}
{{- if $b.configMap.name }}{{ $sources = add1 $sources }}{{ end }}
{{- if $b.files }}{{ $sources = add1 $sources }}{{ end }}
{{- if $b.volume }}{{ $sources = add1 $sources }}{{ end }}
{{- if $b.url }}{{ $sources = add1 $sources }}{{ end }}
{{- if gt $sources 1 }}
{{- fail "bundle: set only one of configMap.name, files, volume and url" }}
{{- end }}
{{- if and (or $b.caFile.configMap $b.caFile.secret) (not (hasPrefix "https://" $b.url)) }}
{{- fail "bundle.caFile is for an https:// bundle.url" }}
{{- end }}
{{- if and (or $b.s3.endpoint $b.s3.region $b.s3.pathStyle $b.s3.credentialsSecret.name) (not (hasPrefix "s3://" $b.url)) }}
{{- fail "bundle.s3 is for an s3:// bundle.url" }}
{{- end }}
{{- if and $b.longPoll (not (hasPrefix "http" $b.url)) }}
{{- fail "bundle.longPoll is for an http(s):// bundle.url" }}
{{- end }}
{{- if and $b.cache.enabled (not $b.url) }}
{{- fail "bundle.cache keeps a remote bundle: it needs bundle.url" }}
{{- end }}
{{- if and $b.cache.enabled $b.cache.existingClaim (gt (int .Values.replicaCount) 1) }}
{{- fail "bundle.cache.existingClaim: one PVC cannot hold the cache of several replicas; use replicaCount 1 or the emptyDir" }}
{{- end }}
{{- if and $b.verifyKeys.keys (not (or $b.verifyKeys.configMap $b.verifyKeys.secret)) }}
{{- fail "bundle.verifyKeys.keys needs bundle.verifyKeys.configMap or bundle.verifyKeys.secret" }}
{{- end }}
{{- if and (or $b.verifyKeys.configMap $b.verifyKeys.secret) (not $b.verifyKeys.keys) }}
{{- fail "bundle.verifyKeys: list the PEM files to trust in bundle.verifyKeys.keys" }}
{{- end }}
{{- $sh := .Values.shadowBundle }}
{{- if and $sh.configMap.name $sh.volume }}
{{- fail "shadowBundle: set only one of configMap.name and volume" }}
{{- end }}
{{- $ship := .Values.decisionLogShipping }}
{{- if and (eq .Values.mode "service") .Values.networkPolicy.enabled (not .Values.networkPolicy.egress) (or $b.url $ship.http.url $ship.otlp.endpoint) }}
{{- fail "bundle.url and decisionLogShipping connect out: allow that egress in networkPolicy.egress (the NetworkPolicy denies all egress otherwise)" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a Secret with tls.crt, tls.key and ca.crt)" }}
{{- end }}
{{- if and .Values.tls.enabled (eq .Values.mode "sidecar") }}
{{- fail "mode sidecar: iamgate's decision listeners are on the pod's loopback, without TLS (tls.enabled is for mode service)" }}
{{- end }}
{{- if .Values.control.enabled }}
{{- if not (or .Values.control.tokenSecret.name (and .Values.control.tls.enabled .Values.control.tls.requireClientCert)) }}
{{- fail "control.enabled needs authentication: control.tokenSecret.name and/or control.tls with requireClientCert" }}
{{- end }}
{{- if and .Values.control.tls.enabled (not .Values.control.tls.secretName) }}
{{- fail "control.tls.enabled needs control.tls.secretName (a Secret with tls.crt, tls.key and ca.crt)" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.enabled (not .Values.webhook.secretName) }}
{{- fail "webhook.enabled needs webhook.secretName (a Secret with tls.crt, tls.key and ca.crt): the API server calls webhooks over HTTPS only" }}
{{- end }}
{{- if and .Values.webhook.enabled (not (or .Values.webhook.caBundle .Values.webhook.injectCaFrom)) }}
{{- fail "webhook.enabled needs webhook.caBundle or webhook.injectCaFrom: the API server must verify the webhook's certificate" }}
{{- end }}
{{- if and .Values.webhook.enabled (eq .Values.mode "sidecar") }}
{{- fail "mode sidecar: the Kubernetes webhooks are served by the shared service (mode service)" }}
{{- end }}
{{- if and .Values.inventoryState.existingClaim (gt (int .Values.replicaCount) 1) (eq .Values.mode "service") }}
{{- fail "inventoryState.existingClaim: one PVC cannot hold the state of several replicas; use replicaCount 1 or the emptyDir" }}
{{- end }}
{{- end }}

{{/* The bundle path inside the container. */}}
{{- define "iamgate.bundlePath" -}}
{{- $b := .Values.bundle }}
{{- if $b.url }}{{ $b.url }}
{{- else if $b.files }}/etc/iamgate/bundle
{{- else if $b.volume }}{{ printf "/etc/iamgate/bundle/%s" $b.path | trimSuffix "/" }}
{{- else }}{{ printf "/etc/iamgate/bundle/%s" $b.configMap.key }}
{{- end }}
{{- end }}

{{/* ConfigMap keys cannot hold "/": a bundle file's key is its path with "/" as "--". */}}
{{- define "iamgate.fileKey" -}}
{{- . | replace "/" "--" }}
{{- end }}

{{/* The flags of `iamgate serve`. */}}
{{- define "iamgate.args" -}}
{{- $v := .Values }}
{{- $bind := ternary "127.0.0.1" "0.0.0.0" (eq $v.mode "sidecar") -}}
- serve
- {{ printf "--bundle=%s" (include "iamgate.bundlePath" .) | quote }}
- --grpc-listen={{ $bind }}:{{ $v.ports.grpc }}
- --http-listen={{ $bind }}:{{ $v.ports.http }}
- --admin-listen=0.0.0.0:{{ $v.ports.admin }}
{{- if $v.bundle.waitForBundle }}
- --wait-for-bundle
{{- end }}
{{- if $v.bundle.allowEmpty }}
- --allow-empty-bundle
{{- end }}
{{- include "iamgate.fleetArgs" . }}
{{- range $v.identity.uriSanPrincipals }}
- {{ printf "--uri-san-principal=%s" . | quote }}
{{- end }}
{{- range $v.identity.jwtPrincipals }}
- {{ printf "--jwt-principal=%s" . | quote }}
{{- end }}
{{- if $v.identity.principalHeader }}
- {{ printf "--principal-header=%s" $v.identity.principalHeader | quote }}
{{- end }}
- --default-mapping={{ $v.ec2.defaultMapping }}
{{- if $v.ec2.region }}
- {{ printf "--ec2-region=%s" $v.ec2.region | quote }}
{{- end }}
{{- range $v.ec2.hostRegions }}
- {{ printf "--ec2-host-region=%s" . | quote }}
{{- end }}
{{- if $v.ec2.xffTrustedHops }}
- --xff-trusted-hops={{ $v.ec2.xffTrustedHops }}
{{- end }}
{{- if $v.tls.enabled }}
- --tls-cert=/etc/iamgate/tls/tls.crt
- --tls-key=/etc/iamgate/tls/tls.key
{{- if $v.tls.requireClientCert }}
- --tls-client-ca=/etc/iamgate/tls/ca.crt
{{- end }}
{{- end }}
{{- if $v.control.enabled }}
- --control-listen=0.0.0.0:{{ $v.ports.control }}
{{- if $v.control.tokenSecret.name }}
- --control-token-file=/etc/iamgate/control-token/{{ $v.control.tokenSecret.key }}
{{- end }}
{{- if $v.control.tls.enabled }}
- --control-tls-cert=/etc/iamgate/control-tls/tls.crt
- --control-tls-key=/etc/iamgate/control-tls/tls.key
{{- if $v.control.tls.requireClientCert }}
- --control-client-ca=/etc/iamgate/control-tls/ca.crt
{{- end }}
{{- end }}
{{- end }}
{{- if $v.messageKeySecret.name }}
- --message-key-file=/etc/iamgate/message-key/{{ $v.messageKeySecret.key }}
{{- end }}
{{- if $v.inventoryState.enabled }}
- --inventory-state=/var/lib/iamgate/inventory
{{- end }}
{{- if $v.decisionLog }}
- {{ printf "--decision-log=%s" $v.decisionLog | quote }}
{{- end }}
{{- if $v.logJson }}
- --log-json
{{- end }}
{{- if $v.webhook.enabled }}
{{- $w := $v.webhook }}
- --webhook-listen=0.0.0.0:{{ $w.port }}
- --webhook-tls-cert=/etc/iamgate/webhook-tls/tls.crt
- --webhook-tls-key=/etc/iamgate/webhook-tls/tls.key
{{- if $w.requireClientCert }}
- --webhook-client-ca=/etc/iamgate/webhook-tls/ca.crt
{{- end }}
{{- range $w.controllerUsers }}
- {{ printf "--webhook-controller-user=%s" . | quote }}
{{- end }}
{{- if $w.awsAuth.configMap }}
- --webhook-aws-auth=/etc/iamgate/aws-auth/{{ $w.awsAuth.key }}
{{- end }}
{{- if $w.requireExtra }}
- --webhook-require-extra
{{- end }}
- --webhook-unmapped={{ $w.unmapped }}
- --webhook-implicit-deny={{ $w.implicitDeny }}
{{- with $w.region }}
- --webhook-region={{ . }}
{{- end }}
{{- with $w.account }}
- {{ printf "--webhook-account=%s" . | quote }}
{{- end }}
{{- range $w.namespaceDefaults }}
- {{ printf "--webhook-namespace-default=%s" . | quote }}
{{- end }}
{{- range $w.resourceTags }}
- {{ printf "--webhook-resource-tag=%s" . | quote }}
{{- end }}
{{- with $w.nameTag }}
- {{ printf "--webhook-name-tag=%s" . | quote }}
{{- end }}
{{- end }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The iamgate container. A chart that builds its own pod can inject it with
  {{ include "iamgate.container" . | nindent 8 }}
beside the volumes of "iamgate.volumes" (this chart as a dependency).
*/}}
{{- define "iamgate.container" -}}
{{- $v := .Values -}}
- name: iamgate
  image: "{{ $v.image.repository }}:{{ $v.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
    {{- include "iamgate.args" . | nindent 4 }}
  env:
    - name: RUST_LOG
      value: {{ $v.logLevel | quote }}
    {{- with include "iamgate.fleetEnv" . }}{{ . | trim | nindent 4 }}{{ end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- if eq $v.mode "service" }}
    - {name: grpc, containerPort: {{ $v.ports.grpc }}, protocol: TCP}
    - {name: http, containerPort: {{ $v.ports.http }}, protocol: TCP}
    {{- end }}
    - {name: admin, containerPort: {{ $v.ports.admin }}, protocol: TCP}
    {{- if $v.control.enabled }}
    - {name: control, containerPort: {{ $v.ports.control }}, protocol: TCP}
    {{- end }}
    {{- if $v.webhook.enabled }}
    - {name: webhook, containerPort: {{ $v.webhook.port }}, protocol: TCP}
    {{- end }}
  startupProbe:
    {{- if and $v.probes.grpcStartup (eq $v.mode "service") (not $v.tls.enabled) }}
    grpc: {port: {{ $v.ports.grpc }}}
    {{- else }}
    httpGet: {path: /readyz, port: admin}
    {{- end }}
    {{- toYaml $v.probes.startup | nindent 4 }}
  readinessProbe:
    httpGet: {path: /readyz, port: admin}
    {{- toYaml $v.probes.readiness | nindent 4 }}
  livenessProbe:
    httpGet: {path: /healthz, port: admin}
    {{- toYaml $v.probes.liveness | nindent 4 }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    {{- if not $v.bundle.url }}
    - {name: iamgate-bundle, mountPath: /etc/iamgate/bundle, readOnly: true}
    {{- end }}
    {{- with include "iamgate.fleetMounts" . }}{{ . | trim | nindent 4 }}{{ end }}
    {{- if $v.tls.enabled }}
    - {name: iamgate-tls, mountPath: /etc/iamgate/tls, readOnly: true}
    {{- end }}
    {{- if and $v.control.enabled $v.control.tokenSecret.name }}
    - {name: iamgate-control-token, mountPath: /etc/iamgate/control-token, readOnly: true}
    {{- end }}
    {{- if and $v.control.enabled $v.control.tls.enabled }}
    - {name: iamgate-control-tls, mountPath: /etc/iamgate/control-tls, readOnly: true}
    {{- end }}
    {{- if $v.messageKeySecret.name }}
    - {name: iamgate-message-key, mountPath: /etc/iamgate/message-key, readOnly: true}
    {{- end }}
    {{- if $v.inventoryState.enabled }}
    - {name: iamgate-inventory-state, mountPath: /var/lib/iamgate/inventory}
    {{- end }}
    {{- if $v.webhook.enabled }}
    - {name: iamgate-webhook-tls, mountPath: /etc/iamgate/webhook-tls, readOnly: true}
    {{- if $v.webhook.awsAuth.configMap }}
    - {name: iamgate-aws-auth, mountPath: /etc/iamgate/aws-auth, readOnly: true}
    {{- end }}
    {{- end }}
{{- end }}

{{/* The volumes the iamgate container mounts. */}}
{{- define "iamgate.volumes" -}}
{{- include "iamgate.volumeList" . | trim }}
{{- end }}

{{- define "iamgate.volumeList" -}}
{{- $v := .Values }}
{{- $fullname := include "iamgate.fullname" . -}}
{{- include "iamgate.fleetVolumes" . | trim }}
{{- if not $v.bundle.url }}
- name: iamgate-bundle
  {{- if $v.bundle.files }}
  configMap:
    name: {{ $fullname }}-bundle
    items:
      {{- range $path, $_ := $v.bundle.files }}
      - {key: {{ include "iamgate.fileKey" $path | quote }}, path: {{ $path | quote }}}
      {{- end }}
  {{- else if $v.bundle.volume }}
  {{- toYaml $v.bundle.volume | nindent 2 }}
  {{- else }}
  configMap:
    name: {{ $v.bundle.configMap.name | default (printf "%s-bundle" $fullname) }}
  {{- end }}
{{- end }}
{{- if $v.tls.enabled }}
- name: iamgate-tls
  secret: {secretName: {{ $v.tls.secretName }}, defaultMode: 0440}
{{- end }}
{{- if and $v.control.enabled $v.control.tokenSecret.name }}
- name: iamgate-control-token
  secret: {secretName: {{ $v.control.tokenSecret.name }}, defaultMode: 0440}
{{- end }}
{{- if and $v.control.enabled $v.control.tls.enabled }}
- name: iamgate-control-tls
  secret: {secretName: {{ $v.control.tls.secretName }}, defaultMode: 0440}
{{- end }}
{{- if $v.messageKeySecret.name }}
- name: iamgate-message-key
  secret: {secretName: {{ $v.messageKeySecret.name }}, defaultMode: 0440}
{{- end }}
{{- if $v.inventoryState.enabled }}
- name: iamgate-inventory-state
  {{- if $v.inventoryState.existingClaim }}
  persistentVolumeClaim: {claimName: {{ $v.inventoryState.existingClaim }}}
  {{- else }}
  emptyDir: {sizeLimit: {{ $v.inventoryState.sizeLimit }}}
  {{- end }}
{{- end }}
{{- if $v.webhook.enabled }}
- name: iamgate-webhook-tls
  secret: {secretName: {{ $v.webhook.secretName }}, defaultMode: 0440}
{{- if $v.webhook.awsAuth.configMap }}
- name: iamgate-aws-auth
  configMap: {name: {{ $v.webhook.awsAuth.configMap }}}
{{- end }}
{{- end }}
{{- end }}

{{/*
Issue 15 (a fleet on one policy): remote bundle, signature keys, cache,
decision-diff gate, shadow bundle and decision-log shipping. Each file the
flags name comes from its own read-only mount; the cache is the only
writable one.
*/}}
{{- define "iamgate.caVolume" -}}
{{- if .ca.secret }}
- name: {{ .name }}
  secret: {secretName: {{ .ca.secret }}, defaultMode: 0440}
{{- else if .ca.configMap }}
- name: {{ .name }}
  configMap: {name: {{ .ca.configMap }}}
{{- end }}
{{- end }}

{{- define "iamgate.fleetArgs" -}}
{{- $v := .Values }}
{{- $b := $v.bundle }}
{{- if $b.url }}
- --bundle-poll-interval={{ int $b.pollInterval }}
{{- if $b.longPoll }}
- --bundle-long-poll={{ int $b.longPoll }}
{{- end }}
{{- if or $b.caFile.configMap $b.caFile.secret }}
- --bundle-ca-file=/etc/iamgate/bundle-ca/{{ $b.caFile.key }}
{{- end }}
{{- with $b.s3.endpoint }}
- {{ printf "--bundle-s3-endpoint=%s" . | quote }}
{{- end }}
{{- with $b.s3.region }}
- {{ printf "--bundle-s3-region=%s" . | quote }}
{{- end }}
{{- if $b.s3.pathStyle }}
- --bundle-s3-path-style
{{- end }}
{{- if $b.cache.enabled }}
- --bundle-cache=/var/lib/iamgate/bundle-cache
{{- end }}
{{- end }}
{{- range $b.verifyKeys.keys }}
- {{ printf "--bundle-verify-key=/etc/iamgate/bundle-keys/%s" . | quote }}
{{- end }}
{{- $d := $v.decisionDiff }}
{{- if not (kindIs "invalid" $d.maxChangedDecisions) }}
- --max-changed-decisions={{ int $d.maxChangedDecisions }}
{{- end }}
{{- if not (kindIs "invalid" $d.sampleSize) }}
- --decision-sample-size={{ int $d.sampleSize }}
{{- end }}
{{- if not (kindIs "invalid" $d.sampleEvery) }}
- --decision-sample-every={{ int $d.sampleEvery }}
{{- end }}
{{- $sh := $v.shadowBundle }}
{{- if $sh.configMap.name }}
- {{ printf "--shadow-bundle=/etc/iamgate/shadow-bundle/%s" $sh.configMap.key | quote }}
{{- else if $sh.volume }}
- {{ printf "/etc/iamgate/shadow-bundle/%s" $sh.path | trimSuffix "/" | printf "--shadow-bundle=%s" | quote }}
{{- end }}
{{- if or $sh.configMap.name $sh.volume }}
{{- if not (kindIs "invalid" $sh.sampleEvery) }}
- --shadow-sample-every={{ int $sh.sampleEvery }}
{{- end }}
{{- if not (kindIs "invalid" $sh.queue) }}
- --shadow-queue={{ int $sh.queue }}
{{- end }}
{{- end }}
{{- $l := $v.decisionLogShipping }}
{{- with $l.http.url }}
- {{ printf "--decision-log-http=%s" . | quote }}
{{- if or $l.http.caFile.configMap $l.http.caFile.secret }}
- --decision-log-http-ca=/etc/iamgate/decision-log-http-ca/{{ $l.http.caFile.key }}
{{- end }}
{{- end }}
{{- with $l.otlp.endpoint }}
- {{ printf "--decision-log-otlp=%s" . | quote }}
{{- if or $l.otlp.caFile.configMap $l.otlp.caFile.secret }}
- --decision-log-otlp-ca=/etc/iamgate/decision-log-otlp-ca/{{ $l.otlp.caFile.key }}
{{- end }}
{{- end }}
{{- if or $l.http.url $l.otlp.endpoint }}
{{- if not (kindIs "invalid" $l.buffer) }}
- --decision-log-ship-buffer={{ int $l.buffer }}
{{- end }}
{{- if not (kindIs "invalid" $l.batchBytes) }}
- --decision-log-batch-bytes={{ int $l.batchBytes }}
{{- end }}
{{- if not (kindIs "invalid" $l.flushMs) }}
- --decision-log-flush-ms={{ int $l.flushMs }}
{{- end }}
{{- if not (kindIs "invalid" $l.retries) }}
- --decision-log-retries={{ int $l.retries }}
{{- end }}
{{- end }}
{{- range $l.masks }}
- {{ printf "--decision-log-mask=%s" . | quote }}
{{- end }}
{{- if $l.context }}
- --decision-log-context
{{- end }}
{{- end }}

{{- define "iamgate.fleetEnv" -}}
{{- $c := .Values.bundle.s3.credentialsSecret }}
{{- if and (hasPrefix "s3://" .Values.bundle.url) $c.name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ $c.name }}, key: {{ $c.accessKeyId }}}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ $c.name }}, key: {{ $c.secretAccessKey }}}}
{{- with $c.sessionToken }}
- name: AWS_SESSION_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $c.name }}, key: {{ . }}, optional: true}}
{{- end }}
{{- end }}
{{- end }}

{{- define "iamgate.fleetMounts" -}}
{{- $v := .Values }}
{{- $b := $v.bundle }}
{{- $l := $v.decisionLogShipping }}
{{- if and $b.url (or $b.caFile.configMap $b.caFile.secret) }}
- {name: iamgate-bundle-ca, mountPath: /etc/iamgate/bundle-ca, readOnly: true}
{{- end }}
{{- if $b.verifyKeys.keys }}
- {name: iamgate-bundle-keys, mountPath: /etc/iamgate/bundle-keys, readOnly: true}
{{- end }}
{{- if and $b.url $b.cache.enabled }}
- {name: iamgate-bundle-cache, mountPath: /var/lib/iamgate/bundle-cache}
{{- end }}
{{- if or $v.shadowBundle.configMap.name $v.shadowBundle.volume }}
- {name: iamgate-shadow-bundle, mountPath: /etc/iamgate/shadow-bundle, readOnly: true}
{{- end }}
{{- if and $l.http.url (or $l.http.caFile.configMap $l.http.caFile.secret) }}
- {name: iamgate-decision-log-http-ca, mountPath: /etc/iamgate/decision-log-http-ca, readOnly: true}
{{- end }}
{{- if and $l.otlp.endpoint (or $l.otlp.caFile.configMap $l.otlp.caFile.secret) }}
- {name: iamgate-decision-log-otlp-ca, mountPath: /etc/iamgate/decision-log-otlp-ca, readOnly: true}
{{- end }}
{{- end }}

{{- define "iamgate.fleetVolumes" -}}
{{- $v := .Values }}
{{- $b := $v.bundle }}
{{- $l := $v.decisionLogShipping }}
{{- if $b.url }}
{{- include "iamgate.caVolume" (dict "name" "iamgate-bundle-ca" "ca" $b.caFile) }}
{{- if $b.cache.enabled }}
- name: iamgate-bundle-cache
  {{- if $b.cache.existingClaim }}
  persistentVolumeClaim: {claimName: {{ $b.cache.existingClaim }}}
  {{- else }}
  emptyDir: {sizeLimit: {{ $b.cache.sizeLimit }}}
  {{- end }}
{{- end }}
{{- end }}
{{- if $b.verifyKeys.keys }}
- name: iamgate-bundle-keys
  {{- if $b.verifyKeys.secret }}
  secret: {secretName: {{ $b.verifyKeys.secret }}, defaultMode: 0440}
  {{- else }}
  configMap: {name: {{ $b.verifyKeys.configMap }}}
  {{- end }}
{{- end }}
{{- if $v.shadowBundle.configMap.name }}
- name: iamgate-shadow-bundle
  configMap: {name: {{ $v.shadowBundle.configMap.name }}}
{{- else if $v.shadowBundle.volume }}
- name: iamgate-shadow-bundle
  {{- toYaml $v.shadowBundle.volume | nindent 2 }}
{{- end }}
{{- if $l.http.url }}
{{- include "iamgate.caVolume" (dict "name" "iamgate-decision-log-http-ca" "ca" $l.http.caFile) }}
{{- end }}
{{- if $l.otlp.endpoint }}
{{- include "iamgate.caVolume" (dict "name" "iamgate-decision-log-otlp-ca" "ca" $l.otlp.caFile) }}
{{- end }}
{{- end }}

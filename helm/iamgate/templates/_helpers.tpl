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
{{- if gt $sources 1 }}
{{- fail "bundle: set only one of configMap.name, files and volume" }}
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
{{- if $b.files }}/etc/iamgate/bundle
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
- --bundle={{ include "iamgate.bundlePath" . }}
- --grpc-listen={{ $bind }}:{{ $v.ports.grpc }}
- --http-listen={{ $bind }}:{{ $v.ports.http }}
- --admin-listen=0.0.0.0:{{ $v.ports.admin }}
{{- if $v.bundle.waitForBundle }}
- --wait-for-bundle
{{- end }}
{{- if $v.bundle.allowEmpty }}
- --allow-empty-bundle
{{- end }}
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
    - {name: iamgate-bundle, mountPath: /etc/iamgate/bundle, readOnly: true}
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
{{- $v := .Values }}
{{- $fullname := include "iamgate.fullname" . -}}
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

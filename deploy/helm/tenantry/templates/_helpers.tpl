{{/* Names */}}
{{- define "tenantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tenantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "tenantry.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tenantry.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tenantry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tenantry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: pass (dict "root" $ "component" "api") */}}
{{- define "tenantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "tenantry.labels" -}}
{{ include "tenantry.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tenantry
{{- end -}}

{{- define "tenantry.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag must name a release, not latest" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The Secret the pods read: the existing one, or the chart's. */}}
{{- define "tenantry.secretName" -}}
{{- default (include "tenantry.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Non-secret settings (ConfigMap data). */}}
{{- define "tenantry.configData" -}}
TENANTRY_ENV: production
TENANTRY_BIND: 0.0.0.0:8080
TENANTRY_DATA_DIR: /var/lib/tenantry/data
TENANTRY_PUBLIC_URL: {{ required "publicUrl is required (https://…)" .Values.publicUrl | quote }}
TENANTRY_STORAGE_URL: {{ printf "s3://%s" (required "s3.bucket is required" .Values.s3.bucket) | quote }}
TENANTRY_S3_ENDPOINT: {{ .Values.s3.endpoint | quote }}
TENANTRY_MAIL_FROM: {{ .Values.smtp.from | quote }}
TENANTRY_REDIS_KEY_PREFIX: {{ .Values.redis.keyPrefix | quote }}
TENANTRY_DATABASE_MAX_CONNECTIONS: {{ .Values.postgresql.maxConnections | quote }}
TENANTRY_JWT_PRIVATE_KEY_FILE: /var/run/secrets/tenantry/jwt-ed25519.pem
AWS_REGION: {{ .Values.s3.region | quote }}
{{- $reserved := list "TENANTRY_ENV" "TENANTRY_BIND" "TENANTRY_DATA_DIR" "TENANTRY_PUBLIC_URL" "TENANTRY_STORAGE_URL" "TENANTRY_S3_ENDPOINT" "TENANTRY_MAIL_FROM" "TENANTRY_REDIS_KEY_PREFIX" "TENANTRY_DATABASE_MAX_CONNECTIONS" "TENANTRY_JWT_PRIVATE_KEY_FILE" "AWS_REGION" "TENANTRY_DATABASE_URL" "TENANTRY_REDIS_URL" "TENANTRY_SMTP_URL" "TENANTRY_ENCRYPTION_KEY" "TENANTRY_JWT_PRIVATE_KEY" "TENANTRY_WORKERS" }}
{{- range $name, $value := .Values.config }}
{{- if has $name $reserved }}
{{- fail (printf "config.%s is set by the chart from its own values (or is a secret); set it there" $name) }}
{{- end }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Secret data, from values (only when no existingSecret). */}}
{{- define "tenantry.databaseUrl" -}}
{{- $pg := .root.Values.postgresql -}}
{{- /* urlquery writes a space as "+", which a URL's user part does not decode: use %20. */ -}}
{{- $user := urlquery .role.user | replace "+" "%20" -}}
{{- $password := required (printf "postgresql.%s.password is required (or secrets.existingSecret)" .name) .role.password | urlquery | replace "+" "%20" -}}
{{- printf "postgres://%s:%s@%s:%v/%s?sslmode=%s" $user $password (required "postgresql.host is required" $pg.host) $pg.port $pg.database $pg.sslmode -}}
{{- end -}}

{{- define "tenantry.secretData" -}}
database-url: {{ include "tenantry.databaseUrl" (dict "root" . "role" .Values.postgresql.app "name" "app") | b64enc | quote }}
migrate-database-url: {{ include "tenantry.databaseUrl" (dict "root" . "role" .Values.postgresql.migrator "name" "migrator") | b64enc | quote }}
redis-url: {{ required "redis.url is required (or secrets.existingSecret)" .Values.redis.url | b64enc | quote }}
smtp-url: {{ required "smtp.url is required (or secrets.existingSecret)" .Values.smtp.url | b64enc | quote }}
encryption-key: {{ required "secrets.encryptionKey is required (or secrets.existingSecret)" .Values.secrets.encryptionKey | b64enc | quote }}
aws-access-key-id: {{ .Values.s3.accessKeyId | b64enc | quote }}
aws-secret-access-key: {{ .Values.s3.secretAccessKey | b64enc | quote }}
jwt-ed25519.pem: {{ required "secrets.jwtPrivateKey is required (or secrets.existingSecret)" .Values.secrets.jwtPrivateKey | b64enc | quote }}
{{- end -}}

{{/* Environment of every container: pass (dict "root" $ "secret" NAME "config" NAME "databaseKey" KEY) */}}
{{- define "tenantry.env" -}}
envFrom:
  - configMapRef:
      name: {{ .config }}
env:
  - name: TENANTRY_DATABASE_URL
    valueFrom:
      secretKeyRef: {name: {{ .secret }}, key: {{ .databaseKey }}}
  - name: TENANTRY_REDIS_URL
    valueFrom:
      secretKeyRef: {name: {{ .secret }}, key: redis-url}
  - name: TENANTRY_SMTP_URL
    valueFrom:
      secretKeyRef: {name: {{ .secret }}, key: smtp-url}
  - name: TENANTRY_ENCRYPTION_KEY
    valueFrom:
      secretKeyRef: {name: {{ .secret }}, key: encryption-key}
  - name: AWS_ACCESS_KEY_ID
    valueFrom:
      secretKeyRef: {name: {{ .secret }}, key: aws-access-key-id}
  - name: AWS_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef: {name: {{ .secret }}, key: aws-secret-access-key}
{{- end -}}

{{- define "tenantry.volumeMounts" -}}
volumeMounts:
  - name: jwt
    mountPath: /var/run/secrets/tenantry
    readOnly: true
  - name: data
    mountPath: /var/lib/tenantry/data
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* pass (dict "secret" NAME) */}}
{{- define "tenantry.volumes" -}}
volumes:
  - name: jwt
    secret:
      secretName: {{ .secret }}
      defaultMode: 0440
      items:
        - key: jwt-ed25519.pem
          path: jwt-ed25519.pem
  # Production writes nothing here (database, files and mail are remote); it keeps the root
  # filesystem read-only whatever the defaults derive from it.
  - name: data
    emptyDir:
      sizeLimit: 64Mi
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
{{- end -}}

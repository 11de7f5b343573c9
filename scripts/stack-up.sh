#!/usr/bin/env bash
# Deploys (or updates) a pgha stack with the local file backend: selects or
# creates it, generates its secrets once, then runs `pulumi up`.
# Why generate secrets here: passwords must exist only as Pulumi secrets, so
# they are random per stack and stored encrypted in Pulumi.<stack>.yaml.
set -euo pipefail
STACK=${1:-${STACK:-dev}}
pulumi stack select --create "$STACK" >/dev/null
for key in postgresPassword replicationPassword redisPassword haproxyStatsPassword backupPassphrase; do
  if ! pulumi config get "pgha:$key" --stack "$STACK" >/dev/null 2>&1; then
    # 32 URL-safe characters: no quoting issues in DSNs or HAProxy's config.
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' \
      | pulumi config set --secret "pgha:$key" --stack "$STACK" >/dev/null
    echo "stack-up: generated pgha:$key" >&2
  fi
done
pulumi up --yes --skip-preview --stack "$STACK"

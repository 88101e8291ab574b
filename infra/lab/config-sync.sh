#!/usr/bin/env bash
# The config-sync job a fake systemd unit runs on the standby: every INTERVAL seconds it pulls the
# peer's config dir with rsync over ssh (the lab key, pinned host keys) and writes STATUS_FILE as the
# node agent reads it: {"lastSyncAt": ISO time, "lastResult": "ok" | "failed", "durationMs": n,
# "source": ..., "error": null | text}.
# A node that holds the VIP is the primary: it does not pull, and leaves the last status as it was.
# Stopping the unit (SIGTERM to the process group) pauses the sync.
set -euo pipefail

: "${SOURCE:?}" "${TARGET:?}" "${STATUS_FILE:?}" "${SSH_KEY:?}" "${KNOWN_HOSTS:?}" "${VIP:?}"
INTERVAL="${INTERVAL:-2}"
SSH="ssh -i $SSH_KEY -o UserKnownHostsFile=$KNOWN_HOSTS -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=3"

json_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/ }
  printf '"%s"' "$s"
}

holds_vip() {
  local addresses
  addresses="$(ip -o addr show 2>/dev/null)" || return 1
  [[ "$addresses" == *" $VIP/"* ]]
}

mkdir -p "$TARGET" "$(dirname "$STATUS_FILE")"
while true; do
  if ! holds_vip; then
    started=$(date +%s%3N)
    if output=$(rsync -a --delete --timeout=10 -e "$SSH" "$SOURCE" "$TARGET" 2>&1); then
      result=ok
      error=null
    else
      result=failed
      error=$(json_string "$output")
    fi
    printf '{"lastSyncAt":"%s","lastResult":"%s","durationMs":%s,"source":%s,"error":%s}\n' \
      "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$result" "$(($(date +%s%3N) - started))" \
      "$(json_string "$SOURCE")" "$error" >"$STATUS_FILE.tmp"
    mv "$STATUS_FILE.tmp" "$STATUS_FILE"
  fi
  sleep "$INTERVAL"
done

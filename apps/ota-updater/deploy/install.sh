#!/usr/bin/env bash
# Installs tope-updater on a printer, from the app directory this script sits in (a build of
# apps/ota-updater with its production node_modules, e.g. from `pnpm deploy --prod`):
#
#   deploy/install.sh [--prefix DIR] [--root DIR] [--factory VERSION_DIR] [--service NAME]...
#                     [--log-dir DIR] [--no-enable]
#
#   --prefix DIR       install under DIR instead of / (a test or an image being built)
#   --root DIR         install root of the versions (default <prefix>/opt/tope)
#   --factory DIR      an unpacked version: becomes the read-only factory version the first time
#   --service NAME     a service run through links that follow current (default: device-api):
#                      <prefix>/usr/local/bin/NAME and <root>/services/NAME
#   --log-dir DIR      where logs/updater.log goes (default <app>/logs)
#   --no-enable        do not call systemctl (daemon-reload, enable --now tope-updater.service)
#
# What it does, each step safe to run again and after an interruption:
#   1. an install of the old layout (<root>/factory a copy, <root>/current and previous) is
#      migrated in place (migrate_layout.sh; tope-updater.service is stopped first); then the
#      layout: versions/<v>/ with the factory version and versions/factory -> <v>
#      (create_factory_version.sh), versions/current -> factory and the service links
#      (setup_symlinks.sh), checked by verify_setup.sh;
#   2. <prefix>/etc/tope-updater.env, written once (OTA_ROOT, LOG_FILE=<log dir>/updater.log);
#   3. <prefix>/etc/systemd/system/tope-updater.service, pointing at this app directory;
#   4. systemctl daemon-reload && systemctl enable --now tope-updater.service ($SYSTEMCTL if set).
# Exit codes: 0 installed, 1 a step failed (its message says which), 2 bad arguments.
set -euo pipefail

app_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix=""
root=""
factory_source=""
enable=1
log_dir=""
services=()

usage() {
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) [[ $# -ge 2 ]] || usage; prefix="${2%/}"; shift 2 ;;
    --root) [[ $# -ge 2 ]] || usage; root="${2%/}"; shift 2 ;;
    --factory) [[ $# -ge 2 ]] || usage; factory_source="$2"; shift 2 ;;
    --service) [[ $# -ge 2 ]] || usage; services+=("$2"); shift 2 ;;
    --log-dir) [[ $# -ge 2 ]] || usage; log_dir="${2%/}"; shift 2 ;;
    --no-enable) enable=0; shift ;;
    -h | --help) usage ;;
    *) echo "install: unknown argument $1" >&2; usage ;;
  esac
done

root="${root:-$prefix/opt/tope}"
env_file="$prefix/etc/tope-updater.env"
unit_dir="$prefix/etc/systemd/system"
unit_file="$unit_dir/tope-updater.service"
log_dir="${log_dir:-$app_dir/logs}"
[[ ${#services[@]} -gt 0 ]] || services=(device-api)
systemctl="${SYSTEMCTL:-systemctl}"

step() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

[[ -f "$app_dir/dist/cli.js" ]] || die "$app_dir/dist/cli.js is missing: install a built app (pnpm --filter @upgrade/ota-updater build)"

# 1. Layout. An old install is migrated first, with the updater stopped (it would write the old
#    links). The factory is made once and never overwritten (the scripts refuse to).
if [[ (-d "$root/factory" && ! -L "$root/factory") || -L "$root/previous" ||
  (-L "$root/current" && "$(readlink "$root/current")" != versions/current) ]]; then
  if [[ "$enable" -eq 1 ]]; then
    "$systemctl" stop tope-updater.service || step "could not stop tope-updater.service; migrating anyway"
  fi
fi
# Always: it changes nothing on a migrated install and finishes an interrupted migration.
"$app_dir/scripts/migrate_layout.sh" --bin-dir "$prefix/usr/local/bin" "$root"
if [[ ! -d "$root/versions/factory" ]]; then
  [[ -n "$factory_source" ]] || die "$root/versions/factory does not exist: pass --factory <unpacked version dir>"
  "$app_dir/scripts/create_factory_version.sh" "$root" "$factory_source"
elif [[ -n "$factory_source" ]]; then
  step "$root/versions/factory exists; --factory ignored (the factory version is never replaced)"
fi
service_args=()
for name in "${services[@]}"; do service_args+=(--service "$name"); done
"$app_dir/scripts/setup_symlinks.sh" --bin-dir "$prefix/usr/local/bin" "${service_args[@]}" "$root"
"$app_dir/scripts/verify_setup.sh" "$root" || die "the layout under $root does not verify (see the FAIL lines above)"

# 2. Configuration, written once: an operator's edits survive a re-install.
mkdir -p "$(dirname "$env_file")" "$log_dir"
if [[ -e "$env_file" ]]; then
  step "$env_file exists; left as it is"
else
  tmp="$env_file.tmp-$$"
  {
    echo "# tope-updater configuration; apps/ota-updater/.env.example documents every variable."
    echo "OTA_ROOT=$root"
    echo "# JSON lines, rotated at 10 MB keeping 3 files."
    echo "LOG_FILE=$log_dir/updater.log"
  } >"$tmp"
  mv -f "$tmp" "$env_file"
  step "wrote $env_file"
fi

# 3. The unit, pointing at this app directory and this configuration file.
mkdir -p "$unit_dir"
tmp="$unit_file.tmp-$$"
sed -e "s#/opt/tope/updater#$app_dir#g" -e "s#/etc/tope-updater.env#$env_file#g" \
  "$app_dir/deploy/tope-updater.service" >"$tmp"
mv -f "$tmp" "$unit_file"
step "wrote $unit_file"

# 4. Enable and start.
if [[ "$enable" -eq 1 ]]; then
  "$systemctl" daemon-reload || die "systemctl daemon-reload failed"
  "$systemctl" enable --now tope-updater.service || die "systemctl enable --now tope-updater.service failed"
  step "tope-updater.service enabled and started"
else
  step "not enabled (--no-enable): systemctl daemon-reload && systemctl enable --now tope-updater.service"
fi
step "done: root $root, app $app_dir, logs $log_dir/updater.log"

#!/usr/bin/env bash
# Prepares the links under <root>/versions and the service links that follow `current`.
#
#   setup_symlinks.sh [--bin-dir DIR] [--service NAME]... [<root>]   (root: $OTA_ROOT or /opt/tope)
#
#   versions/current -> factory                          when current is missing
#   <bin-dir>/NAME -> <root>/versions/current/bin/NAME   for each --service (bin-dir: /usr/local/bin)
#   <root>/services/NAME -> <root>/versions/current/services/NAME
#
# Run after create_factory_version.sh. Safe to run again: existing links are left alone, and a new
# link is made under a temp name and renamed into place, as the updater itself does.
set -euo pipefail

root=""
bin_dir="/usr/local/bin"
services=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin-dir) [[ $# -ge 2 ]] || { echo "setup_symlinks: --bin-dir needs a directory" >&2; exit 2; }; bin_dir="${2%/}"; shift 2 ;;
    --service) [[ $# -ge 2 ]] || { echo "setup_symlinks: --service needs a name" >&2; exit 2; }; services+=("$2"); shift 2 ;;
    -*) echo "setup_symlinks: unknown option $1" >&2; exit 2 ;;
    *) root="${1%/}"; shift ;;
  esac
done
root="${root:-${OTA_ROOT:-/opt/tope}}"
versions="$root/versions"

if [[ ! -L "$versions/factory" || ! -d "$versions/factory" ]]; then
  echo "setup_symlinks: $versions/factory is missing; run create_factory_version.sh first" >&2
  exit 1
fi

# `link <path> <target>`: creates <path> -> <target> unless <path> is a link already.
link() {
  local path="$1" target="$2"
  if [[ -L "$path" ]]; then
    echo "setup_symlinks: $path exists -> $(readlink "$path")"
  elif [[ -e "$path" ]]; then
    echo "setup_symlinks: $path exists but is not a symlink; move it away and run again" >&2
    exit 1
  else
    mkdir -p "$(dirname "$path")"
    local tmp
    tmp="$(dirname "$path")/.$(basename "$path").tmp-$$"
    ln -sfn "$target" "$tmp"
    mv -T "$tmp" "$path"
    sync "$(dirname "$path")" 2>/dev/null || sync
    echo "setup_symlinks: created $path -> $target"
  fi
}

link "$versions/current" factory
for name in "${services[@]}"; do
  if [[ ! "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
    echo "setup_symlinks: --service $name is not a plain file name" >&2
    exit 2
  fi
  link "$bin_dir/$name" "$root/versions/current/bin/$name"
  link "$root/services/$name" "$root/versions/current/services/$name"
done

#!/usr/bin/env bash
# Prepares the snapshot layout under <root>: versions/ and, when missing, current -> factory.
#
#   setup_symlinks.sh [<root>]     (default: $OTA_ROOT or /opt/tope)
#
# Run after create_factory_version.sh. Safe to run again: existing links are left alone, and a new
# link is made under a temp name and renamed into place, as the updater itself does.
set -euo pipefail

root="${1:-${OTA_ROOT:-/opt/tope}}"

if [[ ! -d "$root/factory" ]]; then
  echo "setup_symlinks: $root/factory is missing; run create_factory_version.sh first" >&2
  exit 1
fi

mkdir -p "$root/versions"

if [[ -L "$root/current" ]]; then
  echo "setup_symlinks: $root/current exists -> $(readlink "$root/current")"
elif [[ -e "$root/current" ]]; then
  echo "setup_symlinks: $root/current exists but is not a symlink; move it away and run again" >&2
  exit 1
else
  tmp="$root/current.tmp-$$"
  ln -sfn factory "$tmp"
  mv -T "$tmp" "$root/current"
  sync "$root" 2>/dev/null || sync
  echo "setup_symlinks: created $root/current -> factory"
fi

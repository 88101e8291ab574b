#!/usr/bin/env bash
# Creates the read-only factory snapshot <root>/factory from an unpacked version, once.
#
#   create_factory_version.sh <root> <version-dir>
#   create_factory_version.sh <version-dir>            (root from $OTA_ROOT, default /opt/tope)
#
# The copy is made in a temp dir beside it and renamed into place, so a power cut never leaves a
# half-copied factory. Directories become 0555, files 0444 (0555 when they were executable, so the
# device can still run its factory version). Running it again when the factory exists changes
# nothing: the factory is the last line of rollback and is never overwritten by a script.
set -euo pipefail

usage() {
  echo "usage: $0 [<root>] <version-dir>   (root default: \$OTA_ROOT or /opt/tope)" >&2
  exit 2
}

case $# in
  1) root="${OTA_ROOT:-/opt/tope}" source_dir="$1" ;;
  2) root="$1" source_dir="$2" ;;
  *) usage ;;
esac

factory="$root/factory"

if [[ ! -d "$source_dir" ]]; then
  echo "create_factory_version: $source_dir is not a directory" >&2
  exit 1
fi
if [[ -n "$(find "$source_dir" -type l -print -quit)" ]]; then
  echo "create_factory_version: $source_dir contains symbolic links; a factory snapshot must not" >&2
  exit 1
fi
if [[ ! -f "$source_dir/manifest.json" ]]; then
  echo "create_factory_version: $source_dir has no manifest.json; the updater needs it to know which services to start" >&2
  exit 1
fi

if [[ -e "$factory" || -L "$factory" ]]; then
  if [[ -L "$factory" || ! -d "$factory" ]]; then
    echo "create_factory_version: $factory exists but is not a directory; fix it by hand" >&2
    exit 1
  fi
  if ! diff -rq "$source_dir" "$factory" >/dev/null 2>&1; then
    echo "create_factory_version: $factory already exists and differs from $source_dir; left unchanged" >&2
  fi
  echo "create_factory_version: $factory already exists"
  exit 0
fi

mkdir -p "$root"
tmp="$(mktemp -d "$root/.factory.tmp-XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT

cp -R --no-preserve=ownership "$source_dir/." "$tmp/"
# Executables stay executable (r-x), everything else is r--; nobody may write.
find "$tmp" -type f -perm /0111 -exec chmod 0555 {} +
find "$tmp" -type f ! -perm /0111 -exec chmod 0444 {} +
find "$tmp" -type f -exec sync {} + 2>/dev/null || sync
find "$tmp" -depth -type d -exec chmod 0555 {} +

mv -T "$tmp" "$factory"
trap - EXIT
sync "$root" 2>/dev/null || sync
echo "create_factory_version: created $factory from $source_dir"

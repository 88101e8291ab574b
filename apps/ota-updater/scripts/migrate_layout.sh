#!/usr/bin/env bash
# Moves an install of the old layout to the snapshot layout, in place:
#
#   old                                     new
#   <root>/factory/            (a copy)     <root>/versions/<v>/ (the same directory, renamed)
#                                           <root>/versions/factory -> <v>
#   <root>/current -> factory | versions/v  <root>/versions/current -> factory | v
#   <root>/previous -> ...                  <root>/versions/previous -> ...
#   <bin-dir>/X, <root>/services/X -> <root>/current/...   -> <root>/versions/current/...
#
#   migrate_layout.sh [--bin-dir DIR] [<root>]     (root: $OTA_ROOT or /opt/tope; bin-dir /usr/local/bin)
#
# Nothing is copied: the factory directory is renamed, links are rewritten by renaming a temp link
# over them. <root>/current stays as a link to versions/current, so a unit still written against
# the old path keeps running the current version. Every step is checked before it is done, so the
# script is safe to run again and to run after it was interrupted (power cut) at any point; a new
# layout is left as it is. Stop tope-updater.service before running it (install.sh does).
set -euo pipefail

root=""
bin_dir="/usr/local/bin"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin-dir) [[ $# -ge 2 ]] || { echo "migrate_layout: --bin-dir needs a directory" >&2; exit 2; }; bin_dir="${2%/}"; shift 2 ;;
    -*) echo "migrate_layout: unknown option $1" >&2; exit 2 ;;
    *) root="${1%/}"; shift ;;
  esac
done
root="${root:-${OTA_ROOT:-/opt/tope}}"
versions="$root/versions"

say() { echo "migrate_layout: $*"; }
die() {
  echo "migrate_layout: $*" >&2
  exit 1
}
# `relink <path> <target>`: <path> -> <target>, by renaming a temp link over it.
relink() {
  local tmp
  tmp="$(dirname "$1")/.$(basename "$1").tmp-$$"
  ln -sfn "$2" "$tmp"
  mv -T "$tmp" "$1"
}

[[ -d "$root" ]] || { say "$root does not exist; nothing to migrate"; exit 0; }
mkdir -p "$versions"
# Temp links an interrupted run left, and what the old updater and scripts could leave in the
# root after a cut (current.tmp-* links, a half-made .factory.tmp-* copy).
find "$root" "$versions" -maxdepth 1 -type l \( -name '.current.tmp-*' -o -name '.previous.tmp-*' -o -name '.factory.tmp-*' \) -delete
find "$root" -maxdepth 1 -type l \( -name 'current.tmp-*' -o -name 'previous.tmp-*' \) -delete
find "$root" -maxdepth 1 -type d -name '.factory.tmp-*' -exec chmod -R u+w {} + -exec rm -rf {} +
migrated=0

# 1. The factory copy becomes a version directory, reached through versions/factory. The link is
#    written first (dangling for a moment): a re-run reads the name from it and finishes the move.
if [[ -d "$root/factory" && ! -L "$root/factory" ]]; then
  if [[ -L "$versions/factory" ]]; then
    name="$(readlink "$versions/factory")"
  elif [[ -e "$versions/factory" ]]; then
    die "$versions/factory exists but is not a symlink; fix it by hand"
  else
    version="$(node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(typeof m.version === "string" ? m.version : "")' "$root/factory/manifest.json" 2>/dev/null)" ||
      die "$root/factory/manifest.json is missing or not JSON: cannot tell the factory's version"
    [[ "$version" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$ && ! "$version" =~ ^(current|previous|factory)$ ]] ||
      die "$root/factory/manifest.json declares no usable version (\"$version\")"
    name="$version"
    # A deployed copy of the same version keeps its name (a link may point at it).
    [[ ! -e "$versions/$name" ]] || name="$version~$(md5sum "$root/factory/manifest.json" | cut -c1-8)"
    relink "$versions/factory" "$name"
    sync "$versions" 2>/dev/null || sync
  fi
  [[ "$name" != */* && ! -e "$versions/$name" ]] ||
    die "$root/factory and $versions/$name both exist; fix it by hand"
  # Renaming a directory into another one needs write access to it (its ..), even when read-only.
  chmod u+w "$root/factory"
  mv -T "$root/factory" "$versions/$name"
  chmod 0555 "$versions/$name"
  sync "$root" "$versions" 2>/dev/null || sync
  say "moved $root/factory to $versions/$name; $versions/factory -> $name"
  migrated=1
elif [[ -L "$versions/factory" ]]; then
  # A re-run after the move: the directory may still have its owner's write bit.
  chmod 0555 "$(realpath "$versions/factory")" 2>/dev/null || true
fi

# 2. current and previous move into versions/. A link already there is newer than the old one
#    (the updater may have switched it since an interrupted run): it is kept.
for name in current previous; do
  old="$root/$name"
  if [[ ! -L "$old" ]]; then
    [[ ! -e "$old" ]] || die "$old exists but is not a symlink; fix it by hand"
    continue
  fi
  text="$(readlink "$old")"
  [[ "$name" != current || "$text" != versions/current ]] || continue
  if [[ ! -L "$versions/$name" ]]; then
    case "$text" in
      factory | "$root/factory") target=factory ;;
      versions/*) target="${text#versions/}" ;;
      "$root/versions/"*) target="${text#"$root"/versions/}" ;;
      *) die "$old -> $text points neither at the factory nor at a version; fix it by hand" ;;
    esac
    [[ -n "$target" && "$target" != */* ]] || die "$old -> $text is not a version; fix it by hand"
    relink "$versions/$name" "$target"
    sync "$versions" 2>/dev/null || sync
    say "$versions/$name -> $target"
  fi
  if [[ "$name" == current ]]; then
    relink "$old" versions/current
  else
    rm -f "$old"
  fi
  sync "$root" 2>/dev/null || sync
  migrated=1
done

# 3. Service links through the old current now go through versions/current.
for dir in "$bin_dir" "$root/services"; do
  [[ -d "$dir" ]] || continue
  while IFS= read -r path; do
    text="$(readlink "$path")"
    case "$text" in
      "$root/current/"*)
        relink "$path" "$root/versions/current/${text#"$root"/current/}"
        say "$path -> $root/versions/current/${text#"$root"/current/}"
        migrated=1
        ;;
    esac
  done < <(find "$dir" -mindepth 1 -maxdepth 1 -type l)
done

if ((migrated)); then
  say "done: $root uses the versions/ layout"
else
  say "$root already uses the versions/ layout"
fi

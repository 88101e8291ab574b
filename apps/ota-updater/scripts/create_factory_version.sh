#!/usr/bin/env bash
# Creates the read-only factory version from an unpacked version, once:
#   <root>/versions/<version>/          the copy, read-only
#   <root>/versions/factory -> <version>
#
#   create_factory_version.sh <root> <version-dir>
#   create_factory_version.sh <version-dir>            (root from $OTA_ROOT, default /opt/tope)
#
# <version> is the version manifest.json declares; when versions/<version> already exists (a
# deployed copy), the factory goes to versions/<version>~<8 hex of its manifest's MD5> instead.
# The factory link is written first (by renaming a temp link over it), then the copy is made in a
# temp dir and renamed into place: a power cut leaves the link dangling at worst, and running the
# script again finishes the copy. Directories become 0555, files 0444 (0555 when they were
# executable, so the device can still run its factory version). Running it again when the factory
# exists changes nothing: the factory is the last line of rollback and is never overwritten.
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

versions="$root/versions"
link="$versions/factory"
die() {
  echo "create_factory_version: $*" >&2
  exit 1
}

[[ -d "$source_dir" ]] || die "$source_dir is not a directory"
if [[ -n "$(find "$source_dir" -type l -print -quit)" ]]; then
  die "$source_dir contains symbolic links; a factory version must not"
fi
[[ -f "$source_dir/manifest.json" ]] ||
  die "$source_dir has no manifest.json; the updater needs it to know which services to start"
version="$(node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(typeof m.version === "string" ? m.version : "")' "$source_dir/manifest.json" 2>/dev/null)" ||
  die "$source_dir/manifest.json is not valid JSON"
if [[ ! "$version" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$ || "$version" =~ ^(current|previous|factory)$ ]]; then
  die "$source_dir/manifest.json declares no usable version (\"$version\")"
fi

mkdir -p "$versions"
# Leftovers of an interrupted run: a partial copy, a temp link.
rm -rf "$versions"/.factory-copy-* 2>/dev/null || true
find "$versions" -maxdepth 1 -name '.factory.tmp-*' -type l -delete 2>/dev/null || true

if [[ -L "$link" ]]; then
  name="$(readlink "$link")"
  if [[ -d "$versions/$name" ]]; then
    if ! diff -rq "$source_dir" "$versions/$name" >/dev/null 2>&1; then
      echo "create_factory_version: the factory ($link -> $name) already exists and differs from $source_dir; left unchanged" >&2
    fi
    echo "create_factory_version: $link -> $name already exists"
    exit 0
  fi
  # The link was written, the copy did not land (interrupted): finish it, for the same version.
  [[ "$name" == "$version" || "$name" == "$version~"* ]] ||
    die "$link -> $name is dangling and $source_dir holds $version; fix it by hand"
elif [[ -e "$link" ]]; then
  die "$link exists but is not a symlink; fix it by hand"
else
  name="$version"
  if [[ -e "$versions/$name" || -L "$versions/$name" ]]; then
    name="$version~$(md5sum "$source_dir/manifest.json" | cut -c1-8)"
    [[ ! -e "$versions/$name" ]] || die "$versions/$version and $versions/$name both exist; fix it by hand"
  fi
  ln -sfn "$name" "$versions/.factory.tmp-$$"
  mv -T "$versions/.factory.tmp-$$" "$link"
fi

tmp="$(mktemp -d "$versions/.factory-copy-XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT

cp -R --no-preserve=ownership "$source_dir/." "$tmp/"
# Executables stay executable (r-x), everything else is r--; nobody may write.
find "$tmp" -type f -perm /0111 -exec chmod 0555 {} +
find "$tmp" -type f ! -perm /0111 -exec chmod 0444 {} +
find "$tmp" -type f -exec sync {} + 2>/dev/null || sync
find "$tmp" -depth -type d -exec chmod 0555 {} +

mv -T "$tmp" "$versions/$name"
trap - EXIT
sync "$versions" 2>/dev/null || sync
echo "create_factory_version: created $versions/$name from $source_dir and $link -> $name"

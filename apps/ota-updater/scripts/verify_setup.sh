#!/usr/bin/env bash
# Checks the snapshot layout under <root> and says what is wrong.
#
#   verify_setup.sh [<root>]     (default: $OTA_ROOT or /opt/tope)
#
# Prints one OK or FAIL line per check; exits 0 when all pass, 1 otherwise.
set -euo pipefail

root="${1:-${OTA_ROOT:-/opt/tope}}"
root="${root%/}"
versions="$root/versions"
problems=0

ok() { echo "OK   $*"; }
# The first few matches of find: head closing the pipe early must not trip pipefail.
first_few() { find "$@" 2>/dev/null | head -n 5 || true; }
fail() {
  echo "FAIL $*"
  problems=$((problems + 1))
}

if [[ ! -d "$root" ]]; then
  fail "$root does not exist"
  echo "verify_setup: $problems problem(s)"
  exit 1
fi

if [[ -d "$versions" && ! -L "$versions" ]]; then
  ok "versions/ exists"
else
  fail "versions/ is missing or not a directory (run setup_symlinks.sh $root)"
  echo "verify_setup: $problems problem(s)"
  exit 1
fi
real_versions="$(realpath "$versions")"

# versions/<name> must be a link to a version directory in versions/ (or, for current and
# previous, to the factory link); prints the directory it resolves to.
check_link() {
  local name="$1" required="$2" path="$versions/$1" target resolved
  if [[ ! -L "$path" ]]; then
    if [[ -e "$path" ]]; then
      fail "versions/$name exists but is not a symlink"
    elif [[ "$required" == yes ]]; then
      fail "versions/$name is missing (run setup_symlinks.sh $root)"
    else
      ok "versions/$name is not set (no update installed yet)"
    fi
    return 1
  fi
  target="$(readlink "$path")"
  if [[ "$name" != factory && "$target" == factory ]]; then
    ok "versions/$name -> factory"
    return 0
  fi
  if ! resolved="$(realpath -e "$path" 2>/dev/null)"; then
    fail "versions/$name -> $target does not resolve (dangling link)"
    return 1
  fi
  if [[ "$(dirname "$resolved")" != "$real_versions" ]]; then
    fail "versions/$name -> $target is not a version directory in $versions"
  elif [[ ! -f "$resolved/manifest.json" ]]; then
    fail "versions/$name -> $target has no manifest.json"
  else
    ok "versions/$name -> $target"
    return 0
  fi
  return 1
}

if check_link factory yes; then
  factory_dir="$(realpath "$versions/factory")"
  writable_dirs="$(first_few "$factory_dir" -type d ! -perm 0555)"
  writable_files="$(first_few "$factory_dir" -type f ! -perm 0444 ! -perm 0555)"
  links="$(first_few "$factory_dir" -type l)"
  if [[ -z "$writable_dirs" && -z "$writable_files" && -z "$links" ]]; then
    ok "the factory version is read-only (dirs 0555, files 0444/0555)"
  else
    [[ -z "$writable_dirs" ]] || fail "the factory version has directories not 0555: ${writable_dirs//$'\n'/, }"
    [[ -z "$writable_files" ]] || fail "the factory version has files not 0444/0555: ${writable_files//$'\n'/, }"
    [[ -z "$links" ]] || fail "the factory version contains symbolic links: ${links//$'\n'/, }"
  fi
elif [[ -d "$root/factory" && ! -L "$root/factory" ]]; then
  echo "NOTE $root/factory is the old layout's factory copy: deploy/install.sh moves it into versions/"
fi

check_link current yes || true
check_link previous no || true

# Service links (setup_symlinks.sh --service) must follow versions/current.
for path in "$root"/services/*; do
  [[ -L "$path" ]] || continue
  target="$(readlink "$path")"
  case "$target" in
    "$root/versions/current/"*) ok "services/$(basename "$path") -> $target" ;;
    *) fail "services/$(basename "$path") -> $target does not go through $root/versions/current" ;;
  esac
done

if [[ -L "$root/previous" || (-L "$root/current" && "$(readlink "$root/current")" != versions/current) ]]; then
  fail "$root/current or $root/previous is a link of the old layout (run deploy/install.sh to migrate)"
fi

stale="$(first_few "$root" "$versions" -mindepth 1 -maxdepth 1 \( -name '.*.tmp-*' -o -name '.factory-copy-*' -o -name '.unpack-*' -o -name '.trash-*' \))"
if [[ -n "$stale" ]]; then
  echo "NOTE leftovers of an interrupted update (removed by the updater at start): ${stale//$'\n'/, }"
fi

if ((problems == 0)); then
  echo "verify_setup: OK"
  exit 0
fi
echo "verify_setup: $problems problem(s)"
exit 1

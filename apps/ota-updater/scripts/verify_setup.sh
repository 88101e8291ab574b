#!/usr/bin/env bash
# Checks the snapshot layout under <root> and says what is wrong.
#
#   verify_setup.sh [<root>]     (default: $OTA_ROOT or /opt/tope)
#
# Prints one OK or FAIL line per check; exits 0 when all pass, 1 otherwise.
set -euo pipefail

root="${1:-${OTA_ROOT:-/opt/tope}}"
problems=0

ok() { echo "OK   $*"; }
# The first few matches of find: head closing the pipe early must not trip pipefail.
first_few() { find "$@" 2>/dev/null | head -n 5 || true; }
fail() {
  echo "FAIL $*"
  problems=$((problems + 1))
}

# A link must be relative to the root or absolute into it, and resolve to versions/<v> or factory.
check_link() {
  local name="$1" required="$2" path="$root/$1" target resolved
  if [[ ! -L "$path" ]]; then
    if [[ -e "$path" ]]; then
      fail "$name exists but is not a symlink"
    elif [[ "$required" == yes ]]; then
      fail "$name is missing (run setup_symlinks.sh $root)"
    else
      ok "$name is not set (no update installed yet)"
    fi
    return
  fi
  target="$(readlink "$path")"
  if ! resolved="$(cd "$root" && realpath -e "$path" 2>/dev/null)"; then
    fail "$name -> $target does not resolve (dangling link)"
    return
  fi
  local real_root
  real_root="$(realpath "$root")"
  case "$resolved" in
    "$real_root/factory" | "$real_root"/versions/*)
      if [[ "$resolved" == "$real_root"/versions/*/* ]]; then
        fail "$name -> $target points inside a version, not at one"
      elif [[ ! -f "$resolved/manifest.json" ]]; then
        fail "$name -> $target has no manifest.json"
      else
        ok "$name -> $target"
      fi
      ;;
    *) fail "$name -> $target points outside $root/versions and $root/factory" ;;
  esac
}

if [[ ! -d "$root" ]]; then
  fail "$root does not exist"
  echo "verify_setup: $problems problem(s)"
  exit 1
fi

if [[ -d "$root/versions" && ! -L "$root/versions" ]]; then
  ok "versions/ exists"
else
  fail "versions/ is missing or not a directory (run setup_symlinks.sh $root)"
fi

if [[ -L "$root/factory" || ! -d "$root/factory" ]]; then
  fail "factory/ is missing or not a real directory (run create_factory_version.sh $root <version-dir>)"
else
  writable_dirs="$(first_few "$root/factory" -type d ! -perm 0555)"
  writable_files="$(first_few "$root/factory" -type f ! -perm 0444 ! -perm 0555)"
  links="$(first_few "$root/factory" -type l)"
  if [[ -z "$writable_dirs" && -z "$writable_files" && -z "$links" ]]; then
    ok "factory/ is read-only (dirs 0555, files 0444/0555)"
  else
    [[ -z "$writable_dirs" ]] || fail "factory/ has directories not 0555: ${writable_dirs//$'\n'/, }"
    [[ -z "$writable_files" ]] || fail "factory/ has files not 0444/0555: ${writable_files//$'\n'/, }"
    [[ -z "$links" ]] || fail "factory/ contains symbolic links: ${links//$'\n'/, }"
  fi
  if [[ -f "$root/factory/manifest.json" ]]; then
    ok "factory/manifest.json exists"
  else
    fail "factory/manifest.json is missing: the updater cannot restart the factory's services"
  fi
fi

check_link current yes
check_link previous no

stale="$(first_few "$root" "$root/versions" -mindepth 1 -maxdepth 1 \( -name '.*' -o -name '*.tmp-*' \))"
if [[ -n "$stale" ]]; then
  echo "NOTE leftovers of an interrupted update (removed by the updater at start): ${stale//$'\n'/, }"
fi

if ((problems == 0)); then
  echo "verify_setup: OK"
  exit 0
fi
echo "verify_setup: $problems problem(s)"
exit 1

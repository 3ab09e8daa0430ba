#!/usr/bin/env bash
# `npm run demo`: sets the machine up, then shows burrow as an unprivileged
# user (the test user when run as root, yourself otherwise).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup.sh"

if [ "$(id -u)" = 0 ]; then
  user=${BURROW_TEST_USER:-burrowtest}
  uid=$(id -u "$user") gid=$(id -g "$user") home=$(getent passwd "$user" | cut -d: -f6)
  bin=${BURROW_BIN:-${BURROW_TEST_BIN:-/usr/local/lib/burrow-test/burrow}}
  # The same clean environment the integration tests use (test/helpers/env.ts).
  as_user() {
    (cd "$home" && env -i HOME="$home" USER="$user" LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin \
      XDG_RUNTIME_DIR="/run/user/$uid" TMPDIR="${BURROW_TEST_TMPDIR:-$home/tmp}" LANG=C.UTF-8 \
      setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@")
  }
else
  user=$(id -un)
  bin=${BURROW_BIN:-$repo/dist/burrow}
  as_user() { "$@"; }
fi

step() { printf '\n$ %s\n' "$*"; }

echo "burrow demo, as $user (uid $(id -u "$user")): a sandbox with its own network and hostname"
# TEMPORARY: to be extended to publish a port and fetch a page with curl.
step burrow run --rm --hostname demo -- sh -c "'hostname; ip -br addr'"
as_user "$bin" run --rm --hostname demo -- sh -c 'hostname; ip -br addr'

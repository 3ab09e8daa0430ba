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

# A free host port (the demo must not fail because 18080 is taken).
port=18080
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

site=$(as_user sh -c 'd=$(mktemp -d "${TMPDIR:-/tmp}/burrow-demo.XXXXXX") && echo "$d"')
as_user sh -c "echo '<h1>hello from a burrow sandbox</h1>' > '$site/index.html'"
cleanup() {
  as_user "$bin" rm -f demo-web >/dev/null 2>&1 || true
  as_user rm -rf "$site"
}
trap cleanup EXIT

echo "burrow demo, as $user (uid $(id -u "$user")): a web server in a rootless network sandbox, published on the host"
step burrow run -d --name demo-web -p 127.0.0.1:$port:80 -- busybox httpd -f -p 80 -h "$site"
as_user "$bin" run -d --name demo-web -p "127.0.0.1:$port:80" -- busybox httpd -f -p 80 -h "$site"
step burrow ps
as_user "$bin" ps
step burrow port demo-web
as_user "$bin" port demo-web
step burrow exec demo-web -- sh -c "'hostname; ip -br addr; cat /etc/resolv.conf'"
as_user "$bin" exec demo-web -- sh -c 'hostname; ip -br addr; cat /etc/resolv.conf'
step curl -s http://127.0.0.1:$port/
for i in $(seq 1 50); do
  page=$(curl -s --max-time 2 "http://127.0.0.1:$port/") && break
  sleep 0.1
done
echo "$page"
case "$page" in *"hello from a burrow sandbox"*) ;; *) echo "demo: the page did not come through the published port" >&2; exit 1 ;; esac
step burrow rm -f demo-web
as_user "$bin" rm -f demo-web
trap - EXIT
as_user rm -rf "$site"
echo
echo "demo done: the sandbox and its port are gone again."

# Shared by the scripts in scripts/bench/ (sourced, not run). Root runs the
# scripts; everything measured runs as the unprivileged test user, with a
# private burrow runtime and state dir so other people's daemons and tests on
# this machine are neither used nor disturbed.
#
# Environment: BURROW_TEST_USER (burrowtest), BENCH_ROOTFS
# (~USER/bench-rootfs, made by setup-peers.sh), BENCH_BURROW (a burrow binary
# to measure instead of a snapshot of dist/burrow), BENCH_CONTAINERS_CONF
# (podman's CONTAINERS_CONF, instead of the test user's containers.conf that
# setup-peers.sh writes: for a machine shared with people whose tests must
# not see that file), BENCH_NAME (a suffix for burrow's bench dirs, so two
# people benchmarking at once do not share, and replace, one daemon).

bench_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench_bun=$bench_repo/node_modules/.bin/bun
bench_out=$bench_repo/.bench # gitignored: JSON exports and the binary snapshot
bench_user=${BURROW_TEST_USER:-burrowtest}
bench_uid=$(id -u "$bench_user")
bench_gid=$(id -g "$bench_user")
bench_home=$(getent passwd "$bench_user" | cut -d: -f6)
bench_tmp=$bench_home/tmp
bench_rootfs=${BENCH_ROOTFS:-$bench_home/bench-rootfs}
bench_runtime=/run/user/$bench_uid/burrow-bench${BENCH_NAME:+-$BENCH_NAME}
bench_state=$bench_home/.local/share/burrow-bench${BENCH_NAME:+-$BENCH_NAME}

bench_die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

bench_require() {
  [ "$(id -u)" = 0 ] || bench_die "run as root: it runs the measured commands as $bench_user with setpriv"
  [ -x "$bench_bun" ] || bench_die "node_modules/.bin/bun is missing: run scripts/setup.sh"
  local c
  for c in "$@"; do command -v "$c" >/dev/null || bench_die "$c is not installed: run scripts/bench/setup-peers.sh"; done
  [ -d "$bench_rootfs/bin" ] || bench_die "no busybox rootfs at $bench_rootfs: run scripts/bench/setup-peers.sh"
  mkdir -p "$bench_out"
}

# as_user CMD...: CMD as the test user, with the clean environment the
# integration tests use. as_burrow adds burrow's private bench dirs (podman's
# helpers would inherit them too, so peers run under as_user). For a
# background job use the argv arrays, `"${as_user_argv[@]}" CMD &`: env and
# setpriv exec, so $! is CMD's pid (a backgrounded function would be a bash
# subshell that a kill does not pass on).
bench_env=(HOME="$bench_home" USER="$bench_user" LOGNAME="$bench_user" PATH=/usr/local/bin:/usr/bin:/bin
  XDG_RUNTIME_DIR="/run/user/$bench_uid" TMPDIR="$bench_tmp" LANG=C.UTF-8)
[ -z "${BENCH_CONTAINERS_CONF:-}" ] || bench_env+=(CONTAINERS_CONF="$BENCH_CONTAINERS_CONF")
burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_IDLE_TIMEOUT=60)
setpriv_argv=(setpriv --reuid="$bench_uid" --regid="$bench_gid" --init-groups --)
as_user_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${setpriv_argv[@]}")
as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")
as_user() { "${as_user_argv[@]}" "$@"; }
as_burrow() { "${as_burrow_argv[@]}" "$@"; }

# bench_burrow: prints the binary to measure. Others rebuild dist/burrow while
# we run, so measure a copy (new inode each time: a running daemon keeps its
# own). The test user can read .bench/ (the repo is 0755 here).
bench_burrow() {
  if [ -n "${BENCH_BURROW:-}" ]; then echo "$BENCH_BURROW"; return; fi
  [ -x "$bench_repo/dist/burrow" ] || bench_die "dist/burrow is missing: node_modules/.bin/bun run build"
  if ! cmp -s "$bench_repo/dist/burrow" "$bench_out/burrow"; then
    install -m 0755 "$bench_repo/dist/burrow" "$bench_out/burrow.new.$$"
    mv -f "$bench_out/burrow.new.$$" "$bench_out/burrow"
  fi
  echo "$bench_out/burrow"
}

# free_port START: the first TCP port from START up that nothing on
# 127.0.0.1 accepts and no listener holds on any address.
free_port() {
  local p=$1
  while ss -Htln "sport = :$p" | grep -q . || (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# json EXPR FILE...: evaluates a JS expression with the parsed files in j[].
json() {
  local expr=$1
  shift
  "$bench_bun" -e "const j = await Promise.all(process.argv.slice(1).map((f) => Bun.file(f).json())); const r = ($expr); if (r !== undefined) console.log(r)" "$@"
}
# calc EXPR: arithmetic with two decimals.
calc() { "$bench_bun" -e "console.log(Number($1).toFixed(2))"; }

# pids_with_env VAR=VALUE [COMM...]: pids of the test user's processes whose
# environment holds exactly VAR=VALUE (and, if given, whose comm is one of
# COMM). That is how the scripts find what they started and nothing else.
pids_with_env() {
  local want=$1 pid
  shift
  for pid in $(pgrep -u "$bench_uid" 2>/dev/null); do
    if [ $# -gt 0 ]; then
      local comm c ok=0
      comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
      for c in "$@"; do [ "$comm" = "$c" ] && ok=1; done
      [ $ok = 1 ] || continue
    fi
    { tr "\0" "\n" <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "$want" && echo "$pid"
  done
  return 0
}

# bench_daemons: pids of the bench daemon and holder. The daemon carries the
# bench runtime dir in its environment; the holder runs with PATH alone, and
# is found through RUNTIME_DIR/holder.json (checked: the test user's, and
# named burrow-holder).
bench_daemons() {
  local pid cmd
  for pid in $(pids_with_env "BURROW_RUNTIME_DIR=$bench_runtime"); do
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
    case $cmd in *" __daemon "*) echo "$pid" ;; esac
  done
  bench_holder
}
bench_holder() {
  local pid
  pid=$(sed -n 's/^{"pid":\([0-9]*\).*/\1/p' "$bench_runtime/holder.json" 2>/dev/null || true)
  [ -n "$pid" ] && [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = "$bench_uid" ] &&
    [[ $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) == "burrow-holder "* ]] && echo "$pid"
  return 0
}

# burrow_cleanup BURROW: removes every sandbox in the bench state dir, then
# ends the bench daemon (SIGTERM: it stops the holder itself when no sandbox
# is left). After 5 s whatever is left of them, and of their children, is
# killed, with a line saying so.
burrow_cleanup() {
  local b=$1 ids pid left
  if [ -S "$bench_runtime/control.sock" ]; then
    ids=$(as_burrow "$b" ps -a -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || as_burrow "$b" rm -f $ids >/dev/null 2>&1 || true
  fi
  for pid in $(bench_daemons); do
    case $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) in *" __daemon "*) kill -TERM "$pid" 2>/dev/null || true ;; esac
  done
  for _ in $(seq 50); do
    left=$(bench_daemons)
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  for pid in $left $(for p in $left; do pgrep -P "$p"; done); do
    echo "$(basename "$0"): killing leftover $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)(pid $pid)" >&2
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# podman_cleanup: removes the containers the bench scripts made (they carry
# the label burrow.bench); when the user has no container left, also ends
# podman's rootless pause process (it keeps podman's user namespace, and
# the next podman command makes a new one).
podman_cleanup() {
  local ids pause
  ids=$(as_user podman ps -a -q --filter label=burrow.bench 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || as_user podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  [ -z "$(as_user podman ps -a -q 2>/dev/null)" ] || return 0
  pause=$(cat "/run/user/$bench_uid/libpod/tmp/pause.pid" 2>/dev/null || true)
  if [ -n "$pause" ] && [ "$(stat -c %u "/proc/$pause" 2>/dev/null)" = "$bench_uid" ] &&
    [ "$(cat "/proc/$pause/comm" 2>/dev/null)" = "podman pause" ]; then
    kill -TERM "$pause" 2>/dev/null || true
  fi
}

# machine: one line about where the figures come from.
machine_line() {
  printf '%s, %s cores, kernel %s, load %s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# cpu_busy: percent of all cores busy since the last call (from /proc/stat).
# Near 100 means the run was CPU-bound: client, server and forwarder share
# the machine's cores, so a forwarder's own cost shows up as less throughput.
cpu_prev=
cpu_busy() {
  local _ user nice sys idle iowait irq softirq steal now
  read -r _ user nice sys idle iowait irq softirq steal _ </proc/stat
  now="$((user + nice + sys + irq + softirq + steal)) $((idle + iowait))"
  if [ -n "$cpu_prev" ]; then
    set -- $cpu_prev $now
    echo $(( (100 * ($3 - $1)) / (($3 - $1) + ($4 - $2) + 1) ))
  fi
  cpu_prev=$now
}

# interleave_rounds ROUNDS WHO...: ROUNDS rounds, each running `loop WHO`
# (defined by the caller: prints "MEDIAN MEAN" in ms) for every WHO in turn,
# so that the machine's swings hit them alike; prints each round, then each
# WHO's mean of means and its ratio to the first WHO's.
interleave_rounds() {
  local rounds=$1 who r line median mean
  shift
  declare -A sum=()
  for who in "$@"; do sum[$who]=0; done
  for r in $(seq "$rounds"); do
    line="round $r, load $(cut -d' ' -f1 /proc/loadavg):"
    for who in "$@"; do
      read -r median mean < <(loop "$who")
      sum[$who]=$("$bench_bun" -e "console.log(${sum[$who]} + $mean)")
      line+="  $who median $median mean $mean"
    done
    echo "$line"
  done
  for who in "$@"; do
    printf '  %-7s mean of means %s ms  %s x %s\n' "$who" "$("$bench_bun" -e "console.log((${sum[$who]} / $rounds).toFixed(3))")" "$(calc "${sum[$who]} / ${sum[$1]}")" "$1"
  done
}

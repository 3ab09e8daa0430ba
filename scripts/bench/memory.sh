#!/usr/bin/env bash
# Memory per running sandbox with one published port, as the test user: what
# burrow's own processes (daemon, holder) grow by per sandbox, against
# podman's per-container helpers. Run as root.
#
#   sudo scripts/bench/memory.sh [N] [PODMAN_N]    defaults 50 and 5
#
# burrow: after a warm-up `burrow run --rm -p PORT:80 -- true` (daemon,
# holder and forwarder threads up, as for any user who has published a port
# once), sums VmRSS of burrow's processes, starts N times
#   burrow run -d -p 127.0.0.1:PORT:80 -- sleep 600
# (each its own port), sums again and divides the growth by N. slirp4netns
# (one per sandbox, not burrow's code) and the user's command are reported
# beside it, not in it. Goal (the issue): < 1 MiB per sandbox.
# podman: PODMAN_N times
#   podman run -d --network slirp4netns -p 127.0.0.1:PORT:80 --rootfs DIR sleep 600
# and the VmRSS of the helpers each container adds (conmon, rootlessport and
# rootlessport-child), slirp4netns beside it. Writes .bench/memory-TIME.json.
# Everything started is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

n=${1:-50}
npod=${2:-5}
bench_require podman
b=$(bench_burrow)
work=$(as_user mktemp -d "$bench_tmp/bench-memory.XXXXXX")

cleanup() {
  burrow_cleanup "$b"
  podman_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# burrow_sums: "burrow_kB burrow_count slirp_kB slirp_count cmd_kB cmd_count"
# over the processes that carry the bench runtime dir, the holder, and the
# children of both daemon and holder: burrow's own (the binary itself, or the
# holder, which execs sleep as "burrow-holder"), slirp4netns, and everything
# else (the users' commands).
burrow_sums() {
  local pid exe cmd kb bk=0 bc=0 sk=0 sc=0 ck=0 cc=0 all
  all=$(pids_with_env "BURROW_RUNTIME_DIR=$bench_runtime")
  all=$(for pid in $all $(bench_daemons); do echo "$pid"; pgrep -P "$pid" || true; done | sort -un)
  for pid in $all; do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
    kb=$(rss_kb "$pid")
    if [ "$exe" = "$b" ] || [[ $cmd == "burrow-holder "* ]]; then
      bk=$((bk + kb)) bc=$((bc + 1))
    elif [ "${exe##*/}" = slirp4netns ]; then
      sk=$((sk + kb)) sc=$((sc + 1))
    else
      ck=$((ck + kb)) cc=$((cc + 1))
    fi
  done
  echo "$bk $bc $sk $sc $ck $cc"
}

# podman_sums PIDS_BEFORE_FILE: the same split for the test user's processes
# that were not there before: podman's helpers (conmon, rootlessport and its
# child, both /usr/lib/podman/rootlessport), slirp4netns, and the rest
# (containers' commands, a new pause process).
podman_sums() {
  local pid exe kb hk=0 hc=0 sk=0 sc=0 ck=0 cc=0
  for pid in $(pgrep -u "$bench_uid"); do
    grep -qx "$pid" "$1" && continue
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    kb=$(rss_kb "$pid")
    case ${exe##*/} in
      conmon | rootlessport) hk=$((hk + kb)) hc=$((hc + 1)) ;;
      slirp4netns) sk=$((sk + kb)) sc=$((sc + 1)) ;;
      *) ck=$((ck + kb)) cc=$((cc + 1)) ;;
    esac
  done
  echo "$hk $hc $sk $sc $ck $cc"
}

echo "memory.sh: $(machine_line)"
echo "memory.sh: $("$b" --version), $(podman --version)"

# ---------------------------------------------------------------- burrow
burrow_cleanup "$b" # a daemon left from an earlier script would carry its history
port=$(free_port 18080)
as_burrow "$b" run --rm -p "127.0.0.1:$port:80" -- true
sleep 2
read -r b0 bc0 _ _ _ _ < <(burrow_sums)
echo "memory.sh: burrow, warm and idle: $bc0 processes (daemon, holder), $((b0 / 1024)) MiB RSS"

ids=()
port=18080
for i in $(seq "$n"); do
  port=$(free_port "$port")
  ids+=("$(as_burrow "$b" run -d -p "127.0.0.1:$port:80" -- sleep 600)")
  port=$((port + 1))
  [ $((i % 10)) = 0 ] && [ "$i" != "$n" ] && echo "memory.sh: burrow: $i of $n sandboxes running"
done
sleep 3 # let the daemon's allocations settle (and a GC run)
read -r b1 bc1 s1 sc1 c1 cc1 < <(burrow_sums)
running=$(as_burrow "$b" ps -q | wc -l)
echo "memory.sh: burrow: $running sandboxes running; burrow's processes: $bc1, $((b1 / 1024)) MiB RSS"
as_burrow "$b" rm -f "${ids[@]}" >/dev/null
burrow_cleanup "$b"

# ---------------------------------------------------------------- podman
podman_cleanup
as_user podman info >/dev/null 2>&1 # the pause process, before the baseline
pgrep -u "$bench_uid" >"$work/before" || true
port=$(free_port 19080)
for i in $(seq "$npod"); do
  port=$(free_port "$port")
  as_user podman run -d --network slirp4netns -p "127.0.0.1:$port:80" --label burrow.bench=1 \
    --rootfs "$bench_rootfs" sleep 600 >/dev/null 2>>"$work/podman.log" ||
    { cat "$work/podman.log" >&2; bench_die "podman run failed"; }
  port=$((port + 1))
done
sleep 1
read -r p1 pc1 ps1 psc1 pu1 puc1 < <(podman_sums "$work/before")
echo "memory.sh: podman: $npod containers running; helpers: $pc1 processes, $((p1 / 1024)) MiB RSS"
podman_cleanup

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_out/memory-$stamp.json
cat >"$out" <<EOF
{
  "burrow": { "sandboxes": $n, "running": $running, "idleKiB": $b0, "idleProcesses": $bc0, "afterKiB": $b1, "afterProcesses": $bc1,
              "slirp4netnsKiB": $s1, "slirp4netnsProcesses": $sc1, "commandsKiB": $c1, "commandsProcesses": $cc1 },
  "podman": { "containers": $npod, "helpersKiB": $p1, "helperProcesses": $pc1, "slirp4netnsKiB": $ps1, "slirp4netnsProcesses": $psc1,
              "otherKiB": $pu1, "otherProcesses": $puc1 }
}
EOF
cp "$out" "$bench_out/memory-latest.json"

echo
json '(() => {
  const { burrow: b, podman: p } = j[0];
  const mib = (kib) => (kib / 1024).toFixed(2);
  const perB = (b.afterKiB - b.idleKiB) / b.sandboxes, perP = p.helpersKiB / p.containers;
  return [
    `memory.sh: RSS per sandbox/container with one published port (JSON: ${process.argv[2]})`,
    `  burrow  daemon+holder ${mib(perB).padStart(6)} MiB  (${mib(b.idleKiB)} -> ${mib(b.afterKiB)} MiB over ${b.sandboxes}, ${b.idleProcesses} -> ${b.afterProcesses} processes)`,
    `          slirp4netns   ${mib(b.slirp4netnsKiB / b.sandboxes).padStart(6)} MiB  (not burrow; ${b.slirp4netnsProcesses} processes)`,
    `  podman  helpers       ${mib(perP).padStart(6)} MiB  (conmon + rootlessport + rootlessport-child: ${p.helperProcesses} processes for ${p.containers})`,
    `          slirp4netns   ${mib(p.slirp4netnsKiB / p.containers).padStart(6)} MiB`,
    `  goal burrow < 1 MiB per sandbox: ${perB < 1024 ? "met" : "MISSED"}; burrow/podman helpers = ${(perB / perP).toFixed(3)}`,
  ].join("\n");
})()' "$out" "${out#"$bench_repo"/}"

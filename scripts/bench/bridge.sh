#!/usr/bin/env bash
# Bridge networks: burrow against podman 4.3 (rootless, CNI backend, runc,
# --rootfs busybox tree), side by side in one run, as the test user. Run as root.
#
#   sudo scripts/bench/bridge.sh [RUNS [SECONDS]]   RUNS per start command (30),
#                                                   SECONDS per iperf3 run (10)
#
# Networks: `burrow network create burrow-bench` and `podman network create
# podman-bench`. burrow's conflists go to a private dir
# (BURROW_CNI_CONFIG_DIR=~USER/.local/share/burrow-bench/net.d), so podman,
# which reads ~/.config/cni/net.d, never sees burrow's network, nor burrow
# podman's (or anyone's) networks; podman writes
# ~/.config/cni/net.d/podman-bench.conflist, removed on exit.
#
# One sandbox and one container stay up on their networks for the whole
# measurement (the iperf3 servers of part 2), so both tools' rootless network
# namespace (with its slirp4netns) is already up: start times are warm.
#
# 1. Start-up, one hyperfine run (each command once first, then 3 warm-ups):
#      burrow run --rm --network burrow-bench -p PORT:80 -- true
#      podman run --rm --network podman-bench -p PORT2:80 --rootfs DIR true
#    Goal (the issue): burrow <= 1/5 of podman. hyperfine runs with -i and the
#    failed runs are counted from the export and printed next to the medians
#    (BENCH_STRICT=1 leaves -i out), as in start.sh.
# 2. Sandbox-to-sandbox TCP throughput over each tool's bridge:
#      burrow run -d --network burrow-bench --name N -- iperf3 -s
#      burrow run --rm --network burrow-bench -- iperf3 -c IP -t SECONDS -J
#    and the same with podman (`--rootfs DIR /usr/bin/iperf3`; setup-peers.sh
#    put iperf3 and its libraries in DIR). IP from `inspect`'s JSON. Prints
#    receiver-side Gbit/s. No goal: both tools' bridges live in a rootless
#    network namespace, veth to veth, so the figures should be alike.
#
# Writes .bench/bridge-TIME.json (hyperfine's export and the iperf3 rows).
# Traffic stays on loopback and inside the namespaces made here (the -p ports
# bind all addresses, as in start.sh: the commands are the issue's). Sandboxes,
# containers (labelled burrow.bench), both networks, the conflist, the bench
# daemon and podman's pause process are removed on exit, also on failure or
# Ctrl-C.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${1:-30}
secs=${2:-10}
[[ $runs =~ ^[1-9][0-9]*$ && $secs =~ ^[1-9][0-9]*$ ]] || bench_die "RUNS and SECONDS are whole numbers above 0 (iperf3 takes -t 0 as forever)"
bench_require hyperfine podman iperf3
b=$(bench_burrow)
cni_dir=$bench_state/net.d
bnet=burrow-bench
pnet=podman-bench
pconf=$bench_home/.config/cni/net.d/$pnet.conflist
srv=bench-bridge-srv

# burrow with the private conflist dir. The daemon takes its paths from the
# CLI that starts it, so this must be the first burrow command of the run.
as_bridge() { as_burrow env BURROW_CNI_CONFIG_DIR="$cni_dir" BURROW_NETWORK_BACKEND=cni "$@"; }

# Someone else's bench daemon would bring its own conflist dir (and its
# cleanup would end ours): wait for it rather than share it. The same for a
# podman-bench network: it is not ours to remove.
[ -z "$(bench_daemons)" ] ||
  bench_die "a bench daemon runs under $bench_runtime (another benchmark?): wait for it to end (it exits after 60 s idle)"
[ ! -e "$pconf" ] ||
  bench_die "$pconf exists (another run, or a leftover: podman network rm -f $pnet as $bench_user)"

work=$(as_user mktemp -d "$bench_tmp/bench-bridge.XXXXXX")
as_user mkdir -p "$cni_dir"

cleanup() {
  local ids
  # Sandboxes first, then the network, then the daemon: `network rm` needs it.
  if [ -S "$bench_runtime/control.sock" ]; then
    ids=$(as_bridge "$b" ps -a -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || as_bridge "$b" rm -f $ids >/dev/null 2>&1 || true
    as_bridge "$b" network rm -f "$bnet" >/dev/null 2>&1 || true
  fi
  burrow_cleanup "$b"
  rm -rf "$cni_dir" "$bench_state/cni/networks/$bnet" # host-local's allocations for it
  # Containers, then the network (a podman command, so before
  # podman_cleanup ends the pause process it would start again).
  ids=$(as_user podman ps -a -q --filter label=burrow.bench 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || as_user podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  if [ -e "$pconf" ]; then
    as_user podman network rm -f "$pnet" >/dev/null 2>&1 || rm -f "$pconf"
  fi
  podman_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# listening NAME TOOL: until the iperf3 server in NAME listens on 5201
# (0x1451, state 0A in /proc/net/tcp{,6}, which show the reader's netns), 10 s
# at most. busybox in the rootfs has cat but no ss.
listening() {
  local name=$1 tool=$2
  for _ in $(seq 100); do
    {
      if [ "$tool" = burrow ]; then
        as_bridge "$b" exec "$name" -- cat /proc/net/tcp /proc/net/tcp6
      else
        as_user podman exec "$name" cat /proc/net/tcp /proc/net/tcp6
      fi 2>/dev/null || true
    } | awk '$2 ~ /:1451$/ && $4 == "0A" { found = 1 } END { exit !found }' && return 0
    sleep 0.1
  done
  bench_die "the iperf3 server in $name ($tool) does not listen on 5201"
}


echo "bridge.sh: $(machine_line)"
echo "bridge.sh: $("$b" --version), $(podman --version) (CNI), $(hyperfine --version), $(iperf3 --version | head -1 | cut -d' ' -f1-2)," \
  "containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- networks, servers
as_bridge "$b" network create "$bnet" >/dev/null
as_user podman network create "$pnet" >/dev/null 2>>"$work/podman.log" ||
  { cat "$work/podman.log" >&2; bench_die "podman network create $pnet failed"; }

as_bridge "$b" run -d --network "$bnet" --name "$srv" -- iperf3 -s >/dev/null
# stderr to a file: podman warns that "/" is not a shared mount (true here,
# and harmless for a --rootfs container without volumes).
as_user podman run -d --network "$pnet" --name "$srv" --label burrow.bench=1 \
  --rootfs "$bench_rootfs" /usr/bin/iperf3 -s >/dev/null 2>>"$work/podman.log" ||
  { cat "$work/podman.log" >&2; bench_die "podman run -d --network $pnet failed"; }
listening "$srv" burrow
listening "$srv" podman

as_bridge "$b" inspect "$srv" >"$work/burrow-inspect.json"
as_user podman inspect "$srv" >"$work/podman-inspect.json"
bip=$(json "j[0][0].NetworkSettings.Networks[\"$bnet\"]?.IPAddress ?? ''" "$work/burrow-inspect.json")
pip=$(json "j[0][0].NetworkSettings.Networks[\"$pnet\"]?.IPAddress ?? ''" "$work/podman-inspect.json")
[[ $bip =~ ^[0-9.]+$ ]] || bench_die "no $bnet address in burrow inspect $srv"
[[ $pip =~ ^[0-9.]+$ ]] || bench_die "no $pnet address in podman inspect $srv"
echo "bridge.sh: iperf3 servers up: burrow $srv at $bip ($bnet), podman $srv at $pip ($pnet)"

# ---------------------------------------------------------------- 1. start-up
port=$(free_port 18090)
port2=$(free_port $((port + 1)))
cmds=(
  "$b run --rm --network $bnet -p $port:80 -- true"
  "podman run --rm --network $pnet -p $port2:80 --label burrow.bench=1 --rootfs $bench_rootfs true"
)
echo "bridge.sh: warming up (each start command once)"
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086 # plain words, as hyperfine -N splits them
  as_bridge $c 2>>"$work/podman.log" || as_bridge $c || bench_die "failed twice: $c"
done
ignore=(-i)
[ -z "${BENCH_STRICT:-}" ] || ignore=()
as_bridge hyperfine -N "${ignore[@]}" --warmup 3 --runs "$runs" --export-json "$work/start.json" "${cmds[@]}"

# ---------------------------------------------------------------- 2. throughput
echo
echo "bridge.sh: iperf3 -c SERVER -t $secs, sandbox -> sandbox on one bridge, receiver side"
rows=()
# measure NAME FILE CMD...: one iperf3 client run; prints and records Gbit/s.
measure() {
  local name=$1 file=$2 g busy
  shift 2
  cpu_busy >/dev/null
  if ! "$@" >"$file" 2>>"$work/podman.log"; then
    json 'j[0].error' "$file" >&2 || tail -5 "$work/podman.log" >&2
    bench_die "iperf3 over $name failed"
  fi
  busy=$(cpu_busy)
  g=$(json '(j[0].end.sum_received.bits_per_second / 1e9).toFixed(2)' "$file")
  rows+=("$name=$g=$busy")
  printf '  %-16s %6s Gbit/s   CPU %s%% busy\n' "$name" "$g" "$busy"
}
measure "burrow bridge" "$work/iperf-burrow.json" \
  as_bridge "$b" run --rm --network "$bnet" -- iperf3 -c "$bip" -t "$secs" -J
measure "podman bridge" "$work/iperf-podman.json" \
  as_user podman run --rm --network "$pnet" --label burrow.bench=1 --rootfs "$bench_rootfs" \
  /usr/bin/iperf3 -c "$pip" -t "$secs" -J

# ---------------------------------------------------------------- report
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$bench_out/bridge-$stamp.json
printf '%s\n' "${rows[@]}" | "$bench_bun" -e '
  const [startFile, outFile, secs] = process.argv.slice(1);
  const rows = (await Bun.stdin.text()).trim().split("\n").map((l) => { const [busy, gbits, ...name] = l.split("=").reverse(); return { name: name.reverse().join("="), gbits: Number(gbits), cpuBusyPercent: Number(busy) }; });
  const start = await Bun.file(startFile).json();
  await Bun.write(outFile, JSON.stringify({ start, throughput: { seconds: Number(secs), rows } }, null, 2) + "\n");' \
  "$work/start.json" "$out" "$secs"
cp "$out" "$bench_out/bridge-latest.json"

echo
echo "bridge.sh: start-up medians ($runs runs each; JSON: ${out#"$bench_repo"/})"
json 'j[0].start.results.map((r) => {
  const failed = r.exit_codes.filter((c) => c !== 0);
  const note = failed.length ? `   (${failed.length} of ${r.exit_codes.length} runs FAILED, exit ${[...new Set(failed)].join(",")})` : "";
  return `  ${(r.median * 1000).toFixed(1).padStart(7)} ms  ${r.command}${note}`;
}).join("\n")' "$out"
json '(() => {
  const [b, p] = j[0].start.results.map((r) => r.median * 1000);
  const g = Object.fromEntries(j[0].throughput.rows.map((r) => [r.name, r.gbits]));
  return [
    `bridge.sh: bridge -p start, burrow ${b.toFixed(1)} ms / podman ${p.toFixed(1)} ms = ${(b / p).toFixed(3)} (1/${(p / b).toFixed(1)})  goal <= 0.200: ${b / p <= 0.2 ? "met" : "MISSED"}`,
    `bridge.sh: sandbox-to-sandbox, burrow ${g["burrow bridge"].toFixed(2)} Gbit/s, podman ${g["podman bridge"].toFixed(2)} Gbit/s (burrow/podman ${(g["burrow bridge"] / g["podman bridge"]).toFixed(2)})`,
  ].join("\n");
})()' "$out"

#!/usr/bin/env bash
# What an egress policy costs (issue 18 "Numbers"), each with and without a
# policy side by side in one run. Run as root.
#
#   sudo scripts/bench/egress.sh [RUNS] [ROUNDS] [SECONDS] [QUERIES]
#        RUNS of each start for hyperfine (default 20), ROUNDS of the iperf3
#        and DNS measurements, interleaved A/B (default 3), SECONDS per iperf3
#        run (default 5), QUERIES per DNS measurement (default 300)
#
# Like the integration tests, it builds a small internet of its own (never
# the host's network): a client netns, where the test user's burrow runs,
# joined by a veth pair to an internet netns holding iperf3 -s on
# 198.51.100.10 and dnsmasq on 198.51.100.53 (allowed.test -> .10). Every
# sandbox is on pasta and has --dns 198.51.100.53.
#
# Rows, goals from the issue:
#   start    `run --rm -- true` with a 10-rule policy / without      <= 1.1x
#            (and with one rule, to tell a fixed cost from a per-rule one)
#   iperf3   upload and download (-R) from a sandbox to 198.51.100.10, with
#            the policy / without                                   >= 0.95
#            Rootless on pasta, and rootful on a bridge network (root's
#            burrow in the client netns, private dirs): pasta's upload
#            varies tenfold between runs with or without a policy on a
#            shared machine, the bridge's kernel-only path shows the
#            ruleset's own cost.
#   dns      median of QUERIES queries for allowed.test from one process in
#            the sandbox: burrow's resolver on 127.0.0.53, every answer but
#            the first from its cache, minus the same straight to dnsmasq
#            from a sandbox without a policy                      < 1 ms more
# Writes .bench/egress-TIME.json.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${1:-20}
rounds=${2:-3}
secs=${3:-5}
queries=${4:-300}
# Its own daemon dirs: other bench scripts may run on this machine at the same time.
bench_runtime=/run/user/$bench_uid/burrow-bench-egress${BENCH_NAME:+-$BENCH_NAME}
bench_state=$bench_home/.local/share/burrow-bench-egress${BENCH_NAME:+-$BENCH_NAME}
burrow_env=(BURROW_RUNTIME_DIR="$bench_runtime" BURROW_STATE_DIR="$bench_state" BURROW_IDLE_TIMEOUT=60)
as_burrow_argv=(env -i -C "$bench_home" "${bench_env[@]}" "${burrow_env[@]}" "${setpriv_argv[@]}")
[ "$(id -u)" = 0 ] || bench_die "run as root: it makes network namespaces and runs burrow as $bench_user"
for c in hyperfine iperf3 pasta dnsmasq ip nsenter python3; do command -v "$c" >/dev/null || bench_die "$c is not installed"; done
mkdir -p "$bench_out"
b=$(bench_burrow)
tag=$$
client_ns=burrow-bench-egress-c$tag
inet_ns=burrow-bench-egress-i$tag
work=$(mktemp -d /run/burrow-bench-egress.XXXXXX)
chown "$bench_uid:$bench_gid" "$work" && chmod 0755 "$work"
allowed=198.51.100.10
dns=198.51.100.53
net_flags=(--network pasta --dns "$dns")
# Ten rules of every kind; the run only ever reaches 198.51.100.10.
policy=(--allow-host allowed.test --allow-host cdn.allowed.test --allow-host '*.pkg.test' --allow-host registry.test:443/tcp
  --allow-cidr "$allowed/32" --allow-cidr 203.0.113.0/24:443 --allow-cidr '[2001:db8::10]:8000-8080/tcp'
  --deny-cidr private --deny-cidr 198.51.100.20 --deny-cidr 2001:db8::20/128)

# Root's burrow for the bridge rows: its own dirs (as test/helpers/run.ts makes them), in the client netns.
root_dirs=/run/burrow-bench-egress-root.$tag
root_env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 BURROW_IDLE_TIMEOUT=60
  BURROW_RUNTIME_DIR="$root_dirs/run" BURROW_STATE_DIR="$root_dirs/state" BURROW_CNI_CONFIG_DIR="$root_dirs/cni"
  BURROW_NETWORKS_DIR="$root_dirs/networks" BURROW_NETAVARK_DIR="$root_dirs/netavark" BURROW_NETWORK_BACKEND=cni)

cleanup() {
  burrow_cleanup "$b"
  if [ -d "$root_dirs" ]; then
    ids=$(in_client_root "$b" ps -a -q 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || in_client_root "$b" rm -f $ids >/dev/null 2>&1 || true
    # root's daemon and its supervisor run in the client netns: deleting it would not end them.
    ip netns pids "$client_ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
    sleep 0.5
    ip netns pids "$client_ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    awk -v r="$root_dirs" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$root_dirs"
  fi
  ip netns pids "$inet_ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  ip netns del "$client_ns" 2>/dev/null || true
  ip netns del "$inet_ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The small internet (test/helpers/internet.ts, in shell).
ip netns add "$client_ns"
ip netns add "$inet_ns"
ip link add "ebc$tag" netns "$client_ns" type veth peer name "ebi$tag" netns "$inet_ns"
ip -n "$client_ns" addr add 198.51.100.2/24 dev "ebc$tag"
ip -n "$client_ns" addr add 2001:db8:1::2/64 dev "ebc$tag" nodad
ip -n "$inet_ns" addr add 198.51.100.1/24 dev "ebi$tag"
ip -n "$inet_ns" addr add 2001:db8:1::1/64 dev "ebi$tag" nodad
for a in "$allowed/32" "$dns/32"; do ip -n "$inet_ns" addr add "$a" dev lo; done
for ns in "$client_ns" "$inet_ns"; do ip -n "$ns" link set lo up; done
ip -n "$client_ns" link set "ebc$tag" up
ip -n "$inet_ns" link set "ebi$tag" up
ip -n "$client_ns" route add default via 198.51.100.1
ip -n "$client_ns" -6 route add default via 2001:db8:1::1
in_inet() { nsenter --net="/run/netns/$inet_ns" -- "$@"; }
in_client() { nsenter --net="/run/netns/$client_ns" -- "${as_burrow_argv[@]}" "$@"; }
in_client_root() { nsenter --net="/run/netns/$client_ns" -- env -i -C / "${root_env[@]}" "$@"; }
in_inet iperf3 -s -B "$allowed" -D --pidfile "$work/iperf3.pid"
in_inet dnsmasq --conf-file=/dev/null --pid-file="$work/dnsmasq.pid" --user=root --no-resolv --no-hosts --no-poll \
  --bind-interfaces --listen-address="$dns" --local-ttl=300 --local=/test/ \
  --host-record=allowed.test,$allowed,2001:db8::10
for _ in $(seq 50); do
  in_inet python3 -c "import socket; socket.create_connection(('$allowed', 5201), 1).close()" 2>/dev/null && break
  sleep 0.1
done

# dns_client SERVER N: N queries for allowed.test A from one process, one at a
# time; prints {"medianMs","p95Ms"} of all but the first (the cache's fill).
dns_client='
import json, random, socket, struct, sys, time
server, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, 53))
name = b"".join(bytes([len(l)]) + l.encode() for l in "allowed.test".split(".")) + b"\0"
times = []
for i in range(n + 1):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    t0 = time.perf_counter()
    s.send(q)
    while True:
        m = s.recv(4096)
        if struct.unpack(">H", m[:2])[0] == qid: break
    t1 = time.perf_counter()
    if m[3] & 15: sys.exit("rcode %d from %s" % (m[3] & 15, server))
    if i: times.append((t1 - t0) * 1000)
times.sort()
print(json.dumps({"medianMs": round(times[len(times) // 2], 4), "p95Ms": round(times[int(len(times) * 0.95)], 4)}))
'

echo "egress.sh: $(machine_line)"
echo "egress.sh: $("$b" --version), $(hyperfine --version), $(iperf3 --version | head -1)"
echo "egress.sh: the policy: ${policy[*]}"
# Both must work before anything is timed: the policy's sandbox reaches the allowed address and not the denied one.
in_client "$b" run --rm "${net_flags[@]}" -- true || bench_die "a sandbox without a policy does not start"
check=$(in_client "$b" run --rm "${net_flags[@]}" "${policy[@]}" -- python3 -c "
import socket
def t(h):
    try: socket.create_connection((h, 5201), 2).close(); return 'ok'
    except OSError as e: return type(e).__name__
print(socket.gethostbyname('allowed.test'), t('$allowed'), t('198.51.100.20'))") || bench_die "a sandbox with the policy does not start"
[ "$check" = "$allowed ok ConnectionRefusedError" ] || bench_die "the policy is not in force (allowed.test, .10, .20: $check)"
for d in run state cni networks netavark; do mkdir -p "$root_dirs/$d"; done
chmod -R 0700 "$root_dirs"
in_client_root "$b" run --rm --network bridge "${policy[@]}" --dns "$dns" -- true || bench_die "root's burrow does not start a bridge sandbox with the policy"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo
echo "start: $runs runs each, interleaved (none, one rule, ten rules, none, ...)"
# Interleaved, not hyperfine's one block per command: on a shared machine the
# load drifts between blocks, and that drift showed up as 1.07-1.24x for the
# same build. Written in hyperfine's JSON shape (results[].median, times,
# exit_codes), seconds.
start_cmds=("run --rm ${net_flags[*]} -- true" "run --rm ${net_flags[*]} --deny-cidr 198.51.100.20 -- true" "run --rm ${net_flags[*]} ${policy[*]} -- true")
for _ in 1 2 3; do for c in "${start_cmds[@]}"; do read -ra argv <<<"$c"; in_client "$b" "${argv[@]}" >/dev/null 2>&1 || true; done; done
start_times=()
for _ in $(seq "$runs"); do
  for i in 0 1 2; do
    read -ra argv <<<"${start_cmds[$i]}"
    t0=$(date +%s%N)
    code=0
    in_client "$b" "${argv[@]}" >/dev/null 2>&1 || code=$?
    start_times+=("$i $(( $(date +%s%N) - t0 )) $code")
  done
done
printf '%s\n' "${start_times[@]}" | "$bench_bun" -e '
  const lines = (await Bun.stdin.text()).trim().split("\n").map((l) => l.split(" ").map(Number));
  const cmds = JSON.parse(process.argv[2]);
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  const results = cmds.map((command, i) => {
    const mine = lines.filter((l) => l[0] === i);
    const times = mine.map((l) => l[1] / 1e9);
    return { command, median: median(times), times, exit_codes: mine.map((l) => l[2]) };
  });
  await Bun.write(process.argv[1], JSON.stringify({ results }, null, 2));' "$work/start.json" "$(printf '%s\n' "${start_cmds[@]}" | "$bench_bun" -e 'console.log(JSON.stringify((await Bun.stdin.text()).trim().split("\n")))')"

rows=()
# iperf NAME [-R] -- POLICY...: one iperf3 run from a sandbox, receiver-side
# Gbit/s. NAME none/policy: rootless on pasta; bridge-none/bridge-policy:
# root's burrow on a bridge network.
iperf() {
  local name=$1 dir=$2 g
  shift 3
  local how=(in_client "$b" run --rm "${net_flags[@]}")
  case $name in bridge-*) how=(in_client_root "$b" run --rm --network bridge --dns "$dns") ;; esac
  "${how[@]}" "$@" -- iperf3 -c "$allowed" -t "$secs" -J ${dir:+"$dir"} >"$work/iperf.json" ||
    bench_die "iperf3 ($name ${dir:-up}) failed: $(json 'j[0].error' "$work/iperf.json" 2>/dev/null)"
  g=$(json '(j[0].end.sum_received.bits_per_second / 1e9).toFixed(3)' "$work/iperf.json")
  rows+=("{\"path\":\"$name\",\"what\":\"${dir:-up}\",\"gbits\":$g}")
  printf '  %-14s %-5s %7s Gbit/s\n' "$name" "${dir:-up}" "$g"
}
# dnsq NAME SERVER POLICY...: per-query latency from one process in a sandbox.
dnsq() {
  local name=$1 server=$2 out
  shift 2
  out=$(in_client "$b" run --rm "${net_flags[@]}" "$@" -- python3 -c "$dns_client" "$server" "$queries") || bench_die "the DNS client ($name) failed: $out"
  rows+=("{\"path\":\"$name\",\"what\":\"dns\",\"stats\":$out}")
  printf '  %-14s dns   %s\n' "$name" "$out"
}

for r in $(seq "$rounds"); do
  echo "round $r"
  # Alternate which goes first: a shared machine's load moves between runs.
  if [ $((r % 2)) = 1 ]; then order=(none policy); else order=(policy none); fi
  for p in "${order[@]}"; do
    if [ "$p" = policy ]; then flags=("${policy[@]}"); else flags=(); fi
    iperf "$p" "" -- "${flags[@]}"
    iperf "$p" -R -- "${flags[@]}"
    iperf "bridge-$p" "" -- "${flags[@]}"
    iperf "bridge-$p" -R -- "${flags[@]}"
    if [ "$p" = policy ]; then dnsq policy 127.0.0.53 "${policy[@]}"; else dnsq none "$dns"; fi
  done
done

out=$bench_out/egress-$stamp.json
printf '%s\n' "${rows[@]}" | "$bench_bun" -e '
  const rows = (await Bun.stdin.text()).trim().split("\n").map((l) => JSON.parse(l));
  const start = await Bun.file(process.argv[2]).json();
  await Bun.write(process.argv[1], JSON.stringify({ rounds: Number(process.argv[3]), seconds: Number(process.argv[4]), queries: Number(process.argv[5]), start, rows }, null, 2) + "\n");' \
  "$out" "$work/start.json" "$rounds" "$secs" "$queries"
cp "$out" "$bench_out/egress-latest.json"

echo
json '(() => {
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  const of = (path, what, f) => median(j[0].rows.filter((r) => r.path === path && r.what === what).map(f));
  const [none, one, pol] = j[0].start.results;
  const failed = (r) => r.exit_codes.filter((c) => c !== 0).length;
  const g = (r) => r.gbits;
  const row = (name, a, b, unit, shown, goal) => `  ${name.padEnd(26)} ${a.toFixed(3).padStart(8)} ${b.toFixed(3).padStart(8)} ${unit.padEnd(7)} ${shown.padStart(9)}  ${goal ? "met" : "MISSED"}`;
  const ratio = (a, b) => (a / b).toFixed(3) + "x";
  const up = [of("policy", "up", g), of("none", "up", g)];
  const down = [of("policy", "-R", g), of("none", "-R", g)];
  const bup = [of("bridge-policy", "up", g), of("bridge-none", "up", g)];
  const bdown = [of("bridge-policy", "-R", g), of("bridge-none", "-R", g)];
  const dns = [of("policy", "dns", (r) => r.stats.medianMs), of("none", "dns", (r) => r.stats.medianMs)];
  return [
    `egress.sh: medians (start: ${none.times.length} runs each; iperf3 and DNS: ${j[0].rounds} rounds); JSON: ${process.argv[2]}`,
    `  ${"".padEnd(26)} ${"policy".padStart(8)} ${"none".padStart(8)} ${"".padEnd(7)} ${"".padStart(9)}  goal`,
    row("start, run --rm true", pol.median * 1000, none.median * 1000, "ms", ratio(pol.median, none.median), pol.median / none.median <= 1.1),
    row("start, one rule", one.median * 1000, none.median * 1000, "ms", ratio(one.median, none.median), one.median / none.median <= 1.1),
    row("iperf3 upload, pasta", up[0], up[1], "Gbit/s", ratio(up[0], up[1]), up[0] / up[1] >= 0.95),
    row("iperf3 download, pasta", down[0], down[1], "Gbit/s", ratio(down[0], down[1]), down[0] / down[1] >= 0.95),
    row("iperf3 upload, bridge", bup[0], bup[1], "Gbit/s", ratio(bup[0], bup[1]), bup[0] / bup[1] >= 0.95),
    row("iperf3 download, bridge", bdown[0], bdown[1], "Gbit/s", ratio(bdown[0], bdown[1]), bdown[0] / bdown[1] >= 0.95),
    row("DNS query, median", dns[0], dns[1], "ms", `+${(dns[0] - dns[1]).toFixed(3)}ms`, dns[0] - dns[1] < 1),
    failed(none) + failed(one) + failed(pol) ? `  FAILED start runs: ${failed(pol)} with the policy, ${failed(one)} with one rule, ${failed(none)} without` : "",
  ].filter(Boolean).join("\n");
})()' "$out" "${out#"$bench_repo"/}"

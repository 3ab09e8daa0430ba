#!/usr/bin/env bash
# Start-up time: burrow against podman 4.3 (rootless, runc, --rootfs busybox
# tree: no image), one hyperfine run, as the test user. Run as root.
#
#   sudo scripts/bench/start.sh [RUNS]       RUNS per command (default 30)
#
# Commands, all warm (each run once first, then hyperfine's 3 warm-ups; the
# burrow daemon and holder stay up between runs, as they would for a user):
#   unshare -rn true                                         the floor
#   burrow run --rm --network none -- true
#   podman run --rm --network none --rootfs DIR true
#   burrow run --rm -p PORT:80 -- true                       slirp4netns + builtin forwarder
#   podman run --rm --network slirp4netns -p PORT:80 --rootfs DIR true   + rootlessport
#   burrow exec NAME -- true / podman exec NAME true          into a running sleep 600
# Goals (the issues): burrow none <= 1/10 of podman and < 25 ms; exec <= 1/10 of podman exec; burrow -p
# <= 1/8 of podman. Writes .bench/start-TIME.json (hyperfine's export) and
# prints medians and ratios. podman's commands carry --label burrow.bench so
# cleanup can find them; everything made is removed on exit.
#
# hyperfine runs with -i and the failed runs are counted from the export and
# printed next to the medians: one failure does not end the whole run, and
# none is hidden. It came in when about 1 in 70 `burrow run --rm` failed (4 of
# 263; exit 125, ENOENT under RUNTIME_DIR/sandboxes/ID) because the daemon's
# once-a-second reap() removed a sandbox still being created. That is fixed
# (commit d2588ef, "the reaper leaves sandboxes being created alone"; 0 of 400
# runs failed after it, docs/benchmarks.md); the count stays so that a
# regression shows. BENCH_STRICT=1 leaves -i out.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs=${1:-30}
bench_require hyperfine podman unshare
b=$(bench_burrow)
port=$(free_port 18080)
work=$(as_user mktemp -d "$bench_tmp/bench-start.XXXXXX")

cleanup() {
  burrow_cleanup "$b"
  podman_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# exec joins a running sandbox / container (issue 17: <= 1/10 of podman exec).
as_burrow "$b" run -d --name bench-exec --network none -- sleep 600 >/dev/null
as_user podman run -d --name bench-exec-$$ --network none --label burrow.bench=1 --rootfs "$bench_rootfs" sleep 600 >/dev/null

cmds=(
  "unshare -rn true"
  "$b run --rm --network none -- true"
  "podman run --rm --network none --label burrow.bench=1 --rootfs $bench_rootfs true"
  "$b run --rm -p $port:80 -- true"
  "podman run --rm --network slirp4netns -p $port:80 --label burrow.bench=1 --rootfs $bench_rootfs true"
  "$b exec bench-exec -- true"
  "podman exec bench-exec-$$ true"
)

echo "start.sh: $(machine_line)"
echo "start.sh: $("$b" --version), $(podman --version), $(hyperfine --version)"
echo "start.sh: warming up (each command once)"
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086 # the commands are plain words, as hyperfine -N splits them
  as_burrow $c || as_burrow $c || bench_die "failed twice: $c"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
ignore=(-i)
[ -z "${BENCH_STRICT:-}" ] || ignore=()
as_burrow hyperfine -N "${ignore[@]}" --warmup 3 --runs "$runs" --export-json "$work/start.json" "${cmds[@]}"
out=$bench_out/start-$stamp.json
cp "$work/start.json" "$out"
cp "$out" "$bench_out/start-latest.json"

echo
echo "start.sh: medians ($runs runs each; JSON: ${out#"$bench_repo"/})"
json 'j[0].results.map((r) => {
  const failed = r.exit_codes.filter((c) => c !== 0);
  const note = failed.length ? `   (${failed.length} of ${r.exit_codes.length} runs FAILED, exit ${[...new Set(failed)].join(",")})` : "";
  return `  ${(r.median * 1000).toFixed(1).padStart(7)} ms  ${r.command}${note}`;
}).join("\n")' "$out"
json '(() => {
  const m = j[0].results.map((r) => r.median * 1000);
  const row = (what, b, p, goal) => `  ${what.padEnd(24)} burrow ${b.toFixed(1)} ms / podman ${p.toFixed(1)} ms = ${(b / p).toFixed(3)} (1/${(p / b).toFixed(1)})  goal ${goal}`;
  return [
    "start.sh: ratios burrow/podman",
    row("--network none", m[1], m[2], `<= 0.100 and < 25 ms: ${m[1] / m[2] <= 0.1 && m[1] < 25 ? "met" : "MISSED"}`),
    row("slirp4netns -p", m[3], m[4], `<= 0.125: ${m[3] / m[4] <= 0.125 ? "met" : "MISSED"}`),
    row("exec NAME -- true", m[5], m[6], `<= 0.100: ${m[5] / m[6] <= 0.1 ? "met" : "MISSED"}`),
    `  floor (unshare -rn true) ${m[0].toFixed(1)} ms`,
  ].join("\n");
})()' "$out"

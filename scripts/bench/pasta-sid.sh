#!/bin/sh
# The sid tier's half of scripts/bench/pasta.sh (issue 15 item 2), for the
# helpers the sid root has (slirp4netns 1.3, pasta 2026; no iperf3 there):
# start time of `burrow run --rm --network M -p P:80 -- true` (median of 15,
# in tenths of a ms) and the network helper's RSS per sandbox over 5 running
# sandboxes. Run it in the root as the test user:
#   scripts/sid-root.sh run --user -- sh /dev/stdin < scripts/bench/pasta-sid.sh
export HOME="$(mktemp -d)" && cd "$HOME"
rss() { s=0; for p in $(pgrep -u "$(id -u)"); do case $(cat /proc/$p/comm) in slirp4netns|pasta*|passt*) s=$((s + $(awk '/^VmRSS/{print $2}' /proc/$p/status)));; esac; done; echo $s; }
burrow run --rm -- true
for m in slirp4netns pasta; do
  ts=""
  for i in $(seq 15); do a=$(date +%s%N); burrow run --rm --network $m -p 127.0.0.1:$((19400+i)):80 -- true; b=$(date +%s%N); ts="$ts $(( (b-a)/100000 ))"; done
  med=$(echo $ts | tr ' ' '\n' | sort -n | sed -n 8p)
  ids=""
  for i in $(seq 5); do ids="$ids $(burrow run -d --network $m -p 127.0.0.1:$((19500+i)):80 -- sleep 600)"; done
  sleep 2
  echo "$m start_median_tenths_ms=$med helper_kib_per_sandbox=$(( $(rss) / 5 ))"
  burrow rm -f $ids >/dev/null
done

// The sid tier (issue 14 item 6): today's podman 5, netavark, passt and
// slirp4netns in the Debian sid root of scripts/sid-root.sh, on this kernel.
// These tests check that the tier itself works: burrow (built on Debian 12)
// runs there as the unprivileged user with pasta and slirp4netns, podman 5
// runs a container, and every entry leaves nothing running. The root is
// built on first use (about a minute, then cached); only an unreachable
// Debian archive skips them.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "bun:test";
import { integrationUnavailable } from "../helpers/env.ts";
import { freePort } from "../helpers/sys.ts";
import { describeWhen } from "../helpers/requirements.ts";
import { SID_FRESH_HOME, pidsInSidRoot, prepareSidRoot, sidRootDir, sidRun, sidSpawn, sidTierChecks, sidWait } from "../helpers/sid.ts";
import { until } from "../helpers/until.ts";

const unavailable = integrationUnavailable();
const archiveUnreachable = unavailable ? null : await prepareSidRoot();
if (unavailable) console.warn(`skipping the sid tier: ${unavailable}`);
if (archiveUnreachable) console.warn(`skipping the sid tier: ${archiveUnreachable}`);

const tier = archiveUnreachable ? describe.skip : describeWhen(unavailable);

/**
 * The start of a rootful script in the entry (its /run is a tmpfs of its own), inside `unshare -n`: podman's and
 * burrow's netavark share /run/containers/networks; podman's storage and burrow's state in /run/t; `$P` is podman.
 */
const ROOTFUL_PODMAN = `export PODMAN_IGNORE_CGROUPSV1_WARNING=1 BURROW_NETWORKS_DIR=/run/t/networks BURROW_STATE_DIR=/run/t/burrow-state
P="podman --root /run/t/storage --runroot /run/t/runroot --network-config-dir /run/t/networks"
ip link set lo up`;

/** Runs a shell script in the entry as the test user; it must succeed with nothing on stderr. Its output's lines. */
async function scriptLines(script: string): Promise<string[]> {
  const r = await sidRun(["sh", "-ec", script]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout.trim().split("\n");
}

tier("sid tier", () => {
  sidTierChecks();

  test("today's podman, netavark, aardvark-dns and pasta are there, and burrow runs beside them", async () => {
    const r = await sidRun([
      "sh",
      "-ec",
      "podman --version; /usr/lib/podman/netavark --version; /usr/lib/podman/aardvark-dns --version; pasta --version | head -1; slirp4netns --version | head -1; burrow --version",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    console.log(`sid tier versions:\n${r.stdout.trim().replace(/^/gm, "  ")}`);
    expect(Number(r.stdout.match(/^podman version (\d+)\./m)?.[1])).toBeGreaterThanOrEqual(5);
    expect(r.stdout).toMatch(/^netavark \d+\.\d+/m);
    expect(r.stdout).toMatch(/^aardvark-dns \d+\.\d+/m);
    expect(r.stdout).toMatch(/^pasta /m);
    expect(r.stdout).toMatch(/^burrow version /m);
  }, 60_000);

  test("pasta: a published port answers curl inside the root, and rm leaves no sandbox", async () => {
    const port = await freePort();
    const script = `${SID_FRESH_HOME}
mkdir www && echo "hello from sid" > www/index.html
burrow run -d --rm --name web --network pasta -p 127.0.0.1:${port}:80 -- busybox httpd -f -p 80 -h "$HOME/www" >/dev/null
# pasta forwards as soon as the sandbox exists; httpd listens a moment later
tries=0
until body=$(curl -fsS --max-time 2 http://127.0.0.1:${port}/ 2>/dev/null); do
  tries=$((tries + 1)); [ $tries -lt 200 ] || { echo "no answer on port ${port}" >&2; exit 1; }
  sleep 0.05
done
echo "$body"
burrow rm -f web >/dev/null
burrow ps -a --format json`;
    const [body, ps] = await scriptLines(script);
    expect(body).toBe("hello from sid");
    expect(JSON.parse(ps ?? "")).toEqual([]);
  }, 60_000);

  test("a machine without CNI: bridge networks through netavark 1.17 and nftables, names through aardvark-dns", async () => {
    const port = await freePort();
    const script = `${SID_FRESH_HOME}
test ! -e /usr/lib/cni/bridge || { echo "the sid root has CNI plugins" >&2; exit 1; }
burrow info --format '{{.Network.NamedNetworks.Backend}}'
burrow network create sidnet >/dev/null
mkdir www && echo "hello by name" > www/index.html
burrow run -d --name web --network sidnet -p 127.0.0.1:${port}:80 -- busybox httpd -f -p 80 -h "$HOME/www" >/dev/null
tries=0
until body=$(burrow run --rm --network sidnet -- curl -fsS --max-time 2 http://web/ 2>/dev/null); do
  tries=$((tries + 1)); [ $tries -lt 100 ] || { echo "web not reachable by name" >&2; exit 1; }
  sleep 0.1
done
echo "$body"
curl -fsS --max-time 5 http://127.0.0.1:${port}/
# the conformance suite's checks: address, default route, resolv.conf, hosts, exec
# (this minbase root has no /etc/hosts, so there is no file to bind the sandbox's over)
burrow exec web -- sh -c 'ip -4 -o addr show eth0 | grep -q "inet 10\\.89\\." && ip route | grep -q "^default via 10\\.89\\." && grep -q "^nameserver 10\\.89\\." /etc/resolv.conf && { [ ! -e /etc/hosts ] || grep -q "[[:space:]]web\\b" /etc/hosts; } && echo conformance-ok'
# netavark 1.17 chose nftables in the rootless namespace: podman's, which burrow shares with podman 5
PODMAN_IGNORE_CGROUPSV1_WARNING=1 podman unshare --rootless-netns /usr/sbin/nft list tables
burrow rm -f web >/dev/null
burrow network rm sidnet >/dev/null
burrow ps -a --format json`;
    const lines = await scriptLines(script);
    expect(lines[0]).toBe("netavark");
    expect(lines.slice(1, 4)).toEqual(["hello by name", "hello by name", "conformance-ok"]);
    expect(lines).toContain("table inet netavark");
    expect(JSON.parse(lines.at(-1) ?? "")).toEqual([]);
  }, 90_000);

  test("podman and burrow share network files: each uses and lists the other's", async () => {
    const script = `${SID_FRESH_HOME}
podman network create --subnet 10.89.77.0/24 frompodman >/dev/null
burrow run --rm --network frompodman -- ip -4 -o addr show eth0 | grep -o 'inet [0-9.]*'
burrow network create fromburrow >/dev/null
podman network ls --format '{{.Name}}' | sort | tr '\\n' ' '; echo
podman network inspect fromburrow --format '{{.Driver}} {{.DNSEnabled}}'
podman run --rm --network fromburrow --rootfs /opt/busybox-rootfs sh -c 'ip -4 -o addr show eth0' | grep -o 'inet 10\\.[0-9.]*' | cut -d. -f1-3
podman network rm fromburrow >/dev/null
burrow network ls --format '{{.Name}}' | sort | tr '\\n' ' '; echo`;
    const r = await sidRun(["sh", "-ec", script]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^inet 10\.89\.77\.\d+$/);
    expect(lines[1]!.trim().split(" ")).toEqual(["frompodman", "fromburrow", "podman"].sort());
    expect(lines[2]).toBe("bridge true");
    expect(lines[3]).toMatch(/^inet 10\.89\.\d+$/);
    expect(lines[4]!.trim().split(" ")).toEqual(["frompodman", "podman"]);
  }, 90_000);

  test("rootful, in a namespace of its own: a podman container and a burrow sandbox on one network reach each other by name", async () => {
    // As root in the entry (its /run is a tmpfs of its own), in a fresh netns:
    // podman's and burrow's netavark share /run/containers/networks, so one
    // aardvark-dns answers for both.
    // Everything of podman's and burrow's in the entry's own /run: nothing stays in the cached root.
    const script = `unshare -n sh -ec '
${ROOTFUL_PODMAN}
$P network create --subnet 10.89.90.0/24 mixed >/dev/null
$P run -d --name pc --network mixed --rootfs /opt/busybox-rootfs sleep 300 >/dev/null
burrow run -d --name bs --network mixed -- sleep 300 >/dev/null
burrow exec bs -- getent hosts pc
$P exec pc nslookup bs | grep -o "Address:[[:space:]]*[0-9.]*$" | grep -o "[0-9.]*$"
burrow inspect bs --format "{{.NetworkSettings.Networks.mixed.IPAddress}}"
burrow rm -f bs >/dev/null
$P rm -f -t 0 pc >/dev/null
$P network rm mixed >/dev/null
ls /run/containers/networks/aardvark-dns 2>/dev/null || true
'`;
    const r = await sidRun(["sh", "-ec", script], { user: false });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^10\.89\.90\.(\d+)\s+pc\.dns\.podman$/);
    const podmanIp = lines[0]!.split(/\s+/)[0];
    // burrow's address: free in podman's allocations (read from aardvark-dns's file), and what aardvark-dns tells podman's container
    expect(lines[1]).toBe(lines[2]);
    expect(lines[2]).toMatch(/^10\.89\.90\.\d+$/);
    expect(lines[2]).not.toBe(podmanIp);
    expect(lines.slice(3)).toEqual([]);
  }, 90_000);

  test("rootful, the sandbox first: a podman container started after it gets another address, and they reach each other by name", async () => {
    // podman allocates from its own ipam.db only, which does not list burrow's
    // sandboxes: burrow takes the address podman's allocator would reach last.
    // Each side serves its name over HTTP (podman's containers lack CAP_NET_RAW, so no ping); each fetches the other's by name.
    const script = `unshare -n sh -ec '
${ROOTFUL_PODMAN}
mkdir -p /run/t/www && echo bs > /run/t/www/name
$P network create --subnet 10.89.94.0/24 later >/dev/null
burrow run -d --name bs --network later -- busybox httpd -f -p 8080 -h /run/t/www >/dev/null
$P run -d --name pc --network later --rootfs /opt/busybox-rootfs sh -c "mkdir -p /w && echo pc > /w/name && exec httpd -f -p 8080 -h /w" >/dev/null
burrow inspect bs --format "{{.NetworkSettings.Networks.later.IPAddress}}"
$P inspect pc --format "{{.NetworkSettings.Networks.later.IPAddress}}"
fetch() { for i in $(seq 50); do if out=$("$@" 2>/dev/null); then echo "$out"; return; fi; sleep 0.1; done; echo unreached; }
fetch $P exec pc wget -q -T 2 -O - http://bs:8080/name
fetch burrow exec bs -- curl -fsS --max-time 2 http://pc:8080/name
burrow rm -f bs >/dev/null
$P rm -f -t 0 pc >/dev/null
$P network rm later >/dev/null
'`;
    const r = await sidRun(["sh", "-ec", script], { user: false });
    const [burrowIp, podmanIp, ...reached] = r.stdout.trim().split("\n");
    expect(burrowIp).toMatch(/^10\.89\.94\.\d+$/);
    expect(podmanIp).toBe("10.89.94.2");
    expect(burrowIp).not.toBe(podmanIp);
    // podman's container reaches the sandbox by name, and the sandbox the container.
    expect(reached).toEqual(["bs", "pc"]);
    expect(r.code).toBe(0);
  }, 90_000);

  test("rootful: a sandbox's setup waits for podman 5's network lock (/run/lock/netavark.lock) while podman holds it", async () => {
    // perl (in every Debian root) takes the lock as podman's lockfile package
    // does, a classic POSIX write lock, holds it 1.5 s, then writes a marker
    // and lets go; a run that ends with the marker absent did not wait.
    const script = `unshare -n sh -ec '
${ROOTFUL_PODMAN}
$P network create --subnet 10.89.95.0/24 held >/dev/null
ls /run/lock/netavark.lock
cat > /run/t/hold.pl <<"PL"
use Fcntl;
$| = 1;
open(my $f, ">>", $ARGV[0]) or die "open: $!";
my $lock = pack("s s x4 q q i x4", F_WRLCK, 0, 0, 0, 0);
fcntl($f, F_SETLKW, $lock) or die "fcntl: $!";
print "held", chr(10);
select(undef, undef, undef, 1.5);
open(my $m, ">", $ARGV[1]) or die "marker: $!";
close $m;
PL
perl /run/t/hold.pl /run/lock/netavark.lock /run/t/let-go > /run/t/hold.out &
for i in $(seq 100); do grep -q held /run/t/hold.out && break; sleep 0.05; done
grep -q held /run/t/hold.out
burrow run --rm --network held -- true
test -e /run/t/let-go && echo waited
wait
$P network rm held >/dev/null
'`;
    const r = await sidRun(["sh", "-ec", script], { user: false });
    expect(r.stdout.trim().split("\n")).toEqual(["/run/lock/netavark.lock", "waited"]);
    expect(r.code).toBe(0);
  }, 90_000);

  test("rootful, a network without DNS: a sandbox never gets the address a podman container holds (podman's ipam.db)", async () => {
    // No aardvark-dns file says where podman's container is: only podman's ipam.db does.
    const script = `unshare -n sh -ec '
${ROOTFUL_PODMAN}
$P network create --subnet 10.89.93.0/24 --disable-dns quiet >/dev/null
$P run -d --name pq --network quiet --rootfs /opt/busybox-rootfs sleep 300 >/dev/null
$P inspect pq --format "{{.NetworkSettings.Networks.quiet.IPAddress}}"
burrow run --rm --network quiet -- sh -c "ip -4 -o addr show eth0" | grep -o "inet [0-9.]*" | cut -d" " -f2
test -e /run/containers/networks/ipam.db && echo ipam.db
$P rm -f -t 0 pq >/dev/null
$P network rm quiet >/dev/null
'`;
    const r = await sidRun(["sh", "-ec", script], { user: false });
    expect(r.code).toBe(0);
    const [podmanIp, burrowIp, file] = r.stdout.trim().split("\n");
    expect(file).toBe("ipam.db");
    expect(podmanIp).toBe("10.89.93.2");
    expect(burrowIp).toMatch(/^10\.89\.93\.\d+$/);
    expect(burrowIp).not.toBe(podmanIp);
  }, 90_000);

  // busybox httpd's CGI sees the client's address in REMOTE_ADDR (bracketed): the server's view of its peer.
  const PEER_CGI = `mkdir -p www/cgi-bin && printf '#!/bin/sh\\nprintf "Content-Type: text/plain\\\\r\\\\n\\\\r\\\\n%%s\\\\n" "$REMOTE_ADDR"\\n' > www/cgi-bin/peer && chmod +x www/cgi-bin/peer
ask() { tries=0; until peer=$(curl -fsS -g --max-time 2 "http://$1/cgi-bin/peer" 2>&1); do tries=$((tries + 1)); [ $tries -lt 50 ] || { peer=none; break; }; sleep 0.1; done; echo "$1 -> $peer"; }`;

  // Rootless sharing (docs/netavark.md "Sharing podman's rootless network
  // namespace"): burrow's session joins podman 5's user namespace, and
  // netavark runs in podman's rootless netns with podman's --config, holding
  // one reference there (podman's ref-count) while a sandbox is on it.
  const ROOTLESS_SHARE = `${SID_FRESH_HOME}
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
NS="$XDG_RUNTIME_DIR/containers/networks/rootless-netns"
refs() { cat "$NS/ref-count" 2>/dev/null || echo gone; }
# Scoped to this entry: other tests' sessions and podman helpers may run on the machine at the same time.
# This session's holder (run after its first burrow command), and its keeper (tail --pid=HOLDER).
holder() { sed 's/.*"pid":\\([0-9]*\\).*/\\1/' "$XDG_RUNTIME_DIR/burrow/holder.json"; }
keeper_of() { ps -eo pid=,stat=,args= | awk -v h="--pid=$1" '$2 !~ /^Z/ && $3 == "tail" && $(NF-1) == h && $NF == "/dev/null" { print $1 }'; }
keeper() { [ -n "$(keeper_of "$H")" ] && echo "a keeper runs" || echo "no keeper"; }
# A process by pid, not counting a zombie the entry's init has not reaped; waited for (podman's cleanup sends SIGTERM).
ended() { for i in $(seq 50); do s=$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null) && [ "$s" != Z ] || { echo "$2 ended"; return; }; sleep 0.1; done; echo "$2 runs"; }
fetch() { for i in $(seq 50); do if out=$("$@" 2>/dev/null); then echo "$out"; return; fi; sleep 0.1; done; echo unreached; }
mkdir -p www && echo bs > www/name`;
  const PODMAN_HTTPD = `--tmpfs /w --rootfs /opt/busybox-rootfs sh -c "echo pc > /w/name && exec httpd -f -p 8080 -h /w"`;

  test("rootless, podman 5: a podman container and a burrow sandbox on one network reach each other by name through podman's aardvark-dns; each holds podman's namespace, which goes with the last", async () => {
    const script = `${ROOTLESS_SHARE}
podman network create --subnet 10.89.97.0/24 shared >/dev/null
podman run -d --name pc --network shared ${PODMAN_HTTPD} >/dev/null
echo "podman alone: $(refs)"
burrow run -d --name bs --network shared -- busybox httpd -f -p 8080 -h "$HOME/www" >/dev/null
H=$(holder)
echo "both: $(refs)"
burrow info --format '{{.Host.UserNamespace}} {{.Network.NamedNetworks.Backend}} {{.Network.RootlessNetns.Helper}}'
[ "$(burrow info --format '{{.Network.RootlessNetns.Pid}}')" = "$(cat "$NS/rootless-netns-conn.pid")" ] && echo "info names podman's pasta"
burrow inspect bs --format "{{.NetworkSettings.Networks.shared.IPAddress}}"
podman inspect pc --format "{{.NetworkSettings.Networks.shared.IPAddress}}"
fetch podman exec pc wget -q -T 2 -O - http://bs:8080/name
fetch burrow exec bs -- curl -fsS --max-time 2 http://pc:8080/name
# one aardvark-dns serves both: podman's (netavark's pid file in podman's --config), none in burrow's own
aardvark=$(cat "$XDG_RUNTIME_DIR/containers/networks/aardvark-dns/aardvark.pid")
[ "$(cat /proc/$aardvark/comm)" = aardvark-dns ] && ! ls "$HOME"/.local/share/burrow/netavark/aardvark-dns/aardvark.pid >/dev/null 2>&1 && echo "podman's aardvark-dns only"
burrow rm -f bs >/dev/null
echo "after burrow rm: $(refs)"
fetch podman exec pc sh -c '! nslookup bs >/dev/null 2>&1 && echo bs-unnamed'
podman rm -f -t 0 pc >/dev/null
echo "after podman rm: $(refs)"
keeper
podman network rm shared >/dev/null`;
    const lines = await scriptLines(script);
    expect(lines.slice(0, 4)).toEqual(["podman alone: 1", "both: 2", "podman netavark pasta", "info names podman's pasta"]);
    const [burrowIp, podmanIp] = [lines[4], lines[5]];
    expect(burrowIp).toMatch(/^10\.89\.97\.\d+$/);
    expect(podmanIp).toBe("10.89.97.2");
    expect(burrowIp).not.toBe(podmanIp);
    expect(lines.slice(6)).toEqual(["bs", "pc", "podman's aardvark-dns only", "after burrow rm: 1", "bs-unnamed", "after podman rm: gone", "no keeper"]);
  }, 120_000);

  test("rootless, podman 5, the sandbox first: podman makes its namespace for burrow, a podman container started later joins it and they reach each other; burrow's rm ends it when it is last", async () => {
    const script = `${ROOTLESS_SHARE}
echo "before: $(refs)"
burrow network create --subnet 10.89.98.0/24 later >/dev/null
burrow run -d --name bs --network later -- busybox httpd -f -p 8080 -h "$HOME/www" >/dev/null
echo "sandbox alone: $(refs)"
pasta=$(cat "$NS/rootless-netns-conn.pid")
podman run -d --name pc --network later ${PODMAN_HTTPD} >/dev/null
echo "both: $(refs)"
aardvark=$(cat "$XDG_RUNTIME_DIR/containers/networks/aardvark-dns/aardvark.pid")
fetch podman exec pc wget -q -T 2 -O - http://bs:8080/name
fetch burrow exec bs -- curl -fsS --max-time 2 http://pc:8080/name
podman rm -f -t 0 pc >/dev/null
echo "after podman rm: $(refs)"
fetch burrow exec bs -- sh -c 'curl -fsS --max-time 2 http://pc:8080/name >/dev/null 2>&1 || echo pc-gone'
burrow rm -f bs >/dev/null
echo "after burrow rm: $(refs)"
ended "$pasta" "podman's pasta"
ended "$aardvark" "aardvark-dns"
burrow network rm later >/dev/null`;
    expect(await scriptLines(script)).toEqual([
      "before: gone",
      "sandbox alone: 1",
      "both: 2",
      "bs",
      "pc",
      "after podman rm: 1",
      "pc-gone",
      "after burrow rm: gone",
      "podman's pasta ended",
      "aardvark-dns ended",
    ]);
  }, 120_000);

  test("rootless, podman 5: a sandbox on podman's network (default grants) enters neither podman's rootless netns nor a podman container's", async () => {
    // docs/threat-model.md: setns needs CAP_SYS_ADMIN, and /proc/PID/ns/* of a process outside the sandbox's Landlock domain does not open.
    const script = `${ROOTLESS_SHARE}
podman network create --subnet 10.89.96.0/24 iso >/dev/null
podman run -d --name pc --network iso ${PODMAN_HTTPD} >/dev/null
burrow run -d --name bs --network iso -- sleep 300 >/dev/null
keeper=$(keeper_of "$(holder)")
ctr=$(podman inspect pc --format '{{.State.Pid}}')
for pid in $keeper $ctr; do
  if out=$(burrow exec bs -- nsenter --net=/proc/$pid/ns/net true 2>&1); then echo "entered $pid"; else echo "$out" | grep -o -m1 -E "Permission denied|Operation not permitted" || echo "failed otherwise: $out"; fi
done
# opening the file alone (what setns would take); its own namespace's opens, as a control
burrow exec bs -- sh -c '(exec 3</proc/self/ns/net) 2>/dev/null && echo "own opened"; (exec 3</proc/'$keeper'/ns/net) 2>/dev/null && echo opened || echo "not opened"'
burrow rm -f bs >/dev/null
podman rm -f -t 0 pc >/dev/null
podman network rm iso >/dev/null`;
    const lines = await scriptLines(script);
    for (const refused of lines.slice(0, 2)) expect(refused).toMatch(/^(Permission denied|Operation not permitted)$/);
    expect(lines.slice(2)).toEqual(["own opened", "not opened"]);
  }, 120_000);

  test("rootless, podman 5: what the conformance suite asks of a bridge network works in podman's namespace (static IP and MAC, names by name, alias and short id, two networks, a published port, connect, disconnect, reload keeping IP and MAC)", async () => {
    const port = await freePort();
    const script = `${ROOTLESS_SHARE}
mkdir -p web && echo served > web/index.html
burrow network create --subnet 10.89.80.0/24 n1 >/dev/null
burrow network create --subnet 10.89.81.0/24 n2 >/dev/null
burrow run -d --name a --network n1 --ip 10.89.80.10 --mac-address 02:42:ac:11:00:10 --network-alias alpha -p 127.0.0.1:${port}:80 -- busybox httpd -f -p 80 -h "$HOME/web" >/dev/null
# two networks, as podman takes them: --network repeated
burrow run -d --name b --network n1 --network n2 -- sleep 300 >/dev/null
short=$(burrow inspect a --format '{{.Id}}' | cut -c1-12)
for n in a alpha $short; do fetch burrow exec b -- curl -fsS --max-time 2 http://$n/; done
fetch curl -fsS --max-time 2 http://127.0.0.1:${port}/
burrow exec b -- ip -4 -o addr | awk '$2 != "lo" { print $2, $4 }' | sort
nets() { burrow inspect a --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} {{$v.MacAddress}};{{end}}'; }
burrow network connect n2 a
nets
burrow network disconnect n2 a
burrow network reload a >/dev/null
nets
fetch burrow exec b -- curl -fsS --max-time 2 http://alpha/
fetch curl -fsS --max-time 2 http://127.0.0.1:${port}/
echo "refs $(refs)"
burrow rm -f a b >/dev/null
burrow network rm n1 n2 >/dev/null
echo "after rm: $(refs)"`;
    const lines = await scriptLines(script);
    expect(lines.slice(0, 4)).toEqual(["served", "served", "served", "served"]);
    expect(lines[4]).toMatch(/^eth0 10\.89\.80\.\d+\/24$/);
    expect(lines[5]).toMatch(/^eth1 10\.89\.81\.\d+\/24$/);
    expect(lines[6]).toMatch(/^n1 10\.89\.80\.10 02:42:ac:11:00:10;n2 10\.89\.81\.\d+ ([0-9a-f]{2}:){5}[0-9a-f]{2};$/);
    expect(lines.slice(7)).toEqual(["n1 10.89.80.10 02:42:ac:11:00:10;", "served", "served", "refs 1", "after rm: gone"]);
  }, 120_000);

  test("rootless, podman 5: podman refusing to lend its namespace fails the run in one line with podman's reason, and leaves no row, keeper or namespace", async () => {
    const script = `${ROOTLESS_SHARE}
burrow run --rm --network none -- true
H=$(holder)
mkdir -p .config/containers
printf '[network]\\ndefault_rootless_network_cmd = "nosuchcmd"\\n' > .config/containers/containers.conf
burrow network create --subnet 10.89.86.0/24 broken >/dev/null
if burrow run -d --name bs --network broken -- sleep 30 2>err; then echo "ran"; else echo "exit $?"; fi
cat err
burrow ps -a --format '{{.Names}}' | wc -l
echo "namespace: $(refs)"
keeper
burrow network rm broken >/dev/null`;
    expect(await scriptLines(script)).toEqual([
      "exit 125",
      'Error: podman could not lend its rootless network namespace: invalid rootless network command "nosuchcmd"',
      "0",
      "namespace: gone",
      "no keeper",
    ]);
  }, 120_000);

  test("rootless, podman 5: after a logout (the runtime dir emptied) the sandbox on podman's network is named again, a new one joins and they reach each other by name; rm leaves no aardvark-dns, keeper or namespace", async () => {
    const script = `${ROOTLESS_SHARE}
burrow network create --subnet 10.89.87.0/24 lo1 >/dev/null
burrow run -d --name a --network lo1 -- busybox httpd -f -p 8080 -h "$HOME/www" >/dev/null
H=$(holder)
aardvark=$(cat "$XDG_RUNTIME_DIR/containers/networks/aardvark-dns/aardvark.pid")
rm -rf "$XDG_RUNTIME_DIR"/*
# the daemon's checks notice within a second; its restore writes aardvark-dns's files again
for i in $(seq 50); do [ -f "$XDG_RUNTIME_DIR/containers/networks/aardvark-dns/lo1" ] && break; sleep 0.1; done
burrow run -d --name b --network lo1 -- sleep 300 >/dev/null
fetch burrow exec b -- curl -fsS --max-time 2 http://a:8080/name
burrow exec a -- getent hosts b >/dev/null && echo "a resolves b"
ended "$aardvark" "the old aardvark-dns"
now=$(cat "$XDG_RUNTIME_DIR/containers/networks/aardvark-dns/aardvark.pid")
[ "$now" != "$aardvark" ] && [ "$(cat /proc/$now/comm)" = aardvark-dns ] && echo "a new aardvark-dns"
burrow rm -f a b >/dev/null
burrow network rm lo1 >/dev/null
keeper
ended "$now" "the new aardvark-dns"`;
    expect(await scriptLines(script)).toEqual([
      "bs",
      "a resolves b",
      "the old aardvark-dns ended",
      "a new aardvark-dns",
      "no keeper",
      "the new aardvark-dns ended",
    ]);
  }, 120_000);

  // podman allocates from its ipam.db alone: a sandbox's addresses are written there (src/net/netavark/ipam-db-write.ts).
  const IPAM_BOTH_WAYS = `burrow run -d --name bs --network nodns --ip 10.89.93.2 -- sleep 300 >/dev/null
$P run -d --name pc --network nodns --rootfs /opt/busybox-rootfs sleep 300 >/dev/null
$P inspect pc --format "{{.NetworkSettings.Networks.nodns.IPAddress}}"
$P run -d --name taken --network nodns --ip 10.89.93.2 --rootfs /opt/busybox-rootfs true >/dev/null 2>&1 && echo "podman took the sandbox's address" || echo "podman refused the sandbox's address"
$P rm -f -t 0 taken >/dev/null 2>&1 || true
burrow rm -f bs >/dev/null
$P run -d --name pc2 --network nodns --ip 10.89.93.2 --rootfs /opt/busybox-rootfs sleep 300 >/dev/null && $P inspect pc2 --format "{{.NetworkSettings.Networks.nodns.IPAddress}}"
$P rm -f -t 0 pc pc2 >/dev/null
$P network rm nodns >/dev/null`;

  test("rootless, podman 5: podman never gives a container the address a sandbox holds (the sandbox's entry in podman's ipam.db), and has it back after rm", async () => {
    const script = `${ROOTLESS_SHARE}
P=podman
$P network create --subnet 10.89.93.0/24 --disable-dns nodns >/dev/null
${IPAM_BOTH_WAYS}`;
    const r = await sidRun(["sh", "-ec", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // Without the entry podman's allocator starts at .2, the sandbox's (docs/netavark.md).
    expect(r.stdout.trim().split("\n")).toEqual(["10.89.93.3", "podman refused the sandbox's address", "10.89.93.2"]);
  }, 120_000);

  test("rootful: podman never gives a container the address a sandbox holds, and has it back after rm", async () => {
    const script = `unshare -n sh -ec '
${ROOTFUL_PODMAN.replaceAll("'", "'\\''")}
$P network create --subnet 10.89.93.0/24 --disable-dns nodns >/dev/null
${IPAM_BOTH_WAYS.replaceAll("'", "'\\''")}
'`;
    const r = await sidRun(["sh", "-ec", script], { user: false });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["10.89.93.3", "podman refused the sandbox's address", "10.89.93.2"]);
  }, 120_000);

  test("rootless, podman 5: a daemon killed with a sandbox on podman's network leaves it reachable; the next daemon removes it and lets go of podman's namespace", async () => {
    const script = `${ROOTLESS_SHARE}
podman network create --subnet 10.89.99.0/24 kept >/dev/null
burrow run -d --name bs --network kept -- busybox httpd -f -p 8080 -h "$HOME/www" >/dev/null
podman run -d --name pc --network kept ${PODMAN_HTTPD} >/dev/null
# this session's daemon: the holder's child (other daemons may run on the machine)
H=$(holder)
daemon=$(ps -o pid=,args= --ppid "$H" | awk '$3 == "__daemon" { print $1 }')
[ -n "$daemon" ] || { echo "no daemon under holder $H" >&2; exit 1; }
kill -9 $daemon
fetch podman exec pc wget -q -T 2 -O - http://bs:8080/name
echo "killed: $(refs)"
burrow rm -f bs >/dev/null
echo "after burrow rm: $(refs)"
keeper
podman rm -f -t 0 pc >/dev/null
echo "after podman rm: $(refs)"
podman network rm kept >/dev/null`;
    expect(await scriptLines(script)).toEqual(["bs", "killed: 2", "after burrow rm: 1", "no keeper", "after podman rm: gone"]);
  }, 120_000);

  test("IPv6 ports on a netavark 1.17 network made with --ipv6, rootless: [::1] reaches the sandbox over IPv6", async () => {
    const port = await freePort();
    const script = `${SID_FRESH_HOME}
${PEER_CGI}
burrow network create --ipv6 sid6 >/dev/null
burrow run -d --name web6 --network sid6 -p "[::1]:${port}:80" -- busybox httpd -f -p 80 -h "$HOME/www" >/dev/null
ask "[::1]:${port}"
burrow inspect web6 --format '{{.NetworkSettings.Networks.sid6.GlobalIPv6Address}}'
burrow rm -f web6 >/dev/null
burrow network rm sid6 >/dev/null
burrow ps -a --format json`;
    const [peer, own, rows] = await scriptLines(script);
    expect(own).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]+$/);
    expect(peer).toBe(`[::1]:${port} -> [${own}]`);
    expect(JSON.parse(rows ?? "")).toEqual([]);
  }, 90_000);

  test("IPv6 ports rootful, netavark 1.17 with nftables: plain -p and [::] by DNAT, [::1] through the forwarder", async () => {
    // As the rootful test above: a netns of its own, everything in the entry's /run.
    const script = `unshare -n sh -ec '
export BURROW_NETWORKS_DIR=/run/t/networks BURROW_STATE_DIR=/run/t/burrow-state HOME=/run/t/home
mkdir -p /run/t/home && cd /run/t/home
${PEER_CGI.replaceAll("'", "'\\''")}
ip link set lo up
ip link add host0 type veth peer name host1 && ip link set host0 up && ip link set host1 up
ip addr add fd99:15:4::1/64 dev host0 nodad && ip addr add 10.15.4.1/24 dev host0
burrow network create --ipv6 sid6 >/dev/null
burrow run -d --name web6 --network sid6 -p 31990:80 -p "[::]:31991:80" -p "[::1]:31992:80" -- busybox httpd -f -p 80 -h /run/t/home/www >/dev/null
ask "[fd99:15:4::1]:31990"; ask "10.15.4.1:31990"; ask "[fd99:15:4::1]:31991"; ask "10.15.4.1:31991"; ask "[::1]:31992"
burrow inspect web6 --format "{{.NetworkSettings.Networks.sid6.GlobalIPv6Address}}"
burrow rm -f web6 >/dev/null
burrow network rm sid6 >/dev/null
burrow ps -a --format json
/usr/sbin/nft list ruleset | grep -c 3199 || true
'`;
    const r = await sidRun(["sh", "-ec", script], { user: false });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    const own = lines[5]!;
    expect(own).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]+$/);
    expect(lines).toEqual([
      "[fd99:15:4::1]:31990 -> [fd99:15:4::1]",
      "10.15.4.1:31990 -> [::ffff:10.15.4.1]",
      "[fd99:15:4::1]:31991 -> [fd99:15:4::1]",
      "10.15.4.1:31991 -> [::ffff:10.15.4.1]",
      `[::1]:31992 -> [${own}]`,
      own,
      "[]",
      "0",
    ]);
  }, 90_000);

  test("slirp4netns: run --rm works", async () => {
    const r = await sidRun(["sh", "-ec", `${SID_FRESH_HOME}; burrow run --rm --network slirp4netns -- ip -4 -o addr show tap0`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("10.0.2.100/24");
  }, 60_000);

  test("podman 5 runs the static busybox tree (runc, cgroupfs)", async () => {
    const r = await sidRun(["sh", "-ec", `${SID_FRESH_HOME}; podman run --rm --network none --rootfs /opt/busybox-rootfs sh -c 'echo in-container; id -u'`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("in-container\n0\n");
  }, 60_000);

  test("an entry ends what its command left running, and keeps its exit status", async () => {
    // A daemon and holder (burrow -d), a sandbox, a stray background sleep
    // and podman's pause process: all outlive CMD, none the entry.
    const script = `${SID_FRESH_HOME}
burrow run -d -- sleep 1000 >/dev/null
podman run --rm -d --network none --rootfs /opt/busybox-rootfs sleep 1000 >/dev/null 2>&1
sleep 1000 &
exit 7`;
    const r = await sidRun(["sh", "-ec", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(7);
  }, 60_000);

  test("a terminated entry ends everything too", async () => {
    const p = sidSpawn(["sh", "-ec", `${SID_FRESH_HOME}; burrow run -d -- sleep 1000 >/dev/null; exec sleep 1000`]);
    const root = sidRootDir();
    // Running: the sandbox's sleep and the command's own, both in the root.
    const sleeping = () =>
      pidsInSidRoot(root).filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8") === "sleep\u00001000\u0000";
        } catch {
          return false;
        }
      });
    await until(() => sleeping().length === 2, 20_000, "the sandbox's and the command's sleep 1000");
    p.kill("SIGTERM");
    const r = await sidWait(p);
    expect(r.code).toBe(143);
  }, 60_000);
});

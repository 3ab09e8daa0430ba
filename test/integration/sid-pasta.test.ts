// Issue 15, Tests: the port-driver and network-backend conformance cases with
// pasta on the sid tier's pasta (passt 2026; Debian 12's 2023 pasta runs them
// in conformance-ports.test.ts and conformance-networks.test.ts), and pasta
// as the helper of the bridge networks' shared rootless namespace there, with
// netavark 1.17 (podman 5's containers.conf default_rootless_network_cmd).
// The cases are those suites' own, written as shell because the sid root has
// no Bun: perl (perl-base) stands in for test/helpers/net-client.ts. Servers
// and clients run inside the sid root, which shares the host's network; every
// entry ends with the tier's checks (nothing of it left running).
import { describe, expect, test } from "bun:test";
import { integrationUnavailable } from "../helpers/env.ts";
import { freePort } from "../helpers/sys.ts";
import { describeWhen } from "../helpers/requirements.ts";
import { SID_FRESH_HOME, prepareSidRoot, sidRun, sidTierChecks } from "../helpers/sid.ts";

const unavailable = integrationUnavailable();
const archiveUnreachable = unavailable ? null : await prepareSidRoot();
if (unavailable) console.warn(`skipping the sid tier's pasta tests: ${unavailable}`);
if (archiveUnreachable) console.warn(`skipping the sid tier's pasta tests: ${archiveUnreachable}`);

/** Two consecutive free ports, below the ephemeral range and apart from the other suites'. */
function freeRange(): number {
  for (;;) {
    const base = 26000 + Math.floor(Math.random() * 4000);
    try {
      const held = [base, base + 1].map((port) => Bun.listen({ hostname: "0.0.0.0", port, socket: { data() {} } }));
      for (const h of held) h.stop(true);
      return base;
    } catch {}
  }
}

// The conformance suites' services and clients in perl: a sink that answers
// after the client's EOF with the byte count and the bytes in hex, a UDP
// echo, a half-closing client and a UDP client (3 s for the reply).
const PERL_FILES = `cat > sink.pl <<'EOF'
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 7002, Listen => 5, ReuseAddr => 1) or die "sink: $!";
while (my $c = $s->accept) { local $/; my $d = <$c>; $d = "" unless defined $d; print $c length($d) . " " . unpack("H*", $d) . "\\n"; close $c }
EOF
cat > udp-echo.pl <<'EOF'
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 7003, Proto => "udp") or die "udp: $!";
while (1) { my $from = $s->recv(my $d, 2048); $s->send($d, 0, $from) if defined $from }
EOF
cat > halfclose.pl <<'EOF'
use IO::Socket::INET;
my ($port, $data) = @ARGV;
my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port) or die "connect $port: $!\\n";
print $c $data; shutdown($c, 1); local $/; my $r = <$c>; print defined $r ? $r : "";
EOF
cat > udp.pl <<'EOF'
use IO::Socket::INET;
my ($port, $data) = @ARGV;
my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port, Proto => "udp") or die "udp $port: $!\\n";
$c->send($data);
my $r = "";
eval { local $SIG{ALRM} = sub { die "timeout\\n" }; alarm 3; $c->recv($r, 2048); alarm 0 };
print $r;
EOF`;

const tier = archiveUnreachable ? describe.skip : describeWhen(unavailable);

tier("sid tier: pasta", () => {
  sidTierChecks();

  test("the network-backend and port-driver conformance cases pass with --network pasta on sid's pasta", async () => {
    const range = freeRange();
    const [sink, udp, busy] = [await freePort(), await freePort(), await freePort()];
    const script = `${SID_FRESH_HOME}
${PERL_FILES}
mkdir www && echo "served from the sandbox" > www/index.html
cat > servers.sh <<EOF
busybox nc -ll -p 7000 -e cat &
busybox httpd -f -p 7001 -h $HOME/www &
perl $HOME/sink.pl &
perl $HOME/udp-echo.pl &
busybox nc -ll -p 7005 -e cat &
wait
EOF
id=$(burrow run -d --name svc --network pasta -p ${range}-${range + 1}:7000-7001 -p ${sink}:7002 -p 127.0.0.1:${udp}:7003/udp -p 7005 -- sh "$HOME/servers.sh")
# This sandbox's pasta (others may run pasta on this machine too)
pasta_pid=$(cat "$XDG_RUNTIME_DIR/burrow/sandboxes/$id/pasta.pid")
# network-backend conformance: an address, a default route, a nameserver, the name on its own address (this minbase root has no /etc/hosts to bind over), exec
burrow exec svc -- sh -c 'a=$(ip -4 -o addr show scope global | grep -o "inet [0-9.]*" | head -1 | cut -d" " -f2); [ -n "$a" ] && ip -4 route show default | grep -q "^default via " && grep -q "^nameserver " /etc/resolv.conf && { [ ! -e /etc/hosts ] || grep -q "^$a[[:space:]].*\\bsvc\\b" /etc/hosts; } && echo conformance-ok'
# port-driver conformance: HTTP through the range's second port (pasta forwards at once; the server listens a moment later)
tries=0
until body=$(curl -fsS --max-time 2 http://127.0.0.1:$((${range} + 1))/ 2>/dev/null); do
  tries=$((tries + 1)); [ $tries -lt 100 ] || { echo "no HTTP on ${range + 1}" >&2; exit 1; }
  sleep 0.1
done
echo "$body"
tries=0
until out=$(perl halfclose.pl ${range} ping-echo 2>/dev/null) && [ -n "$out" ]; do
  tries=$((tries + 1)); [ $tries -lt 50 ] || { echo "no echo on ${range}" >&2; exit 1; }
  sleep 0.1
done
echo "$out"
perl halfclose.pl ${sink} "twelve bytes"
port=$(burrow port svc 7005)
echo "random $port" | sed 's/:[0-9]*$/:N/'
perl halfclose.pl "\${port##*:}" 12345; echo
tries=0
until out=$(perl udp.pl ${udp} ping-udp) && [ -n "$out" ]; do
  tries=$((tries + 1)); [ $tries -lt 10 ] || { echo "no UDP echo on ${udp}" >&2; break; }
done
echo "udp $out"
# a host port in use: refused with the port named, the second sandbox rolled back
burrow run -d --name first --network pasta -p ${busy}:7001 -- sleep 300 >/dev/null
set +e
burrow run -d --name second --network pasta -p ${busy}:7001 -- sleep 300 >/dev/null 2>second.err
echo "second exit $?"
set -e
grep -c "host port ${busy}/tcp is already in use" second.err
burrow ps -a --format '{{.Names}}' | sort | tr '\\n' ' '; echo
burrow rm -f svc first >/dev/null
burrow ps -a --format json
tries=0
while kill -0 "$pasta_pid" 2>/dev/null; do
  tries=$((tries + 1)); [ $tries -lt 50 ] || { echo "pasta $pasta_pid left after rm" >&2; exit 1; }
  sleep 0.1
done
curl -fsS --max-time 2 http://127.0.0.1:$((${range} + 1))/ >/dev/null 2>&1 && echo "still served after rm" || echo "not served after rm"`;
    const r = await sidRun(["sh", "-ec", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const twelve = Buffer.from("twelve bytes").toString("hex");
    expect(r.stdout.trim().split("\n")).toEqual([
      "conformance-ok",
      "served from the sandbox",
      "ping-echo",
      `12 ${twelve}`,
      "random 0.0.0.0:N",
      "12345",
      "udp ping-udp",
      "second exit 125",
      "1",
      "first svc ",
      "[]",
      "not served after rm",
    ]);
  }, 120_000);

  test("bridge networks with pasta for their shared rootless namespace (netavark 1.17): outbound to the host through pasta's guest address, names, a published port, info; no pasta after rm and network rm", async () => {
    const [hostPort, published] = [await freePort(), await freePort()];
    // burrow's own rootless namespace (BURROW_PODMAN_USERNS=0): what a machine
    // without podman 5 gets; sid.test.ts covers podman's, shared.
    const script = `${SID_FRESH_HOME}
export BURROW_PODMAN_USERNS=0
mkdir -p .config/containers www host
printf '[network]\\ndefault_rootless_network_cmd = "pasta"\\n' > .config/containers/containers.conf
echo "served from the sandbox" > www/index.html
echo "hello from the host" > host/index.html
# A server in the root, which shares the host's network: pasta maps 169.254.1.2 to the host (--map-guest-addr).
busybox httpd -f -p 0.0.0.0:${hostPort} -h "$HOME/host" &
host_httpd=$!
burrow network create pn >/dev/null
burrow run -d --name web --network pn -p 127.0.0.1:${published}:80 -- busybox httpd -f -p 80 -h "$HOME/www" >/dev/null
cli=$(burrow run -d --name cli --network pn -- sleep 300)
burrow info --format '{{.Host.UserNamespace}} {{.Network.NamedNetworks.Backend}} {{.Network.RootlessNetns.Helper}}'
# The namespace's pasta: info's pid is the one in its pid file, and a pasta serving the namespace's pin
pasta_pid=$(burrow info --format '{{.Network.RootlessNetns.Pid}}')
[ "$pasta_pid" = "$(cat "$XDG_RUNTIME_DIR/burrow/rootless-netns/pasta.pid")" ] && grep -a -q -- "$XDG_RUNTIME_DIR/burrow/rootless-netns/net" /proc/$pasta_pid/cmdline && echo "pasta serves the namespace"
burrow exec cli -- curl -fsS --max-time 5 http://169.254.1.2:${hostPort}/
tries=0
until body=$(burrow exec cli -- curl -fsS --max-time 2 http://web/ 2>/dev/null); do
  tries=$((tries + 1)); [ $tries -lt 100 ] || { echo "web not reachable by name" >&2; exit 1; }
  sleep 0.1
done
echo "$body"
tries=0
until body=$(curl -fsS --max-time 2 http://127.0.0.1:${published}/ 2>/dev/null); do
  tries=$((tries + 1)); [ $tries -lt 100 ] || { echo "no answer on ${published}" >&2; exit 1; }
  sleep 0.1
done
echo "$body"
# host.containers.internal: pasta's mapped guest address (podman 5.3). This minbase root has no
# /etc/hosts to bind the sandbox's over, so the file burrow wrote for it is read.
grep -w host.containers.internal "$XDG_RUNTIME_DIR/burrow/sandboxes/$cli/hosts" | cut -f1 | cut -d' ' -f1
burrow rm -f web cli >/dev/null
burrow network rm pn >/dev/null
tries=0
while kill -0 "$pasta_pid" 2>/dev/null; do
  tries=$((tries + 1)); [ $tries -lt 50 ] || { echo "pasta $pasta_pid left after rm and network rm" >&2; exit 1; }
  sleep 0.1
done
kill $host_httpd
burrow ps -a --format json`;
    const r = await sidRun(["sh", "-ec", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.slice(0, 6)).toEqual([
      "burrow netavark pasta",
      "pasta serves the namespace",
      "hello from the host",
      "served from the sandbox",
      "served from the sandbox",
      "169.254.1.2",
    ]);
    expect(lines.at(-1)).toBe("[]");
  }, 120_000);
});

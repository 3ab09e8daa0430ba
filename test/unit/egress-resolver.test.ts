// The egress service (src/egress/service.ts) and its Worker
// (src/egress/worker.ts), run for real: resolver sockets bound on 127.0.0.1
// in the test's own netns (the service does not care where they were made),
// a small DNS server as upstream (test/helpers/fake-dns.ts), and the
// worker's learner and NFLOG reader replaced by pipes
// (test/helpers/egress-fakes.ts) so the test sees what would be learned,
// and when, and feeds logged packets. No root needed.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { type DnsMessage, encodeMessage, RCODE, TYPE } from "../../src/egress/dns-message.ts";
import { framed, TcpFrames } from "../../src/egress/forwarding.ts";
import { type EgressPolicy, parseEgressFlags } from "../../src/egress/policy.ts";
import { createEgressService, type EgressAttach, type EgressRefusalEvent, type EgressService } from "../../src/egress/service.ts";
import { close } from "../../src/sys/ns.ts";
import { bindUdpSocket, listenTcpSocket, pipe, readNB, writeAll } from "../../src/sys/sockets.ts";
import { a, askOverTcp, cname, type DnsClient, dnsClient, type FakeDns, fakeDns, query } from "../helpers/fake-dns.ts";
import { UNLEARNABLE } from "../helpers/egress-fakes.ts";
import { until } from "../helpers/until.ts";

const FAKES = new URL("../helpers/egress-fakes.ts", import.meta.url).pathname;

type Entry = { set: string; address: string; seconds: number };

const zone = {
  records: {
    "allowed.test": [a("allowed.test", "198.51.100.10")],
    "cached.allowed.test": [a("cached.allowed.test", "198.51.100.13")],
    "cdn.allowed.test": [cname("cdn.allowed.test", "edge.cdn.test"), a("edge.cdn.test", "198.51.100.11", 120)],
    "rebind.allowed.test": [a("rebind.allowed.test", "127.0.0.1")],
    "big.allowed.test": [a("big.allowed.test", "198.51.100.12")],
    "held.allowed.test": [a("held.allowed.test", "198.51.100.14")],
    "other.test": [a("other.test", "198.51.100.20")],
    "restart.allowed.test": [a("restart.allowed.test", "198.51.100.15")],
    "forged.allowed.test": [a("forged.allowed.test", "198.51.100.16")],
    "unlearnable.allowed.test": [a("unlearnable.allowed.test", UNLEARNABLE)],
    // TTL 0: never cached, so each query is a fresh answer from upstream.
    "slack.allowed.test": [a("slack.allowed.test", "198.51.100.17", 0)],
  },
  forged: ["forged.allowed.test"],
  truncated: ["big.allowed.test"],
  held: ["held.allowed.test"],
};

let upstream: FakeDns;
let service: EgressService;
const refusals: { id: string; event: EgressRefusalEvent }[] = [];
const learnedReports: { id: string; allowIndex: number; address: string }[] = [];
const open: Sandbox[] = [];

beforeAll(async () => {
  upstream = await fakeDns(zone);
  service = createEgressService(
    {
      onRefusal: (id, event) => refusals.push({ id, event }),
      onLearned: (id, allowIndex, address) => learnedReports.push({ id, allowIndex, address }),
    },
    { learnerModule: FAKES, nflogModule: FAKES, upstreamPort: upstream.port },
  );
});

afterAll(async () => {
  await service.close();
  upstream.close();
});

afterEach(() => {
  for (const s of open.splice(0)) s.dispose();
});

const policy = (flags: Partial<Parameters<typeof parseEgressFlags>[0]>): EgressPolicy =>
  parseEgressFlags({ allowHost: [], allowCidr: [], denyCidr: [], logOnly: false, ...flags })!;
/** allow[0] is allowed.test, allow[1] *.allowed.test; deny[0] 192.0.2.0/24. */
const POLICY = policy({ allowHost: ["allowed.test", "*.allowed.test"], denyCidr: ["192.0.2.0/24"] });

interface Sandbox {
  id: string;
  attach: EgressAttach;
  udpPort: number;
  tcpPort: number;
  /** The other ends of the `nft` and `nflog` pipes. */
  learnRead: number;
  nflogWrite: number;
  client: DnsClient;
  /** What the learner had written when each answer arrived, by the answer's ID. */
  learnedAtAnswer: Map<number, Entry[]>;
  readLearned(): Entry[];
  dispose(): void;
}

let serial = 0;
async function sandbox(p: EgressPolicy = POLICY, upstreams = ["127.0.0.1"], svc: EgressService = service, learned?: EgressAttach["learned"]): Promise<Sandbox> {
  const id = `sb${++serial}`;
  const udp = bindUdpSocket("127.0.0.1", 0);
  const tcp = listenTcpSocket("127.0.0.1", 0);
  const [learnRead, learnWrite] = pipe();
  const [nflogRead, nflogWrite] = pipe();
  const buf = new Uint8Array(65536);
  let text = "";
  const readLearned = (): Entry[] => {
    for (;;) {
      const n = readNB(learnRead, buf);
      if (n <= 0) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const lines = text.split("\n");
    text = lines.pop()!;
    return lines.flatMap((l) => JSON.parse(l) as Entry[]);
  };
  const learnedAtAnswer = new Map<number, Entry[]>();
  const client = await dnsClient(udp.port, (m) => learnedAtAnswer.set(m.header.id, readLearned()));
  const attach: EgressAttach = {
    id,
    name: id,
    policy: p,
    context: { hostAddresses: [] },
    upstreams,
    fds: { dnsUdp: udp.fd, dnsTcp: tcp.fd, nft: learnWrite, nflog: nflogRead },
    ...(learned ? { learned } : {}),
  };
  await svc.attach(attach);
  let disposed = false;
  const s: Sandbox = {
    id,
    attach,
    udpPort: udp.port,
    tcpPort: tcp.port,
    learnRead,
    nflogWrite,
    client,
    learnedAtAnswer,
    readLearned,
    dispose() {
      if (disposed) return;
      disposed = true;
      svc.detach(id);
      client.close();
      close(learnRead);
      close(nflogWrite);
    },
  };
  open.push(s);
  return s;
}

const addresses = (m: DnsMessage) => m.answers.flatMap((r) => (r.data.kind === "address" ? [r.data.address] : []));
const eventsOf = (id: string) => refusals.filter((r) => r.id === id).map((r) => r.event);
const logPacket = (s: Sandbox, packet: object) => writeAll(s.nflogWrite, new TextEncoder().encode(`${JSON.stringify(packet)}\n`));

/** A DNS-over-TCP client that asks for allowed.test and stays connected: resolves once answered; `closed` when the resolver closes it. */
async function heldTcpClient(port: number): Promise<{ socket: { close(): void }; closed: Promise<void> }> {
  const frames = new TcpFrames();
  const answered = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open: (c) => void c.write(framed(encodeMessage(query("allowed.test")))),
      data: (_c, d) => {
        if (frames.push(new Uint8Array(d)).length > 0) answered.resolve();
      },
      close: () => closed.resolve(),
    },
  });
  await answered.promise;
  return { socket, closed: closed.promise };
}

describe("the egress resolver", () => {
  test("an allowed name is answered with its addresses, learned into its rule's set before the answer arrives", async () => {
    const s = await sandbox();
    const q = query("Allowed.Test");
    const answer = await s.client.ask(q);
    expect(answer.header.rcode).toBe(RCODE.NOERROR);
    expect(answer.questions[0]!.name).toBe("Allowed.Test");
    expect(addresses(answer)).toEqual(["198.51.100.10"]);
    // The TTL's 300 s and LEARN_SLACK_S to spare.
    expect(s.learnedAtAnswer.get(q.header.id)).toEqual([{ set: "allow_0_v4", address: "198.51.100.10", seconds: 330 }]);
    await until(() => learnedReports.some((r) => r.id === s.id && r.address === "198.51.100.10" && r.allowIndex === 0), 5000, "onLearned");
    expect(service.learnedCount(s.id)).toBe(1);
    expect(upstream.seen).toContain("udp allowed.test");
  });

  test("a CNAME chain from an allowed name: the chain answered, its end's address learned for the asked name's rule", async () => {
    const s = await sandbox();
    const q = query("cdn.allowed.test");
    const answer = await s.client.ask(q);
    expect(answer.answers.map((r) => r.type)).toEqual([TYPE.CNAME, TYPE.A]);
    expect(addresses(answer)).toEqual(["198.51.100.11"]);
    expect(s.learnedAtAnswer.get(q.header.id)).toEqual([{ set: "allow_1_v4", address: "198.51.100.11", seconds: 150 }]);
  });

  test("a name no rule allows is REFUSED without asking upstream, and reported as a DNS refusal", async () => {
    const s = await sandbox();
    const answer = await s.client.ask(query("other.test"));
    expect(answer.header.rcode).toBe(RCODE.REFUSED);
    expect(upstream.seen.filter((x) => x.endsWith(" other.test"))).toEqual([]);
    const event = await until(() => eventsOf(s.id)[0], 5000, "the refusal event");
    expect(event).toEqual({
      destination: "",
      protocol: "dns",
      rule: null,
      reason: "name not allowed",
      name: "other.test",
      count: 1,
      status: "egress-dns-refused",
    });
    expect(s.readLearned()).toEqual([]);
  });

  test("rebinding an allowed name to 127.0.0.1: REFUSED, not learned, reported", async () => {
    const s = await sandbox();
    const q = query("rebind.allowed.test");
    const answer = await s.client.ask(q);
    expect(answer.header.rcode).toBe(RCODE.REFUSED);
    expect(s.learnedAtAnswer.get(q.header.id)).toEqual([]);
    const event = await until(() => eventsOf(s.id)[0], 5000, "the refusal event");
    expect(event).toMatchObject({ destination: "127.0.0.1", reason: "rebinding", name: "rebind.allowed.test", status: "egress-dns-refused" });
  });

  test("a truncated UDP answer is asked again over TCP", async () => {
    const s = await sandbox();
    const answer = await s.client.ask(query("big.allowed.test"));
    expect(addresses(answer)).toEqual(["198.51.100.12"]);
    expect(upstream.seen.filter((x) => x.endsWith(" big.allowed.test"))).toEqual(["udp big.allowed.test", "tcp big.allowed.test"]);
  });

  test("a cached answer: upstream is asked once for two queries, and the second learns its address again", async () => {
    const s = await sandbox();
    const other = await sandbox();
    const q1 = query("cached.allowed.test");
    const q2 = query("cached.allowed.test");
    expect(addresses(await s.client.ask(q1))).toEqual(["198.51.100.13"]);
    expect(addresses(await other.client.ask(q2))).toEqual(["198.51.100.13"]);
    expect(upstream.seen.filter((x) => x.endsWith(" cached.allowed.test"))).toEqual(["udp cached.allowed.test"]);
    expect(s.learnedAtAnswer.get(q1.header.id)!.map((e) => e.address)).toEqual(["198.51.100.13"]);
    expect(other.learnedAtAnswer.get(q2.header.id)!.map((e) => e.address)).toEqual(["198.51.100.13"]);
  });

  test("an address is learned again only when the answer needs more than its entry holds: a flood costs no kernel work per query", async () => {
    const s = await sandbox();
    const learnedAt = (q: DnsMessage) => s.learnedAtAnswer.get(q.header.id);
    const reportsOf = () => learnedReports.filter((r) => r.id === s.id && r.address === "198.51.100.17");
    const records = zone.records["slack.allowed.test"]!;
    try {
      // TTL 0: learned for 60 s and LEARN_SLACK_S to spare; the same answer again is covered by that entry.
      const first = query("slack.allowed.test");
      expect(addresses(await s.client.ask(first))).toEqual(["198.51.100.17"]);
      expect(learnedAt(first)).toEqual([{ set: "allow_1_v4", address: "198.51.100.17", seconds: 90 }]);
      const again = query("slack.allowed.test");
      expect(addresses(await s.client.ask(again))).toEqual(["198.51.100.17"]);
      expect(learnedAt(again)).toEqual([]);
      expect(upstream.seen.filter((x) => x === "udp slack.allowed.test").length).toBe(2);
      // A TTL of 120 s needs the entry past the 90 s it holds: written again.
      zone.records["slack.allowed.test"] = [a("slack.allowed.test", "198.51.100.17", 120)];
      const longer = query("slack.allowed.test");
      expect(addresses(await s.client.ask(longer))).toEqual(["198.51.100.17"]);
      expect(learnedAt(longer)).toEqual([{ set: "allow_1_v4", address: "198.51.100.17", seconds: 150 }]);
      // And a cached hit for it is covered too.
      const cached = query("slack.allowed.test");
      expect(addresses(await s.client.ask(cached))).toEqual(["198.51.100.17"]);
      expect(learnedAt(cached)).toEqual([]);
      // One "learned" report per write, none for the answers the entry covered (each was posted before its answer was sent).
      await until(() => reportsOf().length === 2, 5000, "two learned reports");
      await s.client.ask(query("allowed.test"));
      expect(reportsOf().length).toBe(2);
    } finally {
      zone.records["slack.allowed.test"] = records;
    }
  });

  test("an upstream answer with another ID or another question is not taken", async () => {
    const s = await sandbox();
    const q = query("forged.allowed.test");
    expect(addresses(await s.client.ask(q))).toEqual(["198.51.100.16"]);
    expect(s.learnedAtAnswer.get(q.header.id)!.map((e) => e.address)).toEqual(["198.51.100.16"]);
  });

  test("at most 16 DNS-over-TCP connections per sandbox: one more is closed unanswered", async () => {
    const s = await sandbox();
    const held: { close(): void }[] = [];
    try {
      for (let i = 0; i < 16; i++) held.push((await heldTcpClient(s.tcpPort)).socket);
      await expect(askOverTcp(s.tcpPort, [query("allowed.test")])).rejects.toThrow("closed after 0 of 1 answers");
    } finally {
      for (const c of held) c.close();
    }
  });

  test("an address that cannot be learned is not answered: SERVFAIL", async () => {
    const s = await sandbox();
    const q = query("unlearnable.allowed.test");
    expect((await s.client.ask(q)).header.rcode).toBe(RCODE.SERVFAIL);
    expect(s.learnedAtAnswer.get(q.header.id)).toEqual([]);
    expect(service.learnedCount(s.id)).toBe(0);
  });

  test("DNS over TCP: several queries on one connection, each answered", async () => {
    const s = await sandbox();
    const q1 = query("allowed.test");
    const q2 = query("other.test");
    const answers = await askOverTcp(s.tcpPort, [q1, q2]);
    const byId = new Map(answers.map((m) => [m.header.id, m]));
    expect(addresses(byId.get(q1.header.id)!)).toEqual(["198.51.100.10"]);
    expect(byId.get(q2.header.id)!.header.rcode).toBe(RCODE.REFUSED);
  });

  test("at most 64 queries in flight per sandbox: more are SERVFAIL at once", async () => {
    const s = await sandbox();
    const queries = Array.from({ length: 70 }, () => query("held.allowed.test"));
    const answers: DnsMessage[] = [];
    const all = Promise.all(queries.map((q) => s.client.ask(q).then((m) => answers.push(m))));
    await until(() => upstream.heldCount() === 64 && answers.length === 6, 10_000, "64 held upstream and 6 answered");
    expect(answers.every((m) => m.header.rcode === RCODE.SERVFAIL)).toBe(true);
    upstream.release();
    await all;
    expect(answers.slice(6).every((m) => m.header.rcode === RCODE.NOERROR && addresses(m)[0] === "198.51.100.14")).toBe(true);
  });

  test("an upstream that does not answer: the next one is asked; none left: SERVFAIL", async () => {
    const dead = await fakeDns(zone, "127.0.0.2", upstream.port, true);
    try {
      const s = await sandbox(POLICY, ["127.0.0.2", "127.0.0.1"]);
      expect(addresses(await s.client.ask(query("allowed.test")))).toEqual(["198.51.100.10"]);
      expect(dead.seen).toEqual(["udp allowed.test"]);
      const lonely = await sandbox(POLICY, ["127.0.0.2"]);
      expect((await lonely.client.ask(query("cdn.allowed.test"))).header.rcode).toBe(RCODE.SERVFAIL);
      expect(dead.seen).toEqual(["udp allowed.test", "udp cdn.allowed.test"]);
    } finally {
      dead.close();
    }
  });

  test("NFLOG refusals: mapped to their rule, repeats folded into one event with a count", async () => {
    const s = await sandbox();
    const denied = { prefix: "burrow-egress deny[0] ", family: 4, destination: "192.0.2.7", protocol: "tcp", port: 443 };
    for (let i = 0; i < 3; i++) logPacket(s, denied);
    logPacket(s, { prefix: "burrow-egress default ", family: 4, destination: "198.51.100.99", protocol: "udp", port: 9 });
    logPacket(s, { prefix: "burrow-egress dns ", family: 6, destination: "2001:db8::53", protocol: "udp", port: 53 });
    logPacket(s, { prefix: "someone else's ", family: 4, destination: "198.51.100.1", protocol: "icmp" });
    await until(() => eventsOf(s.id).length === 3, 5000, "three events");
    expect(eventsOf(s.id)).toEqual([
      { destination: "192.0.2.7", port: 443, protocol: "tcp", rule: "--deny-cidr 192.0.2.0/24", reason: "deny rule", count: 1, status: "egress-refused" },
      { destination: "198.51.100.99", port: 9, protocol: "udp", rule: null, reason: "default deny", count: 1, status: "egress-refused" },
      { destination: "2001:db8::53", port: 53, protocol: "udp", rule: null, reason: "dns to another resolver", count: 1, status: "egress-refused" },
    ]);
    // The two repeats are folded; a detach delivers what is still due.
    s.dispose();
    expect(eventsOf(s.id).slice(3)).toEqual([
      { destination: "192.0.2.7", port: 443, protocol: "tcp", rule: "--deny-cidr 192.0.2.0/24", reason: "deny rule", count: 2, status: "egress-refused" },
    ]);
  });

  test("--egress-log-only: an unlisted name is reported as would-refuse and answered all the same", async () => {
    const s = await sandbox(policy({ allowHost: ["allowed.test"], logOnly: true }));
    const q = query("other.test");
    expect(addresses(await s.client.ask(q))).toEqual(["198.51.100.20"]);
    expect(s.learnedAtAnswer.get(q.header.id)).toEqual([]);
    expect(await until(() => eventsOf(s.id)[0], 5000, "the event")).toMatchObject({
      reason: "name not allowed",
      name: "other.test",
      status: "egress-would-refuse",
    });
    logPacket(s, { prefix: "burrow-egress default ", family: 4, destination: "198.51.100.20", protocol: "tcp", port: 80 });
    expect(await until(() => eventsOf(s.id)[1], 5000, "the NFLOG event")).toMatchObject({ reason: "default deny", status: "egress-would-refuse" });
  });

  test("addresses the sets held already (after a daemon restart) are counted and handed on at attach", async () => {
    const s = await sandbox(POLICY, ["127.0.0.1"], service, [
      { set: "allow_1_v6", address: "2001:db8::7", expiresInMs: 120_000 },
      { set: "allow_0_v4", address: "198.51.100.10", expiresInMs: 90_000 },
      { set: "allow_0_v4", address: "198.51.100.30", expiresInMs: 0 },
      { set: "someone_else", address: "198.51.100.31", expiresInMs: 90_000 },
    ]);
    expect(service.learnedCount(s.id)).toBe(2);
    expect(learnedReports.filter((r) => r.id === s.id)).toEqual([
      { id: s.id, allowIndex: 1, address: "2001:db8::7" },
      { id: s.id, allowIndex: 0, address: "198.51.100.10" },
    ]);
  });

  test("detach closes the sandbox's fds", async () => {
    const s = await sandbox();
    await s.client.ask(query("allowed.test"));
    service.detach(s.id);
    // The worker closed the nft pipe's write end: its read end sees EOF.
    await until(() => readNB(s.learnRead, new Uint8Array(64)) === 0, 5000, "EOF on the nft pipe");
    const udp = bindUdpSocket("127.0.0.1", s.udpPort);
    const tcp = listenTcpSocket("127.0.0.1", s.tcpPort);
    close(udp.fd);
    close(tcp.fd);
    expect(service.learnedCount(s.id)).toBe(0);
  });

  test("a worker that dies is started again and serves every sandbox again", async () => {
    const s = await sandbox();
    const seen = () => upstream.seen.filter((x) => x === "udp restart.allowed.test").length;
    expect(addresses(await s.client.ask(query("restart.allowed.test")))).toEqual(["198.51.100.15"]);
    expect(seen()).toBe(1);
    logPacket(s, { exit: true });
    // A new worker has an empty cache: the name goes upstream again, over the same sockets.
    await until(
      async () => {
        const answer = await Promise.race([s.client.ask(query("restart.allowed.test")), Bun.sleep(500).then(() => null)]);
        return answer?.header.rcode === RCODE.NOERROR && seen() === 2;
      },
      10_000,
      "an answer from a restarted worker",
    );
  });
});

describe("a worker that fails", () => {
  test("an exception in its loop: its connections closed, another worker serves the sandbox", async () => {
    const s = await sandbox();
    const { closed } = await heldTcpClient(s.tcpPort);
    logPacket(s, { poison: true });
    await closed;
    const answers = await askOverTcp(s.tcpPort, [query("allowed.test")]);
    expect(addresses(answers[0]!)).toEqual(["198.51.100.10"]);
  });
});

describe("refusal events over time", () => {
  test("refusals reported from outside (--accelerate's supervisor) fold with the sandbox's others: the first at once, repeats at detach; log-only ones are would-refuse", async () => {
    const s = await sandbox();
    const refusal = { destination: "198.51.100.77", port: 443, protocol: "tcp", rule: null, reason: "default deny" };
    for (let i = 0; i < 3; i++) service.report(s.id, refusal);
    expect(eventsOf(s.id).map((e) => [e.status, e.destination, e.count])).toEqual([["egress-refused", "198.51.100.77", 1]]);
    s.dispose();
    expect(eventsOf(s.id).map((e) => e.count)).toEqual([1, 2]);
    const quiet = await sandbox(policy({ allowHost: ["allowed.test"], logOnly: true }));
    service.report(quiet.id, refusal);
    expect(eventsOf(quiet.id).map((e) => e.status)).toEqual(["egress-would-refuse"]);
    service.report("never-attached", refusal); // dropped: no sandbox to fold it for
    expect(eventsOf("never-attached")).toEqual([]);
  });

  test("a sandbox the worker cannot serve (its attach failed) still gets --accelerate's refusals as events", async () => {
    const [learnRead, learnWrite] = pipe();
    const [nflogRead, nflogWrite] = pipe();
    const tcp = listenTcpSocket("127.0.0.1", 0);
    const id = `sb${++serial}`;
    // An fd number nothing has open: the worker's epoll refuses it and the attach fails.
    const attach: EgressAttach = {
      id,
      name: id,
      policy: POLICY,
      context: { hostAddresses: [] },
      upstreams: ["127.0.0.1"],
      fds: { dnsUdp: 1_000_000, dnsTcp: tcp.fd, nft: learnWrite, nflog: nflogRead },
    };
    await expect(service.attach(attach)).rejects.toThrow("cannot serve the egress resolver");
    const refusal = { destination: "198.51.100.78", port: 443, protocol: "tcp", rule: null, reason: "default deny" };
    service.report(id, refusal);
    expect(eventsOf(id).map((e) => [e.status, e.destination, e.count])).toEqual([["egress-refused", "198.51.100.78", 1]]);
    service.detach(id);
    close(learnRead);
    close(nflogWrite);
  });

  test("repeats are delivered by the flush timer once their window ends, without a detach", async () => {
    const short = createEgressService(
      { onRefusal: (id, event) => refusals.push({ id, event }) },
      { learnerModule: FAKES, nflogModule: FAKES, upstreamPort: upstream.port, refusalLimits: { windowMs: 300, perWindow: 60, maxKinds: 1024 } },
    );
    try {
      const s = await sandbox(POLICY, ["127.0.0.1"], short);
      const packet = { prefix: "burrow-egress default ", family: 4, destination: "198.51.100.77", protocol: "tcp", port: 8080 };
      for (let i = 0; i < 4; i++) logPacket(s, packet);
      await until(() => eventsOf(s.id).length === 2, 5000, "the first event and the folded repeats");
      expect(eventsOf(s.id).map((e) => e.count)).toEqual([1, 3]);
      s.dispose();
      expect(eventsOf(s.id).length).toBe(2);
    } finally {
      await short.close();
    }
  });
});

describe("DNS over TCP connections", () => {
  test("a message trickling in a byte at a time is closed at its deadline, though never idle", async () => {
    // The default idle time (10 s): only the message deadline can close this connection within the test.
    const strict = createEgressService({ onRefusal: () => {} }, { learnerModule: FAKES, nflogModule: FAKES, upstreamPort: upstream.port, tcpFrameMs: 300 });
    try {
      const s = await sandbox(POLICY, ["127.0.0.1"], strict);
      let closed = false;
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: s.tcpPort,
        socket: {
          data: () => {},
          close: () => {
            closed = true;
          },
        },
      });
      // A 65535-byte message announced, then one byte every 20 ms: at that pace it would take 20 minutes.
      socket.write(Uint8Array.from([0xff, 0xff]));
      const started = Date.now();
      while (!closed && Date.now() - started < 5000) {
        socket.write(Uint8Array.from([0]));
        await Bun.sleep(20);
      }
      expect(closed).toBe(true);
      socket.end();
    } finally {
      await strict.close();
    }
  });

  test("an idle connection is closed by the resolver", async () => {
    const quick = createEgressService({ onRefusal: () => {} }, { learnerModule: FAKES, nflogModule: FAKES, upstreamPort: upstream.port, tcpIdleMs: 200 });
    try {
      const s = await sandbox(POLICY, ["127.0.0.1"], quick);
      await (await heldTcpClient(s.tcpPort)).closed;
    } finally {
      await quick.close();
    }
  });
});

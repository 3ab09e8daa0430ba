// "Nothing leaked": take a snapshot before a test, another after, report what
// is new. Runs as root (reads every /proc/PID and the host firewall).
//
// What counts (each an Item with a stable key; the diff is by key):
//   process  slirp4netns, pasta, passt, dnsmasq; `burrow __enter` children;
//            any burrow CLI; any process of the test user; any process
//            inside a test netns given to snapshot(). The holder
//            (argv[0] "burrow-holder"), the rootful supervisor
//            ("burrow-supervisor") and burrow's internal `__` roles
//            (daemon, launcher) are "service" items: the daemon exits only
//            when idle, so the diff skips them unless asked (includeServices).
//            So is the slirp4netns a daemon started ahead for its next
//            sandbox (its argv names RUNTIME_DIR/pins/warm-*), with its pin
//            and files: the daemon ends them when it exits, and
//            slirp4netns-ahead.test.ts checks that it does.
//   mount    nsfs mounts and mounts whose path names burrow, netns,
//            rootless-netns or cni-, in /proc/self/mountinfo (rootful pins)
//            and in every holder's mountinfo (rootless pins live only there).
//   link     host interfaces veth*, cni*, burrow*, podman*; veth* inside a
//            test netns (a CNI bridge itself may stay, as with podman).
//   iptables host rules mentioning CNI or burrow (tests must never touch the
//            host firewall); inside a test netns, the per-container rules and
//            chains only (CNI leaves its empty top-level chains on purpose).
//   netns    new entries in /run/netns, except test netns made by netns.ts.
//   file     anything under RUNTIME_DIR/pins/ and RUNTIME_DIR/sandboxes/.
//
// Other people may use the machine (and the test user) at the same time, so
// new processes and mounts count only when they belong to the Scope being
// checked: its BURROW_TEST_TAG, its dirs, its holder's user namespace or a
// test netns. What nothing ties to anyone counts only in strict mode (CI).
// Links, firewall rules and files always count: nobody may touch the host's
// network. /run/netns entries count when the scope's run named them (or strict).
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import { strictLeakCheck, TAG_VAR, testUser } from "./env.ts";
import { unescapeMountPath } from "../../src/sys/mount.ts";
import { activeNetns, listPids, netnsId } from "./netns.ts";
import { AHEAD_PIN, SPARE_FILE } from "./sys.ts";

export type ItemKind = "process" | "mount" | "link" | "iptables" | "netns" | "file";

export interface Item {
  kind: ItemKind;
  /** Identity across snapshots. */
  key: string;
  /** One human line. */
  what: string;
  /** Holder or internal role: expected to outlive a test (see header). */
  service?: boolean;
  /** For processes: what ties them to a test's burrow, when known. */
  pid?: number;
  uid?: number;
  /** BURROW_TEST_TAG and BURROW_RUNTIME_DIR from a process's environment. */
  tag?: string;
  runtimeDir?: string;
  /** A process's user namespace, or for a holder's mount that holder's. */
  userns?: string;
  /** Mount point, for mounts. */
  path?: string;
  inTestNetns?: boolean;
}

/** What a leak check is about: one test (context) or one test run. */
export interface Scope {
  /** BURROW_TEST_TAG of its commands: RUN (a run's, covering RUN/CTX) or RUN/CTX. */
  tag?: string;
  /** True for its runtime dirs and the paths below them. */
  ownsPath?: (path: string) => boolean;
  /** User namespaces of its rootless holders. */
  userns?: string[];
  /** Prefix of the test netns it made (env.ts runPrefix). */
  netnsPrefix?: string;
  /** Also count new processes and mounts tied to nothing (default: CI). */
  strict?: boolean;
}

/** Whether a new item is the scope's to answer for. */
export function inScope(i: Item, s: Scope): boolean {
  const strict = s.strict ?? strictLeakCheck;
  // A left test netns is the run's that made it (netns.ts names carry the
  // run); someone's hand-made one is nobody's business but in strict mode.
  if (i.kind === "netns" || i.path?.startsWith("/run/netns/")) return strict || (!!s.netnsPrefix && basename(i.path ?? "").startsWith(s.netnsPrefix));
  if (i.kind !== "process" && i.kind !== "mount") return true;
  if (i.inTestNetns) return true;
  // A tag is the most precise tie: another tag is someone else's.
  if (i.tag) return !!s.tag && (i.tag === s.tag || i.tag.startsWith(`${s.tag}/`));
  if (i.runtimeDir && s.ownsPath?.(i.runtimeDir)) return true;
  if (i.path && s.ownsPath?.(i.path)) return true;
  if (i.userns && s.userns?.includes(i.userns)) return true;
  return !i.runtimeDir && strict; // a runtime dir not ours is someone else's
}

export interface Snapshot {
  items: Item[];
}

export interface SnapshotOptions {
  /** Runtime dirs whose pins/ and sandboxes/ to list (BURROW_RUNTIME_DIR). */
  runtimeDirs?: string[];
  /** Test netns names to look inside (links, firewall, processes). */
  netns?: string[];
}

// ------------------------------------------------------------------ pure parts

export interface ProcInfo {
  pid: number;
  argv: string[];
  comm: string;
  uid: number;
}

const HELPERS = /^(slirp4netns|pasta|passt|dnsmasq|aardvark-dns)(\.avx2)?$/;

/** What kind of leak a process would be, or null when it is none of ours.
 * `testUid` marks the test user's processes; `inTestNetns` those inside a
 * test netns. */
export function classifyProcess(p: ProcInfo, testUid: number, inTestNetns = false): { label: string; service: boolean } | null {
  const arg0 = basename(p.argv[0] ?? "");
  const line = p.argv.join(" ");
  if (arg0 === "burrow-holder") return { label: "holder", service: true };
  if (arg0 === "burrow-supervisor") return { label: "rootful supervisor", service: true };
  // The C enter helper (argv0 burrow-enter) or the Bun __enter role.
  if (arg0 === "burrow-enter" || /burrow __enter/.test(line)) return { label: "enter child", service: false };
  if (arg0 === "burrow" || arg0.startsWith("burrow.")) {
    const role = p.argv[1] ?? "";
    if (role.startsWith("__")) return { label: `burrow ${role}`, service: true };
    return { label: "burrow CLI", service: false };
  }
  if (HELPERS.test(p.comm) || HELPERS.test(arg0)) {
    if (p.argv.some((a) => AHEAD_PIN.test(a))) return { label: "slirp4netns started ahead", service: true };
    return { label: "helper", service: false };
  }
  if (p.uid === testUid) return { label: "test-user process", service: false };
  if (inTestNetns) return { label: "process in test netns", service: false };
  return null;
}

export interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Parses /proc/PID/mountinfo. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const f = left.split(" ");
    const r = right.split(" ");
    out.push({ root: unescapeMountPath(f[3]!), mountPoint: unescapeMountPath(f[4]!), fsType: r[0]!, source: unescapeMountPath(r[1] ?? "") });
  }
  return out;
}

/** A mount that a sandbox tool could have left: a namespace pin or a path
 * that names it. /run/netns itself and the helpers' own test netns are not. */
export function isSandboxMount(m: MountEntry, testNetns: ReadonlySet<string> = activeNetns): boolean {
  if (m.mountPoint === "/run/netns") return false;
  const name = m.mountPoint.startsWith("/run/netns/") ? m.mountPoint.slice("/run/netns/".length) : null;
  if (name !== null && testNetns.has(name)) return false;
  return m.fsType === "nsfs" || /burrow|\/netns\/|rootless-netns|cni-/.test(m.mountPoint);
}

/** Lines of iptables-save output worth tracking, each prefixed with its table.
 * `perContainerOnly`: only rules and chains tied to one container (inside a
 * test netns, where CNI's shared top-level chains legitimately stay). */
export function firewallLines(save: string, perContainerOnly = false): string[] {
  const out: string[] = [];
  let table = "";
  // CNI's per-container chains and rules; netavark 1.x's per-network chains
  // (NETAVARK-<hex>, NETAVARK-DN-<hex>) and rules naming them (its base
  // chains stay, as CNI's top-level ones do).
  const perContainer = /CNI-(DN-|SN-)?[0-9a-f]{16,}|id: \\?"|NETAVARK-(DN-)?[0-9A-F]{13}/;
  for (const raw of save.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) table = line.slice(1);
    if (!line || line.startsWith("#") || line.startsWith("*") || line === "COMMIT") continue;
    // Chain declarations carry packet counters ("[0:0]") that change.
    const norm = line.startsWith(":") ? line.replace(/\s*\[\d+:\d+\]$/, "") : line;
    // netavark 1.4 leaves a network's port chain declared, empty and unreferenced,
    // when the network's last container had no ports (its teardown only looks
    // at the chain of the ports it is given): netavark's, as its base chains are.
    if (perContainerOnly && /^:NETAVARK-DN-[0-9A-F]{13} -$/.test(norm)) continue;
    if (perContainerOnly ? perContainer.test(norm) : /cni|burrow/i.test(norm)) out.push(`${table}: ${norm}`);
  }
  return out;
}

/** Items in `after` but not in `before`. */
export function diffSnapshots(before: Snapshot, after: Snapshot, opts: { includeServices?: boolean } = {}): Item[] {
  const had = new Set(before.items.map((i) => i.key));
  return after.items.filter((i) => !had.has(i.key) && (opts.includeServices || !i.service));
}

export function formatItems(items: Item[]): string {
  return items.map((i) => `  ${i.kind.padEnd(8)} ${i.what}`).join("\n");
}

// ------------------------------------------------------------------ /proc and tools

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function readProc(pid: number): (ProcInfo & { start: string }) | null {
  const cmdline = readText(`/proc/${pid}/cmdline`);
  const stat = readText(`/proc/${pid}/stat`);
  const status = readText(`/proc/${pid}/status`);
  if (!cmdline || !stat || !status) return null; // kernel thread or gone
  const afterComm = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (afterComm[0] === "Z") return null; // exited, waiting for its parent
  const argv = cmdline.split("\0");
  if (argv.at(-1) === "") argv.pop();
  return {
    pid,
    argv,
    comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1),
    start: afterComm[19] ?? "",
  };
}

/** The test tag and runtime dir in a process's environment: BURROW_TEST_TAG,
 * BURROW_RUNTIME_DIR or the paths the CLI hands the daemon (BURROW_PATHS). */
export function procEnv(pid: number): { tag?: string; runtimeDir?: string } {
  const env = readText(`/proc/${pid}/environ`);
  const out: { tag?: string; runtimeDir?: string } = {};
  if (!env) return out;
  for (const kv of env.split("\0")) {
    const eq = kv.indexOf("=");
    const [k, v] = [kv.slice(0, eq), kv.slice(eq + 1)];
    if (k === TAG_VAR) out.tag = v;
    else if (k === "BURROW_RUNTIME_DIR") out.runtimeDir = v;
    else if (k === "BURROW_PATHS" && !out.runtimeDir) {
      try {
        const dir = JSON.parse(v).runtimeDir;
        if (typeof dir === "string") out.runtimeDir = dir;
      } catch {}
    }
  }
  return out;
}

const nsOf = (pid: number, ns: string) => {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return undefined;
  }
};

function run(cmd: string[]): string | null {
  try {
    const p = Bun.spawnSync(cmd, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    return p.exitCode === 0 ? p.stdout.toString() : null;
  } catch {
    return null; // tool missing
  }
}

function links(netns?: string): string[] {
  const out = run(netns ? ["ip", "-n", netns, "-j", "link", "show"] : ["ip", "-j", "link", "show"]);
  if (!out) return [];
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

function firewall(netns?: string): string[] {
  const lines: string[] = [];
  for (const tool of ["iptables-save", "ip6tables-save"]) {
    const out = run(netns ? ["nsenter", `--net=/run/netns/${netns}`, "--", tool] : [tool]);
    if (out) lines.push(...firewallLines(out, !!netns).map((l) => `${tool.slice(0, -5)} ${l}`));
  }
  return lines;
}

function listTree(dir: string, prefix = ""): string[] {
  let ents: string[];
  try {
    ents = readdirSync(dir);
  } catch {
    return [];
  }
  return ents.flatMap((e) => [`${prefix}${e}`, ...listTree(`${dir}/${e}`, `${prefix}${e}/`)]);
}

// ------------------------------------------------------------------ snapshot

export async function snapshot(opts: SnapshotOptions = {}): Promise<Snapshot> {
  const items: Item[] = [];
  let testUid = -1;
  try {
    testUid = testUser().uid;
  } catch {}
  const testNs = new Map((opts.netns ?? []).map((n) => [netnsId(`/run/netns/${n}`), n] as const));

  // Processes, and the holders whose mount namespaces hold rootless pins.
  const holders: { pid: number; userns?: string }[] = [];
  for (const pid of listPids()) {
    if (pid === process.pid) continue;
    const p = readProc(pid);
    if (!p) continue;
    const net = nsOf(pid, "net");
    const inTestNs = net !== undefined && testNs.has(net);
    const c = classifyProcess(p, testUid, inTestNs);
    if (!c) continue;
    const userns = nsOf(pid, "user");
    if (c.label === "holder") holders.push({ pid, userns });
    items.push({
      kind: "process",
      key: `process:${pid}:${p.start}`,
      what: `${c.label}: pid ${pid} uid ${p.uid}${inTestNs ? ` in netns ${testNs.get(net)}` : ""}: ${p.argv.join(" ").slice(0, 200)}`,
      service: c.service,
      pid,
      uid: p.uid,
      ...procEnv(pid),
      userns,
      inTestNetns: inTestNs,
    });
  }

  // Mounts: the host's (rootful pins), then each holder's own ones.
  const hostMounts = parseMountinfo(readText("/proc/self/mountinfo") ?? "");
  const mountKey = (m: MountEntry) => `${m.mountPoint} ${m.fsType} ${m.root}`;
  const onHost = new Set(hostMounts.map(mountKey));
  for (const m of hostMounts.filter((m) => isSandboxMount(m))) {
    items.push({
      kind: "mount",
      key: `mount:host:${mountKey(m)}`,
      what: `${m.mountPoint} (${m.fsType} ${m.root})`,
      path: m.mountPoint,
      service: AHEAD_PIN.test(m.mountPoint),
    });
  }
  for (const { pid, userns } of holders) {
    for (const m of parseMountinfo(readText(`/proc/${pid}/mountinfo`) ?? "")) {
      if (onHost.has(mountKey(m)) || !isSandboxMount(m)) continue;
      items.push({
        kind: "mount",
        key: `mount:holder${pid}:${mountKey(m)}`,
        what: `${m.mountPoint} (${m.fsType} ${m.root}) in the mount namespace of holder ${pid}`,
        path: m.mountPoint,
        userns,
        service: AHEAD_PIN.test(m.mountPoint),
      });
    }
  }

  for (const name of links()) {
    if (/^(veth|cni|burrow|podman)/.test(name)) items.push({ kind: "link", key: `link:host:${name}`, what: `host interface ${name}` });
  }
  for (const line of firewall()) items.push({ kind: "iptables", key: `iptables:host:${line}`, what: `host ${line}` });

  for (const ns of opts.netns ?? []) {
    for (const name of links(ns)) {
      if (name.startsWith("veth")) items.push({ kind: "link", key: `link:${ns}:${name}`, what: `interface ${name} in netns ${ns}` });
    }
    for (const line of firewall(ns)) items.push({ kind: "iptables", key: `iptables:${ns}:${line}`, what: `netns ${ns}: ${line}` });
  }

  for (const name of existsSync("/run/netns") ? readdirSync("/run/netns") : []) {
    if (!activeNetns.has(name)) items.push({ kind: "netns", key: `netns:${name}`, what: `/run/netns/${name}`, path: `/run/netns/${name}` });
  }

  for (const dir of opts.runtimeDirs ?? []) {
    for (const sub of ["pins", "sandboxes"]) {
      for (const f of listTree(`${dir}/${sub}`))
        items.push({
          kind: "file",
          key: `file:${dir}/${sub}/${f}`,
          what: `${dir}/${sub}/${f}`,
          service: AHEAD_PIN.test(`${dir}/${sub}/${f}`) || SPARE_FILE.test(`${dir}/${sub}/${f}`),
        });
    }
  }
  return { items };
}

export interface LeakCheckOptions extends SnapshotOptions {
  /** Count the holder and daemon too (default false: they exit when idle). */
  includeServices?: boolean;
  /** Keep looking this long for leaks to go away (async teardown); default 3000. */
  settleMs?: number;
  /** Whose leaks to count (see Scope); default: everything new, strict or not. */
  scope?: Scope;
}

/** What is new since `before` and in scope, after letting teardown settle. */
export async function findLeaks(before: Snapshot, opts: LeakCheckOptions = {}): Promise<Item[]> {
  const deadline = Date.now() + (opts.settleMs ?? 3000);
  for (;;) {
    const after = await snapshot(opts);
    const leaks = diffSnapshots(before, after, opts).filter((i) => !opts.scope || inScope(i, opts.scope));
    if (leaks.length === 0 || Date.now() >= deadline) return leaks;
    await Bun.sleep(100);
  }
}

/** Throws an Error listing everything new since `before`. */
export async function assertNoLeaks(before: Snapshot, opts: LeakCheckOptions = {}): Promise<void> {
  const leaks = await findLeaks(before, opts);
  if (leaks.length) throw new Error(`left behind after the test:\n${formatItems(leaks)}`);
}

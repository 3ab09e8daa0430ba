// Suite-level "nothing leaked" check, run by scripts/test.sh around the
// whole integration run (as root):
//
//   bun test/helpers/suite-check.ts snapshot FILE   # before
//   bun test/helpers/suite-check.ts check FILE      # after: report, clean up, exit 1 on leaks
//
// Counts what this run left (BURROW_TEST_RUN tag, the helpers' dirs and
// netns named for the run; with CI=true everything new: a CI machine runs nothing else).
// After reporting it ends this run's new processes (left-over daemons and
// holders included) and deletes its test netns, so one bad run does not
// poison the next. Mounts, links and rules are only reported. Someone else's
// processes on a shared machine are listed, never counted or killed.
import { readdirSync, readlinkSync } from "node:fs";
import { diffSnapshots, formatItems, inScope, snapshot, type Scope, type Snapshot } from "./leaks.ts";
import { runPrefix, testRunId } from "./env.ts";
import { killPids, removeNetns } from "./netns.ts";

const [cmd, file] = process.argv.slice(2);
if (!file || (cmd !== "snapshot" && cmd !== "check")) {
  console.error("usage: suite-check.ts snapshot|check FILE");
  process.exit(2);
}

if (cmd === "snapshot") {
  const netns = listNetns();
  await Bun.write(file, JSON.stringify({ snap: await snapshot(), netns }));
  process.exit(0);
}

const saved = (await Bun.file(file).json()) as { snap: Snapshot; netns: string[] };
const testNetns = listNetns().filter((n) => n.startsWith(runPrefix) && !saved.netns.includes(n));
// This run: its tag, and the dirs and netns the helpers named for it.
const after = await snapshot({ netns: testNetns });
const scope: Scope = { tag: testRunId, ownsPath: (p) => p.includes(`/${runPrefix}`), netnsPrefix: runPrefix };
// A holder execs sleep with a bare environment: it is ours when a tagged
// process (its daemon) shares its user namespace.
const hostUserns = readlinkSync("/proc/self/ns/user");
scope.userns = after.items.filter((i) => i.kind === "process" && i.tag?.startsWith(testRunId) && i.userns !== hostUserns).map((i) => i.userns!);
const all = diffSnapshots(saved.snap, after, { includeServices: true });
const ours = all.filter((i) => inScope(i, scope));
const leaks = ours.filter((i) => !i.service);
const services = ours.filter((i) => i.service);
const others = all.filter((i) => !inScope(i, scope));

if (others.length) console.log(`suite-check: also new on this machine, not tied to this run (not counted; CI=true counts them):\n${formatItems(others)}`);
if (services.length) console.log(`suite-check: burrow daemons/holders of this run still running (ended now):\n${formatItems(services)}`);
if (leaks.length) console.log(`suite-check: LEAKED by the integration suite:\n${formatItems(leaks)}`);

const pids = ours.filter((i) => i.kind === "process" && i.pid).map((i) => i.pid!);
if (pids.length) await killPids(pids);
for (const n of testNetns) {
  console.log(`suite-check: removing test netns ${n} left behind`);
  await removeNetns(n);
}
process.exit(leaks.length ? 1 : 0);

function listNetns(): string[] {
  try {
    return readdirSync("/run/netns");
  } catch {
    return [];
  }
}

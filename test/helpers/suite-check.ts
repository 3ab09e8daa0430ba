// Suite-level "nothing leaked" check, run by scripts/test.sh around the
// whole integration run (as root):
//
//   bun test/helpers/suite-check.ts snapshot FILE   # before
//   bun test/helpers/suite-check.ts check FILE      # after: report, clean up, exit 1 on leaks
//
// After reporting, it ends the processes that are new since the snapshot
// (helpers, enter children, burrow CLIs, the test user's processes, left-over
// daemons and holders) and deletes new test netns (burrow-t-XXXXXXXX), so one bad
// run does not poison the next. Mounts, links and rules are only reported.
import { readdirSync } from "node:fs";
import { diffSnapshots, formatItems, snapshot, type Snapshot } from "./leaks.ts";
import { testUser } from "./env.ts";
import { isTestNetnsName, killPids, removeNetns } from "./netns.ts";

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
const all = diffSnapshots(saved.snap, await snapshot(), { includeServices: true });
const leaks = all.filter((i) => !i.service);
const services = all.filter((i) => i.service);
const newNetns = listNetns().filter((n) => isTestNetnsName(n) && !saved.netns.includes(n));

if (services.length)
  console.log(`suite-check: burrow daemons/holders still running after the suite (ended now):\n${formatItems(services)}`);
if (leaks.length) console.log(`suite-check: LEAKED by the integration suite:\n${formatItems(leaks)}`);

// Only what this run made: the test user's processes and those of the
// helpers' private dirs (/…/burrow-t-ID/run). Someone else's burrow on a
// shared machine is reported above but left alone.
const testUid = testUser().uid;
const pids = all
  .filter((i) => i.kind === "process" && i.pid && (i.uid === testUid || i.runtimeDir?.includes("/burrow-t-")))
  .map((i) => i.pid!);
if (pids.length) await killPids(pids);
for (const n of newNetns) {
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

// Probe for scripts/bench/daemon-kill.sh (run by root's bun, not by burrow):
// ROUNDS times, SIGKILL the bench daemon (found by its BURROW_RUNTIME_DIR)
// while a GET loop runs against 127.0.0.1:PORT, and time how long the
// published port stays down, counting the failed requests. No burrow
// command runs between the kill and the first good answer.
//
//   bun daemon-kill-probe.ts PORT RUNTIME_DIR ROUNDS EXPECTED_BODY
import { readdirSync, readFileSync } from "node:fs";

const [portArg, runtimeDir, roundsArg, body] = process.argv.slice(2);
const port = Number(portArg);
const rounds = Number(roundsArg);
if (!port || !runtimeDir || !rounds || body === undefined) throw new Error("usage: daemon-kill-probe.ts PORT RUNTIME_DIR ROUNDS BODY");

function daemonPid(): number | null {
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0")[1] !== "__daemon") continue;
      if (readFileSync(`/proc/${e}/environ`, "utf8").split("\0").includes(`BURROW_RUNTIME_DIR=${runtimeDir}`)) return Number(e);
    } catch {}
  }
  return null;
}

async function ok(): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500), keepalive: false });
    return (await r.text()) === body;
  } catch {
    return false;
  }
}

const rows: { downMs: number; failed: number; oldPid: number; newPid: number | null }[] = [];
for (let i = 0; i < rounds; i++) {
  const pid = daemonPid();
  if (!pid) throw new Error("no bench daemon is running");
  // A loaded machine may miss one 500 ms answer: give it a few seconds.
  let up = await ok();
  for (let n = 0; !up && n < 10; n++) {
    await Bun.sleep(500);
    up = await ok();
  }
  if (!up) {
    let tail = "";
    try {
      tail = readFileSync(`${runtimeDir}/daemon.log`, "utf8").split("\n").slice(-15).join("\n");
    } catch {}
    throw new Error(`port ${port} does not answer before round ${i + 1} (daemon ${pid}); the daemon's log ends:\n${tail}`);
  }
  const t0 = performance.now();
  process.kill(pid, "SIGKILL");
  let failed = 0;
  while (!(await ok())) {
    failed++;
    if (performance.now() - t0 > 30_000) throw new Error(`port ${port} still down 30 s after kill -9 in round ${i + 1}`);
  }
  const downMs = performance.now() - t0;
  rows.push({ downMs, failed, oldPid: pid, newPid: daemonPid() });
  // Each daemon runs a while before the next kill, as after a real crash:
  // the supervisor paces restarts of a daemon that dies within 2 s of its
  // start three times in a row (src/userns/supervisor.ts).
  await Bun.sleep(2500);
}
const sorted = rows.map((r) => r.downMs).sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(
  JSON.stringify({ port, rounds, medianMs: median, minMs: sorted[0], maxMs: sorted.at(-1), failedTotal: rows.reduce((n, r) => n + r.failed, 0), rows }),
);

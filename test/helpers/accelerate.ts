// Runs python3 under the --accelerate filter through the enter helper's
// -F/-S, for the unit tests of src/sys/seccomp.ts and src/accelerate: the
// listener the helper hands over comes back to the test.
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { buildEnterHelper } from "../../scripts/build.ts";
import { repoRoot } from "./env.ts";
import { accelerationSupport, acceleratedFilter, type NotifSizes } from "../../src/sys/seccomp.ts";
import { receiveFd, socketPair } from "../../src/sys/unix-socket.ts";

/**
 * The enter helper to run a filtered python3 with (dist's, or built now),
 * and why these tests cannot run here ("" when they can): no musl-gcc, a
 * kernel without what --accelerate needs, no python3.
 */
export async function filterTestSetup(): Promise<{ helper: string; why: string }> {
  let helper = `${repoRoot}/dist/burrow-enter-helper`;
  if (!existsSync(helper)) helper = (await buildEnterHelper()) ?? "";
  if (!helper) return { helper, why: "no musl-gcc to build the enter helper (Debian: musl-tools)" };
  const s = accelerationSupport();
  if (!s.ok) return { helper, why: `this machine cannot accelerate: needs ${s.missing}` };
  if (!existsSync("/usr/bin/python3")) return { helper, why: "no /usr/bin/python3 (Debian: python3, scripts/setup.sh)" };
  return { helper, why: "" };
}

/** `prefix` (e.g. ["unshare", "-rn"]) then the helper with the filter, then python3 -c CODE. */
export function pythonUnderFilter(helper: string, code: string, prefix: string[] = []) {
  const dir = mkdtempSync(`${tmpdir()}/burrow-accel-`);
  writeFileSync(`${dir}/filter`, acceleratedFilter());
  const filterFd = openSync(`${dir}/filter`, "r");
  rmSync(dir, { recursive: true });
  const [mine, theirs] = socketPair();
  const child = Bun.spawn([...prefix, helper, "-F", "3", "-S", "4", "--", "/usr/bin/python3", "-c", code], {
    stdio: ["ignore", "pipe", "pipe", filterFd, theirs],
    env: { PATH: "/usr/bin:/bin" },
  });
  closeSync(filterFd);
  closeSync(theirs);
  const listener = receiveFd(mine);
  closeSync(mine);
  if (listener === null) throw new Error("the helper sent no listener");
  return { child, listener };
}

/** The kernel's notification sizes; throws where the machine cannot accelerate (callers skip first). */
export function notifSizes(): NotifSizes {
  const s = accelerationSupport();
  if (!s.ok) throw new Error(s.missing);
  return s.sizes;
}

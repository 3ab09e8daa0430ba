// Runs python3 under the --accelerate filter through the enter helper's
// -F/-S, for the unit tests of src/sys/seccomp.ts and src/accelerate: the
// listener the helper hands over comes back to the test.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { accelerationSupport, acceleratedFilter, type NotifSizes } from "../../src/sys/seccomp.ts";
import { receiveFd, socketPair } from "../../src/sys/unix-socket.ts";

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

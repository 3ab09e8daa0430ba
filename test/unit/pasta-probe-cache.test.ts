// probePasta's disk cache (like slirp4netns's): a stored probe of the same
// binary (path, mtime, size) is used without running it; another key is not.
import { expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probePasta } from "../../src/net/pasta/process.ts";

test("a stored probe of the same binary is used; a changed binary is probed again and stored", async () => {
  const dir = mkdtempSync(join(tmpdir(), "burrow-pasta-probe-"));
  try {
    // A fake pasta that counts its runs.
    const bin = join(dir, "pasta");
    const runs = join(dir, "runs");
    writeFileSync(bin, `#!/bin/sh\necho x >> ${runs}\necho "--config-net --dns-forward --map-guest-addr"\n`);
    chmodSync(bin, 0o755);
    const cache = join(dir, "pasta-probe.json");
    const st = statSync(bin);
    const stored = {
      path: bin,
      version: "from-the-cache",
      configNet: true,
      dnsForward: true,
      noMapGw: false,
      runas: false,
      mapGuestAddr: false,
      confPath: false,
    };
    writeFileSync(cache, JSON.stringify({ entries: { [bin]: { key: `${bin}:${st.mtimeMs}:${st.size}`, features: stored } } }));
    expect(await probePasta(bin, cache)).toEqual(stored);
    expect(() => readFileSync(runs)).toThrow(); // not run
    // Changed (size): probed again, and the new probe is what the file keeps.
    writeFileSync(bin, `#!/bin/sh\necho x >> ${runs}\necho "--config-net --dns-forward --map-guest-addr --runas"\n`);
    const probed = await probePasta(bin, cache);
    expect(probed).toMatchObject({ version: "unknown", mapGuestAddr: true, runas: true });
    expect(readFileSync(runs, "utf8").trim().split("\n")).toHaveLength(2); // --help and --version
    expect(JSON.parse(readFileSync(cache, "utf8")).entries[bin].features).toEqual(probed);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

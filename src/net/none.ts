// `none`, `host` and `ns:PATH`: backends with nothing to start. A real
// backend object for them beats `if (driver)` checks (STYLE.md #2).
import type { NetworkBackend } from "./backend.ts";
import { existsSync } from "node:fs";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { CLONE, nsTypeOf } from "../sys/ns.ts";

export const noneBackend: NetworkBackend = {
  validate() {},
  plan: () => ({ newNet: true }),
  setup: async () => ({ record: {} }),
  teardown: async () => [],
};

export const hostBackend: NetworkBackend = {
  validate() {},
  // The daemon's main thread is in the host network namespace; the Worker
  // starts there too, so keeping its netns means "host".
  plan: () => ({ newNet: false }),
  setup: async () => ({ record: {} }),
  teardown: async () => [],
};

export const nsPathBackend: NetworkBackend = {
  validate(mode) {
    if (mode.kind !== "ns") return;
    if (!existsSync(mode.path))
      throw new BurrowError(`network namespace path ${quote(mode.path)} does not exist: give a file such as /run/netns/NAME or /proc/PID/ns/net`, { kind: "bad-input" });
    // ns:/etc/passwd failed later with a raw EINVAL from setns.
    if (nsTypeOf(mode.path) !== CLONE.NEWNET)
      throw new BurrowError(`network namespace path ${quote(mode.path)} is not a network namespace: give a file such as /run/netns/NAME or /proc/PID/ns/net`, { kind: "bad-input" });
  },
  plan: (mode) => ({ newNet: false, joinNet: mode.kind === "ns" ? mode.path : undefined }),
  setup: async () => ({ record: {} }),
  teardown: async () => [],
};

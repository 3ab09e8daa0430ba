// --network ns:PATH: joins a network namespace someone else made.
import { existsSync } from "node:fs";
import { BurrowError } from "../../errors.ts";
import type { NetworkBackend } from "../backend.ts";

export const nsPathBackend: NetworkBackend<"ns"> = {
  kind: "ns",
  etc: "network",
  bridge: false,
  entersNetns: true,
  plan(mode) {
    if (!existsSync(mode.path))
      throw new BurrowError(`network namespace path "${mode.path}" does not exist: give a file such as /run/netns/NAME or /proc/PID/ns/net`, { kind: "bad-input" });
    return { newNet: false, joinNet: mode.path };
  },
  ports: () => ({ refuse: "-p cannot be used with --network ns: the sandbox has no network burrow can forward to" }),
};

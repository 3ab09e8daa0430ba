// --network ns:PATH: joins a network namespace someone else made.
import { existsSync } from "node:fs";
import { BurrowError } from "../../errors.ts";
import type { NetworkBackend } from "../backend.ts";
import { quote } from "../../quote.ts";
import { CLONE, nsTypeOf } from "../../sys/ns.ts";

export const nsPathBackend: NetworkBackend<"ns"> = {
  kind: "ns",
  etc: "network",
  bridge: false,
  entersNetns: true,
  plan(mode) {
    if (!existsSync(mode.path))
      throw new BurrowError(`network namespace path ${quote(mode.path)} does not exist: give a file such as /run/netns/NAME or /proc/PID/ns/net`, {
        kind: "bad-input",
      });
    // ns:/etc/passwd failed later with a raw EINVAL from setns.
    if (nsTypeOf(mode.path) !== CLONE.NEWNET)
      throw new BurrowError(`network namespace path ${quote(mode.path)} is not a network namespace: give a file such as /run/netns/NAME or /proc/PID/ns/net`, {
        kind: "bad-input",
      });
    return { newNet: false, joinNet: mode.path };
  },
  ports: () => ({ refuse: "-p cannot be used with --network ns: the sandbox has no network burrow can forward to" }),
};

// --network none: a new network namespace with only `lo`; nothing to start.
// A real backend object for it beats `if (driver)` checks (STYLE.md #2).
import type { NetworkBackend } from "../backend.ts";

export const noneBackend: NetworkBackend<"none"> = {
  kind: "none",
  etc: "isolated",
  bridge: false,
  entersNetns: true,
  plan: () => ({ newNet: true }),
  ports: () => ({ refuse: "-p cannot be used with --network none: the sandbox has no network burrow can forward to" }),
};

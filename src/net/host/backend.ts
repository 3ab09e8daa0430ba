// --network host: the sandbox keeps the host's network namespace.
import type { NetworkBackend } from "../backend.ts";

export const hostBackend: NetworkBackend<"host"> = {
  kind: "host",
  etc: "host",
  bridge: false,
  // Rootless could not setns into the host's netns (it belongs to the host's
  // user namespace), and the caller is in it already.
  entersNetns: false,
  // The daemon's main thread is in the host network namespace; the Worker
  // starts there too, so keeping its netns means "host".
  plan: () => ({ newNet: false }),
  ports: () => ({ refuse: "-p cannot be used with --network host: the sandbox already uses the host's ports" }),
};

// Registers the backends that have their own folder. Imported by the daemon
// only, so the CLI does not load them.
import { registerBackend } from "./registry.ts";
import { slirp4netnsBackend } from "./slirp4netns/backend.ts";
import { pastaBackend } from "./pasta/backend.ts";
import { cniBackend, type CniNetworking } from "./cni/backend.ts";

export function registerBackends(cni: CniNetworking): void {
  registerBackend("slirp4netns", slirp4netnsBackend);
  registerBackend("cni", cniBackend(cni));
  registerBackend("pasta", pastaBackend);
}

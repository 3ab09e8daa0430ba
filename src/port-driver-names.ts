// The port drivers' names: the one vocabulary a network backend's ports()
// choice (src/net/backend.ts) and the port driver registry
// (src/ports/registry.ts) share. Its own module because src/net and
// src/ports do not import each other.
export const PORT_DRIVER_NAMES = ["builtin", "slirp4netns", "portmap", "pasta"] as const;
export type PortDriverName = (typeof PORT_DRIVER_NAMES)[number];

export function isPortDriverName(name: unknown): name is PortDriverName {
  return (PORT_DRIVER_NAMES as readonly unknown[]).includes(name);
}

// The CNI library: networks as podman v3 conflists, burrow's own CNI runtime,
// and the views podman prints. The daemon imports from here.
export * from "./attachment.ts";
export * from "./conflist.ts";
export * from "./format.ts";
export * from "./host.ts";
export * from "./inspect.ts";
export * from "./ip.ts";
export * from "./networks.ts";
export * from "./plugins.ts";
export * from "./result.ts";
export * from "./runtime.ts";
export * from "./subnet.ts";

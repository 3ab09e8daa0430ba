// --network container:NAME: joins another running sandbox's netns and shares
// its /etc/hosts and resolv.conf, as podman does. The other sandbox owns the
// network (and its ports); nothing is started or torn down here.
import { BurrowError } from "../../errors.ts";
import type { NetworkBackend } from "../backend.ts";
import { quote } from "../../quote.ts";

export const containerBackend: NetworkBackend<"container"> = {
  kind: "container",
  etc: "shared",
  bridge: false,
  entersNetns: true,
  plan(mode, ctx) {
    const target = ctx.find(mode.ref);
    if (target.status !== "running" || !target.runtime.pins)
      throw new BurrowError(`cannot share the network of sandbox ${quote(mode.ref)}: it is not running`, { kind: "bad-input" });
    return { newNet: false, joinNet: target.runtime.pins.net, netOf: target };
  },
  ports: (mode, { plan }) => ({ refuse: `-p cannot be used with --network container:${mode.ref}: publish ports on "${plan.netOf?.name ?? mode.ref}" instead` }),
};

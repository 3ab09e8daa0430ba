// The egress flags of `run` as given, and whether any was: what the CLI
// needs before it decides to load src/egress/policy.ts (its schemas and
// ranges cost a start ~1 ms), which parses them. Pure, no imports.

export interface EgressFlags {
  allowHost: readonly string[];
  allowCidr: readonly string[];
  denyCidr: readonly string[];
  logOnly: boolean;
}

/** Whether any egress flag was given: none means today's behaviour, and no policy at all. */
export function hasEgressFlags(f: EgressFlags): boolean {
  return f.allowHost.length + f.allowCidr.length + f.denyCidr.length > 0 || f.logOnly;
}

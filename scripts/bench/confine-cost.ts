// What the enter child's confinement costs (issue 19: "start with the
// capability set applied: within 1 ms of today's"). End-to-end A/B runs of
// `burrow run` (ab-start.sh) swing by +-3 ms between runs of 100 pairs on 2
// shared cores, so this measures the added work itself, in one process, the
// way the enter child does it: the four extra libc symbols bun:ffi compiles
// at dlopen, the Landlock domain, the bounding set, the capability sets.
// Run as root (or in a user namespace): the process confines itself, then exits.
//
//   node_modules/.bin/bun scripts/bench/confine-cost.ts [ROUNDS]
import { dlopen, FFIType } from "bun:ffi";

const rounds = Number(process.argv[2] ?? 200);
const { i32, i64, u64, ptr } = FFIType;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

// 1. The symbols: dlopen with and without the four the confinement added.
const extra = {
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  capget: { args: [ptr, ptr], returns: i32 },
  capset: { args: [ptr, ptr], returns: i32 },
  syscall: { args: [i64, i64, i64, i64, i64], returns: i64 },
} as const;
const base = { getpid: { args: [], returns: i32 } } as const;
const withExtra: number[] = [];
const without: number[] = [];
for (let i = 0; i < rounds; i++) {
  let t = performance.now();
  dlopen("libc.so.6", base).close();
  without.push(performance.now() - t);
  t = performance.now();
  dlopen("libc.so.6", { ...base, ...extra }).close();
  withExtra.push(performance.now() - t);
}
const symbols = median(withExtra) - median(without);

// 2. The calls, once, as the enter child makes them (a second domain or a
// second drop would measure something else). What the enter child has
// already done by then is done here first, untimed: opening namespace files
// by name (Buffer, cstr), reading /proc.
const { enterOwnLandlockDomain, limitBoundingSet, limitProcessCapabilities } = await import("../../src/sys/caps.ts");
const { capabilityNumbers, lastCapability, PODMAN_DEFAULT_CAPABILITIES } = await import("../../src/sandbox/capabilities.ts");
const { close, openRO } = await import("../../src/sys/ns.ts");
close(openRO("/proc/self/ns/net"));
const keep = capabilityNumbers(PODMAN_DEFAULT_CAPABILITIES);
let t = performance.now();
const confined = enterOwnLandlockDomain();
const landlock = performance.now() - t;
t = performance.now();
limitBoundingSet(keep);
const bounding = performance.now() - t;
t = performance.now();
limitProcessCapabilities(keep);
const sets = performance.now() - t;

const f = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
console.log(`confine-cost: ${rounds} dlopen pairs; one confinement (Landlock ${confined ? "on" : "absent"})`);
console.log(`  four more libc symbols at dlopen   ${f(symbols)}`);
console.log(`  Landlock domain                    ${f(landlock)}`);
console.log(`  bounding set (${lastCapability() + 1 - keep.length} drops) + ambient     ${f(bounding)}`);
console.log(`  capget + capset                    ${f(sets)}`);
console.log(`  total                              ${f(symbols + landlock + bounding + sets)}`);

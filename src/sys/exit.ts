// Ending the CLI without waiting for the kernel to tear its address space
// down. exit_group(2) unmaps a Bun process's memory (the binary's mappings,
// JSC's heap: ~40 MB resident) before the parent is told of the exit, ~1.3
// ms here, on the path of every foreground run. When another process shares
// that address space, the exiting one only drops its reference: a child made
// with clone(CLONE_VM) that sleeps a little past the exit does the teardown
// instead, after the parent (a shell, hyperfine) has its status.
//
// The child runs libc's usleep on a stack of its own, with every signal
// blocked, and exits (the clone wrapper's exit(2) on return): it touches
// nothing of Bun's. Its exit signal is 0, so it never signals the CLI; once
// the CLI is gone the kernel gives it to the nearest reaper with SIGCHLD.
import { ptr, type Pointer } from "bun:ffi";
import { cstr, libc } from "./libc.ts";

const CLONE_VM = 0x100;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
const STACK_BYTES = 16 * 1024;
/** How long the child outlives the clone: the CLI's own exit takes ~0.2 ms here. */
const LINGER_US = 3000;

let ready: { fn: Pointer; stack: Uint8Array } | null | undefined;

/** Looks up what exitLeavingTeardown needs (libc's exit group, usleep's address): call it where the CLI waits anyway. */
export function prepareExit(): void {
  if (ready !== undefined) return;
  ready = null;
  try {
    const fn = libc.symbols.dlsym(null, cstr("usleep")) as Pointer | null;
    libc.symbols.pthread_sigmask; // opens the group now, not at the exit
    if (fn) ready = { fn, stack: new Uint8Array(STACK_BYTES) };
  } catch {}
}

/**
 * Ends the process with `code` (process.exit), its address space's teardown
 * left to a sleeping child sharing it. Only for a process with nothing left
 * to write: process.exit drops output still queued for a pipe. Every fd
 * is closed first. `lingerUs`: how long the child sleeps (tests).
 */
export function exitLeavingTeardown(code: number, lingerUs = LINGER_US): never {
  prepareExit();
  if (ready) {
    const all = new Uint8Array(128).fill(0xff);
    const old = new Uint8Array(128);
    if (libc.symbols.pthread_sigmask(SIG_BLOCK, all, old) === 0) {
      // The child would hold a copy of every fd: a caller reading the CLI's
      // stderr to its end would wait for the child too. Nothing is queued
      // (the caller's promise), so they go first.
      if (libc.symbols.close_range(0, 0xffffffff, 0) === 0) {
        let top = ptr(ready.stack) + STACK_BYTES - 64;
        top -= top % 16;
        libc.symbols.clone(ready.fn, top as Pointer, CLONE_VM, lingerUs as unknown as Pointer, null, null, null);
      }
      libc.symbols.pthread_sigmask(SIG_SETMASK, old, null);
    }
  }
  process.exit(code);
}

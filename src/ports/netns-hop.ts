// Hopping a Worker thread between sandbox network namespaces.
//
// Runs on the connector and splice Worker threads only, never on the main
// thread (a rootless daemon's main thread could never come back). Between
// jobs the thread "parks" in an empty network namespace of its own, made once
// with unshare: it never keeps a removed sandbox's netns alive, never needs a
// way back to the host netns (rootless has none: the host netns belongs to
// the initial user namespace), and anything created there by mistake can
// reach nothing.
import { CLONE, close, join, openRO, setns, unshare } from "../sys/ns.ts";

export type Hopper = {
  /** Runs `fn` inside the netns pinned at `netnsPath`, synchronously (no await in between), then parks. */
  inNetns<T>(netnsPath: string, fn: () => T): T;
  /** Closes the parking netns fd (the thread is about to end). */
  close(): void;
};

/** Call once at the top of the Worker. `onParkFailure` must not return (exit the Worker). */
export function createHopper(onParkFailure: (e: unknown) => never): Hopper {
  try {
    unshare(CLONE.NEWNET);
  } catch {
    // No CAP_SYS_ADMIN in our user namespace: park where the thread started.
  }
  const parking = openRO("/proc/thread-self/ns/net");
  return {
    inNetns(netnsPath, fn) {
      join(netnsPath, CLONE.NEWNET);
      try {
        return fn();
      } finally {
        try {
          setns(parking, CLONE.NEWNET, "parking netns");
        } catch (e) {
          // Staying in a sandbox's netns would keep it alive and run the next
          // job from the wrong place.
          onParkFailure(e);
        }
      }
    },
    close() {
      close(parking);
    },
  };
}

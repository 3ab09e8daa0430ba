// Bun's Worker has ref()/unref() (a Worker that must not keep the daemon's
// event loop alive on its own); @types/bun 1.4.5 does not declare them.
interface Worker {
  ref(): void;
  unref(): void;
}

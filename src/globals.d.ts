// Bun's Worker has ref()/unref() (a Worker that must not keep the daemon's
// event loop alive on its own); @types/bun 1.4.5 does not declare them.
interface Worker {
  ref(): void;
  unref(): void;
}

// Bun.connect({fd}) adopts a socket connected already (bun-types declares
// FdSocketOptions but no connect overload taking it): the CLI's request
// goes over the connection whose listener it checked (src/client/unix-http.ts).
declare module "bun" {
  function connect<Data = undefined>(options: FdSocketOptions<Data>): Promise<Socket<Data>>;
}

// What `run` and `exec` load while the daemon answers their request: the
// foreground command's module (the enter step, the pty) and the enter
// helper's memfd, so that both are ready when the reply comes. Started
// once the request is in the socket (call's onSent), not before it: loaded
// ahead, they held the request back ~0.7 ms (docs/decisions.md "Loaded
// during the create").

type Foreground = typeof import("./_foreground.ts");

/** src/cli/_foreground.ts with the enter helper's memfd started, loaded on the first call only. */
export function foregroundLoader(): () => Promise<Foreground> {
  let loading: Promise<Foreground> | null = null;
  return () =>
    (loading ??= import("./_foreground.ts").then((m) => {
      void m.prepareEnterHelper();
      m.prepareExit();
      return m;
    }));
}

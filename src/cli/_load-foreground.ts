// What `run` and `exec` start loading just before their request: the
// foreground command's module (the enter step, the pty) and the enter
// helper's memfd, so that both are ready when the daemon answers instead
// of being loaded before the request goes out (docs/decisions.md "Loaded
// during the create").

/** src/cli/_foreground.ts, with the enter helper's memfd started. */
export function loadForeground(): Promise<typeof import("./_foreground.ts")> {
  return import("./_foreground.ts").then((m) => {
    void m.prepareEnterHelper();
    return m;
  });
}

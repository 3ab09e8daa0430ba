// A classic POSIX write lock on a file, held by a python3 process, as
// podman's lockfile package takes its network lock (fcntl F_SETLKW,
// F_WRLCK): the other side of burrow's OFD locks in tests.
import { expect } from "bun:test";

const HOLDER = `import os,sys,time
fd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT,0o644)
os.lockf(fd,os.F_LOCK,0)
print('held',flush=True)
if len(sys.argv)>2:
    time.sleep(float(sys.argv[2]))
    open(sys.argv[3],'w').close()
else:
    sys.stdin.read()`;

/**
 * Holds the lock on `path` from the moment this resolves: until `release`
 * (stdin closed), or with `forMs`, that long, then writes `marker` (before
 * letting go, so a marker seen means the lock was let go or about to be).
 */
export async function holdPosixLock(path: string, timed?: { forMs: number; marker: string }) {
  const argv = ["python3", "-c", HOLDER, path, ...(timed ? [String(timed.forMs / 1000), timed.marker] : [])];
  const p = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const out = p.stdout.getReader();
  let said = "";
  while (!said.includes("\n")) {
    const { value, done } = await out.read();
    if (done) break;
    said += new TextDecoder().decode(value);
  }
  expect(said).toBe("held\n");
  return {
    pid: p.pid,
    exited: p.exited,
    release: async () => {
      p.stdin.end();
      await p.exited;
    },
  };
}

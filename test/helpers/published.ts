// Reaching a sandbox's published port from the host, and inspect's and ps's views.
import type { BurrowContext } from "./context.ts";

/** GET http://127.0.0.1:PORT/ from the host side (rootful: inside the test's netns); null when it fails. */
export async function fetchFromHost(t: BurrowContext, port: number): Promise<string | null> {
  if (t.mode === "rootless") {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? await r.text() : null;
    } catch {
      return null;
    }
  }
  const r = await t.run(["curl", "-sS", "--max-time", "2", `http://127.0.0.1:${port}/`]);
  return r.code === 0 ? r.stdout : null;
}

/** `burrow inspect NAME`, parsed: the one sandbox's podman-shaped view. */
export async function inspect(t: BurrowContext, name: string) {
  return JSON.parse(await t.burrowOk(["inspect", name]))[0];
}

/** The names of the sandboxes there are (`ps -a`), sorted. */
export async function sandboxNames(t: BurrowContext): Promise<string[]> {
  const ps = JSON.parse(await t.burrowOk(["ps", "-a", "--format", "json"])) as Array<{ Names: string[] }>;
  return ps.map((s) => s.Names[0]!).sort();
}

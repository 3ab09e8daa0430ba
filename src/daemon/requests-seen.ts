// Creates that are safe to retry (issue 10 item 2). The CLI sends every
// create with a request id it made, and sends it again when the connection
// broke, whether before the daemon read it or because the daemon died
// half-way. Here a retry meets its first attempt instead of a half-made
// sandbox that holds its name:
//
//   - still being handled by this daemon: the retry waits for that answer;
//   - finished (the sandbox row is complete): the same id, name and enter
//     target again, or for a sandbox already gone, its id and name;
//   - left half-made by a daemon that died: rolled back (recovery does it at
//     start, before any request is served; `replay` also does it), and the
//     create runs afresh.
//
// The ids live in the state database beside the rows (create_requests),
// written right after the row that reserves the name and deleted when a
// create rolls back; ids older than an hour are forgotten (a CLI retries
// within seconds). Daemon main thread.
import type { Database } from "bun:sqlite";

/** How long a request id is remembered. */
const KEEP_MS = 3600_000;

export interface SeenRequest {
  sandboxId: string;
  name: string;
}

export class RequestsSeen {
  /** Creates this daemon is handling, by request id. */
  private inflight = new Map<string, Promise<unknown>>();
  private recorded = 0;

  constructor(private readonly db: Database) {}

  /**
   * Runs `create` once per request id. `replay` turns a finished first
   * attempt into its answer, or returns null when the create must run
   * (again): nothing of the first attempt is left.
   */
  async once<T>(requestId: string | undefined, create: () => Promise<T>, replay: (seen: SeenRequest) => Promise<T | null>): Promise<T> {
    if (!requestId) return create();
    const running = this.inflight.get(requestId);
    if (running) return running as Promise<T>;
    const p = (async () => {
      const seen = this.lookup(requestId);
      if (seen) {
        const answer = await replay(seen);
        if (answer !== null) return answer;
        this.forgetRequest(requestId);
      }
      return create();
    })();
    this.inflight.set(requestId, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(requestId);
    }
  }

  /** Written right after the sandbox row: from then on a retry finds this attempt. */
  record(requestId: string | undefined, sandboxId: string, name: string): void {
    if (!requestId) return;
    const now = Date.now();
    // Old ids go every 100th record: one write per create, not two, keeps the WAL small.
    if (++this.recorded % 100 === 0) this.db.query("DELETE FROM create_requests WHERE created_at < ?").run(new Date(now - KEEP_MS).toISOString());
    this.db
      .query("INSERT INTO create_requests (request_id, sandbox_id, name, created_at) VALUES (?, ?, ?, ?)")
      .run(requestId, sandboxId, name, new Date(now).toISOString());
  }

  /** The create of `sandboxId` was rolled back: a retry starts afresh. */
  forget(sandboxId: string): void {
    this.db.query("DELETE FROM create_requests WHERE sandbox_id = ?").run(sandboxId);
  }

  private forgetRequest(requestId: string): void {
    this.db.query("DELETE FROM create_requests WHERE request_id = ?").run(requestId);
  }

  lookup(requestId: string): SeenRequest | null {
    const row = this.db.query("SELECT sandbox_id, name FROM create_requests WHERE request_id = ?").get(requestId) as {
      sandbox_id: string;
      name: string;
    } | null;
    return row ? { sandboxId: row.sandbox_id, name: row.name } : null;
  }
}

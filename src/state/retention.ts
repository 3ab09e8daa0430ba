// Keeping the state database small (issue 10 item 6): the events table was
// never pruned and the WAL grew with every `run --rm`. Events are kept by
// count and by age, like podman's rotated events log, and the WAL is
// checkpointed and truncated after pruning and when the daemon exits.
import type { Database } from "bun:sqlite";

export interface Retention {
  /** Most events kept (BURROW_EVENTS_MAX, default 10000). */
  maxEvents: number;
  /** Oldest event kept, in ms (BURROW_EVENTS_MAX_AGE seconds, default 7 days). */
  maxAgeMs: number;
}

function positive(raw: string | undefined, fallback: number): number {
  const n = Number(raw);
  return raw && Number.isInteger(n) && n > 0 ? n : fallback;
}

export function retentionFromEnv(env: Record<string, string | undefined> = process.env): Retention {
  return {
    maxEvents: positive(env.BURROW_EVENTS_MAX, 10_000),
    maxAgeMs: positive(env.BURROW_EVENTS_MAX_AGE, 7 * 24 * 3600) * 1000,
  };
}

/** Deletes events beyond the count or older than the age; returns how many went. */
export function pruneEvents(db: Database, r: Retention, now = Date.now()): number {
  const cutoff = new Date(now - r.maxAgeMs).toISOString();
  const top = (db.query("SELECT MAX(seq) AS top FROM events").get() as { top: number | null }).top ?? 0;
  const res = db.query("DELETE FROM events WHERE seq <= ? OR time < ?").run(top - r.maxEvents, cutoff);
  return res.changes;
}

/** Writes the WAL back into the database and truncates it to zero bytes. */
export function checkpoint(db: Database): void {
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
}

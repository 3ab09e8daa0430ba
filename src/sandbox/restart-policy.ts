// Restart policies (`run --restart`): parsing as podman parses them, the
// decision "restart this exit or not", and the back-off schedule. Pure
// logic: the daemon's supervision (src/daemon/restart.ts) applies it.
import * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";

export const POLICY_NAMES = ["no", "on-failure", "always", "unless-stopped"] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export interface RestartPolicy {
  name: PolicyName;
  /** on-failure only; 0 means no limit (podman's MaximumRetryCount). */
  maxRetries: number;
}

/**
 * Supervision state kept in the row (runtime.restart), so a daemon restart
 * keeps counting. A schema: the row may come from another build or an edit.
 * Built on first use: a `run` loads this module for --restart's check, and
 * its start need not build the daemon's schema (issue 17).
 */
function restartStateSchema() {
  return v.object({
    /** Restarts made by the policy since the last user start (inspect's RestartCount). */
    count: v.pipe(v.number(), v.integer(), v.minValue(0)),
    /** The command exited and waits for its back-off to end (ps: "Restarting"). */
    pending: v.optional(v.boolean()),
    /** The back-off used last, to double. */
    delayMs: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(60_000))),
  });
}
let restartState: ReturnType<typeof restartStateSchema> | undefined;
export type RestartState = v.InferOutput<ReturnType<typeof restartStateSchema>>;

/** The row's supervision state, or a fresh one when it is missing or not of this shape. */
export function restartStateOf(raw: unknown): RestartState {
  const r = v.safeParse((restartState ??= restartStateSchema()), raw);
  return r.success ? r.output : { count: 0 };
}

export const NO_RESTART: RestartPolicy = { name: "no", maxRetries: 0 };

function bad(msg: string): BurrowError {
  return new BurrowError(msg, { kind: "bad-input" });
}

/**
 * `no`, `never` (podman's synonym for no), `on-failure`, `on-failure:N`,
 * `always`, `unless-stopped`; case-insensitive like podman. The empty
 * string is "no policy" (podman's default).
 */
export function parseRestartPolicy(raw: string | undefined): RestartPolicy {
  if (raw === undefined || raw === "") return NO_RESTART;
  const parts = raw.split(":");
  if (parts.length > 2) throw bad(`invalid restart policy ${quote(raw)}: may specify retries at most once (on-failure:N)`);
  const name = parts[0]!.toLowerCase();
  if (parts.length === 2) {
    if (name !== "on-failure") throw bad(`invalid restart policy ${quote(raw)}: retries can only be specified with the on-failure restart policy`);
    const n = parts[1]!;
    if (!/^\d+$/.test(n)) throw bad(`invalid restart policy ${quote(raw)}: the retry count must be a whole number of 0 or more`);
    const count = Number(n);
    if (!Number.isSafeInteger(count)) throw bad(`invalid restart policy ${quote(raw)}: the retry count is too large`);
    return { name: "on-failure", maxRetries: count };
  }
  if (name === "never") return NO_RESTART;
  if ((POLICY_NAMES as readonly string[]).includes(name)) return { name: name as PolicyName, maxRetries: 0 };
  throw bad(`invalid restart policy ${quote(raw)}: may only be "no", "on-failure[:N]", "always" or "unless-stopped"`);
}

/** The flag value as podman prints it back (inspect, generate systemd). */
export function formatRestartPolicy(p: RestartPolicy): string {
  return p.name === "on-failure" && p.maxRetries > 0 ? `on-failure:${p.maxRetries}` : p.name;
}

/**
 * Refusals of `run` flag combinations (podman's create validation):
 * --rm with a policy that never ends the sandbox by itself. podman compares
 * the raw flag with "on-failure"; we compare the parsed policy, so
 * `on-failure:3 --rm` is accepted too (removed once it gives up).
 */
export function checkRunFlags(p: RestartPolicy, opts: { rm: boolean; detach: boolean }): void {
  if (opts.rm && (p.name === "always" || p.name === "unless-stopped"))
    throw bad(`the --rm option conflicts with --restart ${p.name}: a sandbox that is always restarted is never removed (use --restart on-failure or no)`);
  if (!opts.detach && p.name !== "no")
    throw bad(`--restart ${formatRestartPolicy(p)} needs -d: burrow's daemon supervises only detached sandboxes (a foreground command ends with its terminal)`);
}

/** The create request's restart fields, checked by the daemon as by the CLI. */
export function checkRestartRequest(req: { restart?: string; rm: boolean; detach: boolean }): RestartPolicy {
  const p = parseRestartPolicy(req.restart);
  checkRunFlags(p, req);
  return p;
}

export interface ExitFacts {
  /** The command's exit status; null when nobody saw it (reaped after a daemon restart). */
  exitCode: number | null;
  /** Restarts made so far by the policy. */
  restartCount: number;
  /** `burrow stop`, `rm -f` or the user's `restart` ended it. */
  stoppedByUser: boolean;
}

/**
 * podman's shouldRestart: never after a user stop; on-failure only for a
 * non-zero (or unknown) status and while under its retry limit; always and
 * unless-stopped every time.
 */
export function shouldRestart(p: RestartPolicy, f: ExitFacts): boolean {
  if (f.stoppedByUser || p.name === "no") return false;
  if (p.name === "on-failure") {
    if (f.exitCode === 0) return false;
    if (p.maxRetries > 0 && f.restartCount >= p.maxRetries) return false;
  }
  return true;
}

/** First delay, growth and cap of the back-off (Docker's restart manager; podman restarts at once). */
export const BACKOFF = { initialMs: 100, factor: 2, maxMs: 60_000, resetAfterUptimeMs: 10_000 } as const;

/**
 * The delay before the next restart, given the previous delay (0 for none)
 * and how long the command ran: 100 ms, doubling, capped at one minute;
 * back to 100 ms once a run lasted 10 s.
 */
export function nextBackoff(previousMs: number, uptimeMs: number): number {
  if (previousMs <= 0 || uptimeMs >= BACKOFF.resetAfterUptimeMs) return BACKOFF.initialMs;
  return Math.min(previousMs * BACKOFF.factor, BACKOFF.maxMs);
}

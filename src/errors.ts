// One error type for everything burrow reports to a user (STYLE.md #6).
// `exitCode` is stable: 125 for burrow's own failures, 126/127 like podman
// for a command that cannot be run.
import { quote } from "./quote.ts";

export const EXIT = {
  burrow: 125,
  cannotInvoke: 126,
  notFound: 127,
} as const;

/**
 * Stable machine-readable tags, sent over the control socket and printed by
 * `--format json`. One kind per thing a script may act on: every invalid
 * value a user gave (an argument, an option, a flag's value) is `bad-input`.
 */
export const ERROR_KINDS = [
  "error",
  "bad-input",
  "unsupported",
  "unsupported-option",
  "missing-dependency",
  "setup",
  "untrusted",
  "daemon-version",
  "not-found",
  "ambiguous",
  "name-in-use",
  "in-use",
  "running",
  "not-running",
  "timeout",
  "cleanup",
  "protocol",
  "internal",
  "daemon",
  "userns",
  "pasta",
  "slirp4netns",
  "slirp4netns-api",
  "port-in-use",
  "port-privileged",
  "network-default",
  "network-exists",
  "network-in-use",
  "network-invalid",
  "cni-cache",
  "cni-plugin",
  "cni-plugin-missing",
  "cni-result",
  "cni-teardown",
  "cni-version",
  // netavark setup/teardown failed; the message is netavark's own (src/net/netavark/run.ts).
  "netavark",
  // A full state filesystem (src/state/full.ts): free space and try again.
  "disk-full",
] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

export function isErrorKind(k: unknown): k is ErrorKind {
  return (ERROR_KINDS as readonly unknown[]).includes(k);
}

export class BurrowError extends Error {
  readonly exitCode: number;
  /** A stable machine-readable tag, also sent over the control socket. */
  readonly kind: ErrorKind;
  constructor(message: string, opts: { cause?: unknown; exitCode?: number; kind?: ErrorKind } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "BurrowError";
    this.exitCode = opts.exitCode ?? EXIT.burrow;
    this.kind = opts.kind ?? "error";
  }
  toJSON() {
    return { error: this.message, kind: this.kind, exitCode: this.exitCode };
  }
}

export function notFound(what: string, name: string): BurrowError {
  return new BurrowError(`no ${what} with name or id ${quote(name)} found`, { kind: "not-found" });
}

/** The message of anything thrown, for reports that collect several errors. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Runs every cleanup step, never stopping at the first failure (STYLE.md #4),
 * and returns all the errors it met, in order.
 */
export async function runAll(steps: Array<() => unknown | Promise<unknown>>): Promise<Error[]> {
  const errors: Error[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      errors.push(e instanceof Error ? e : new Error(String(e)));
    }
  }
  return errors;
}

/** An undo or teardown step: throws, or returns the errors of its parts (all of them are reported). */
export type UndoStep = () => unknown | Promise<unknown>;

/** A stack of undo steps: push as setup proceeds, unwind on failure (latest first). */
export class Rollback {
  private steps: Array<{ what: string; undo: UndoStep }> = [];
  /** `undo` may throw, or return an Error[] (a teardown's report): each error counts. */
  push(what: string, undo: UndoStep): void {
    this.steps.push({ what, undo });
  }
  /** Forget the steps: setup succeeded and the caller owns the resources now. */
  commit(): void {
    this.steps = [];
  }
  /** Runs every step, never stopping at a failure; returns every error, each naming its step. */
  async unwind(): Promise<Error[]> {
    const steps = this.steps.reverse();
    this.steps = [];
    const errors: Error[] = [];
    for (const { what, undo } of steps) {
      try {
        const result = await undo();
        if (Array.isArray(result)) for (const e of result) if (e instanceof Error) errors.push(new Error(`undo ${what}: ${e.message}`, { cause: e }));
      } catch (e) {
        errors.push(new Error(`undo ${what}: ${messageOf(e)}`, { cause: e }));
      }
    }
    return errors;
  }
}

// The open-file limit (RLIMIT_NOFILE): read, and raised to what is allowed.
import { check, libc } from "./libc.ts";

const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffffffffffffffffn;

export interface OpenFileLimit {
  soft: number;
  hard: number;
}

function toNumber(v: bigint): number {
  return v === RLIM_INFINITY ? Number.MAX_SAFE_INTEGER : Number(v);
}

export function openFileLimit(): OpenFileLimit {
  const b = new BigUint64Array(2);
  check("getrlimit", libc.symbols.getrlimit(RLIMIT_NOFILE, b));
  return { soft: toNumber(b[0]!), hard: toNumber(b[1]!) };
}

/**
 * Raises the soft limit to the hard one and, where the process may (real
 * root), the hard one to at least `hardWanted`. Returns the limit in force
 * afterwards; a refused raise of the hard limit is not an error.
 */
export function raiseOpenFileLimit(hardWanted = 0): OpenFileLimit {
  const now = openFileLimit();
  const set = (soft: number, hard: number): boolean => libc.symbols.setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(soft), BigInt(hard)])) === 0;
  if (hardWanted > now.hard && set(hardWanted, hardWanted)) return openFileLimit();
  if (now.soft < now.hard) set(now.hard, now.hard);
  return openFileLimit();
}

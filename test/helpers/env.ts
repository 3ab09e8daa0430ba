// Where integration tests find the binary and the unprivileged test user.
// Everything here is made by scripts/setup.sh (run by scripts/test.sh).
//
// Environment:
//   BURROW_BIN          the burrow binary to test. scripts/test.sh sets it to
//                       the copy setup installs (/usr/local/lib/burrow-test/burrow)
//                       because the repo may sit under a directory the test
//                       user cannot enter. Unset: dist/burrow of this repo
//                       when the test user can reach it, else that copy.
//   BURROW_TEST_USER    the unprivileged test user (default burrowtest).
//   BURROW_TEST_TMPDIR  its private TMPDIR (default ~burrowtest/tmp).
//   BURROW_TEST_RUN     id of this test run (scripts/test.sh sets it). Every
//                       command the helpers start gets BURROW_TEST_TAG=RUN[/CTX]
//                       in its environment, which burrow passes on to its
//                       daemon and helpers: leak checks use it to tell this
//                       run's processes from someone else's on a shared machine.
//   CI=true / BURROW_TEST_STRICT=1
//                       strict leak checks: also count new processes and
//                       mounts that nothing ties to this run (a fresh CI
//                       machine runs nothing else).
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dir, "../..");
export const installedBin = process.env.BURROW_TEST_BIN || "/usr/local/lib/burrow-test/burrow";

/** PATH for the test user: Debian's default for users, without sbin, so
 * burrow is tested as a real user runs it (it must find ip, iptables, ...). */
export const USER_PATH = "/usr/local/bin:/usr/bin:/bin";
export const ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** Private TMPDIR (0700); /tmp may be 0755 root here. */
  tmpdir: string;
  /** XDG_RUNTIME_DIR=/run/user/UID, made by setup (no logind on these machines). */
  runtimeDir: string;
}

/** Parses one /etc/passwd line (pure; exported for unit tests). */
export function parsePasswdLine(line: string): { name: string; uid: number; gid: number; home: string } | null {
  const f = line.split(":");
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name: f[0]!, uid, gid, home: f[5]! };
}

let cachedUser: TestUser | undefined;

/** The test user; throws a sentence naming the fix when setup has not run. */
export function testUser(): TestUser {
  if (cachedUser) return cachedUser;
  const name = process.env.BURROW_TEST_USER || "burrowtest";
  const entry = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map(parsePasswdLine)
    .find((e) => e?.name === name);
  if (!entry) throw new Error(`test user ${name} does not exist: run scripts/setup.sh as root`);
  cachedUser = {
    ...entry,
    tmpdir: process.env.BURROW_TEST_TMPDIR || `${entry.home}/tmp`,
    runtimeDir: `/run/user/${entry.uid}`,
  };
  return cachedUser;
}

/** True when every directory above `path` is searchable by others and the file is o+rx. */
export function reachableByOthers(path: string): boolean {
  try {
    if ((statSync(path).mode & 0o005) !== 0o005) return false;
    for (let d = dirname(path); ; d = dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0) return false;
      if (d === "/") return true;
    }
  } catch {
    return false;
  }
}

let cachedBin: string | undefined;

/** The burrow binary under test (see the header for the rules). */
export function burrowBin(): string {
  if (cachedBin) return cachedBin;
  const fromEnv = process.env.BURROW_BIN;
  const dist = join(repoRoot, "dist/burrow");
  let bin: string;
  if (fromEnv) bin = fromEnv;
  else if (reachableByOthers(dist)) bin = dist;
  else {
    bin = installedBin;
    try {
      if (statSync(dist).mtimeMs > statSync(bin).mtimeMs)
        console.warn(`test/helpers: ${bin} is older than dist/burrow; run scripts/setup.sh (or npm test) to refresh it`);
    } catch {}
  }
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`burrow binary ${bin} is missing or not executable: run scripts/setup.sh (it builds and installs it)`);
  }
  cachedBin = bin;
  return bin;
}

export const isRoot = process.getuid?.() === 0;

export const testRunId = process.env.BURROW_TEST_RUN || `manual-${crypto.randomUUID().slice(0, 8)}`;
export const TAG_VAR = "BURROW_TEST_TAG";
/** Start of the names of everything the helpers make for this run (test
 * netns, private dirs): burrow-t-HASH6-, HASH6 from the run id, so a leak
 * check can tell this run's leftovers from a concurrent run's. */
export const runPrefix = `burrow-t-${new Bun.CryptoHasher("sha256").update(testRunId).digest("hex").slice(0, 6)}-`;
export const strictLeakCheck = process.env.CI === "true" || process.env.BURROW_TEST_STRICT === "1";

/** Why integration tests cannot run here, or null when they can. For
 * describe.skipIf; CI runs as root after setup, so it never skips there. */
export function integrationUnavailable(): string | null {
  if (!isRoot) return "integration tests drive the test user and test netns, so they run as root";
  try {
    testUser();
    burrowBin();
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/** Clean environment for a command run as the test user, plus `extra`
 * (an undefined value removes a variable). */
export function userEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const u = testUser();
  return merge(
    {
      HOME: u.home,
      USER: u.name,
      LOGNAME: u.name,
      PATH: USER_PATH,
      XDG_RUNTIME_DIR: u.runtimeDir,
      TMPDIR: u.tmpdir,
      LANG: "C.UTF-8",
      [TAG_VAR]: testRunId,
    },
    extra,
  );
}

/** Clean environment for a command run as root (rootful burrow). */
export function rootEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  return merge({ HOME: "/root", USER: "root", LOGNAME: "root", PATH: ROOT_PATH, LANG: "C.UTF-8", [TAG_VAR]: testRunId }, extra);
}

function merge(base: Record<string, string>, extra: Record<string, string | undefined>): Record<string, string> {
  const out = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

// Defined at build time by scripts/build.ts; "dev" when run from source.
declare const BURROW_VERSION: string;
declare const BURROW_COMMIT: string;
declare const BURROW_BUILD_DATE: string;

export function version(): { version: string; commit: string; date: string } {
  return {
    version: typeof BURROW_VERSION === "string" ? BURROW_VERSION : "dev",
    commit: typeof BURROW_COMMIT === "string" ? BURROW_COMMIT : "unknown",
    date: typeof BURROW_BUILD_DATE === "string" ? BURROW_BUILD_DATE : "unknown",
  };
}

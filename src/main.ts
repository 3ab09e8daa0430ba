// Role dispatch, decided once (STYLE.md #1). Internal roles start with "__":
//   __holder  keeps the rootless user+mount namespaces (single-threaded)
//   __launch  joins the holder's namespaces and execs the daemon (single-threaded)
//   __daemon  the per-user daemon
//   __enter   joins a sandbox and execs a command (single-threaded)
//   __cni-runner  runs CNI plugins in the rootless CNI namespace (starts single-threaded)
// The single-threaded roles do their unshare/setns before anything that could
// start a thread, so they import only src/sys and their own module. Role
// names, and the one function that spawns a role: src/roles.ts.
import { ROLES } from "./roles.ts";

const role = process.argv[2];

if (role === ROLES.holder) {
  (await import("./userns/holder.ts")).holderMain();
} else if (role === ROLES.launch) {
  (await import("./userns/launcher.ts")).launcherMain(process.argv.slice(3));
} else if (role === ROLES.enter) {
  (await import("./sandbox/enter.ts")).enterMain(process.argv.slice(3));
} else {
  // The CLI and the daemon are separate bundles (scripts/build.ts): a
  // runtime-computed specifier keeps them out of this one. Measured: the
  // __enter role starts in 5.1 ms instead of 8.8 ms.
  const { workerUrl } = await import("./workers.ts");
  if (role === ROLES.daemon) await (await import(workerUrl("daemon/main.ts"))).daemonMain();
  else if (role === ROLES.cniRunner) await (await import(workerUrl("net/cni/runner.ts"))).cniRunnerMain(process.argv.slice(3));
  else await (await import(workerUrl("cli/main.ts"))).cliMain(process.argv.slice(2));
}

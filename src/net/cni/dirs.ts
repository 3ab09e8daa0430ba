// Where CNI plugins are looked for (CNI_PATH), in order: containers.conf's
// [network] cni_plugin_dirs when set, else libcni's usual places, Fedora's
// /usr/libexec/cni and Debian's /usr/lib/cni (src/machine/helpers.ts). Read once
// when the daemon loads the CNI code. Its own module so that the CLI (doctor)
// can name them without loading the CNI runtime.
import { cniPluginDirs, DEFAULT_CNI_PLUGIN_DIRS } from "../../machine/helpers.ts";

function configuredDirs(): string[] {
  try {
    return cniPluginDirs();
  } catch (e) {
    // A broken containers.conf: say so once and keep the built-in list
    // (`burrow doctor` reports the file and the bad key as a failure).
    process.stderr.write(`burrow: ${e instanceof Error ? e.message : String(e)}: using the default CNI plugin directories\n`);
    return DEFAULT_CNI_PLUGIN_DIRS;
  }
}

export const DEFAULT_PLUGIN_DIRS = configuredDirs();

// Where CNI plugins are looked for (CNI_PATH), in order: libcni's usual
// places and Debian's /usr/lib/cni. Its own module so that the CLI (doctor)
// can name them without loading the CNI runtime.
export const DEFAULT_PLUGIN_DIRS = ["/usr/local/libexec/cni", "/usr/libexec/cni", "/usr/local/lib/cni", "/usr/lib/cni", "/opt/cni/bin"];

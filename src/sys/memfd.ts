// Sealed in-memory executables (memfd_create(2)): the enter helper
// (src/sandbox/enter-spawn.ts) runs from one without ever being a file on disk.
import { check, cstr, errno, libc } from "./libc.ts";
import { writeAll } from "./sockets.ts";

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
/** Linux >= 6.3: ask for an executable memfd explicitly (vm.memfd_noexec=1 makes the default non-executable). */
const MFD_EXEC = 0x10;
const EINVAL = 22;
const F_ADD_SEALS = 1033;
const F_DUPFD_CLOEXEC = 1030;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;
const F_SEAL_WRITE = 0x8;

/**
 * A close-on-exec memfd holding `bytes`, sealed against every change (write,
 * grow, shrink, and further seals), so what runs from it is exactly `bytes`
 * for the fd's whole life, whoever else gets hold of it. The fd is `minFd` or
 * above: a child's stdio and inherited fds (dup2'd to 0, 1, 2, 3, ...) must
 * never land on it before the child execs /proc/self/fd/N.
 */
export function sealedExecutable(name: string, bytes: Uint8Array, minFd: number): number {
  const n = cstr(name);
  let fd = libc.symbols.memfd_create(n, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  // Before 6.3 the kernel refuses the unknown flag; every memfd is executable there.
  if (fd === -1 && errno() === EINVAL) fd = libc.symbols.memfd_create(n, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  check("memfd_create", fd, name);
  try {
    writeAll(fd, bytes);
    check("fcntl", libc.symbols.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), "F_ADD_SEALS");
    return check("fcntl", libc.symbols.fcntl(fd, F_DUPFD_CLOEXEC, minFd), "F_DUPFD_CLOEXEC");
  } finally {
    libc.symbols.close(fd);
  }
}

/*
 * burrow's enter helper: the hot-path replacement of the Bun `__enter` role
 * (src/sandbox/enter.ts), a small static program that joins a sandbox and
 * execve()s the command, so a foreground run starts Bun once (the CLI), not
 * twice. It does exactly what enter.ts does, in the same order:
 *
 *   session user ns -> session mount ns (where the pins are visible) -> open
 *   every pin -> sandbox net, uts, mount ns -> (-t) the pty on stdin becomes
 *   the controlling terminal -> own Landlock domain -> bounding set + ambient
 *   -> (--user) check the ids are mapped, setgroups/setresgid/setresuid ->
 *   permitted/effective/inheritable -> chdir -> PATH lookup -> execve.
 *
 * Built by scripts/build.ts (musl-gcc -static, from Debian's musl-tools),
 * embedded in dist/burrow and run from a sealed memfd (src/sandbox/
 * enter-spawn.ts): it never lives on disk. Its arguments come from burrow
 * itself (the validated EnterRequest, translated in enter-spawn.ts); they
 * are still checked strictly here, and anything unexpected ends the helper
 * with exit 125 before it joins anything.
 *
 *   burrow-enter [-U PATH] [-M PATH] [-n PATH] [-u PATH] [-m PATH] [-t]
 *                [-e FD] [-w DIR] [-c DIR] [-i UID:GID[:G,G...]]
 *                [-C CAPMASK_HEX] [-L] [-F FD -S FD] -- COMMAND [ARG...]
 *   burrow-enter -R FD -- COMMAND [ARG...]
 *                        (the options above come down FD instead, each
 *                        followed by a NUL, up to EOF: a foreground run starts
 *                        the helper while the daemon still makes the sandbox
 *                        and sends them once it answers; EOF with none: the
 *                        run was called off, exit 125 without a word)
 *   burrow-enter -K      (keeper: holds the seccomp listener on fd 3 until no
 *                        process uses its filter any more)
 *   burrow-enter -P -- PROGRAM [ARG...]
 *                        (PROGRAM, an absolute path, in a mount namespace of
 *                        its own that propagates nowhere, as util-linux's
 *                        `unshare --mount --propagation private` runs it:
 *                        slirp4netns's --enable-sandbox; see private_mounts)
 *
 * It is single-threaded from its first instruction, which is what issue 16
 * (--accelerate) needs: with -F and -S, the seccomp filter read from -F's fd
 * (built in src/sys/seccomp.ts) goes in after every join and credential
 * change, right before execve, and its listener is sent over -S's unix
 * socket to whoever answers it (docs/accelerate.md).
 *
 * Error messages and exit codes are enter.ts's, word for word (tests and
 * users see no difference): 125 burrow's own failure, 126 cannot invoke,
 * 127 not found.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#define EXIT_BURROW 125
#define EXIT_CANNOT_INVOKE 126
#define EXIT_NOT_FOUND 127
/* The kernel's NGROUPS_MAX. */
#define MAX_GROUPS 65536

extern char **environ;

static int error_fd = 2;

/* errno names as src/sys/libc.ts prints them (SysError: "call(detail): text (CODE)"). */
static const char *errno_name(int e) {
  switch (e) {
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case ESRCH: return "ESRCH";
  case EINTR: return "EINTR";
  case EIO: return "EIO";
  case EBADF: return "EBADF";
  case ENOMEM: return "ENOMEM";
  case EACCES: return "EACCES";
  case EFAULT: return "EFAULT";
  case EBUSY: return "EBUSY";
  case EEXIST: return "EEXIST";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case EINVAL: return "EINVAL";
  case ENFILE: return "ENFILE";
  case EMFILE: return "EMFILE";
  case ENOTTY: return "ENOTTY";
  case ENOSPC: return "ENOSPC";
  case EROFS: return "EROFS";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case ENOSYS: return "ENOSYS";
  case ELOOP: return "ELOOP";
  case EOPNOTSUPP: return "EOPNOTSUPP";
  case E2BIG: return "E2BIG";
  case ENOEXEC: return "ENOEXEC";
  case ETXTBSY: return "ETXTBSY";
  default: return "E?";
  }
}

static void say(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(error_fd, p, (size_t)n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (int)w;
  }
}

static _Noreturn void die(int code, const char *msg) {
  say("Error: %s\n", msg);
  _exit(code);
}

/* "prefix: call(detail): strerror (CODE)", as enter.ts's catch blocks print a SysError. */
static _Noreturn void die_sys(int code, const char *prefix, const char *call, const char *detail, int err) {
  if (detail && *detail)
    say("Error: %s%s(%s): %s (%s)\n", prefix, call, detail, strerror(err), errno_name(err));
  else
    say("Error: %s%s: %s (%s)\n", prefix, call, strerror(err), errno_name(err));
  _exit(code);
}

/* ------------------------------------------------------------ arguments */

struct request {
  const char *session_user, *session_mnt, *net, *uts, *mnt;
  int tty;
  const char *workdir, *cwd;
  int has_user;
  uint32_t uid, gid;
  uint32_t groups[MAX_GROUPS];
  size_t ngroups;
  int has_caps;
  uint64_t keep;
  int confine;
  int filter_fd, notify_fd; /* -F, -S: -1 when not accelerated */
  char **argv;
};

/* A decimal id 0..0xfffffffe (messages.ts's Id), whole string, no sign. */
static int parse_id(const char *s, const char **end, uint32_t *out) {
  uint64_t v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9') return -1;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > 0xfffffffeULL) return -1;
    p++;
  }
  *end = p;
  *out = (uint32_t)v;
  return 0;
}

static int parse_user(struct request *r, const char *s) {
  const char *p;
  if (parse_id(s, &p, &r->uid) || *p != ':') return -1;
  if (parse_id(p + 1, &p, &r->gid)) return -1;
  r->ngroups = 0;
  if (*p == 0) return 0;
  if (*p != ':') return -1;
  p++;
  if (*p == 0) return 0;
  for (;;) {
    if (r->ngroups >= sizeof r->groups / sizeof r->groups[0]) return -1;
    if (parse_id(p, &p, &r->groups[r->ngroups++])) return -1;
    if (*p == 0) return 0;
    if (*p != ',') return -1;
    p++;
  }
}

static int parse_hex64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  int n = 0;
  for (; *s; s++, n++) {
    int d;
    if (*s >= '0' && *s <= '9') d = *s - '0';
    else if (*s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
    else return -1;
    if (n >= 16) return -1;
    v = (v << 4) | (uint64_t)d;
  }
  if (n == 0) return -1;
  *out = v;
  return 0;
}

/* An inherited fd number given as an option value: 3..65535. */
static int parse_fd(const char *v, const char *what) {
  uint32_t fd;
  const char *end;
  if (parse_id(v, &end, &fd) || *end || fd < 3 || fd > 65535) die(EXIT_BURROW, what);
  return (int)fd;
}

static void parse_args(int argc, char **argv, struct request *r) {
  memset(r, 0, sizeof *r);
  r->filter_fd = r->notify_fd = -1;
  int i = 1;
  /* -e first wherever it is: every later complaint goes there. */
  for (int j = 1; j + 1 < argc && strcmp(argv[j], "--") != 0; j++) {
    if (strcmp(argv[j], "-e") == 0) {
      uint32_t fd;
      const char *end;
      if (parse_id(argv[j + 1], &end, &fd) || *end || fd < 3 || fd > 65535) die(EXIT_BURROW, "enter helper: bad -e");
      error_fd = (int)fd;
      break;
    }
  }
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-' || a[1] == 0 || a[2] != 0) die(EXIT_BURROW, "enter helper: bad arguments");
    char opt = a[1];
    if (opt == 't') { r->tty = 1; continue; }
    if (opt == 'L') { r->confine = 1; continue; }
    if (i + 1 >= argc) die(EXIT_BURROW, "enter helper: an option lacks its value");
    const char *v = argv[++i];
    switch (opt) {
    case 'U': r->session_user = v; break;
    case 'M': r->session_mnt = v; break;
    case 'n': r->net = v; break;
    case 'u': r->uts = v; break;
    case 'm': r->mnt = v; break;
    case 'e': break; /* taken above */
    case 'w': r->workdir = v; break;
    case 'c': r->cwd = v; break;
    case 'i':
      if (parse_user(r, v)) die(EXIT_BURROW, "enter helper: bad -i");
      r->has_user = 1;
      break;
    case 'C':
      if (parse_hex64(v, &r->keep)) die(EXIT_BURROW, "enter helper: bad -C");
      r->has_caps = 1;
      break;
    case 'F': r->filter_fd = parse_fd(v, "enter helper: bad -F"); break;
    case 'S': r->notify_fd = parse_fd(v, "enter helper: bad -S"); break;
    default: die(EXIT_BURROW, "enter helper: bad arguments");
    }
  }
  if ((r->filter_fd < 0) != (r->notify_fd < 0)) die(EXIT_BURROW, "enter helper: -F and -S go together");
  if (i >= argc) die(EXIT_BURROW, "no command given");
  r->argv = argv + i;
}

/* Longest option block -R takes: a few paths and numbers, far below this. */
#define MAX_OPTIONS_BYTES 65536

/*
 * -R FD -- COMMAND [ARG...]: waits for the options on FD and returns the
 * argv parse_args reads: argv[0], those words, then "--" and the command
 * from our own argv. On FD: one block, its length in decimal and a NUL,
 * then that many bytes of NUL-terminated words (src/sandbox/enter-spawn.ts
 * optionsBlock). The block ends the wait, not EOF: the daemon writes it at
 * the end of a create while the CLI still holds the pipe, and anything
 * after it is not read. EOF before any byte: called off. The words come
 * from the CLI that spawned us or from its daemon, and are checked by
 * parse_args like argv's.
 */
static char **options_from_fd(int argc, char **argv, int *out_argc) {
  if (argc < 5 || strcmp(argv[3], "--") != 0) die(EXIT_BURROW, "enter helper: -R takes FD, -- and a command");
  int fd = parse_fd(argv[2], "enter helper: bad -R");
  static char buf[MAX_OPTIONS_BYTES];
  size_t len = 0;
  /* The header's length and the whole block's, once the header is in. */
  size_t head = 0, need = 0;
  for (;;) {
    if (need && len >= need) break;
    if (len == sizeof buf) die(EXIT_BURROW, "enter helper: the options on -R are too long");
    ssize_t n = read(fd, buf + len, (need ? need : sizeof buf) - len);
    if (n < 0 && errno == EINTR) continue;
    /* burrow's pipes are non-blocking (src/sys/sockets.ts pipe): wait here. */
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, -1) < 0 && errno != EINTR) die_sys(EXIT_BURROW, "enter helper: ", "poll", "-R", errno);
      continue;
    }
    if (n < 0) die_sys(EXIT_BURROW, "enter helper: ", "read", "-R", errno);
    if (n == 0) break;
    len += (size_t)n;
    if (!need) {
      const char *z = memchr(buf, 0, len);
      if (!z) {
        if (len > 8) die(EXIT_BURROW, "enter helper: the options on -R do not start with their length");
        continue;
      }
      head = (size_t)(z - buf) + 1;
      size_t body = 0;
      if (head < 2) die(EXIT_BURROW, "enter helper: the options on -R do not start with their length");
      for (const char *c = buf; c < z; c++) {
        if (*c < '0' || *c > '9') die(EXIT_BURROW, "enter helper: the options on -R do not start with their length");
        body = body * 10 + (size_t)(*c - '0');
        if (body > sizeof buf) die(EXIT_BURROW, "enter helper: the options on -R are too long");
      }
      need = head + body;
      if (need > sizeof buf) die(EXIT_BURROW, "enter helper: the options on -R are too long");
    }
  }
  close(fd);
  /* Called off before the sandbox was there: the CLI says why. */
  if (len == 0) _exit(EXIT_BURROW);
  if (!need || len < need) die(EXIT_BURROW, "enter helper: the options on -R end early");
  /* The words only: after the header, up to the block's end. */
  char *words_at = buf + head;
  len = need - head;
  if (len == 0 || words_at[len - 1] != 0) die(EXIT_BURROW, "enter helper: the options on -R do not end with a NUL");
  size_t words = 0;
  for (size_t i = 0; i < len; i++) words += words_at[i] == 0;
  /* argv[0], the words, then argv[3..] ("--" and the command) and the NULL. */
  size_t total = 1 + words + (size_t)(argc - 3);
  char **out = calloc(total + 1, sizeof *out);
  if (!out) die(EXIT_BURROW, "enter helper: out of memory");
  size_t k = 0;
  out[k++] = argv[0];
  for (size_t at = 0; at < len; at += strlen(words_at + at) + 1) {
    /* The command is ours (argv), never the block's: no value of ours is "--". */
    if (strcmp(words_at + at, "--") == 0) die(EXIT_BURROW, "enter helper: the options on -R hold a --");
    out[k++] = words_at + at;
  }
  for (int i = 3; i < argc; i++) out[k++] = argv[i];
  out[k] = NULL;
  *out_argc = (int)k;
  return out;
}

/* ------------------------------------------------------------ namespaces */

static const char *const ENTER = "cannot enter the sandbox (is it still running?): ";

/* Joins `path` unless we are in that namespace already (enter.ts joinIfOther). */
static void join_if_other(const char *path, const char *self, int nstype) {
  if (!path) return;
  char a[128], b[128];
  ssize_t la = readlink(path, a, sizeof a - 1);
  ssize_t lb = readlink(self, b, sizeof b - 1);
  if (la < 0 && lb < 0) return;
  if (la >= 0 && lb >= 0 && la == lb && memcmp(a, b, (size_t)la) == 0) return;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die_sys(EXIT_BURROW, ENTER, "open", path, errno);
  if (setns(fd, nstype) < 0) die_sys(EXIT_BURROW, ENTER, "setns", path, errno);
  close(fd);
}

/* A pin handed down as an inherited fd (/proc/self/fd/N) is not the command's to keep. */
static void close_if_inherited(const char *path) {
  const char *pre = "/proc/self/fd/";
  size_t n = strlen(pre);
  if (strncmp(path, pre, n) != 0) return;
  uint32_t fd;
  const char *end;
  if (parse_id(path + n, &end, &fd) || *end) return;
  close((int)fd);
}

static void join_sandbox(const struct request *r) {
  join_if_other(r->session_user, "/proc/self/ns/user", CLONE_NEWUSER);
  join_if_other(r->session_mnt, "/proc/self/ns/mnt", CLONE_NEWNS);
  /* Open every pin before joining the sandbox's mount namespace: the pins are
   * only visible in the session's. */
  const char *paths[3] = {r->net, r->uts, r->mnt};
  const int types[3] = {CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWNS};
  int fds[3] = {-1, -1, -1};
  for (int k = 0; k < 3; k++) {
    if (!paths[k]) continue;
    fds[k] = open(paths[k], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fds[k] < 0) die_sys(EXIT_BURROW, ENTER, "open", paths[k], errno);
  }
  for (int k = 0; k < 3; k++) {
    if (fds[k] < 0) continue;
    if (setns(fds[k], types[k]) < 0) die_sys(EXIT_BURROW, ENTER, "setns", paths[k], errno);
    close(fds[k]);
    close_if_inherited(paths[k]);
  }
}

/* ------------------------------------------------------------ confinement (src/sys/caps.ts) */

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define LANDLOCK_RULE_PATH_BENEATH 1
#define LANDLOCK_ACCESS_FS_MAKE_BLOCK (1ULL << 11)
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)

static const char *const CONFINE = "cannot confine the command: ";

/* The Landlock domain of caps.ts enterOwnLandlockDomain: read its comment for why. */
static void enter_own_landlock_domain(void) {
  struct {
    uint64_t handled_access_fs;
  } attr = {LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_REFER};
  long rs = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (rs < 0) {
    /* No Landlock, or ABI 1 (which does not know REFER): not used, as enter.ts. */
    if (errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL) return;
    die_sys(EXIT_BURROW, CONFINE, "landlock_create_ruleset", NULL, errno);
  }
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) die_sys(EXIT_BURROW, CONFINE, "open", "/", errno);
  struct __attribute__((packed)) {
    uint64_t allowed_access;
    int32_t parent_fd;
  } rule = {LANDLOCK_ACCESS_FS_REFER, root};
  if (syscall(SYS_landlock_add_rule, (int)rs, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
    die_sys(EXIT_BURROW, CONFINE, "landlock_add_rule", "/", errno);
  if (syscall(SYS_landlock_restrict_self, (int)rs, 0) < 0) die_sys(EXIT_BURROW, CONFINE, "landlock_restrict_self", NULL, errno);
  close(root);
  close((int)rs);
}

static void limit_bounding_set(uint64_t keep) {
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
    /* The kernel's last capability is where EINVAL starts. */
    if (errno == EINVAL && cap > 0) break;
    char d[8];
    snprintf(d, sizeof d, "%d", cap);
    die_sys(EXIT_BURROW, CONFINE, "prctl(PR_CAPBSET_DROP)", d, errno);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
    die_sys(EXIT_BURROW, CONFINE, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", NULL, errno);
}

/* <linux/capability.h>, which musl-gcc does not see: capget(2)'s v3 structs. */
#define CAP_VERSION_3 0x20080522
struct cap_header {
  uint32_t version;
  int pid;
};
struct cap_data {
  uint32_t effective, permitted, inheritable;
};

static void limit_process_capabilities(uint64_t keep) {
  static const char *const P = "cannot set the command's capabilities: ";
  struct cap_header h = {CAP_VERSION_3, 0};
  struct cap_data d[2];
  if (syscall(SYS_capget, &h, d) < 0) die_sys(EXIT_BURROW, P, "capget", NULL, errno);
  uint32_t lo = (uint32_t)keep, hi = (uint32_t)(keep >> 32);
  if (d[0].inheritable == 0 && d[1].inheritable == 0 && (d[0].effective & ~lo) == 0 && (d[1].effective & ~hi) == 0) return;
  d[0].effective &= lo;
  d[1].effective &= hi;
  d[0].permitted &= lo;
  d[1].permitted &= hi;
  d[0].inheritable = d[1].inheritable = 0;
  h.version = CAP_VERSION_3;
  h.pid = 0;
  if (syscall(SYS_capset, &h, d) < 0) die_sys(EXIT_BURROW, P, "capset", NULL, errno);
}

/* ------------------------------------------------------------ --user (src/sandbox/user.ts checkMapped) */

struct range {
  uint32_t inside, count;
};

static size_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, size - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n == size - 1) break;
  }
  close(fd);
  buf[n] = 0;
  return n;
}

static size_t read_map(const char *path, struct range *out, size_t max) {
  char buf[4096];
  read_small(path, buf, sizeof buf);
  size_t n = 0;
  char *line = buf;
  while (line && *line && n < max) {
    char *next = strchr(line, '\n');
    if (next) *next++ = 0;
    unsigned long long in, outside, count;
    if (sscanf(line, "%llu %llu %llu", &in, &outside, &count) == 3 && in <= 0xffffffffULL && count <= 0xffffffffULL) {
      out[n].inside = (uint32_t)in;
      out[n].count = (uint32_t)count;
      n++;
    }
    line = next;
  }
  return n;
}

static int mapped(uint32_t id, const struct range *m, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (id >= m[k].inside && (uint64_t)id < (uint64_t)m[k].inside + m[k].count) return 1;
  return 0;
}

/* "0-65536" for podman's usual two lines (user.ts describe). */
static void describe(const struct range *m, size_t n, char *buf, size_t size) {
  struct range s[340];
  memcpy(s, m, n * sizeof *m);
  for (size_t a = 1; a < n; a++)
    for (size_t b = a; b > 0 && s[b - 1].inside > s[b].inside; b--) {
      struct range t = s[b];
      s[b] = s[b - 1];
      s[b - 1] = t;
    }
  size_t len = 0;
  buf[0] = 0;
  uint64_t from = 0, to = 0;
  int open_run = 0;
  for (size_t k = 0; k <= n; k++) {
    if (k < n && open_run && s[k].inside == to + 1) {
      to = (uint64_t)s[k].inside + s[k].count - 1;
      continue;
    }
    if (open_run && len < size) {
      if (from == to) len += (size_t)snprintf(buf + len, size - len, "%s%llu", len ? ", " : "", (unsigned long long)from);
      else len += (size_t)snprintf(buf + len, size - len, "%s%llu-%llu", len ? ", " : "", (unsigned long long)from, (unsigned long long)to);
    }
    if (k < n) {
      from = s[k].inside;
      to = (uint64_t)s[k].inside + s[k].count - 1;
      open_run = 1;
    }
  }
  if (!open_run) snprintf(buf, size, "none");
}

static void switch_user(struct request *r) {
  struct range um[340], gm[340];
  size_t nu = read_map("/proc/self/uid_map", um, 340);
  size_t ng = read_map("/proc/self/gid_map", gm, 340);
  char desc[2048];
  if (!mapped(r->uid, um, nu)) {
    describe(um, nu, desc, sizeof desc);
    say("Error: --user: uid %u is not mapped in the sandbox's user namespace (mapped uids: %s); use one of those, or give your user a larger range in /etc/subuid\n", r->uid, desc);
    _exit(EXIT_BURROW);
  }
  if (!mapped(r->gid, gm, ng)) {
    describe(gm, ng, desc, sizeof desc);
    say("Error: --user: gid %u is not mapped in the sandbox's user namespace (mapped gids: %s); use one of those, or give your user a larger range in /etc/subgid\n", r->gid, desc);
    _exit(EXIT_BURROW);
  }
  /* Unmapped supplementary groups are dropped: they come from the host's /etc/group. */
  size_t kept = 0;
  for (size_t k = 0; k < r->ngroups; k++)
    if (mapped(r->groups[k], gm, ng)) r->groups[kept++] = r->groups[k];
  r->ngroups = kept;
  /* With a single-id map the kernel forbids setgroups ("deny"). */
  char sg[32];
  read_small("/proc/self/setgroups", sg, sizeof sg);
  char ids[32];
  if (strncmp(sg, "deny", 4) != 0) {
    static gid_t list[MAX_GROUPS];
    for (size_t k = 0; k < r->ngroups; k++) list[k] = r->groups[k];
    if (setgroups(r->ngroups, list) < 0) {
      int e = errno;
      say("Error: cannot switch to --user %u:%u: setgroups(", r->uid, r->gid);
      for (size_t k = 0; k < r->ngroups; k++) say("%s%u", k ? "," : "", r->groups[k]);
      say("): %s (%s)\n", strerror(e), errno_name(e));
      _exit(EXIT_BURROW);
    }
  }
  char prefix[96];
  snprintf(prefix, sizeof prefix, "cannot switch to --user %u:%u: ", r->uid, r->gid);
  snprintf(ids, sizeof ids, "%u", r->gid);
  if (setresgid(r->gid, r->gid, r->gid) < 0) die_sys(EXIT_BURROW, prefix, "setresgid", ids, errno);
  snprintf(ids, sizeof ids, "%u", r->uid);
  if (setresuid(r->uid, r->uid, r->uid) < 0) die_sys(EXIT_BURROW, prefix, "setresuid", ids, errno);
}

/* ------------------------------------------------------------ command */

/* PATH lookup the way a shell does it (enter.ts lookPath). 0 found, 1 not found, 2 not executable. */
static int look_path(const char *cmd, const char *path, char *out, size_t size) {
  struct stat st;
  if (strchr(cmd, '/')) {
    snprintf(out, size, "%s", cmd);
    if (stat(cmd, &st) < 0) return errno == ENOENT ? 1 : 2;
    if (S_ISDIR(st.st_mode)) return 2;
    if (access(cmd, X_OK) < 0) return errno == ENOENT ? 1 : 2;
    return 0;
  }
  char denied[4096];
  denied[0] = 0;
  const char *p = path;
  for (;;) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    int w = n ? snprintf(out, size, "%.*s/%s", (int)n, p, cmd) : snprintf(out, size, "./%s", cmd);
    if (w > 0 && (size_t)w < size) {
      int failed = stat(out, &st) < 0;
      if (!failed && S_ISDIR(st.st_mode)) goto next;
      if (!failed && access(out, X_OK) == 0) return 0;
      if (errno == EACCES && !denied[0]) snprintf(denied, sizeof denied, "%s", out);
    }
  next:
    if (!end) break;
    p = end + 1;
  }
  if (denied[0]) {
    snprintf(out, size, "%s", denied);
    return 2;
  }
  snprintf(out, size, "%s", cmd);
  return 1;
}

/* The single-thread JSC settings are for re-exec'd Bun roles only (src/sys/env.ts). */
static void strip_bun_env(void) {
  char **w = environ;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "BUN_JSC_", 8) != 0) *w++ = *e;
  *w = NULL;
}

/* ------------------------------------------------------------ --accelerate */

/* struct sock_fprog of linux/filter.h (musl ships no kernel headers). */
struct filter_program {
  unsigned short len;
  const void *filter;
};
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#define MAX_FILTER_BYTES (4096 * 8)

static const char *const ACCEL = "cannot accelerate the command: ";

/* Sends `fd` over the unix socket `sock` with SCM_RIGHTS (one byte of data carries it). */
static int send_fd(int sock, int fd) {
  char byte = 'L';
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : -1;
}

/*
 * Reads the filter program from `filter_fd`, sets no_new_privs (the filter
 * needs it without CAP_SYS_ADMIN), installs the filter with a listener,
 * hands the listener over `notify_fd` and closes all three: from here every
 * call the filter names waits for the supervisor's answer, in this process
 * and every child of the command.
 */
static void install_notify_filter(int filter_fd, int notify_fd) {
  static unsigned char program[MAX_FILTER_BYTES + 1];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(filter_fd, program + have, sizeof program - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die_sys(EXIT_BURROW, ACCEL, "read", "the filter", errno);
    if (n == 0) break;
    have += (size_t)n;
    if (have > MAX_FILTER_BYTES) die(EXIT_BURROW, "cannot accelerate the command: the filter is longer than 4096 instructions");
  }
  close(filter_fd);
  if (have == 0 || have % 8) die(EXIT_BURROW, "cannot accelerate the command: the filter is not a whole number of BPF instructions");
  struct filter_program prog = { .len = (unsigned short)(have / 8), .filter = program };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die_sys(EXIT_BURROW, ACCEL, "prctl", "PR_SET_NO_NEW_PRIVS", errno);
  long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (listener < 0) die_sys(EXIT_BURROW, ACCEL, "seccomp", "SECCOMP_SET_MODE_FILTER", errno);
  if (send_fd(notify_fd, (int)listener) < 0) die_sys(EXIT_BURROW, ACCEL, "sendmsg", "the listener", errno);
  close((int)listener);
  close(notify_fd);
}

/*
 * --accelerate's keeper: a copy of a sandbox's seccomp listener that outlives
 * the daemon. Were the daemon's copies the last, its death would close the
 * listener, and the kernel would fail every trapped connect with ENOSYS from
 * then on; with this copy the calls wait until the next daemon takes the
 * listener back (pidfd_getfd of our fd 3) and answers. It answers nothing
 * itself (POLLIN is not asked for) and ends when the filter has no process
 * left (POLLHUP) or when burrow kills it with its sandbox.
 */
static _Noreturn void keep_listener(void) {
  struct pollfd p = { .fd = 3, .events = 0 };
  for (;;) {
    int n = poll(&p, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) _exit(EXIT_BURROW);
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) _exit(0);
  }
}

/* Signals as a shell leaves them for the program exec'd next, whoever spawned
 * us: SIGPIPE and SIGXFSZ at their default action (Bun ignores both, and an
 * ignored signal stays ignored across execve), nothing blocked. */
static void default_signals(void) {
  signal(SIGPIPE, SIG_DFL);
  signal(SIGXFSZ, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * -P -- PROGRAM [ARG...]: what the daemon runs slirp4netns with, whose
 * --enable-sandbox needs a mount namespace of its own (it pivots into an
 * empty root there). util-linux's unshare(1) did this; this static helper,
 * already in memory, spares that exec and its shared libraries (~0.6 ms of
 * every slirp4netns start, issue 17).
 */
static _Noreturn void private_mounts(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0 || argv[3][0] != '/') die(EXIT_BURROW, "enter helper: -P takes -- and a program's absolute path");
  if (unshare(CLONE_NEWNS) < 0) die_sys(EXIT_BURROW, "cannot make a mount namespace: ", "unshare", "CLONE_NEWNS", errno);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die_sys(EXIT_BURROW, "cannot make a mount namespace: ", "mount", "/", errno);
  default_signals();
  execv(argv[3], argv + 3);
  int e = errno;
  say("Error: cannot run %s: execve(%s): %s (%s)\n", argv[3], argv[3], strerror(e), errno_name(e));
  _exit(EXIT_CANNOT_INVOKE);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "-K") == 0) keep_listener();
  if (argc >= 2 && strcmp(argv[1], "-P") == 0) private_mounts(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "-R") == 0) argv = options_from_fd(argc, argv, &argc);
  struct request r;
  parse_args(argc, argv, &r);

  join_sandbox(&r);

  if (r.tty) {
    /* A process that already leads a session (a detached child) keeps it. */
    if (setsid() < 0 && errno != EPERM) die_sys(EXIT_BURROW, "cannot give the command its terminal: ", "setsid", NULL, errno);
    if (ioctl(0, TIOCSCTTY, 0) < 0) die_sys(EXIT_BURROW, "cannot give the command its terminal: ", "ioctl", "TIOCSCTTY", errno);
  }

  /* Before --user: both need capabilities the command may not keep. */
  if (r.confine) enter_own_landlock_domain();
  if (r.has_caps) limit_bounding_set(r.keep);

  if (r.has_user) switch_user(&r);

  if (r.has_caps) limit_process_capabilities(r.keep);

  /* After the switch, so the directory is checked with the user's rights. */
  if (r.workdir) {
    if (chdir(r.workdir) < 0) {
      int e = errno;
      say("Error: cannot change to the working directory %s: chdir(%s): %s (%s)\n", r.workdir, r.workdir, strerror(e), errno_name(e));
      _exit(EXIT_CANNOT_INVOKE);
    }
  } else if (chdir(r.cwd ? r.cwd : "/") < 0 && chdir("/") < 0) {
    die_sys(EXIT_BURROW, "", "chdir", "/", errno);
  }

  strip_bun_env();
  const char *path = getenv("PATH");
  char found[4096];
  int lp = look_path(r.argv[0], path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", found, sizeof found);
  if (lp == 1) {
    say("Error: %s: executable file not found in $PATH: no such file or directory\n", r.argv[0]);
    _exit(EXIT_NOT_FOUND);
  }
  if (lp == 2) {
    say("Error: %s: permission denied: the file is not executable\n", found);
    _exit(EXIT_CANNOT_INVOKE);
  }

  default_signals();

  /* The command must not inherit the error fd: a success leaves it only the pty. */
  if (error_fd != 2) fcntl(error_fd, F_SETFD, FD_CLOEXEC);

  /* --accelerate: still single-threaded, every join and credential change
   * done, nothing left between here and execve but the exec itself (which
   * the filter does not trap). */
  if (r.filter_fd >= 0) install_notify_filter(r.filter_fd, r.notify_fd);

  execve(found, r.argv, environ);
  int e = errno;
  say("Error: cannot run %s: execve(%s): %s (%s)\n", r.argv[0], found, strerror(e), errno_name(e));
  _exit(EXIT_CANNOT_INVOKE);
}

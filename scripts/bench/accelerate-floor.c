// The floor of --accelerate's mechanism on this machine (issue 16's latency
// goal), for scripts/bench/accelerate-floor.sh: the least a seccomp
// user-notification supervisor can do to put a host socket in place of a
// process's TCP socket at connect(), in C, with nothing of burrow's (no
// sandbox, no policy, no JavaScript). Measurement only: it accepts every
// AF_INET destination and is not part of burrow.
//
//   accelerate-floor CMD [ARGS...]
//
// Runs CMD with a filter that traps connect(), and answers each trapped call
// as burrow's supervisor does: the sockaddr read once from the process's
// memory, the notification checked still valid, the process's file flags
// read through pidfd_getfd, a non-blocking twin made and connected here,
// installed over the process's fd (SECCOMP_IOCTL_NOTIF_ADDFD, SETFD) and the
// call answered with the connect's result. The listener asks the kernel for
// synchronous wake-ups (Linux 6.6) and is waited on with poll(2), as burrow
// does. Anything else is answered CONTINUE. Exits with CMD's status.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

static int die(const char *what) {
  fprintf(stderr, "accelerate-floor: %s: %s\n", what, strerror(errno));
  return 125;
}

// In the child: no_new_privs and a filter whose only trap is connect(); returns the listener.
static int trap_connect(void) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static void send_fd(int sock, int fd) {
  char byte = 0, control[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  sendmsg(sock, &msg, 0);
}

static int recv_fd(int sock) {
  char byte, control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  if (recvmsg(sock, &msg, 0) != 1) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static void answer(int listener, __u64 id, int error, __u32 flags) {
  struct seccomp_notif_resp resp = {.id = id, .error = error, .flags = flags};
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

// One trapped connect(); returns 1 when a twin was installed.
static int serve(int listener, const struct seccomp_notif *n) {
  struct sockaddr_in dest;
  int target = (int)n->data.args[0];
  struct iovec local = {&dest, sizeof dest}, remote = {(void *)(uintptr_t)n->data.args[1], sizeof dest};
  if (n->data.args[2] != sizeof dest || process_vm_readv(n->pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof dest ||
      dest.sin_family != AF_INET) {
    answer(listener, n->id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    return 0;
  }
  __u64 id = n->id;
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) != 0) return 0;
  int pidfd = (int)syscall(SYS_pidfd_open, n->pid, 0);
  int theirs = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
  if (pidfd >= 0) close(pidfd);
  if (theirs < 0) {
    answer(listener, n->id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    return 0;
  }
  int file_flags = fcntl(theirs, F_GETFL);
  close(theirs);
  int twin = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = connect(twin, (struct sockaddr *)&dest, sizeof dest) == 0 ? 0 : errno;
  if (!(file_flags & O_NONBLOCK) && err == EINPROGRESS) {
    struct pollfd p = {twin, POLLOUT, 0};
    socklen_t len = sizeof err;
    poll(&p, 1, -1);
    getsockopt(twin, SOL_SOCKET, SO_ERROR, &err, &len);
  }
  if (err && err != EINPROGRESS) {
    close(twin);
    answer(listener, n->id, -err, 0);
    return 0;
  }
  if (!(file_flags & O_NONBLOCK)) fcntl(twin, F_SETFL, file_flags & ~O_NONBLOCK);
  struct seccomp_notif_addfd add = {.id = n->id, .flags = SECCOMP_ADDFD_FLAG_SETFD, .srcfd = (__u32)twin, .newfd = (__u32)target};
  int installed = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0;
  close(twin);
  answer(listener, n->id, installed ? -err : 0, installed ? 0 : SECCOMP_USER_NOTIF_FLAG_CONTINUE);
  return installed;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: accelerate-floor CMD [ARGS...]\n");
    return 125;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return die("socketpair");
  pid_t child = fork();
  if (child < 0) return die("fork");
  if (child == 0) {
    int listener = trap_connect();
    if (listener < 0) _exit(die("seccomp"));
    send_fd(pair[0], listener);
    close(listener);
    execvp(argv[1], argv + 1);
    _exit(die(argv[1]));
  }
  close(pair[0]);
  int listener = recv_fd(pair[1]);
  if (listener < 0) return die("the child's listener");
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0)
    fprintf(stderr, "accelerate-floor: no synchronous wake-ups (%s): measured without\n", strerror(errno));
  long installed = 0;
  for (;;) {
    struct pollfd p = {listener, POLLIN, 0};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p.revents & (POLLHUP | POLLERR)) break; // every trapped process has exited
    struct seccomp_notif n;
    memset(&n, 0, sizeof n);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) continue; // interrupted, or the task is gone
    installed += serve(listener, &n);
  }
  int status = 0;
  waitpid(child, &status, 0);
  fprintf(stderr, "accelerate-floor: %ld connects served by a host socket\n", installed);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

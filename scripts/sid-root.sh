#!/usr/bin/env bash
# Today's distribution, testable on this Debian 12 machine: a cached Debian
# sid root (podman 5.8, netavark 1.17 with nftables, aardvark-dns, passt 2026,
# slirp4netns 1.3) and a way to run commands in it on the same kernel.
# docs/testing.md "The sid tier" describes it.
#
#   scripts/sid-root.sh [build] [--rebuild]   build or check the root (root only)
#   scripts/sid-root.sh run [--user] -- CMD... run CMD inside it, as root or as
#                                              the test user; exits with CMD's
#                                              status and leaves nothing running
#   scripts/sid-root.sh sweep                  end what a killed `run` left
#   scripts/sid-root.sh path                   print the root's directory
#
# Environment: BURROW_SID_DIR (cache, default /var/cache/burrow-sid),
# BURROW_SID_MIRROR (default http://deb.debian.org/debian, what apt uses here),
# BURROW_TEST_USER (default burrowtest: its uid, gid and subordinate ids are
# copied from the host when it exists there), BURROW_BIN (the burrow binary
# mounted at /usr/local/bin/burrow inside; default this repo's dist/burrow).
#
# Exit status: build 0 when the root is ready, 3 when the archive cannot be
# reached (the reason on stderr; tests skip on it), 1 on any other failure;
# run: CMD's status, 125 for bad usage or a root that cannot be made.
#
# Why not chroot or bwrap: a chrooted process may not create user namespaces
# (CLONE_NEWUSER fails with EPERM when the root is not the mount namespace's
# root), and bwrap sets no_new_privs, which disarms the setuid newuidmap
# ("write to uid_map failed: Operation not permitted"). So `run` enters with
# unshare -m, bind mounts and pivot_root, as a container runtime would.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${BURROW_SID_DIR:-/var/cache/burrow-sid}
root=$cache/root
mirror=${BURROW_SID_MIRROR:-http://deb.debian.org/debian}
suite=sid
user=${BURROW_TEST_USER:-burrowtest}
busybox_tree=/opt/busybox-rootfs # inside the root: a static busybox for podman --rootfs

# What the tier needs. busybox-static rather than busybox: sid's busybox is
# dynamically linked, and `podman run --rootfs` wants a tree that runs alone;
# busybox-static provides busybox as well.
packages=(podman passt netavark aardvark-dns uidmap iproute2 curl nftables
  ca-certificates runc slirp4netns busybox-static procps)
# Installed when the archive has them; the build does not fail without them.
optional_packages=(iperf3)
# Bump when the build itself (not the configuration below) changes meaning.
layout=1

say() { printf 'sid-root: %s\n' "$*" >&2; }
die() { # status message
  printf 'sid-root: error: %s\n' "$2" >&2
  exit "$1"
}

# Changes whenever the package list, the suite, the mirror or the layout do:
# the root is rebuilt then.
stamp() {
  printf '%s\n' "layout=$layout" "suite=$suite" "mirror=$mirror" \
    "packages=${packages[*]}" "optional=${optional_packages[*]}" | sha256sum | cut -d' ' -f1
}
stamp_file=etc/burrow-sid.stamp

is_current() {
  [ -d "$root" ] && [ "$(cat "$root/$stamp_file" 2>/dev/null)" = "$(stamp)" ]
}

need_root() {
  [ "$(id -u)" = 0 ] || die "${1:-125}" "needs root (debootstrap, mounts and pivot_root), run it with sudo"
}

# The cgroup v2 hierarchy (pure v2, or hybrid's /sys/fs/cgroup/unified): each
# `run` gets a cgroup there, so everything it started, daemons and podman's
# pause process included, can be found and ended by the kernel's own count.
cgroup2_mount() {
  awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts
}

# Ends every process of one cgroup (SIGTERM, then cgroup.kill) and removes it.
end_cgroup() { # dir
  local cg=$1 i
  [ -d "$cg" ] || return 0
  if [ -s "$cg/cgroup.procs" ]; then
    # A polite SIGTERM first: burrow's daemon and podman tear down their
    # helpers on it. Whatever is left after 2 s gets SIGKILL from the kernel.
    xargs -r kill -TERM <"$cg/cgroup.procs" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      [ -s "$cg/cgroup.procs" ] || break
      sleep 0.1
    done
  fi
  for ((i = 0; i < 50; i++)); do
    grep -q '^populated 0' "$cg/cgroup.events" && break
    echo 1 >"$cg/cgroup.kill"
    sleep 0.1
  done
  rmdir "$cg" 2>/dev/null || say "warning: cannot remove $cg: $(cat "$cg/cgroup.procs" | tr '\n' ' ')"
}

# Pids whose root directory is the sid root (the same directory inode: a bind
# mount keeps device and inode). A process that pivoted again (a container)
# has another root; the cgroup catches those.
pids_in_root() {
  local want pid got
  want=$(stat -c '%d:%i' "$root")
  for pid in /proc/[0-9]*; do
    got=$(stat -L -c '%d:%i' "$pid/root" 2>/dev/null) || continue
    [ "$got" = "$want" ] && echo "${pid#/proc/}"
  done
  return 0
}

# ---------------------------------------------------------------- build

# Reaches the archive first, so that "no network" is told apart from a
# failed build.
check_archive() {
  local err
  if ! err=$(curl -fsS --max-time 20 -o /dev/null "$mirror/dists/$suite/InRelease" 2>&1); then
    die 3 "cannot reach the Debian archive at $mirror ($err): the sid root cannot be built"
  fi
}

debootstrap_into() { # dir package...
  local dir=$1 list
  shift
  list=$(
    IFS=,
    echo "$*"
  )
  rm -rf "$dir"
  mkdir -p "$cache/debs"
  # --cache-dir keeps the .debs, so a rebuild downloads only what changed.
  debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$list" \
    "$suite" "$dir" "$mirror" >"$cache/build.log" 2>&1
}

build() {
  command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap </dev/null >/dev/null ||
      die 1 "cannot install debootstrap (apt-get install debootstrap)"
  }
  check_archive
  local new=$cache/root.new start=$SECONDS
  say "building the Debian $suite root in $root (debootstrap, about a minute; log: $cache/build.log)"
  if ! debootstrap_into "$new" "${packages[@]}" "${optional_packages[@]}"; then
    # An optional package the archive no longer has: build without them.
    if grep -q "Couldn't find these debs" "$cache/build.log"; then
      say "$(grep "Couldn't find these debs" "$cache/build.log" | head -1); building without ${optional_packages[*]}"
      debootstrap_into "$new" "${packages[@]}" ||
        die 1 "debootstrap failed: $(tail -1 "$cache/build.log") (see $cache/build.log)"
    else
      die 1 "debootstrap failed: $(tail -1 "$cache/build.log") (see $cache/build.log)"
    fi
  fi
  stamp >"$new/$stamp_file"
  if [ -d "$root" ]; then
    sweep_processes
    rm -rf "$cache/root.old"
    mv "$root" "$cache/root.old"
  fi
  mv "$new" "$root"
  rm -rf "$cache/root.old"
  prune_debs
  say "built in $((SECONDS - start)) s"
}

# Keeps only the .debs the root was built from: sid moves every day, and the
# cache would otherwise grow by each superseded version.
prune_debs() {
  local keep f
  keep=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}_${Version}_${Architecture}.deb\n' | sed 's/:/%3a/g')
  for f in "$cache"/debs/*.deb; do
    [ -e "$f" ] || continue
    grep -qxF "${f##*/}" <<<"$keep" || rm -f "$f"
  done
}

# The test user: the host's uid, gid and subordinate ranges when it exists
# there (so files and processes read the same on both sides), else 1001 and
# 100000:65536.
user_ids() {
  local ent range
  if ent=$(getent passwd "$user"); then
    uid=$(cut -d: -f3 <<<"$ent")
    gid=$(cut -d: -f4 <<<"$ent")
  else
    uid=1001 gid=1001
  fi
  range=$(grep -m1 -E "^($user|$uid):" /etc/subuid 2>/dev/null | cut -d: -f2,3 || true)
  subuid=${range:-100000:65536}
  range=$(grep -m1 -E "^($user|$uid):" /etc/subgid 2>/dev/null | cut -d: -f2,3 || true)
  subgid=${range:-100000:65536}
}

# write_if_changed PATH CONTENT: idempotent file writes, one line when changed.
write_if_changed() {
  if [ "$(cat "$1" 2>/dev/null)" != "$2" ]; then
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "$2" >"$1"
    say "wrote ${1#"$root"}"
  fi
}

# Everything after debootstrap: cheap, checked on every build and run.
configure() {
  user_ids
  if ! grep -q "^$user:" "$root/etc/passwd"; then
    say "creating user $user ($uid:$gid) inside"
    chroot "$root" groupadd -g "$gid" "$user"
    chroot "$root" useradd -m -s /bin/bash -u "$uid" -g "$gid" "$user"
  fi
  local f
  for f in subuid subgid; do
    local want=$subuid
    [ $f = subgid ] && want=$subgid
    if ! grep -qx "$user:$want" "$root/etc/$f"; then
      say "setting $user:$want in /etc/$f inside"
      sed -i "/^$user:/d;/^$uid:/d" "$root/etc/$f"
      echo "$user:$want" >>"$root/etc/$f"
    fi
  done
  # crun refuses this host's hybrid cgroups, and nothing runs systemd or
  # journald in the root: runc, cgroupfs and a file event log.
  write_if_changed "$root/etc/containers/containers.conf.d/50-burrow-sid.conf" '# scripts/sid-root.sh: no systemd in this root, hybrid cgroups on the host
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
  if ! cmp -s /etc/resolv.conf "$root/etc/resolv.conf"; then
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    say "copied /etc/resolv.conf inside"
  fi
  # A rootfs for `podman run --rootfs`: the static busybox and its applets.
  local tree=$root$busybox_tree
  if ! cmp -s "$root/usr/bin/busybox" "$tree/bin/busybox"; then
    say "making the static busybox tree $busybox_tree"
    rm -rf "$tree"
    mkdir -p "$tree"/{bin,dev,proc,sys,etc,tmp,run,root}
    chmod 1777 "$tree/tmp"
    cp "$root/usr/bin/busybox" "$tree/bin/busybox"
    local applet
    for applet in $("$tree/bin/busybox" --list); do
      [ "$applet" = busybox ] || ln -s busybox "$tree/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tree/etc/passwd"
    printf 'root:x:0:\n' >"$tree/etc/group"
    ln -s /proc/mounts "$tree/etc/mtab"
  fi
  # The user's own, as a tree they unpacked would be: rootless podman maps
  # the user to the container's root, and runc writes into the rootfs.
  if [ "$(stat -c %u:%g "$tree")" != "$uid:$gid" ]; then
    chown -hR "$uid:$gid" "$tree"
  fi
  # Mount points for run: the burrow binary and the old root.
  [ -e "$root/usr/local/bin/burrow" ] || install -m 0755 /dev/null "$root/usr/local/bin/burrow"
  mkdir -p "$root/.oldroot"
}

cmd_build() {
  local rebuild=0
  while [ $# -gt 0 ]; do
    case $1 in
    --rebuild) rebuild=1 ;;
    *) die 125 "unknown build option '$1' (accepted: --rebuild)" ;;
    esac
    shift
  done
  need_root 1
  mkdir -p "$cache"
  exec 9>"$cache/lock"
  flock -x 9 # one build at a time, and never under a running `run`
  if [ $rebuild = 1 ] || ! is_current; then build; fi
  configure
}

# ---------------------------------------------------------------- run

# Runs in the new mount namespace as root, on the host's tree until
# pivot_root, on the sid root's after it. Mounts made here vanish with the
# namespace.
enter_inside() { # root bin as_user user uid gid home tag -- CMD...
  set -eu
  local root=$1 bin=$2 as_user=$3 user=$4 uid=$5 gid=$6 home=$7 tag=$8
  shift 9
  # The test run's tag, which burrow passes on to its daemon and helpers: the
  # host's leak checks tie what runs in here to the run that started it.
  local tagged=()
  [ -z "$tag" ] || tagged=("BURROW_TEST_TAG=$tag")
  mount --bind "$root" "$root"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  # Fresh /run and /tmp each time: every entry is a boot as far as podman
  # and burrow can tell (their runtime state is gone, their storage stays).
  mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
  mount --bind "$bin" "$root/usr/local/bin/burrow"
  cd "$root"
  pivot_root . .oldroot
  cd /
  umount -l /.oldroot
  # Shared inside this namespace only (it is private towards the host):
  # rootless podman wants "/" shared, as it is on a systemd machine.
  mount --make-rshared /
  # From here on every command is sid's.
  mkdir -p /run/lock "/run/user/$uid"
  chown "$uid:$gid" "/run/user/$uid"
  chmod 0700 "/run/user/$uid"
  if [ "$as_user" = 1 ]; then
    exec runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
      XDG_RUNTIME_DIR="/run/user/$uid" PATH=/usr/local/bin:/usr/bin:/bin "${tagged[@]}" "$@"
  fi
  exec env -i HOME=/root USER=root LOGNAME=root \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${tagged[@]}" "$@"
}

cmd_run() {
  local as_user=0
  while [ $# -gt 0 ]; do
    case $1 in
    --user) as_user=1 ;;
    --) shift; break ;;
    *) die 125 "unknown run option '$1' (usage: run [--user] -- CMD...)" ;;
    esac
    shift
  done
  [ $# -gt 0 ] || die 125 "run needs a command (usage: run [--user] -- CMD...)"
  need_root 125
  local bin=${BURROW_BIN:-$repo/dist/burrow}
  [ -x "$bin" ] || die 125 "the burrow binary $bin is missing or not executable (build it, or set BURROW_BIN)"
  # Built and configured under the exclusive lock, then run under a shared
  # one, so a rebuild waits for running entries.
  (cmd_build) || exit 125
  exec 9>"$cache/lock"
  flock -s 9
  user_ids
  local home
  home=$(awk -F: -v u="$user" '$1 == u { print $6 }' "$root/etc/passwd")

  local cg2 cg
  cg2=$(cgroup2_mount)
  [ -n "$cg2" ] || die 125 "no cgroup v2 hierarchy is mounted: run needs one to find what CMD leaves running"
  cg=$cg2/burrow-sid/run-$$
  mkdir -p "$cg"
  # The entry runs in the background so that the traps below run at once;
  # a background child keeps our stdin only when told to (bash gives it
  # /dev/null otherwise). The inner subshell joins the cgroup; the outer one
  # stays out of it, so that when the kernel kills the inner one the report
  # ("Killed") goes to the outer one's stderr, /dev/null, while the entry's
  # own stderr is fd 7, ours.
  exec 7>&2 8<&0
  (
    (
      echo "$BASHPID" >"$cg/cgroup.procs"
      exec unshare -m --propagation private -- bash -c "$(declare -f enter_inside); enter_inside \"\$@\"" \
        sid-enter "$root" "$bin" "$as_user" "$user" "$uid" "$gid" "$home" "${BURROW_TEST_TAG:-}" -- "$@" \
        <&8 2>&7 7>&- 8<&- 9>&-
    )
    exit $? # a second command, so bash forks the inner subshell instead of becoming it
  ) 2>/dev/null &
  local child=$!
  exec 7>&- 8<&-
  # Interrupted: end what runs and pass the signal's status on.
  trap 'end_cgroup "$cg"; wait "$child" || true; exit 130' INT
  trap 'end_cgroup "$cg"; wait "$child" || true; exit 143' TERM
  local rc=0
  wait "$child" || rc=$?
  trap - INT TERM
  # Whatever CMD started and left (a daemon, podman's pause process) ends
  # with it.
  end_cgroup "$cg"
  exit "$rc"
}

# ---------------------------------------------------------------- sweep

# Ends processes of runs that could not clean up (SIGKILLed): everything in
# our cgroups and everything whose root is the sid root. Lists what it ended.
sweep_processes() {
  local cg2 cg pids
  cg2=$(cgroup2_mount)
  if [ -n "$cg2" ] && [ -d "$cg2/burrow-sid" ]; then
    for cg in "$cg2"/burrow-sid/run-*; do
      [ -d "$cg" ] || continue
      pids=$(tr '\n' ' ' <"$cg/cgroup.procs")
      [ -z "$pids" ] || say "ending ${cg##*/}'s processes: $pids"
      end_cgroup "$cg"
    done
  fi
  [ -d "$root" ] || return 0
  pids=$(pids_in_root | tr '\n' ' ')
  if [ -n "$pids" ]; then
    say "ending processes in the sid root: $pids"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
}

cmd_sweep() {
  need_root 1
  sweep_processes
}

case ${1:-build} in
build) shift || true; cmd_build "$@" ;;
--rebuild) cmd_build "$@" ;;
run) shift; cmd_run "$@" ;;
sweep) shift; cmd_sweep "$@" ;;
path) echo "$root" ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d;s/^# \{0,1\}//' ;;
*) die 125 "unknown command '$1' (accepted: build [--rebuild], run [--user] -- CMD..., sweep, path)" ;;
esac

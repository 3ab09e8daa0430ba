// The --accelerate filter (src/sys/seccomp.ts) as data, run through a small
// BPF interpreter for both architectures; then the real thing: the enter
// helper installs it (-F/-S), hands the listener over SCM_RIGHTS, and a real
// python3's connect() waits for this test's answer.
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  ACCELERATED_CALLS,
  AUDIT_ARCH,
  answerNotification,
  type BpfInstruction,
  encodeProgram,
  kernelVersion,
  notificationValid,
  notifyProgram,
  receiveNotification,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_USER_NOTIF,
  type SeccompArch,
  SOCKET_SYSCALLS,
  waitNotification,
  hostSeccompArch,
} from "../../src/sys/seccomp.ts";
import { receiveFd, socketPair } from "../../src/sys/unix-socket.ts";
import { filterTestSetup, notifSizes, pythonUnderFilter } from "../helpers/accelerate.ts";

/** Runs a classic-BPF seccomp program over (arch, nr) with the four opcodes the filter uses; anything else fails the test. */
function run(program: BpfInstruction[], arch: number, nr: number, addrlen = 16): number {
  let acc = 0;
  for (let pc = 0, steps = 0; pc < program.length && steps < 10_000; steps++) {
    const i = program[pc]!;
    switch (i.code) {
      case 0x20:
        if (i.k === 0) acc = nr >>> 0;
        else if (i.k === 4) acc = arch >>> 0;
        else if (i.k === 32) acc = addrlen >>> 0;
        else throw new Error(`load of offset ${i.k}`);
        pc++;
        break;
      case 0x15:
        pc += 1 + (acc === i.k >>> 0 ? i.jt : i.jf);
        break;
      case 0x35:
        pc += 1 + (acc >= i.k >>> 0 ? i.jt : i.jf);
        break;
      case 0x06:
        return i.k >>> 0;
      default:
        throw new Error(`opcode ${i.code.toString(16)}`);
    }
  }
  throw new Error("ran off the end of the program");
}

describe("the notify filter as data", () => {
  for (const arch of ["x86_64", "aarch64"] as SeccompArch[]) {
    test(`${arch}: connect and bind notify, every other call and every other ABI is allowed`, () => {
      const p = notifyProgram(arch);
      const native = AUDIT_ARCH[arch];
      const calls = SOCKET_SYSCALLS[arch];
      for (const c of ACCELERATED_CALLS) expect(run(p, native, calls[c])).toBe(SECCOMP_RET_USER_NOTIF);
      for (const c of ["socket", "listen", "setsockopt", "close"] as const) expect(run(p, native, calls[c])).toBe(SECCOMP_RET_ALLOW);
      for (let nr = 0; nr < 500; nr++) {
        const want = (ACCELERATED_CALLS as readonly string[]).some((c) => calls[c as keyof typeof calls] === nr) ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW;
        expect(run(p, native, nr)).toBe(want);
      }
      // i386 (int 0x80) and arm32 compat calls, and the other 64-bit arch: never trapped.
      for (const other of [0x40000003, 0x40000028, AUDIT_ARCH[arch === "x86_64" ? "aarch64" : "x86_64"]]) {
        expect(run(p, other, calls.connect)).toBe(SECCOMP_RET_ALLOW);
      }
      expect(p.at(-1)!.code).toBe(0x06);
    });

    test(`${arch}: only IPv4 and IPv6 sockaddr lengths notify (unix-socket connects run untouched)`, () => {
      const p = notifyProgram(arch);
      const calls = SOCKET_SYSCALLS[arch];
      for (const len of [16, 28]) expect(run(p, AUDIT_ARCH[arch], calls.connect, len)).toBe(SECCOMP_RET_USER_NOTIF);
      for (const len of [0, 2, 12, 110, 128, 17]) {
        expect(run(p, AUDIT_ARCH[arch], calls.connect, len)).toBe(SECCOMP_RET_ALLOW);
        expect(run(p, AUDIT_ARCH[arch], calls.bind, len)).toBe(SECCOMP_RET_ALLOW);
      }
    });
  }

  test("x86_64's x32 calls are allowed, not trapped (their numbers carry bit 30)", () => {
    const p = notifyProgram("x86_64");
    expect(run(p, AUDIT_ARCH.x86_64, 0x40000000 | SOCKET_SYSCALLS.x86_64.connect)).toBe(SECCOMP_RET_ALLOW);
    expect(run(notifyProgram("aarch64"), AUDIT_ARCH.aarch64, 0x40000000 | SOCKET_SYSCALLS.aarch64.connect)).toBe(SECCOMP_RET_ALLOW);
  });

  test("encoding: struct sock_filter, 8 bytes each, little-endian", () => {
    const p = notifyProgram("aarch64", ["connect"]);
    const bytes = encodeProgram(p);
    expect(bytes.length).toBe(p.length * 8);
    // ld [4]: code 0x20, jt 0, jf 0, k 4
    expect([...bytes.slice(0, 8)]).toEqual([0x20, 0, 0, 0, 4, 0, 0, 0]);
    // jeq AUDIT_ARCH_AARCH64 (0xc00000b7), jf to the allow at the end
    const v = new DataView(bytes.buffer);
    expect(v.getUint16(8, true)).toBe(0x15);
    expect(v.getUint32(12, true)).toBe(0xc00000b7);
    expect(v.getUint8(11)).toBe(2); // over the ld nr and the one jeq nr, to the allow
    expect(() => encodeProgram(Array.from({ length: 4097 }, () => p[0]!))).toThrow(/at most 4096/);
  });

  test("kernel versions", () => {
    expect(kernelVersion("6.18.44-fc-v1252")).toEqual([6, 18]);
    expect(kernelVersion("5.4.0")).toEqual([5, 4]);
    expect(kernelVersion("weird")).toBeNull();
  });
});

describe("the filter in a real process", () => {
  let helper = "";
  let why = "";
  beforeAll(async () => {
    ({ helper, why } = await filterTestSetup());
  });

  const accelerated = (code: string) => pythonUnderFilter(helper, code);

  const connectTo = (port: number) =>
    `import socket,errno\ns=socket.socket()\ntry:\n  s.connect(("127.0.0.1",${port}))\n  print("connected")\nexcept OSError as e:\n  print(errno.errorcode[e.errno])\n`;

  test("a trapped connect waits for the answer: CONTINUE runs it in place, an error answer is what the process sees", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    expect(hostSeccompArch()).not.toBeNull();

    // Port 1 on loopback: nothing listens, so a connect made in place is refused.
    for (const [answer, printed] of [
      [{ continue: true } as const, "ECONNREFUSED"],
      [{ error: 13 }, "EACCES"],
      [{ value: 0 }, "connected"],
    ] as const) {
      const { child, listener } = accelerated(connectTo(1));
      expect(listener).not.toBeNull();
      expect(waitNotification(listener!, 10_000)).toBe("ready");
      const n = receiveNotification(listener!, notifSizes());
      expect(n.pid).toBe(child.pid);
      expect(n.nr).toBe(SOCKET_SYSCALLS[hostSeccompArch()!].connect);
      expect(n.arch).toBe(AUDIT_ARCH[hostSeccompArch()!]);
      expect(Number(n.args[2])).toBe(16); // sizeof(struct sockaddr_in)
      expect(notificationValid(listener!, n.id)).toBe(true);
      answerNotification(listener!, n.id, answer);
      expect(notificationValid(listener!, n.id)).toBe(false);
      expect(await child.exited).toBe(0);
      expect((await new Response(child.stdout).text()).trim()).toBe(printed);
      // Nobody uses the filter any more: the listener says so.
      expect(waitNotification(listener!, 5_000)).toBe("gone");
      closeSync(listener!);
    }
  });

  test("untrapped socket calls run without a notification; a bind does notify", async () => {
    if (why) return console.warn(`skipped: ${why}`);
    const { child, listener } = accelerated(
      `import socket\nu=socket.socket(socket.AF_UNIX)\nu.close()\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\nprint("made",flush=True)\ns.bind(("127.0.0.1",0))\nprint("bound")\n`,
    );
    expect(waitNotification(listener!, 10_000)).toBe("ready");
    const n = receiveNotification(listener!, notifSizes());
    expect(n.nr).toBe(SOCKET_SYSCALLS[hostSeccompArch()!].bind);
    answerNotification(listener!, n.id, { continue: true });
    expect(await child.exited).toBe(0);
    expect((await new Response(child.stdout).text()).split("\n").filter(Boolean)).toEqual(["made", "bound"]);
    closeSync(listener!);
  });

  test("the helper refuses -F without -S, and a filter that is not whole instructions", () => {
    if (!helper) return console.warn("skipped: no musl-gcc to build the enter helper (Debian: musl-tools)");
    const only = Bun.spawnSync([helper, "-F", "3", "--", "true"], { stdio: ["ignore", "pipe", "pipe"] });
    expect(only.exitCode).toBe(125);
    expect(only.stderr.toString()).toBe("Error: enter helper: -F and -S go together\n");
    const dir = mkdtempSync(`${tmpdir()}/burrow-seccomp-`);
    writeFileSync(`${dir}/filter`, new Uint8Array(12));
    const fd = openSync(`${dir}/filter`, "r");
    rmSync(dir, { recursive: true });
    const [mine, theirs] = socketPair();
    const bad = Bun.spawnSync([helper, "-F", "3", "-S", "4", "--", "true"], { stdio: ["ignore", "pipe", "pipe", fd, theirs] });
    closeSync(fd);
    closeSync(theirs);
    expect(bad.exitCode).toBe(125);
    expect(bad.stderr.toString()).toBe("Error: cannot accelerate the command: the filter is not a whole number of BPF instructions\n");
    // Nothing was sent: the other end sees the end of the stream.
    expect(receiveFd(mine)).toBeNull();
    closeSync(mine);
  });
});

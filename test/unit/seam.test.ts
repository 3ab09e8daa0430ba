// The driver seam's pure decisions: --network parsing, which backend and
// port driver a mode gets (or which refusal), and the CLI's strict flag
// parsing. No namespaces, no helpers: the conformance suites run those.
import { describe, expect, test } from "bun:test";
import type { ArgsDef } from "citty";
import { parseStrict } from "../../src/cli/_args.ts";
import { BurrowError, isErrorKind } from "../../src/errors.ts";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { PlanContext } from "../../src/net/backend.ts";
import { parseNetworkMode, type NetworkMode } from "../../src/net/mode.ts";
import { askedNetworks, attachedNetworks, chooseNamedBackend, createNetworkBackends, networkNames } from "../../src/net/registry.ts";
import { createPortDrivers } from "../../src/ports/registry.ts";
import type { Sandbox } from "../../src/state/sandboxes.ts";
import { rejection, thrown } from "../helpers/rejection.ts";

describe("parseNetworkMode", () => {
  test("every mode, with its options", () => {
    const cases: Array<[string, NetworkMode]> = [
      ["none", { kind: "none" }],
      ["host", { kind: "host" }],
      ["slirp4netns", { kind: "slirp4netns", options: "" }],
      ["slirp4netns:port_handler=slirp4netns,mtu=1500", { kind: "slirp4netns", options: "port_handler=slirp4netns,mtu=1500" }],
      ["pasta", { kind: "pasta", options: "" }],
      ["pasta:-a,10.0.2.5", { kind: "pasta", options: "-a,10.0.2.5" }],
      ["container:web", { kind: "container", ref: "web" }],
      ["ns:/run/netns/x", { kind: "ns", path: "/run/netns/x" }],
      ["bridge", { kind: "cni", networks: ["bridge"] }],
      ["red", { kind: "cni", networks: ["red"] }],
      ["red,blue.v2", { kind: "cni", networks: ["red", "blue.v2"] }],
    ];
    for (const [raw, mode] of cases) expect(parseNetworkMode(raw)).toEqual(mode);
  });

  test("bad values name themselves and what is accepted", () => {
    expect(thrown(() => parseNetworkMode("container:")).message).toBe("--network container: needs a sandbox name, as in container:NAME");
    expect(thrown(() => parseNetworkMode("ns:relative")).message).toBe('--network ns: needs an absolute path, as in ns:/run/netns/NAME (got "ns:relative")');
    for (const raw of ["none:x", "host:1", "bridge:x", "-bad", "a,,b", "wat:1"]) {
      const e = thrown(() => parseNetworkMode(raw));
      expect(e.message).toStartWith(`unknown network mode "${raw}": valid modes are none, host, slirp4netns`);
      expect(e.kind).toBe("bad-input");
    }
  });

  test("a mode of its own is not listed with bridge networks (repeated --network values arrive joined by commas)", () => {
    for (const [raw, mode] of [
      ["none,host", "none"],
      ["bridge,none", "none"],
      ["red,slirp4netns", "slirp4netns"],
      ["pasta,red", "pasta"],
      ["red,container:x", "container:x"],
    ]) {
      const e = thrown(() => parseNetworkMode(raw!));
      expect(e.message).toBe(`network mode "${mode}" cannot be combined with other networks in "${raw}": only bridge networks are listed together`);
      expect(e.kind).toBe("bad-input");
    }
    expect(parseNetworkMode("bridge,red")).toEqual({ kind: "cni", networks: ["bridge", "red"] });
  });

  test("network names are checked against the known networks when a lookup is given", () => {
    const known = (n: string) => n === "red";
    expect(parseNetworkMode("red", { cniNetworks: known })).toEqual({ kind: "cni", networks: ["red"] });
    expect(thrown(() => parseNetworkMode("blue", { cniNetworks: known })).message).toStartWith('unknown network mode "blue"');
  });
});

describe("the backend registry decides by mode", () => {
  // The CNI backend's plan and setup need the daemon's sandboxes and files;
  // the decisions asked here (ports, flags, /etc policy) touch neither.
  const paths = {
    rootless: true,
    uid: 1000,
    runtimeDir: "/run/user/1000/burrow",
    stateDir: "/tmp/s",
    cniConfigDir: "/tmp/c",
    networksDir: "/tmp/n",
    netavarkDir: "/tmp/nv",
  };
  const backends = createNetworkBackends({ paths, sandboxes: () => [] });
  const running = {
    id: "a".repeat(64),
    name: "web",
    status: "running",
    runtime: { pins: { net: "/pins/net", uts: "/pins/uts", mnt: "/pins/mnt" } },
  } as Sandbox;
  const ctx: PlanContext = {
    paths,
    find: (ref) => {
      if (ref === "web") return running;
      throw new BurrowError(`no sandbox with name or id "${ref}" found`, { kind: "not-found" });
    },
  };
  const choice = async (raw: string, rootless = true) => {
    const mode = parseNetworkMode(raw);
    const b = backends.forMode(mode);
    const plan = mode.kind === "container" || mode.kind === "none" || mode.kind === "host" ? await b.plan(mode, ctx) : { newNet: true };
    return b.ports(mode, { rootless, plan });
  };

  test("port driver per mode: builtin, slirp4netns's API, pasta, portmap", async () => {
    expect(await choice("slirp4netns")).toEqual({ driver: "builtin", keepClientAddress: true });
    expect(await choice("slirp4netns:port_handler=rootlesskit")).toEqual({ driver: "builtin", keepClientAddress: true });
    expect(await choice("slirp4netns:source_ip=false")).toEqual({ driver: "builtin", keepClientAddress: false });
    expect(await choice("slirp4netns:port_handler=slirp4netns")).toEqual({ driver: "slirp4netns" });
    expect(await choice("pasta")).toEqual({ driver: "pasta" });
    expect(await choice("bridge", true)).toEqual({ driver: "builtin" });
    expect(await choice("bridge", false)).toEqual({ driver: "portmap" });
  });

  test("-p is refused where nothing can forward, with the reason", async () => {
    expect(await choice("none")).toEqual({ refuse: "-p cannot be used with --network none: the sandbox has no network burrow can forward to" });
    expect(await choice("host")).toEqual({ refuse: "-p cannot be used with --network host: the sandbox already uses the host's ports" });
    expect(await choice("container:web")).toEqual({ refuse: '-p cannot be used with --network container:web: publish ports on "web" instead' });
    const ports = createPortDrivers();
    expect(ports.parse([], { refuse: "never shown" })).toEqual([]);
    expect(thrown(() => ports.parse(["8080:80"], { refuse: "no ports here" })).message).toBe("no ports here");
    expect(ports.parse(["8080:80"], { driver: "builtin" })).toEqual([{ hostIp: "", hostPort: 8080, containerPort: 80, protocol: "tcp" }]);
  });

  test("the slirp4netns API driver refuses IPv6 host addresses before anything starts", () => {
    const e = thrown(() => createPortDrivers().parse(["[::1]:8080:80"], { driver: "slirp4netns" }));
    expect(e.message).toContain("is not supported by port_handler=slirp4netns");
  });

  test("bridge-only flags, /etc policy and netns entry are the backend's", () => {
    const of = (raw: string) => backends.forMode(parseNetworkMode(raw));
    expect(["none", "host", "slirp4netns", "pasta", "container:x", "ns:/x", "bridge"].map((m) => [m, of(m).bridge])).toEqual([
      ["none", false],
      ["host", false],
      ["slirp4netns", false],
      ["pasta", false],
      ["container:x", false],
      ["ns:/x", false],
      ["bridge", true],
    ]);
    expect(of("host").etc).toBe("host");
    expect(of("none").etc).toBe("isolated");
    expect(of("container:x").etc).toBe("shared");
    expect(of("slirp4netns").etc).toBe("network");
    expect(of("host").entersNetns).toBe(false);
    expect(of("ns:/x").entersNetns).toBe(true);
  });

  test("container:NAME needs a running sandbox; ns:PATH an existing file", async () => {
    expect(await backends.forMode(parseNetworkMode("container:web")).plan(parseNetworkMode("container:web"), ctx)).toEqual({
      newNet: false,
      joinNet: "/pins/net",
      netOf: running,
    });
    expect(
      (await rejection(Promise.resolve().then(() => backends.forMode(parseNetworkMode("container:gone")).plan(parseNetworkMode("container:gone"), ctx))))
        .message,
    ).toBe('no sandbox with name or id "gone" found');
    const ns = parseNetworkMode("ns:/no/such/netns");
    expect((await rejection(Promise.resolve().then(() => backends.forMode(ns).plan(ns, ctx)))).message).toStartWith(
      'network namespace path "/no/such/netns" does not exist',
    );
  });

  test("a state row naming an unknown backend is refused by name", () => {
    expect(thrown(() => backends.forKind("macvlan")).message).toBe('network mode "macvlan" is not available in this build');
    expect(thrown(() => backends.forKind("toString")).kind).toBe("unsupported");
  });
});

describe("strict argument parsing", () => {
  const def = {
    name: { type: "string" },
    detach: { type: "boolean", alias: "d" },
    format: { type: "enum", options: ["table", "json"] },
    publish: { type: "string", alias: "p" },
  } satisfies ArgsDef;
  const parse = (raw: string[], extra: { stopAtPositional?: boolean } = {}) => parseStrict(raw, def, { command: "run", repeatable: ["publish"], ...extra });

  test("flags, aliases, = values, repeatable flags, positionals and --", () => {
    expect(parse(["--name", "a", "-d", "-p", "80", "--publish=81", "--format=json", "pos", "--", "cmd", "--x"])).toEqual({
      flags: { name: "a", detach: true, publish: ["80", "81"], format: "json" },
      positionals: ["pos"],
      rest: ["cmd", "--x"],
    });
    expect(parse(["--detach=false"]).flags).toEqual({ detach: false });
    expect(parse(["-d", "sh", "-c", "x"], { stopAtPositional: true }).rest).toEqual(["sh", "-c", "x"]);
  });

  test("every mistake is one bad-input sentence naming the value", () => {
    const msg = (raw: string[]) => {
      const e = thrown(() => parse(raw));
      expect(e.kind).toBe("bad-input");
      expect(e.exitCode).toBe(125);
      return e.message;
    };
    expect(msg(["--nmae", "x"])).toBe('unknown flag --nmae for "burrow run": valid flags are --name, -d / --detach, --format, -p / --publish');
    expect(msg(["-x"])).toStartWith("unknown shorthand flag 'x' in -x for \"burrow run\"");
    expect(msg(["--detach=yes"])).toBe('flag --detach takes true or false, not "yes"');
    expect(msg(["--name"])).toBe("flag --name needs a value");
    expect(msg(["--format", "xml"])).toBe('flag --format does not accept "xml": use one of table, json');
  });

  test("kinds are one vocabulary", () => {
    expect(isErrorKind("bad-input")).toBe(true);
    expect(isErrorKind("invalid-argument")).toBe(false);
    expect(isErrorKind("invalid-option")).toBe(false);
  });
});

describe("named networks are the backend's", () => {
  const row = (network: string, backend: unknown) => ({ runtime: { network, backend } }) as Sandbox;

  test("the networks a mode names: bridge networks only, the default by its name", () => {
    expect(networkNames(parseNetworkMode("red,bridge"))).toEqual(["red", "burrow"]);
    for (const m of ["none", "host", "slirp4netns", "pasta", "container:x", "ns:/x"]) expect(networkNames(parseNetworkMode(m))).toEqual([]);
  });

  test("the networks a row is attached to, read by its own backend", () => {
    const attachments = [{ network: "red" }, { network: "blue" }];
    expect(attachedNetworks(row("cni", { rootless: true, attachments }))).toEqual(["red", "blue"]);
    expect(attachedNetworks(row("cni", undefined))).toEqual([]);
    expect(attachedNetworks(row("slirp4netns", { pid: 1 }))).toEqual([]);
    expect(attachedNetworks(row("netavark", { attachments }))).toEqual([]);
    expect(attachedNetworks(row("toString", undefined))).toEqual([]);
  });

  test("only bridge backends have the networks capability, and the registry names the one serving them", () => {
    const backends = createNetworkBackends({
      paths: { rootless: false, uid: 0, runtimeDir: "/run/burrow", stateDir: "/tmp/s", cniConfigDir: "/tmp/c", networksDir: "/tmp/n", netavarkDir: "/tmp/nv" },
      sandboxes: () => [],
    });
    for (const m of ["none", "host", "slirp4netns", "pasta", "container:x", "ns:/x", "bridge"]) {
      const b = backends.forMode(parseNetworkMode(m));
      expect([m, !!b.networks]).toEqual([m, b.bridge]);
    }
    expect(backends.forKind("netavark").networks).toBeDefined();
    expect(["cni", "netavark"]).toContain(backends.named().kind);
    expect(backends.parse("red").kind).toBe(backends.named().kind);
  });

  test("which backend serves named networks: podman 4's rule", () => {
    const base = { cniInUse: false, netavarkInstalled: true };
    expect(chooseNamedBackend(base)).toEqual({ kind: "netavark", why: "netavark is installed and no CNI network exists" });
    expect(chooseNamedBackend({ ...base, cniInUse: true }).kind).toBe("cni");
    expect(chooseNamedBackend({ ...base, netavarkInstalled: false }).kind).toBe("cni");
    expect(chooseNamedBackend({ ...base, cniInUse: true, conf: "netavark" })).toEqual({
      kind: "netavark",
      why: 'containers.conf network_backend = "netavark"',
    });
    expect(chooseNamedBackend({ ...base, conf: "cni" }).kind).toBe("cni");
    expect(chooseNamedBackend({ ...base, conf: "netavark", env: "cni" })).toEqual({ kind: "cni", why: "BURROW_NETWORK_BACKEND=cni" });
    expect(chooseNamedBackend({ ...base, env: "bogus" }).kind).toBe("netavark");
  });

  test("bridge is each backend's default network; a row is read with the backend it was made with", () => {
    expect(networkNames(parseNetworkMode("red,bridge", { named: "netavark" }))).toEqual(["red", "podman"]);
    const spec = (network: string) => ({ network }) as Sandbox["spec"];
    expect(askedNetworks({ spec: spec("bridge"), runtime: { network: "netavark" } } as Sandbox)).toEqual(["podman"]);
    expect(askedNetworks({ spec: spec("bridge"), runtime: { network: "cni" } } as Sandbox)).toEqual(["burrow"]);
    expect(askedNetworks({ spec: spec("slirp4netns"), runtime: { network: "slirp4netns" } } as Sandbox)).toEqual([]);
  });
});

// docs/architecture.md "Layers point one way": the rules the seam keeps.
describe("layering", () => {
  const src = resolve(import.meta.dir, "../../src");
  const files = (dir: string): string[] =>
    readdirSync(join(src, dir), { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith(".ts"))
      .map((e) => relative(src, join(e.parentPath, e.name)));
  /** Every module a file imports (static, dynamic, type-only), as a path under src/. */
  const importsOf = (file: string): string[] => {
    const text = readFileSync(join(src, file), "utf8");
    const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]!);
    return specs.map((spec) => relative(src, resolve(join(src, file, ".."), spec)));
  };
  const offending = (dirs: string[], bad: (target: string) => boolean): string[] =>
    dirs.flatMap((d) =>
      files(d).flatMap((f) =>
        importsOf(f)
          .filter(bad)
          .map((t) => `${f} -> ${t}`),
      ),
    );

  test("the daemon and inspect reach src/net only through backend.ts, registry.ts and mode.ts", () => {
    const allowed = new Set(["net/backend.ts", "net/registry.ts", "net/mode.ts"]);
    expect(offending(["daemon", "inspect"], (t) => t.startsWith("net/") && !allowed.has(t))).toEqual([]);
  });

  test("src/net imports nothing from src/ports", () => {
    expect(offending(["net"], (t) => t.startsWith("ports/"))).toEqual([]);
  });

  test("the CLI reaches the system only through src/client", () => {
    expect(offending(["cli"], (t) => t.startsWith("sys/") || t === "roles.ts" || t === "host.ts")).toEqual([]);
  });

  test("the daemon imports nothing from src/client", () => {
    expect(offending(["daemon"], (t) => t.startsWith("client/"))).toEqual([]);
  });

  test("the checks see imports at all", () => {
    expect(importsOf("daemon/networks.ts")).toContain("net/registry.ts");
    expect(importsOf("cli/_foreground.ts")).toContain("client/enter.ts");
    // Dynamic imports count: run loads the enter step while its create is answered.
    expect(importsOf("cli/_load-foreground.ts")).toContain("cli/_foreground.ts");
  });
});

// Property-based fuzzing (issue 10 item 7) of the parsers that came with the
// podman habits (issue 9): --format templates, --filter, --since/--until,
// -e and --env-file, --user. Same properties as properties.test.ts: nothing
// but a one-line BurrowError is ever thrown, and valid inputs round-trip.
// BURROW_PROPERTY_RUNS / BURROW_PROPERTY_SEED as there (scripts/fuzz.sh).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { burrowOrValue, params, textOf } from "../helpers/properties.ts";
import { BurrowError } from "../../src/errors.ts";
import { parseFilters, parseTime, render } from "../../src/cli/_format.ts";
import { applyEnvEntry, parseEnvFile } from "../../src/cli/_process-flags.ts";
import { goStruct } from "../../src/format/template.ts";
import { resolveUser } from "../../src/sandbox/user.ts";

/** A row as `ps` hands it to the engine: a Go struct of strings, numbers, bools, a map. */
const row = () =>
  goStruct(
    { Names: "web", ID: "0123456789ab", Status: "Up 2 seconds", Pid: 42, Ports: [{ HostPort: 8080, ContainerPort: 80 }], Labels: { app: "x" }, Running: true },
    "ps.Row",
  );

// Pieces of Go's template language, so random templates get past the lexer.
const piece = fc.oneof(
  fc.constantFrom("{{", "}}", "{{.", "{{ .Names }}", "{{.Pid}}", "{{json .}}", "{{range .Ports}}", "{{end}}", "{{if .Running}}", "{{else}}", "{{- ", " -}}"),
  fc.constantFrom('{{printf "%d" .Pid}}', '{{index .Labels "app"}}', "{{len .Ports}}", "{{with .Labels}}", "{{$x := .ID}}", "{{$x}}", "{{/* c */}}"),
  fc.constantFrom("table ", "\t", "\n", "\\t", "|", "(", ")", '"', "`", "$", ".", "Names", "upper", "lower", "eq", "ne", "not", "and", "or"),
  fc.string({ maxLength: 6 }),
);
const template = fc.oneof(
  fc.array(piece, { maxLength: 12 }).map((p) => p.join("")),
  fc.string({ maxLength: 40 }),
);

describe("--format templates", () => {
  test("any template over any rows: text or a one-line BurrowError", () => {
    fc.assert(
      fc.property(template, fc.nat(3), (t, n) => {
        const out = burrowOrValue(() => render(t, Array.from({ length: n }, row)));
        if (!(out instanceof BurrowError)) expect(typeof out).toBe("string");
      }),
      params,
    );
  });

  test("text without actions renders as itself, once a row", () => {
    const plain = fc.string({ maxLength: 30 }).filter((s) => !s.includes("{{") && !s.includes("\\") && !s.startsWith("table") && s.trim() !== "json");
    fc.assert(
      fc.property(plain, fc.integer({ min: 1, max: 3 }), (s, n) => {
        const out = render(s, Array.from({ length: n }, row));
        expect(out).toBe(`${s}\n`.repeat(n));
      }),
      params,
    );
  });

  test("{{.Field}} and {{json .Field}} give back the field's value", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.integer(), (name, pid) => {
        const r = goStruct({ Names: name, Pid: pid }, "ps.Row");
        expect(render("{{.Names}}", [r])).toBe(`${name}\n`);
        expect(render("{{.Pid}}", [r])).toBe(`${pid}\n`);
        expect(JSON.parse(render("{{json .Names}}", [r]))).toBe(name);
      }),
      params,
    );
  });
});

describe("--filter, --since, --until", () => {
  const keys = ["name", "id", "status", "label", "network"];
  test("any filter text: filters or a one-line BurrowError", () => {
    fc.assert(
      fc.property(fc.array(textOf("namelbstu=*.-\n", 20), { maxLength: 4 }), (raw) => {
        burrowOrValue(() => parseFilters(raw, keys, "ps"));
      }),
      params,
    );
  });

  test("KEY=VALUE round-trips: same keys OR, every value kept in order", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...keys), fc.string({ maxLength: 12 })), { maxLength: 6 }), (pairs) => {
        const f = parseFilters(
          pairs.map(([k, v]) => `${k}=${v}`),
          keys,
          "ps",
        );
        for (const k of keys) {
          const want = pairs.filter(([key]) => key === k).map(([, v]) => v);
          expect(f.get(k) ?? []).toEqual(want);
        }
      }),
      params,
    );
  });

  test("any time text: milliseconds or a one-line BurrowError", () => {
    fc.assert(
      fc.property(textOf("0123456789-:.TZ+hmsun ", 30), (raw) => {
        const t = burrowOrValue(() => parseTime(raw, "--since", 1_800_000_000_000));
        if (!(t instanceof BurrowError)) expect(Number.isFinite(t)).toBe(true);
      }),
      params,
    );
  });

  test("RFC 3339 times, Unix seconds and durations round-trip", () => {
    const now = 1_800_000_000_000;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_000_000_000_000 }), fc.nat(100_000), (ms, secs) => {
        expect(parseTime(new Date(ms).toISOString(), "--since", now)).toBe(ms);
        expect(parseTime(String(secs), "--until", now)).toBe(secs * 1000);
        expect(parseTime(`${Math.floor(secs / 3600)}h${Math.floor(secs / 60) % 60}m${secs % 60}s`, "--since", now)).toBe(now - secs * 1000);
      }),
      params,
    );
  });
});

describe("-e, --env-file, --user", () => {
  test("any env-file text: variables or a one-line BurrowError", () => {
    fc.assert(
      fc.property(textOf("AB=#* \t\n\r", 60), (text) => {
        burrowOrValue(() => parseEnvFile(text, { A: "1", AB: "2" }, "/tmp/e"));
      }),
      params,
    );
  });

  test("any -e value: applied or a one-line BurrowError", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (entry) => {
        burrowOrValue(() => applyEnvEntry({}, entry, { PATH: "/bin" }, ""));
      }),
      params,
    );
  });

  test("K=V lines round-trip through an env file, the last one of a name winning", () => {
    const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/);
    const value = fc.string({ maxLength: 20 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), (pairs) => {
        const got = parseEnvFile(pairs.map(([k, v]) => `${k}=${v}`).join("\n"), {});
        const want: Record<string, string> = {};
        for (const [k, v] of pairs) want[k] = v;
        expect(got).toEqual(want);
      }),
      params,
    );
  });

  const passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
  const group = "root:x:0:\nalice:x:1000:\nwheel:x:10:alice\n";
  test("any --user text: ids or a one-line BurrowError", () => {
    fc.assert(
      fc.property(textOf("0123456789:alicerootwheel\n", 24), (spec) => {
        burrowOrValue(() => resolveUser(spec, passwd, group));
      }),
      params,
    );
  });

  test("UID:GID round-trips", () => {
    fc.assert(
      fc.property(fc.nat(4_000_000_000), fc.nat(4_000_000_000), (uid, gid) => {
        const u = resolveUser(`${uid}:${gid}`, passwd, group);
        expect([u.uid, u.gid]).toEqual([uid, gid]);
      }),
      params,
    );
  });
});

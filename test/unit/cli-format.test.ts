// --filter and --since/--until parsing (src/cli/_format.ts): podman's rules.
import { describe, expect, test } from "bun:test";
import { ago, labelMatches, matches, nameMatches, parseFilters, parseTime } from "../../src/cli/_format.ts";
import { BurrowError } from "../../src/errors.ts";

describe("--filter", () => {
  test("same key ORs, different keys AND", () => {
    const f = parseFilters(["name=web", "name=db", "label=app"], ["name", "label"], "ps");
    expect([...f]).toEqual([
      ["name", ["web", "db"]],
      ["label", ["app"]],
    ]);
    const row = (name: string, labels: Record<string, string>) => matches(f, (k, v) => (k === "name" ? name === v : labelMatches(labels, v)));
    expect(row("web", { app: "x" })).toBe(true);
    expect(row("db", { app: "y" })).toBe(true);
    expect(row("web", {})).toBe(false);
    expect(row("cache", { app: "x" })).toBe(false);
  });
  test("unknown keys and values without = are bad input naming the valid keys", () => {
    expect(() => parseFilters(["colour=red"], ["name", "id"], "ps")).toThrow('invalid filter "colour" for "burrow ps": valid filters are name, id');
    expect(() => parseFilters(["name"], ["name"], "ps")).toThrow("use KEY=VALUE");
    expect(() => parseFilters(["=x"], ["name"], "ps")).toThrow(BurrowError);
  });
  test("label=KEY and label=KEY=VALUE; name= is a regular expression", () => {
    expect(labelMatches({ app: "web" }, "app")).toBe(true);
    expect(labelMatches({ app: "web" }, "app=web")).toBe(true);
    expect(labelMatches({ app: "web" }, "app=db")).toBe(false);
    expect(labelMatches({ app: "" }, "app=")).toBe(true);
    expect(labelMatches(undefined, "app")).toBe(false);
    expect(nameMatches("web-1", "^web")).toBe(true);
    expect(nameMatches("my-web", "^web")).toBe(false);
    expect(() => nameMatches("x", "(")).toThrow("not a regular expression");
  });
});

describe("--since / --until", () => {
  const now = Date.parse("2026-12-01T16:00:00Z");
  test("Go durations count back from now", () => {
    expect(parseTime("10m", "--since", now)).toBe(now - 600_000);
    expect(parseTime("1h30m", "--since", now)).toBe(now - 5_400_000);
    expect(parseTime("500ms", "--since", now)).toBe(now - 500);
    expect(parseTime("1.5h", "--since", now)).toBe(now - 5_400_000);
  });
  test("RFC 3339 times and dates, Unix seconds", () => {
    expect(parseTime("2026-12-01T15:00:00Z", "--since")).toBe(Date.parse("2026-12-01T15:00:00Z"));
    expect(parseTime("2026-12-01T15:00:00.250+02:00", "--since")).toBe(Date.parse("2026-12-01T13:00:00.250Z"));
    expect(parseTime("1764604800", "--since")).toBe(1764604800_000);
    expect(parseTime("1764604800.5", "--since")).toBe(1764604800_500);
    expect(parseTime("2026-12-01", "--until")).toBe(new Date(2026, 11, 1).getTime());
  });
  test("anything else is bad input naming the flag and the forms", () => {
    for (const bad of ["yesterday", "10x", "2026-13-01", "2026-12-01T25:00:00Z", "-5m", ""]) {
      expect(() => parseTime(bad, "--since", now)).toThrow(`invalid --since "${bad}": use a duration (10m, 1h30m), an RFC 3339 time`);
    }
  });
});

test("CREATED column: go-units HumanDuration", () => {
  const now = Date.parse("2026-12-01T16:00:00Z");
  const at = (s: number) => new Date(now - s * 1000).toISOString();
  expect(ago(at(0), now)).toBe("Less than a second ago");
  expect(ago(at(30), now)).toBe("30 seconds ago");
  expect(ago(at(60), now)).toBe("About a minute ago");
  expect(ago(at(600), now)).toBe("10 minutes ago");
  expect(ago(at(3600), now)).toBe("About an hour ago");
  expect(ago(at(5 * 3600), now)).toBe("5 hours ago");
  expect(ago(at(3 * 86400), now)).toBe("3 days ago");
});

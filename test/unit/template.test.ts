import { describe, expect, test } from "bun:test";
import { renderTemplate } from "../../src/cli/_template.ts";

const view = { Name: "web", State: { Status: "running", Pid: 7 }, NetworkSettings: { Networks: { "burrow-bench": { IPAddress: "10.89.0.5" } } }, Ports: [1, 2] };

describe("--format templates", () => {
  test("field paths, the dot, json", () => {
    expect(renderTemplate("{{.Name}} {{.State.Status}} {{ .State.Pid }}", view)).toBe("web running 7");
    expect(renderTemplate("{{json .State}}", view)).toBe('{"Status":"running","Pid":7}');
    expect(renderTemplate("{{.Ports}}", view)).toBe("[1 2]");
    expect(renderTemplate("a\\nb", view)).toBe("a\nb");
  });
  test("index, also inside parentheses followed by a field (podman's way to reach a network with a dash)", () => {
    expect(renderTemplate('{{(index .NetworkSettings.Networks "burrow-bench").IPAddress}}', view)).toBe("10.89.0.5");
    expect(renderTemplate('{{index .NetworkSettings.Networks "burrow-bench" "IPAddress"}}', view)).toBe("10.89.0.5");
    expect(renderTemplate('{{json (index .NetworkSettings.Networks "burrow-bench")}}', view)).toBe('{"IPAddress":"10.89.0.5"}');
  });
  test("what it cannot parse is refused, never echoed", () => {
    for (const bad of ["{{.NetworkSettings.Networks.burrow-bench.IPAddress}}", "{{.Nope}}", "{{printf .Name}}", "{{index .State}}", '{{(index .State "Status"}}']) {
      expect(() => renderTemplate(bad, view)).toThrow(/template: cannot use/);
    }
  });
});

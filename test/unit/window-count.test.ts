import { describe, expect, test } from "bun:test";
import { WindowCount } from "../../src/window-count.ts";

describe("WindowCount", () => {
  test("counts the events within the window ending at each one, this one included", () => {
    const c = new WindowCount(1000);
    expect(c.add(0)).toBe(1);
    expect(c.add(500)).toBe(2);
    expect(c.add(999)).toBe(3);
    // The event at 0 is exactly one window old at 1000: out.
    expect(c.add(1000)).toBe(3);
    expect(c.add(1600)).toBe(3); // 999, 1000 and 1600
    expect(c.add(2000)).toBe(2); // 1600 and 2000
    expect(c.add(5000)).toBe(1);
  });

  test("events at one instant all count", () => {
    const c = new WindowCount(60_000);
    for (let i = 1; i <= 12; i++) expect(c.add(42)).toBe(i);
  });
});

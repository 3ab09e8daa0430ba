// The k8s-file log format (src/sandbox-log.ts), the cut points of the log
// cap, `logs --tail` parsing and containers.conf's log_size_max.
import { describe, expect, test } from "bun:test";
import { parseTail } from "../../src/cli/logs.ts";
import { parseConf } from "../../src/machine/containers-conf.ts";
import {
  isStampedLog,
  keepNewest,
  LineJoiner,
  type LogLine,
  logTime,
  MAX_RECORD_TEXT,
  parseRecord,
  splitLines,
  stampChunk,
  takeOldest,
} from "../../src/sandbox-log.ts";

const enc = new TextEncoder();
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const T = "2026-12-04T15:27:08.123456789Z";

function readBack(stamped: Uint8Array): LogLine[] {
  const joiner = new LineJoiner();
  const lines: LogLine[] = [];
  for (const l of splitLines(stamped).lines) {
    const r = parseRecord(l);
    if (!r) throw new Error(`not a record: ${dec(l)}`);
    const line = joiner.push(r);
    if (line) lines.push(line);
  }
  return [...lines, ...joiner.flush()];
}

describe("k8s-file records", () => {
  test("a chunk becomes one F record a line, and a P record for an unfinished end", () => {
    expect(dec(stampChunk(enc.encode("a\n\nbc"), "stdout", T))).toBe(`${T} stdout F a\n${T} stdout F \n${T} stdout P bc\n`);
    expect(dec(stampChunk(enc.encode(""), "stderr", T))).toBe("");
  });

  test("what is stamped reads back as the same lines, P parts joined per stream", () => {
    const out = new Uint8Array([
      ...stampChunk(enc.encode("hel"), "stdout", T),
      ...stampChunk(enc.encode("oops\n"), "stderr", T),
      ...stampChunk(enc.encode("lo\nend"), "stdout", T),
    ]);
    const lines = readBack(out);
    expect(lines.map((l) => [l.stream, dec(l.text)])).toEqual([
      ["stderr", "oops\n"],
      ["stdout", "hello\n"],
      ["stdout", "end"],
    ]);
    expect(lines[0]!.time).toBe(T);
    expect(lines[0]!.ms).toBe(Date.parse(T));
  });

  test("a long line is cut into records of at most 8 KiB and joined again", () => {
    const long = "x".repeat(MAX_RECORD_TEXT * 2 + 5);
    const stamped = stampChunk(enc.encode(`${long}\n`), "stdout", T);
    const records = splitLines(stamped).lines.map((l) => parseRecord(l)!);
    expect(records.map((r) => [r.partial, r.text.length])).toEqual([
      [true, MAX_RECORD_TEXT],
      [true, MAX_RECORD_TEXT],
      [false, 5],
    ]);
    expect(dec(readBack(stamped)[0]!.text)).toBe(`${long}\n`);
  });

  test("bytes are kept as they are (a \\r of a pty, invalid UTF-8)", () => {
    const raw = new Uint8Array([0xff, 0x0d, 0x0a]);
    expect([...readBack(stampChunk(raw, "stdout", T))[0]!.text]).toEqual([0xff, 0x0d, 0x0a]);
  });

  test("lines that are not records are refused, not misread", () => {
    for (const bad of ["", "hello", `${T} stdin F x`, `${T} stdout X x`, `not-a-time-at-all-xx stdout F x`]) expect(parseRecord(enc.encode(bad))).toBeNull();
    expect(dec(parseRecord(enc.encode(`${T} stdout F`))!.text)).toBe("");
  });

  test("times have nine fractional digits in UTC and sort as they were taken", () => {
    expect(logTime(Date.parse("2026-12-04T15:27:08.123Z") + 0.4567)).toBe("2026-12-04T15:27:08.123457000Z");
    expect(logTime(1000.9999999)).toBe("1970-01-01T00:00:01.001000000Z");
    expect(logTime(5) < logTime(5.001)).toBe(true);
  });

  test("the file name says the format", () => {
    expect(isStampedLog("/s/sandboxes/ID/ctr.log")).toBe(true);
    expect(isStampedLog("/s/sandboxes/ID/log")).toBe(false);
  });
});

describe("the cap's cut points", () => {
  const stamped = stampChunk(enc.encode("1\n22\n333\n"), "stdout", T);
  const rec = (s: string) => `${T} stdout F ${s}\n`;

  test("keepNewest keeps whole newest records within the bound", () => {
    expect(dec(keepNewest(stamped, 1000))).toBe(dec(stamped));
    expect(dec(keepNewest(stamped, rec("333").length + rec("22").length))).toBe(rec("22") + rec("333"));
    expect(dec(keepNewest(stamped, rec("333").length + 3))).toBe(rec("333"));
    expect(dec(keepNewest(stamped, 3))).toBe("");
  });

  test("takeOldest splits at record ends, at least one record", () => {
    expect(dec(takeOldest(stamped, rec("1").length + rec("22").length + 1))).toBe(rec("1") + rec("22"));
    expect(dec(takeOldest(stamped, 3))).toBe(rec("1"));
    expect(dec(takeOldest(stamped, 1000))).toBe(dec(stamped));
  });
});

describe("--tail and log_size_max", () => {
  test("--tail takes a count or -1", () => {
    expect(parseTail(undefined)).toBeUndefined();
    expect(parseTail("-1")).toBeUndefined();
    expect(parseTail("0")).toBe(0);
    expect(parseTail("25")).toBe(25);
    for (const bad of ["", "x", "-2", "1.5", "1e3", " 3"]) expect(() => parseTail(bad)).toThrow(`invalid --tail`);
  });

  test("[containers] log_size_max is read as an integer", () => {
    expect(parseConf("[containers]\nlog_size_max = 1048576\n", "c.conf").logSizeMax).toBe(1048576);
    expect(parseConf("[containers]\nlog_size_max = -1\n", "c.conf").logSizeMax).toBe(-1);
    expect(parseConf("[containers]\n", "c.conf").logSizeMax).toBeUndefined();
    expect(() => parseConf('[containers]\nlog_size_max = "big"\n', "c.conf")).toThrow("c.conf: containers.log_size_max");
  });
});

// PollSet (src/sys/sockets.ts): the accelerator's wait list on poll(2), with
// real pipes.
import { afterEach, describe, expect, test } from "bun:test";
import { close } from "../../src/sys/ns.ts";
import { EPOLLHUP, EPOLLIN, EPOLLOUT, PollSet, pipe, writeNB } from "../../src/sys/sockets.ts";

const opened: number[] = [];
function pair(): [number, number] {
  const p = pipe();
  opened.push(...p);
  return p;
}
const one = new Uint8Array([120]);

afterEach(() => {
  for (const fd of opened.splice(0)) close(fd);
});

function round(set: PollSet, timeoutMs = 0): Array<[number, number]> {
  const seen: Array<[number, number]> = [];
  set.wait(timeoutMs, (fd, events) => seen.push([fd, events]));
  return seen;
}

describe("PollSet", () => {
  test("reports what is ready, with poll's revents, and nothing on a timeout", () => {
    const [r1, w1] = pair();
    const [r2] = pair();
    const [, w3] = pair();
    const set = new PollSet();
    set.add(r1, EPOLLIN);
    set.add(r2, EPOLLIN);
    set.add(w3, EPOLLOUT);
    expect(round(set)).toEqual([[w3, EPOLLOUT]]);
    writeNB(w1, one, 1);
    const both: Array<[number, number]> = [
      [r1, EPOLLIN],
      [w3, EPOLLOUT],
    ];
    expect(round(set).sort()).toEqual(both.sort());
    set.remove(w3);
    expect(set.size).toBe(2);
    expect(round(set)).toEqual([[r1, EPOLLIN]]);
  });

  test("a hung-up peer is reported without being asked for", () => {
    const [r, w] = pair();
    const set = new PollSet();
    set.add(r, EPOLLIN);
    close(w);
    opened.splice(opened.indexOf(w), 1);
    expect(round(set)).toEqual([[r, EPOLLHUP]]);
  });

  test("removing from the middle keeps every other entry with its own events", () => {
    const set = new PollSet();
    const pipes = Array.from({ length: 40 }, () => pair());
    for (const [r] of pipes) set.add(r, EPOLLIN);
    for (let i = 0; i < 40; i += 3) set.remove(pipes[i]![0]);
    for (const [, w] of pipes) writeNB(w, one, 1);
    const expected = pipes.filter((_, i) => i % 3 !== 0).map(([r]) => r);
    expect(
      round(set)
        .map(([fd]) => fd)
        .sort((a, b) => a - b),
    ).toEqual(expected.sort((a, b) => a - b));
  });

  test("an fd a callback removed, or removed and added again, is not reported from the same round", () => {
    const [r1, w1] = pair();
    const [r2, w2] = pair();
    const set = new PollSet();
    set.add(r1, EPOLLIN);
    set.add(r2, EPOLLIN);
    writeNB(w1, one, 1);
    writeNB(w2, one, 1);
    const seen: number[] = [];
    set.wait(0, (fd) => {
      seen.push(fd);
      const other = fd === r1 ? r2 : r1;
      set.remove(other);
      set.add(other, EPOLLIN);
    });
    expect(seen).toHaveLength(1);
    // The next round reports it again: it was ready all along.
    expect(round(set)).toHaveLength(2);
  });
});

// Whether a string is an IP address literal: what node:net's isIP, isIPv4
// and isIPv6 answer, without loading node:net. That module costs every CLI
// command about 2 ms to load (measured, issue 17), and the CLI reached it
// only for these three checks (through src/net/cni/ip.ts, which the egress
// policy's schema in src/protocol.ts brings in). test/unit/ip-syntax.test.ts
// checks the answers against node:net's on generated strings. Pure.

/** A dotted quad: four decimal numbers 0-255, no leading zeros. */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  for (const p of parts) if (!decimalOctet(p)) return false;
  return true;
}

function decimalOctet(p: string): boolean {
  if (p.length === 0 || p.length > 3) return false;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  if (p.length > 1 && p[0] === "0") return false;
  return Number(p) <= 255;
}

function hexGroup(g: string): boolean {
  if (g.length === 0 || g.length > 4) return false;
  for (let i = 0; i < g.length; i++) {
    const c = g.charCodeAt(i);
    const hex = (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
    if (!hex) return false;
  }
  return true;
}

/** A zone id after "%" (fe80::1%eth0): letters, digits, "-", ".", ":", at least one. */
function zone(z: string): boolean {
  if (z.length === 0) return false;
  for (let i = 0; i < z.length; i++) {
    const c = z.charCodeAt(i);
    const ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46;
    if (!ok) return false;
  }
  return true;
}

/**
 * RFC 4291 text: eight hex groups of 1-4 digits, one "::" standing for one
 * or more zero groups, the last 32 bits optionally a dotted quad, and an
 * optional zone after "%".
 */
export function isIPv6(s: string): boolean {
  const pct = s.indexOf("%");
  if (pct >= 0) {
    if (!zone(s.slice(pct + 1))) return false;
    s = s.slice(0, pct);
  }
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return false;
  const count = (side: string, last: boolean): number => {
    // The number of 16-bit groups on one side of "::" (a dotted quad at the very end counts two), or -1.
    if (side === "") return 0;
    const groups = side.split(":");
    let n = 0;
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (last && i === groups.length - 1 && g.includes(".")) {
        if (!isIPv4(g)) return -1;
        n += 2;
      } else if (hexGroup(g)) n += 1;
      else return -1;
    }
    return n;
  };
  if (gap < 0) return count(s, true) === 8;
  const head = count(s.slice(0, gap), false);
  const tail = count(s.slice(gap + 2), true);
  return head >= 0 && tail >= 0 && head + tail <= 7;
}

/** 4, 6, or 0 for neither, as node:net's isIP. */
export function isIP(s: string): 0 | 4 | 6 {
  return isIPv4(s) ? 4 : isIPv6(s) ? 6 : 0;
}

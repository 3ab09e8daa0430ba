// The parser half of burrow's Go text/template engine: template text to a
// tree, with Go's parse errors ("template: :1: function "foo" not defined").
// No npm library parses Go templates faithfully (docs/decisions.md).
//
// Pure: no system access.

import { argText, TemplateError, type Arg, type Cmd, type Node, type Pipe, type Tree } from "./tree.ts";
import { goQuote } from "./values.ts";

export { TemplateError } from "./tree.ts";

type Tok =
  | { k: "field" | "var" | "ident" | "str" | "raw" | "char" | "num"; v: string; pos: number; spaceBefore: boolean }
  | { k: "(" | ")" | "|" | ":=" | "=" | "," | "."; v: string; pos: number; spaceBefore: boolean };

const KEYWORDS = new Set(["if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"]);
const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\n" || c === "\r";
const isAlnum = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}_]/u.test(c);

/** Go's strconv.Unquote for "..." and '...' literals. */
function unquote(src: string, fail: (m: string) => never): string {
  const quote = src[0]!;
  let out = "";
  for (let i = 1; i < src.length - 1; i++) {
    const c = src[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = src[++i]!;
    const simple: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", '"': '"', "'": "'" };
    if (e in simple && (e !== "'" || quote === "'") && (e !== '"' || quote === '"')) out += simple[e];
    else if (e === "x" || e === "u" || e === "U") {
      const n = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = src.slice(i + 1, i + 1 + n);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail(`invalid syntax`);
      out += e === "x" ? String.fromCharCode(parseInt(hex, 16)) : String.fromCodePoint(parseInt(hex, 16));
      i += n;
    } else if (/[0-7]/.test(e)) {
      out += String.fromCharCode(parseInt(src.slice(i, i + 3), 8));
      i += 2;
    } else fail(`invalid syntax`);
  }
  return out;
}

export function parse(src: string, funcs: ReadonlySet<string>): Tree {
  const defines = new Map<string, Node[]>();
  let pos = 0;
  const lineOf = (p: number) => 1 + (src.slice(0, p).match(/\n/g)?.length ?? 0);
  const fail: (msg: string, at?: number) => never = (msg, at = pos) => {
    throw new TemplateError(`template: :${lineOf(at)}: ${msg}`);
  };

  // Splits the source into text and action token lists, applying {{- -}} trimming.
  type Piece = { text: string } | { toks: Tok[]; pos: number; end: number };
  const pieces: Piece[] = [];
  let trimNext = false;
  while (pos < src.length) {
    const open = src.indexOf("{{", pos);
    let text = src.slice(pos, open < 0 ? src.length : open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, "");
    trimNext = false;
    if (open < 0) {
      if (text) pieces.push({ text });
      break;
    }
    let p = open + 2;
    if (src[p] === "-" && isSpace(src[p + 1])) {
      text = text.replace(/[ \t\r\n]+$/, "");
      p += 2;
    }
    if (text) pieces.push({ text });
    // A comment: {{/* ... */}} (or {{- /* ... */ -}}), nothing else in the action.
    if (src.startsWith("/*", p)) {
      const close = src.indexOf("*/", p + 2);
      if (close < 0) fail("unclosed comment", open);
      let q = close + 2;
      if (src.startsWith(" -}}", q)) {
        trimNext = true;
        q += 2;
      }
      if (!src.startsWith("}}", q)) fail("comment ends before closing delimiter", open);
      pos = q + 2;
      continue;
    }
    const toks: Tok[] = [];
    let space = false;
    for (;;) {
      if (p >= src.length) fail("unclosed action", open);
      const c = src[p]!;
      if (isSpace(c)) {
        // " -}}": trim the whitespace after the action.
        if (src.startsWith("-}}", p + 1)) {
          trimNext = true;
          p += 2;
          continue;
        }
        space = true;
        p++;
        continue;
      }
      if (src.startsWith("}}", p)) {
        p += 2;
        break;
      }
      const start = p;
      const push = (k: Tok["k"], v: string) => {
        toks.push({ k, v, pos: start, spaceBefore: space } as Tok);
        space = false;
      };
      if (c === '"' || c === "'") {
        let q = p + 1;
        while (q < src.length && src[q] !== c) {
          if (src[q] === "\\") q++;
          if (src[q] === "\n") fail(c === '"' ? "unterminated quoted string" : "unterminated character constant", start);
          q++;
        }
        if (q >= src.length) fail(c === '"' ? "unterminated quoted string" : "unterminated character constant", start);
        push(c === '"' ? "str" : "char", src.slice(p, q + 1));
        p = q + 1;
      } else if (c === "`") {
        const q = src.indexOf("`", p + 1);
        if (q < 0) fail("unterminated raw quoted string", start);
        push("raw", src.slice(p, q + 1));
        p = q + 1;
      } else if (c === "." && !/[0-9]/.test(src[p + 1] ?? "")) {
        let q = p + 1;
        while (isAlnum(src[q])) q++;
        push(q === p + 1 ? "." : "field", src.slice(p, q));
        p = q;
      } else if (c === "$") {
        let q = p + 1;
        while (isAlnum(src[q])) q++;
        push("var", src.slice(p, q));
        p = q;
      } else if (/[0-9+\-.]/.test(c)) {
        const m = /^[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)/.exec(src.slice(p));
        const text = m?.[0] ?? "";
        if (!text || text === "+" || text === "-" || isAlnum(src[p + text.length]))
          fail(`bad number syntax: ${goQuote(src.slice(p, p + Math.max(1, text.length + 1)))}`, start);
        push("num", text);
        p += text.length;
      } else if (isAlnum(c)) {
        let q = p;
        while (isAlnum(src[q])) q++;
        push("ident", src.slice(p, q));
        p = q;
      } else if (src.startsWith(":=", p)) {
        push(":=", ":=");
        p += 2;
      } else if ("()|=,".includes(c)) {
        push(c as "(", c);
        p++;
      } else fail(`unrecognized character in action: U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} '${c}'`, start);
    }
    pieces.push({ toks, pos: open, end: p });
    pos = p;
  }

  // Recursive descent over the pieces; scopes of declared variables.
  let pi = 0;
  const scopes: string[][] = [["$"]];
  const declared = (n: string) => scopes.some((s) => s.includes(n));

  function pipeline(toks: Tok[], at: number, ctx: string): Pipe {
    let i = 0;
    const p: Pipe = { pos: toks[0]?.pos ?? at, decl: [], assign: false, cmds: [] };
    // Declarations: $x := / $x = / $i, $v :=
    const save = i;
    if (toks[i]?.k === "var") {
      const names = [toks[i]!.v];
      let j = i + 1;
      if (toks[j]?.k === "," && toks[j + 1]?.k === "var") {
        names.push(toks[j + 1]!.v);
        j += 2;
      }
      const op = toks[j]?.k;
      if (op === ":=" || op === "=") {
        if (names.length > 1 && ctx !== "range") fail(`too many declarations in ${ctx}`, toks[0]!.pos);
        p.decl = names;
        p.assign = op === "=";
        if (p.assign) for (const n of names) if (!declared(n)) fail(`undefined variable ${goQuote(n)}`, toks[0]!.pos);
        i = j + 1;
      } else i = save;
    }
    const end = parseCmds(toks, i, p, ctx);
    if (end !== toks.length) fail(`unexpected ${goQuote(toks[end]!.v)} in ${ctx}`, toks[end]!.pos);
    if (!p.cmds.length) fail(`missing value for ${ctx}`, at);
    if (!p.assign) scopes[scopes.length - 1]!.push(...p.decl);
    return p;
  }

  /** Commands separated by |, up to a ) or the end; returns the index after. */
  function parseCmds(toks: Tok[], i: number, p: Pipe, ctx: string): number {
    for (;;) {
      const cmd: Cmd = { pos: toks[i]?.pos ?? 0, args: [] };
      while (i < toks.length && toks[i]!.k !== "|" && toks[i]!.k !== ")") {
        const [arg, next] = operand(toks, i);
        cmd.args.push(arg);
        i = next;
        if (i < toks.length && !toks[i]!.spaceBefore && toks[i]!.k !== "|" && toks[i]!.k !== ")")
          fail(`unexpected ${goQuote(toks[i]!.v)} in operand`, toks[i]!.pos);
      }
      if (!cmd.args.length) {
        if (toks[i]?.k === "|" || p.cmds.length) fail(`missing command`, toks[i]?.pos ?? 0);
        return i;
      }
      if (cmd.args.length > 1 && cmd.args[0]!.t !== "func" && cmd.args[0]!.t !== "field" && cmd.args[0]!.t !== "var" && cmd.args[0]!.t !== "pipe")
        fail(`can't give argument to non-function ${argText(cmd.args[0]!)}`, cmd.pos);
      if (cmd.args[0]!.t === "nil" && cmd.args.length === 1 && ctx !== "arg") fail(`nil is not a command`, cmd.pos);
      p.cmds.push(cmd);
      if (toks[i]?.k !== "|") return i;
      i++;
    }
  }

  function fieldsAfter(toks: Tok[], i: number): [string[], number] {
    const names: string[] = [];
    while (toks[i]?.k === "field" && !toks[i]!.spaceBefore) names.push(toks[i++]!.v.slice(1));
    return [names, i];
  }

  function operand(toks: Tok[], i: number): [Arg, number] {
    const tk = toks[i]!;
    const pos = tk.pos;
    switch (tk.k) {
      case ".":
        return [{ t: "dot", pos }, i + 1];
      case "field": {
        const [rest, next] = fieldsAfter(toks, i + 1);
        return [{ t: "field", pos, names: [tk.v.slice(1), ...rest] }, next];
      }
      case "var": {
        if (!declared(tk.v)) fail(`undefined variable ${goQuote(tk.v)}`, pos);
        const [names, next] = fieldsAfter(toks, i + 1);
        return [{ t: "var", pos, name: tk.v, names }, next];
      }
      case "str":
      case "char": {
        const value = unquote(tk.v, (m) => fail(m, pos));
        if (tk.k === "char") {
          const cp = [...value];
          if (cp.length !== 1) fail(`malformed character constant: ${tk.v}`, pos);
          return [{ t: "num", pos, value: cp[0]!.codePointAt(0)!, float: false, text: tk.v }, i + 1];
        }
        return [{ t: "str", pos, value }, i + 1];
      }
      case "raw":
        return [{ t: "str", pos, value: tk.v.slice(1, -1) }, i + 1];
      case "num": {
        const clean = tk.v.replace(/_/g, "");
        const float = /[.eE]/.test(clean) && !/^[+-]?0[xX]/.test(clean);
        const sign = clean.startsWith("-") ? -1 : 1;
        const body = clean.replace(/^[+-]/, "");
        const value = float ? Number(clean) : sign * Number(/^0[0-7]+$/.test(body) ? `0o${body.slice(1)}` : body);
        if (Number.isNaN(value)) fail(`bad number syntax: ${goQuote(tk.v)}`, pos);
        return [{ t: "num", pos, value, float, text: tk.v }, i + 1];
      }
      case "ident": {
        if (tk.v === "true" || tk.v === "false") return [{ t: "bool", pos, value: tk.v === "true" }, i + 1];
        if (tk.v === "nil") return [{ t: "nil", pos }, i + 1];
        if (KEYWORDS.has(tk.v)) fail(`unexpected <${tk.v}> in operand`, pos);
        if (!funcs.has(tk.v)) fail(`function ${goQuote(tk.v)} not defined`, pos);
        return [{ t: "func", pos, name: tk.v }, i + 1];
      }
      case "(": {
        const inner: Pipe = { pos: toks[i + 1]?.pos ?? pos, decl: [], assign: false, cmds: [] };
        const end = parseCmds(toks, i + 1, inner, "parenthesized pipeline");
        if (toks[end]?.k !== ")") fail(`unclosed left paren`, pos);
        if (!inner.cmds.length) fail(`missing value for parenthesized pipeline`, pos);
        const [names, next] = fieldsAfter(toks, end + 1);
        return [{ t: "pipe", pos, pipe: inner, names }, next];
      }
      default:
        return fail(`unexpected ${goQuote(tk.v)} in operand`, pos);
    }
  }

  /** Parses nodes until {{end}}/{{else}} (returned) or the end of input. */
  function list(inside: string | null): { nodes: Node[]; stop: "end" | "else" | null; elseToks?: Tok[]; at: number } {
    const nodes: Node[] = [];
    while (pi < pieces.length) {
      const piece = pieces[pi++]!;
      if ("text" in piece) {
        nodes.push({ t: "text", text: piece.text });
        continue;
      }
      const { toks, pos: at } = piece;
      if (!toks.length) fail("missing value for command", at);
      const head = toks[0]!;
      const word = head.k === "ident" && KEYWORDS.has(head.v) ? head.v : null;
      if (word === "end" || word === "else") {
        if (!inside) fail(`unexpected {{${word}}}`, at);
        if (word === "end" && toks.length > 1) fail(`unexpected ${goQuote(toks[1]!.v)} in end`, at);
        return { nodes, stop: word, elseToks: toks.slice(1), at };
      }
      if (word === "if" || word === "with" || word === "range") {
        nodes.push(control(word, toks.slice(1), at));
        continue;
      }
      if (word === "break" || word === "continue") {
        if (!inRange.length) fail(`{{${word}}} outside {{range}}`, at);
        nodes.push({ t: word, pos: at });
        continue;
      }
      if (word === "define" || word === "block" || word === "template") {
        const nameTok = toks[1];
        if (!nameTok || (nameTok.k !== "str" && nameTok.k !== "raw"))
          fail(`unexpected ${nameTok ? `${goQuote(nameTok.v)}` : "end of action"} in ${word} clause`, at);
        const name = nameTok.k === "raw" ? nameTok.v.slice(1, -1) : unquote(nameTok.v, (m) => fail(m, at));
        const rest = toks.slice(2);
        if (word === "define") {
          if (inside || scopes.length > 1) fail(`unexpected <define> in command`, at);
          if (rest.length) fail(`unexpected ${goQuote(rest[0]!.v)} in define clause`, at);
        }
        const pipe = rest.length ? pipeline(rest, at, word) : null;
        if (word === "template") {
          nodes.push({ t: "template", pos: nameTok.pos, name, pipe });
          continue;
        }
        // A define's body sees only $ (a template gets a fresh set of variables).
        const saved = scopes.splice(0, scopes.length, ["$"]);
        const savedRange = inRange.splice(0, inRange.length);
        const body = list(word);
        scopes.splice(0, scopes.length, ...saved);
        inRange.push(...savedRange);
        if (body.stop !== "end") fail(`unexpected {{else}} in ${word}`, body.at);
        defines.set(name, body.nodes);
        if (word === "block") nodes.push({ t: "template", pos: nameTok.pos, name, pipe });
        continue;
      }
      if (word) fail(`unexpected <${word}> in command`, at);
      nodes.push({ t: "action", pos: at, pipe: pipeline(toks, at, "command") });
    }
    if (inside) fail("unexpected EOF");
    return { nodes, stop: null, at: src.length };
  }

  const inRange: boolean[] = [];
  function control(word: "if" | "with" | "range", toks: Tok[], at: number): Node {
    scopes.push([]);
    const pipe = pipeline(toks, at, word);
    if (word === "range") inRange.push(true);
    const body = list(word);
    if (word === "range") inRange.pop();
    let elseList: Node[] | null = null;
    if (body.stop === "else") {
      scopes.pop();
      scopes.push([...pipe.decl]);
      const rest = body.elseToks ?? [];
      // {{else if ...}} / {{else with ...}}: a nested control that shares our {{end}}.
      if (rest.length && rest[0]!.k === "ident" && (rest[0]!.v === "if" || rest[0]!.v === "with") && word !== "range") {
        elseList = [control(rest[0]!.v as "if" | "with", rest.slice(1), body.at)];
      } else {
        if (rest.length) fail(`unexpected ${goQuote(rest[0]!.v)} in else`, body.at);
        const tail = list(word);
        if (tail.stop !== "end") fail(`expected end; found {{else}}`, tail.at);
        elseList = tail.nodes;
      }
    } else if (body.stop !== "end") fail("unexpected EOF");
    scopes.pop();
    return { t: word, pos: at, pipe, list: body.nodes, elseList } as Node;
  }

  return { nodes: list(null).nodes, defines };
}

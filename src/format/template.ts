// burrow's Go text/template engine: one for every --format (ps, inspect,
// port, stats, events, info, network ls/inspect). The evaluator follows Go's
// text/template: pipelines pass the value as the last argument, and/or
// return an operand and short-circuit, maps range in sorted key order, and
// errors are worded as Go's ("template: :1:2: executing "" at <.Foo>:
// can't evaluate field Foo in type ..."). Functions: Go's builtins plus
// podman's (upper lower title join split truncate pad json).
//
// Pure: no system access.
import { parse } from "./parse.ts";
import { argText, cmdText, pipeText, TemplateError, type Arg, type Cmd, type Node, type Pipe } from "./tree.ts";
import { FUNCS, FuncError, NAMES } from "./funcs.ts";
import { isTrue, kindOf, show, sortedKeys, typeName } from "./values.ts";

export { TemplateError } from "./tree.ts";
export { goMap, goStruct } from "./values.ts";

class Exec extends Error {
  constructor(
    readonly pos: number,
    readonly context: string,
    message: string,
    readonly template: string,
  ) {
    super(message);
  }
}
const BREAK = Symbol("break");
const CONTINUE = Symbol("continue");

type Scope = Array<[string, unknown]>;

class Run {
  out = "";
  depth = 0;
  /** The template being executed, for errors: "" is the main one. */
  current = "";
  constructor(
    readonly src: string,
    readonly defines: Map<string, Node[]>,
    /** Header mode (podman's `table`): every field evaluates to its column name. */
    readonly header?: (name: string) => string,
  ) {}

  fail(pos: number, context: string, message: string): never {
    throw new Exec(pos, context, message, this.current);
  }

  lookup(vars: Scope[], name: string): unknown {
    for (let i = vars.length - 1; i >= 0; i--) {
      const hit = vars[i]!.findLast(([n]) => n === name);
      if (hit) return hit[1];
    }
    return undefined;
  }
  assign(vars: Scope[], name: string, value: unknown): void {
    for (let i = vars.length - 1; i >= 0; i--) {
      const hit = vars[i]!.findLast(([n]) => n === name);
      if (hit) {
        hit[1] = value;
        return;
      }
    }
  }

  field(receiver: unknown, names: string[], node: Arg, hasArgs: boolean): unknown {
    if (this.header && names.length) return this.header(names[names.length - 1]!);
    let v = receiver;
    for (const name of names) {
      const k = kindOf(v);
      const ctx = argText(node);
      if (k === "invalid") return undefined;
      if (k === "nil") this.fail(node.pos, ctx, `nil pointer evaluating interface {}.${name}`);
      if (k === "map") {
        if (hasArgs) this.fail(node.pos, ctx, `${name} is not a method but has arguments`);
        v = Object.hasOwn(v as object, name) ? (v as Record<string, unknown>)[name] : undefined;
      } else if (k === "struct" && Object.hasOwn(v as object, name)) {
        if (hasArgs) this.fail(node.pos, ctx, `${name} has arguments but cannot be invoked as function`);
        v = (v as Record<string, unknown>)[name];
      } else this.fail(node.pos, ctx, `can't evaluate field ${name} in type ${typeName(v)}`);
    }
    return v;
  }

  arg(a: Arg, dot: unknown, vars: Scope[]): unknown {
    switch (a.t) {
      case "dot":
        return dot;
      case "nil":
        return null;
      case "field":
        return this.field(dot, a.names, a, false);
      case "var":
        return this.field(this.lookup(vars, a.name), a.names, a, false);
      case "str":
      case "num":
      case "bool":
        return a.value;
      case "func":
        return this.call(a.name, { pos: a.pos, args: [a] }, dot, vars, [], false);
      case "pipe":
        return this.field(this.pipeline(a.pipe, dot, vars), a.names, a, false);
    }
  }

  call(name: string, cmd: Cmd, dot: unknown, vars: Scope[], extra: unknown[], hasFinal: boolean): unknown {
    const argNodes = cmd.args.slice(1);
    if (name === "and" || name === "or") {
      if (!argNodes.length && !hasFinal) this.fail(cmd.pos, cmdText(cmd), `wrong number of args for ${name}: want at least 1 got 0`);
      let v: unknown;
      const vals = [...argNodes.map((n) => () => this.arg(n, dot, vars)), ...extra.map((x) => () => x)];
      for (const get of vals) {
        v = get();
        if (name === "and" ? !isTrue(v) : isTrue(v)) return v;
      }
      return v;
    }
    const args = [...argNodes.map((n) => this.arg(n, dot, vars)), ...extra];
    const want: Record<string, [number, number]> = {
      not: [1, 1],
      ne: [2, 2],
      lt: [2, 2],
      le: [2, 2],
      gt: [2, 2],
      ge: [2, 2],
      len: [1, 1],
      json: [1, 1],
      upper: [1, 1],
      lower: [1, 1],
      title: [1, 1],
      join: [2, 2],
      split: [2, 2],
      truncate: [2, 2],
      pad: [3, 3],
      index: [1, Infinity],
      slice: [1, 4],
      printf: [1, Infinity],
      eq: [1, Infinity],
    };
    const w = want[name];
    if (w && (args.length < w[0] || args.length > w[1]))
      this.fail(cmd.pos, cmdText(cmd), `wrong number of args for ${name}: want ${w[0] === w[1] ? w[0] : `at least ${w[0]}`} got ${args.length}`);
    try {
      return FUNCS[name]!(...args);
    } catch (e) {
      if (e instanceof FuncError) this.fail(cmd.pos, cmdText(cmd), `error calling ${name}: ${e.message}`);
      throw e;
    }
  }

  command(cmd: Cmd, dot: unknown, vars: Scope[], final: unknown[]): unknown {
    const first = cmd.args[0]!;
    if (first.t === "func") return this.call(first.name, cmd, dot, vars, final, final.length > 0);
    const hasArgs = cmd.args.length > 1 || final.length > 0;
    if (hasArgs && (first.t === "field" || (first.t === "var" && first.names.length) || (first.t === "pipe" && first.names.length))) {
      const receiver = first.t === "field" ? dot : first.t === "var" ? this.lookup(vars, first.name) : this.pipeline(first.pipe, dot, vars);
      return this.field(receiver, first.names, first, true);
    }
    if (hasArgs) this.fail(cmd.pos, cmdText(cmd), `can't give argument to non-function ${argText(first)}`);
    return this.arg(first, dot, vars);
  }

  pipeline(p: Pipe, dot: unknown, vars: Scope[], declare = true): unknown {
    let v: unknown;
    p.cmds.forEach((c, i) => {
      v = this.command(c, dot, vars, i ? [v] : []);
    });
    if (declare)
      for (const name of p.decl) {
        if (p.assign) this.assign(vars, name, v);
        else vars[vars.length - 1]!.push([name, v]);
      }
    return v;
  }

  walk(nodes: Node[], dot: unknown, vars: Scope[]): void {
    for (const n of nodes) {
      switch (n.t) {
        case "text":
          this.out += n.text;
          break;
        case "action": {
          const v = this.pipeline(n.pipe, dot, vars);
          if (!n.pipe.decl.length) this.out += show(v);
          break;
        }
        case "if":
        case "with": {
          const scope: Scope = [];
          const v = this.pipeline(n.pipe, dot, [...vars, scope]);
          if (isTrue(v)) this.walk(n.list, n.t === "with" ? v : dot, [...vars, scope]);
          else if (n.elseList) this.walk(n.elseList, dot, [...vars, [...scope]]);
          break;
        }
        case "range":
          this.range(n, dot, vars);
          break;
        case "template": {
          const body = this.defines.get(n.name);
          const ctx = `{{template ${JSON.stringify(n.name)}${n.pipe ? ` ${pipeText(n.pipe)}` : ""}}}`;
          if (!body) this.fail(n.pos, ctx, `template ${JSON.stringify(n.name)} not defined`);
          // Go's maxExecDepth guards against a template that includes itself.
          if (++this.depth > 10000) this.fail(n.pos, ctx, `exceeded maximum template depth (10000)`);
          const value = n.pipe ? this.pipeline(n.pipe, dot, vars) : undefined;
          const outer = this.current;
          this.current = n.name;
          this.walk(body, value, [[["$", value]]]);
          this.current = outer;
          this.depth--;
          break;
        }
        case "break":
          throw BREAK;
        case "continue":
          throw CONTINUE;
      }
    }
  }

  range(n: Extract<Node, { t: "range" }>, dot: unknown, vars: Scope[]): void {
    const v = this.pipeline(n.pipe, dot, vars, false);
    const k = kindOf(v);
    let items: Array<[unknown, unknown]>;
    if (k === "slice") items = (v as unknown[]).map((x, i) => [i, x]);
    else if (k === "map") items = sortedKeys(v as object).map((key) => [key, (v as Record<string, unknown>)[key]]);
    else if (k === "int") items = Array.from({ length: Math.max(0, v as number) }, (_, i) => [i, i]);
    else if (k === "invalid" || k === "nil") items = [];
    else this.fail(n.pos, `range ${argText(n.pipe.cmds[0]!.args[0]!)}`, `range can't iterate over ${show(v, false)}`);
    if (!items.length) {
      if (n.elseList) this.walk(n.elseList, dot, [...vars, []]);
      return;
    }
    for (const [key, elem] of items) {
      const scope: Scope = [];
      if (n.pipe.decl.length === 1) scope.push([n.pipe.decl[0]!, elem]);
      else if (n.pipe.decl.length === 2) scope.push([n.pipe.decl[0]!, key], [n.pipe.decl[1]!, elem]);
      try {
        this.walk(n.list, elem, [...vars, scope]);
      } catch (e) {
        if (e === BREAK) break;
        if (e === CONTINUE) continue;
        throw e;
      }
    }
  }

  /** "template: :LINE:COL: executing "" at <CONTEXT>: MESSAGE", as Go's ErrorContext words it. */
  wrap(e: Exec): TemplateError {
    const before = this.src.slice(0, e.pos);
    const nl = before.lastIndexOf("\n");
    const line = 1 + (before.match(/\n/g)?.length ?? 0);
    const col = nl < 0 ? e.pos : e.pos - nl - 1;
    const ctx = e.context.length > 20 ? `${e.context.slice(0, 20)}...` : e.context;
    return new TemplateError(`template: :${line}:${col}: executing ${JSON.stringify(e.template)} at <${ctx}>: ${e.message}`);
  }
}

export interface Template {
  /** Renders one value; throws TemplateError worded as Go's. */
  render(data: unknown): string;
  /** podman's `table` header: each field action shows the field's column name; other actions show nothing. */
  header(name: (field: string) => string): string;
}

/** Parses a template (throws TemplateError at once for a template that does not parse). */
export function compileTemplate(src: string): Template {
  const { nodes, defines } = parse(src, NAMES);
  return {
    render(data) {
      const run = new Run(src, defines);
      try {
        run.walk(nodes, data, [[["$", data]]]);
      } catch (e) {
        if (e instanceof Exec) throw run.wrap(e);
        throw e;
      }
      return run.out;
    },
    header(name) {
      let out = "";
      for (const n of nodes) {
        if (n.t === "text") out += n.text;
        else if (n.t === "action") {
          const run = new Run(src, defines, name);
          try {
            run.walk([n], {}, [[["$", {}]]]);
            out += run.out;
          } catch {}
        }
      }
      return out;
    },
  };
}

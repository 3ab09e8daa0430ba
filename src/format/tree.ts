// The tree a parsed Go template is made of, and its text form (for the
// "at <...>" context of Go's execution errors).
//
// Pure: no system access.

export class TemplateError extends Error {}

export type Node =
  | { t: "text"; text: string }
  | { t: "action"; pos: number; pipe: Pipe }
  | { t: "if" | "with"; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | null }
  | { t: "range"; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | null }
  | { t: "break" | "continue"; pos: number }
  | { t: "template"; pos: number; name: string; pipe: Pipe | null };

/** A parsed template: the main body and the {{define}}/{{block}} templates it names. */
export interface Tree {
  nodes: Node[];
  defines: Map<string, Node[]>;
}

export interface Pipe {
  pos: number;
  decl: string[];
  /** `$x = v` assigns an existing variable instead of declaring one. */
  assign: boolean;
  cmds: Cmd[];
}
export interface Cmd {
  pos: number;
  args: Arg[];
}
export type Arg =
  | { t: "dot"; pos: number }
  | { t: "nil"; pos: number }
  | { t: "field"; pos: number; names: string[] }
  | { t: "var"; pos: number; name: string; names: string[] }
  | { t: "func"; pos: number; name: string }
  | { t: "str"; pos: number; value: string }
  | { t: "num"; pos: number; value: number; float: boolean; text: string }
  | { t: "bool"; pos: number; value: boolean }
  | { t: "pipe"; pos: number; pipe: Pipe; names: string[] };

export function argText(a: Arg): string {
  switch (a.t) {
    case "dot":
      return ".";
    case "nil":
      return "nil";
    case "field":
      return `.${a.names.join(".")}`;
    case "var":
      return [a.name, ...a.names].join(".");
    case "func":
      return a.name;
    case "str":
      return JSON.stringify(a.value);
    case "num":
      return a.text;
    case "bool":
      return String(a.value);
    case "pipe":
      return `(${pipeText(a.pipe)})${a.names.map((n) => `.${n}`).join("")}`;
  }
}
export function cmdText(c: Cmd): string {
  return c.args.map(argText).join(" ");
}
export function pipeText(p: Pipe): string {
  return (p.decl.length ? `${p.decl.join(", ")} ${p.assign ? "=" : ":="} ` : "") + p.cmds.map(cmdText).join(" | ");
}

// The Go text/template engine against Go's documented behaviour. Every
// expected output below comes from the text/template and fmt package docs
// (pkg.go.dev/text/template, pkg.go.dev/fmt) or from podman's documented
// --format examples (podman-ps(1), podman-inspect(1), podman-network-ls(1),
// containers/common report), never from burrow's own output.
import { describe, expect, test } from "bun:test";
import { compileTemplate, goMap, goStruct } from "../../src/format/template.ts";
import { headerOf, renderReport, splitCamel, tabwrite } from "../../src/format/report.ts";

const T = () =>
  goStruct(
    {
      Name: "web",
      Count: 3,
      Empty: "",
      Nil: null,
      L: [1, 2, 3],
      S: ["a", "b"],
      M: goMap({ b: 2, a: 1, c: 3 }),
      Inner: goStruct({ Value: "in" }, "main.Inner"),
    },
    "main.T",
  );

type Case = [template: string, expected: string | { error: string }, data?: unknown];

const cases: Case[] = [
  // Actions and literals (text/template "Actions", "Arguments").
  ["plain text", "plain text"],
  ['{{"\\"output\\""}}', '"output"'],
  ['{{`"output"`}}', '"output"'],
  ['{{printf "%q" "output"}}', '"output"'],
  ['{{"output" | printf "%q"}}', '"output"'],
  ['{{printf "%q" (print "out" "put")}}', '"output"'],
  ['{{"put" | printf "%s%s" "out" | printf "%q"}}', '"output"'],
  ['{{"output" | printf "%s" | printf "%q"}}', '"output"'],
  ['{{with "output"}}{{printf "%q" .}}{{end}}', '"output"'],
  ['{{with $x := "output" | printf "%q"}}{{$x}}{{end}}', '"output"'],
  ['{{with $x := "output"}}{{printf "%q" $x}}{{end}}', '"output"'],
  ['{{with $x := "output"}}{{$x | printf "%q"}}{{end}}', '"output"'],
  ["{{.Name}} {{.Count}}", "web 3", T()],
  ["{{.Inner.Value}}", "in", T()],
  ["{{.}}", "hello", "hello"],
  ["{{.L}}", "[1 2 3]", T()],
  ["{{.M}}", "map[a:1 b:2 c:3]", T()],
  ["{{.Inner}}", "{in}", T()],
  ["{{.Nil}}", "<no value>", T()],
  ["{{.Mixed}}", "[1 <nil>]", { Mixed: [1, null] }],
  ["{{.M.zzz}}", "<no value>", T()],
  ["{{true}} {{false}} {{1.5}} {{0x10}} {{'a'}}", "true false 1.5 16 97"],
  // Trim markers (text/template "Text and spaces").
  ["{{23 -}} < {{- 45}}", "23<45"],
  ["a  {{- 1 }}  b", "a1  b"],
  ["a  {{ 1 -}}  b", "a  1b"],
  ["{{/* a comment */}}x", "x"],
  ["a {{- /* a comment with white space trimmed */ -}} b", "ab"],
  // Control structures.
  ["{{if .Count}}yes{{end}}", "yes", T()],
  ["{{if .Empty}}yes{{else}}no{{end}}", "no", T()],
  ["{{if .Nil}}yes{{else}}no{{end}}", "no", T()],
  ["{{if .Inner}}struct is true{{end}}", "struct is true", T()],
  ["{{if eq .Count 1}}one{{else if eq .Count 3}}three{{else}}many{{end}}", "three", T()],
  ["{{with .Empty}}x{{else}}empty{{end}}", "empty", T()],
  ["{{with .Inner}}{{.Value}}{{end}}", "in", T()],
  ["{{range .L}}<{{.}}>{{end}}", "<1><2><3>", T()],
  ["{{range $i, $e := .S}}{{$i}}={{$e}} {{end}}", "0=a 1=b ", T()],
  ["{{range $k, $v := .M}}{{$k}}:{{$v}},{{end}}", "a:1,b:2,c:3,", T()],
  ["{{range .M}}{{.}}{{end}}", "123", T()],
  ["{{range .Nil}}x{{else}}nothing{{end}}", "nothing", T()],
  ["{{range 3}}{{.}}{{end}}", "012"],
  ["{{range .L}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", "1", T()],
  ["{{range .L}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", "13", T()],
  // Variables: $ is the data; a declaration lasts to the {{end}} of its control structure.
  ["{{range .S}}{{$.Name}}{{end}}", "webweb", T()],
  ["{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"],
  ["{{$x := .Inner}}{{$x.Value}}", "in", T()],
  ["{{(index .S 1)}} {{(.Inner).Value}}", "b in", T()],
  // Nested templates (text/template "Nested template definitions").
  [
    '{{define "T1"}}ONE{{end}}{{define "T2"}}TWO {{template "T1"}}{{end}}{{define "T3"}}{{template "T1"}} {{template "T2"}}{{end}}{{template "T3"}}',
    "ONE TWO ONE",
  ],
  ['{{define "name"}}<{{.}}>{{end}}{{range .S}}{{template "name" .}}{{end}}', "<a><b>", T()],
  ['{{block "list" .S}}{{range .}}-{{.}}{{end}}{{end}}', "-a-b", T()],
  // Functions (text/template "Functions").
  ['{{and 1 0 3}} {{and 1 2 3}} {{or 0 "" 4}} {{or 0 ""}}|', "0 3 4 |"],
  ["{{and .Nil .Nil.Foo}}", "<no value>", T()],
  ["{{not 0}} {{not 1}}", "true false"],
  ['{{len "abc"}} {{len "héllo"}} {{len .L}} {{len .M}}', "3 6 3 3", T()],
  ['{{index .S 1}} {{index .M "b"}} {{index "abc" 1}}', "b 2 98", T()],
  [
    "{{index .Grid 1 0}}",
    "3",
    {
      Grid: [
        [1, 2],
        [3, 4],
      ],
    },
  ],
  ['{{slice "abcde" 1 3}} {{slice .L 1}} {{slice .L}}', "bc [2 3] [1 2 3]", T()],
  ['{{print "a" 1 2 "b"}}', "a1 2b"],
  ['{{print 1 2 "a" "b" 3}}', "1 2ab3"],
  ['{{println 1 "a"}}', "1 a\n"],
  ['{{eq 1 2 3 1}} {{eq "a" "b"}} {{ne 1 2}}', "true false true"],
  ['{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1 2}}', "true true true false"],
  ['{{html "<a href=\\"x\\">&"}}', "&lt;a href=&#34;x&#34;&gt;&amp;"],
  ['{{urlquery "a b&c"}}', "a+b%26c"],
  // fmt verbs (pkg.go.dev/fmt).
  ['{{printf "%d|%5d|%-5d|%05d" 42 42 42 42}}', "42|   42|42   |00042"],
  ['{{printf "%x %X %o %b %c" 255 255 8 5 65}}', "ff FF 10 101 A"],
  ['{{printf "%s|%10s|%-10s|%.2s" "hi" "hi" "hi" "hello"}}', "hi|        hi|hi        |he"],
  ['{{printf "%q %q" "a\\"b" 97}}', '"a\\"b" \'a\''],
  ['{{printf "%v %v %t" .L .M true}}', "[1 2 3] map[a:1 b:2 c:3] true", T()],
  ['{{printf "%f %.2f %e %g" 3.14159 3.14159 1234.5678 0.000012}}', "3.141590 3.14 1.234568e+03 1.2e-05"],
  ['{{printf "%x %6.2f%%" "hi" 12.3456}}', "6869  12.35%"],
  ['{{printf "%.3g|%g|%g|%g|%v" 1234.5678 1000000.5 0.0001 0.00001 100000.5}}', "1.23e+03|1.0000005e+06|0.0001|1e-05|100000.5"],
  ['{{printf "%+d|% d|%#x|%08.3f|%U" 5 5 255 3.14159 65}}', "+5| 5|0xff|0003.142|U+0041"],
  ['{{printf "%+v" .Inner}}', "{Value:in}", T()],
  ['{{printf "%d"}}', "%!d(MISSING)"],
  ['{{printf "%d" "x"}}', "%!d(string=x)"],
  ['{{printf "%d" 1 2}}', "1%!(EXTRA int=2)"],
  ['{{printf "%s" .S}} {{printf "%q" .S}}', '[a b] ["a" "b"]', T()],
  ['{{printf "%v" nil}}', "<nil>"],
  ['{{printf "%T %T %T" 1 "s" .S}}', "int string []string", T()],
  // podman's functions (containers/common report.DefaultFuncs, podman-ps(1) examples).
  ['{{upper "web"}} {{lower "WEB"}} {{title "hello world"}}', "WEB web Hello World"],
  ['{{join .S ","}} {{split "a:b:c" ":"}} {{truncate "abcdef" 3}} [{{pad "x" 1 2}}]', "a,b [a b c] abc [ x  ]", T()],
  ["{{json .M}} {{json .S}} {{json .Nil}}", '{"a":1,"b":2,"c":3} ["a","b"] null', T()],
  ['{{json "<&>"}}', '"<&>"'],
  ["{{json .}}", '{"State":{"Running":true,"Pid":7}}', { State: { Running: true, Pid: 7 } }],
  ['{{(index .NetworkSettings.Networks "my-net").IPAddress}}', "10.89.0.5", { NetworkSettings: { Networks: goMap({ "my-net": { IPAddress: "10.89.0.5" } }) } }],
  [
    "{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{(index $conf 0).HostPort}} {{end}}",
    "443/tcp -> 8443 80/tcp -> 8080 ",
    { NetworkSettings: { Ports: goMap({ "80/tcp": [{ HostIp: "", HostPort: "8080" }], "443/tcp": [{ HostIp: "", HostPort: "8443" }] }) } },
  ],
  ["{{if .State.Running}}yes{{end}}", "yes", { State: { Running: true } }],

  // Errors, worded as Go's.
  ["{{foo}}", { error: 'template: :1: function "foo" not defined' }],
  ["a\n{{foo}}", { error: 'template: :2: function "foo" not defined' }],
  ["{{.Foo}}", { error: 'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type main.T' }, T()],
  ["x\n  {{.Inner.Nope}}", { error: 'template: :2:4: executing "" at <.Inner.Nope>: can\'t evaluate field Nope in type main.Inner' }, T()],
  ["{{.Name.Foo}}", { error: 'template: :1:2: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type string' }, T()],
  ["{{index .L 5}}", { error: 'template: :1:2: executing "" at <index .L 5>: error calling index: index out of range: 5' }, T()],
  ["{{len 3}}", { error: 'template: :1:2: executing "" at <len 3>: error calling len: len of type int' }],
  ['{{eq 1 "a"}}', { error: 'template: :1:2: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison' }],
  ["{{if}}", { error: "template: :1: missing value for if" }],
  ["{{range .}}", { error: "template: :1: unexpected EOF" }],
  ["{{end}}", { error: "template: :1: unexpected {{end}}" }],
  ["{{else}}", { error: "template: :1: unexpected {{else}}" }],
  ["{{.Name", { error: "template: :1: unclosed action" }],
  ['{{"abc}}', { error: "template: :1: unterminated quoted string" }],
  ["{{$x}}", { error: 'template: :1: undefined variable "$x"' }],
  ["{{if true}}{{$x := 1}}{{end}}{{$x}}", { error: 'template: :1: undefined variable "$x"' }],
  ["{{nil}}", { error: "template: :1: nil is not a command" }],
  ["{{break}}", { error: "template: :1: {{break}} outside {{range}}" }],
  ['{{template "nope"}}', { error: 'template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined' }],
  ['{{define "t"}}{{.Foo}}{{end}}{{template "t" .Inner}}', { error: 'executing "t" at <.Foo>: can\'t evaluate field Foo in type main.Inner' }, T()],
  ["{{len(.S)}}", { error: 'template: :1: unexpected "(" in operand' }, T()],
  ["{{.A @}}", { error: "template: :1: unrecognized character in action: U+0040 '@'" }],
  ["{{/* c */ }}", { error: "template: :1: comment ends before closing delimiter" }],
  ["{{/* never closed }}", { error: "template: :1: unclosed comment" }],
];

describe("Go text/template", () => {
  test(`the table has at least 60 cases (${cases.length})`, () => expect(cases.length).toBeGreaterThanOrEqual(60));
  for (const [tpl, want, data] of cases) {
    test(JSON.stringify(tpl), () => {
      const run = () => compileTemplate(tpl).render(data ?? {});
      if (typeof want === "string") expect(run()).toBe(want);
      else expect(run).toThrow(want.error);
    });
  }
  test("a template that does not parse fails before any data is looked at", () => {
    expect(() => compileTemplate("{{.A}} {{foo}}")).toThrow('function "foo" not defined');
  });
});

describe("podman's table and report format", () => {
  test("headers: field names split at case changes and uppercased, with podman's overrides", () => {
    expect(splitCamel("CreatedAt")).toEqual(["Created", "At"]);
    expect(splitCamel("IPAddress")).toEqual(["IP", "Address"]);
    expect(headerOf("Names")).toBe("NAMES");
    expect(headerOf("NetworkInterface")).toBe("NETWORK INTERFACE");
    expect(headerOf("ID", { ID: "CONTAINER ID" })).toBe("CONTAINER ID");
  });
  test("tabwriter: minwidth 12, padding 2, the last cell is not padded", () => {
    expect(tabwrite("a\tbb\tc\nlonger-than-twelve\tx\ty")).toBe("a                   bb          c\nlonger-than-twelve  x           y");
    expect(tabwrite("NAME\tSTATUS\n")).toBe("NAME        STATUS\n");
  });
  test("`table` prefix: a header row, then aligned rows; \\t and \\n typed in a shell are a tab and a newline", () => {
    const rows = [goStruct({ Names: "web", Status: "Up" }, "ps.Row"), goStruct({ Names: "a-long-sandbox-name", Status: "Exited (0)" }, "ps.Row")];
    expect(renderReport("table {{.Names}}\\t{{.Status}}", rows)).toBe(
      "NAMES                STATUS\nweb                  Up\na-long-sandbox-name  Exited (0)\n",
    );
    expect(renderReport("table {{.Names}}\\t{{.Status}}", rows, { noHeading: true })).toBe("web                  Up\na-long-sandbox-name  Exited (0)\n");
    expect(renderReport("table {{.Names}}", [])).toBe("NAMES\n");
    expect(renderReport("table", rows, { defaultTable: "{{.Names}}" })).toBe("NAMES\nweb\na-long-sandbox-name\n");
    expect(renderReport("table {{upper .Names}}", rows)).toBe("NAMES\nWEB\nA-LONG-SANDBOX-NAME\n");
  });
  test("a row template ends with a newline, once (podman's NormalizeFormat)", () => {
    const rows = [{ Name: "a" }, { Name: "b" }];
    expect(renderReport("{{.Name}}", rows)).toBe("a\nb\n");
    expect(renderReport("{{.Name}}\\n", rows)).toBe("a\nb\n");
    expect(renderReport("{{.Name}}\\t{{.Name}}", rows)).toBe("a\ta\nb\tb\n");
  });
  test("a failing row means no output at all", () => {
    expect(() => renderReport("{{.Name}}", [{ Name: "a" }, goStruct({ Other: 1 }, "ps.Row")])).toThrow("can't evaluate field Name in type ps.Row");
  });
});

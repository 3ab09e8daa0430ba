// A spinner on stderr while a slow first start runs (the rootless session,
// the first bridge network): only on a terminal, only after 400 ms, and the
// line is wiped before anything else is printed.
import { isTerminal } from "../client/host.ts";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export async function spinWhile<T>(label: string, work: Promise<T>, given?: NodeJS.WriteStream): Promise<T> {
  // isTerminal(2) first: process.stderr is made on first touch, which a quiet
  // `run` never pays for off a terminal (src/cli/_output.ts).
  if (given ? !given.isTTY : !isTerminal(2)) return work;
  const stream = given ?? process.stderr;
  let frame = 0;
  let shown = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const delay = setTimeout(() => {
    timer = setInterval(() => {
      shown = true;
      stream.write(`\r${FRAMES[frame++ % FRAMES.length]} ${label}`);
    }, 100);
  }, 400);
  try {
    return await work;
  } finally {
    clearTimeout(delay);
    if (timer) clearInterval(timer);
    if (shown) stream.write("\r\x1b[K");
  }
}

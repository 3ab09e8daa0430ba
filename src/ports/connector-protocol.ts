// Messages between the daemon's main thread and the connector Worker
// (src/ports/connector-worker.ts). Every request carries an id and every
// reply names it: one `onmessage` on each side dispatches by id, never a
// handler swapped per port (DESIGN.md: that hung connections).
//
// The types are plain TypeScript rather than valibot schemas: both ends are
// burrow's own code in one process, and nothing here crosses a trust boundary.

/** Main → worker. */
export type ConnectorRequest =
  /** Make a TCP socket inside `netnsPath` and start connecting it; reply with the fd. */
  | { op: "connect"; id: number; netnsPath: string; host: string; port: number }
  /** Open a connected UDP socket inside `netnsPath` for one client flow; reply when it exists. */
  | { op: "udp-open"; id: number; flow: number; netnsPath: string; host: string; port: number }
  /** A datagram from the flow's client, to send to the sandbox (no reply). */
  | { op: "udp-send"; flow: number; data: Uint8Array }
  /** Forget a flow (idle, or its port was closed); no reply. */
  | { op: "udp-close"; flow: number };

export type ConnectorErrorInfo = { code: string; message: string };

/** Worker → main. */
export type ConnectorReply =
  | { op: "connected"; id: number; fd: number }
  | { op: "udp-opened"; id: number }
  | { op: "failed"; id: number; error: ConnectorErrorInfo }
  /** A datagram the sandbox sent back on a flow. */
  | { op: "udp-recv"; flow: number; data: Uint8Array }
  /** The worker's netns parking failed: it is not safe to use anymore. */
  | { op: "fatal"; error: ConnectorErrorInfo };

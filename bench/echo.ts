/**
 * TCP echo on 127.0.0.1: a genloop echo server against a plain Deno
 * async/await echo server, both driven by the same plain async/await
 * client code in this process.
 *
 * The genloop server is written against the I/O layer's contract (`accept`,
 * `connect`, `read`, `write`, `close` and `ConnStream` from `mod.ts`). The
 * layer is looked up at run time: without it the family is skipped rather
 * than failing the run.
 *
 * @module
 */

import { call, type Operation, run, spawn } from "../mod.ts";
import { addNote, type Comparison, median } from "./_measure.ts";

const HOST = "127.0.0.1";
const CONNECTIONS = 100;
const MESSAGES = 500;
const MESSAGE_BYTES = 64;
const STREAM_BYTES = 256 * 1024 * 1024;
const WARMUP_STREAM_BYTES = 32 * 1024 * 1024;
// A streaming run longer than this is scaled down (and the output says so).
const STREAM_BUDGET_MS = 1_500;
const CHUNK_BYTES = 64 * 1024;
const RUNS = 3;
const MiB = 1024 * 1024;

/** The I/O layer's contract, as far as this benchmark needs it. */
interface IoLayer {
  accept(listener: Deno.Listener): Operation<unknown>;
  connect(options: Deno.ConnectOptions): Operation<unknown>;
  read(stream: unknown, max?: number): Operation<Uint8Array | null>;
  write(stream: unknown, data: Uint8Array): Operation<number>;
  close(stream: unknown): Operation<void>;
  ConnStream: new (conn: Deno.Conn) => unknown;
  /** Optional: reads into a reused buffer; used when the layer has it. */
  readInto?: (stream: unknown, buffer: Uint8Array) => Operation<number | null>;
}

const CONTRACT = ["accept", "connect", "read", "write", "close", "ConnStream"];

/** The I/O layer from `mod.ts`, or `null` when it does not export it (yet). */
async function loadIoLayer(): Promise<IoLayer | null> {
  const mod = (await import("../mod.ts")) as unknown as Record<string, unknown>;
  if (!CONTRACT.every((name) => typeof mod[name] === "function")) return null;
  const io = mod as unknown as IoLayer;
  return typeof mod.readInto === "function" ? io : { ...io, readInto: undefined };
}

/** A running echo server and how to stop it. */
interface Server {
  port: number;
  stop(): Promise<void>;
}

/** Echoes one connection until end of stream, then closes it. */
function* echoConnection(io: IoLayer, stream: unknown): Operation<void> {
  const buffer = new Uint8Array(CHUNK_BYTES);
  try {
    for (;;) {
      if (io.readInto !== undefined) {
        const n = yield* io.readInto(stream, buffer);
        if (n === null) return;
        // write() returns once every byte is out, so the buffer can be reused.
        yield* io.write(stream, buffer.subarray(0, n));
      } else {
        const data = yield* io.read(stream, CHUNK_BYTES);
        if (data === null) return;
        yield* io.write(stream, data);
      }
    }
  } finally {
    yield* io.close(stream);
  }
}

/** Accepts forever, one child task per connection. */
function* acceptLoop(io: IoLayer, listener: Deno.Listener): Operation<never> {
  for (;;) {
    const stream = yield* io.accept(listener);
    yield* spawn(echoConnection(io, stream));
  }
}

function startGenloopServer(io: IoLayer): Server {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => stop = resolve);
  const serving = run(function* main() {
    yield* spawn(acceptLoop(io, listener));
    // Returning cancels the accept loop and any connection still open.
    yield* call(() => stopped);
  });
  return {
    port: listener.addr.port,
    async stop(): Promise<void> {
      stop();
      await serving;
      listener.close();
    },
  };
}

async function echoPlain(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(CHUNK_BYTES);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return;
      let offset = 0;
      while (offset < n) offset += await conn.write(buffer.subarray(offset, n));
    }
  } finally {
    conn.close();
  }
}

function startPlainServer(): Server {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const handlers: Promise<void>[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) handlers.push(echoPlain(conn));
    } catch {
      // The listener was closed: stop accepting.
    }
  })();
  return {
    port: listener.addr.port,
    async stop(): Promise<void> {
      listener.close();
      await accepting;
      await Promise.all(handlers);
    },
  };
}

// ---------------------------------------------------------------------------
// The clients: plain async/await, the same for both servers.

async function readExactly(conn: Deno.Conn, buffer: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const n = await conn.read(buffer.subarray(offset));
    if (n === null) throw new Error("echo ended early");
    offset += n;
  }
}

/** Round trips per second: many connections, small messages, in lockstep. */
async function roundTrips(port: number): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, async (_, id) => {
    const conn = await Deno.connect({ hostname: HOST, port });
    const message = new Uint8Array(MESSAGE_BYTES).fill(id & 0xff);
    const reply = new Uint8Array(MESSAGE_BYTES);
    try {
      for (let i = 0; i < MESSAGES; i++) {
        await conn.write(message);
        await readExactly(conn, reply);
        if (reply[MESSAGE_BYTES - 1] !== (id & 0xff)) throw new Error("wrong echo");
      }
    } finally {
      conn.close();
    }
  }));
  return (CONNECTIONS * MESSAGES) / ((performance.now() - start) / 1000);
}

/** MiB/s over one connection: stream `bytes` in while reading the echo out. */
async function streaming(port: number, bytes: number): Promise<number> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const chunk = new Uint8Array(CHUNK_BYTES).fill(7);
  const start = performance.now();
  const sending = (async () => {
    for (let sent = 0; sent < bytes; sent += CHUNK_BYTES) {
      let offset = 0;
      while (offset < chunk.length) offset += await conn.write(chunk.subarray(offset));
    }
  })();
  const buffer = new Uint8Array(CHUNK_BYTES);
  let received = 0;
  try {
    while (received < bytes) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("stream ended early");
      received += n;
    }
    await sending;
  } finally {
    conn.close();
  }
  return bytes / MiB / ((performance.now() - start) / 1000);
}

/** Measures both servers with the same clients, alternating between them. */
export async function benchEcho(): Promise<Comparison[]> {
  const io = await loadIoLayer();
  if (io === null) {
    const message = "echo: skipped (I/O layer not available)";
    console.log(message);
    addNote(message);
    return [];
  }
  const genloopServer = startGenloopServer(io);
  const plainServer = startPlainServer();
  const servers = [genloopServer, plainServer];
  const rps: [number[], number[]] = [[], []];
  const mibps: [number[], number[]] = [[], []];
  let streamBytes = STREAM_BYTES;
  try {
    // Warm up both, and find how much one streaming run can move in budget.
    let slowest = Infinity;
    for (const server of servers) {
      await roundTrips(server.port);
      slowest = Math.min(slowest, await streaming(server.port, WARMUP_STREAM_BYTES));
    }
    while (
      streamBytes > WARMUP_STREAM_BYTES && streamBytes / MiB / slowest > STREAM_BUDGET_MS / 1000
    ) {
      streamBytes /= 2;
    }
    for (let run = 0; run < RUNS; run++) {
      for (let s = 0; s < servers.length; s++) rps[s].push(await roundTrips(servers[s].port));
      for (let s = 0; s < servers.length; s++) {
        mibps[s].push(await streaming(servers[s].port, streamBytes));
      }
    }
  } finally {
    await genloopServer.stop();
    await plainServer.stop();
  }
  if (streamBytes < STREAM_BYTES) {
    addNote(
      `echo: streaming scaled down from ${STREAM_BYTES / MiB} MiB to ${
        streamBytes / MiB
      } MiB per run so that a run stays within ${STREAM_BUDGET_MS} ms`,
    );
  }
  const server = io.readInto !== undefined ? "server uses readInto" : "server uses read";
  return [
    {
      group: "echo",
      name: `${CONNECTIONS} connections x ${MESSAGES} x ${MESSAGE_BYTES} B messages`,
      unit: "round trips/s",
      genloop: median(rps[0]),
      baselineName: "plain Deno async server",
      baseline: median(rps[1]),
      target: "≥ 0.9",
      higherIsBetter: true,
    },
    {
      group: "echo",
      name: `one connection streaming ${streamBytes / MiB} MiB${
        streamBytes < STREAM_BYTES ? " (scaled down)" : ""
      }, ${server}`,
      unit: "MiB/s",
      genloop: median(mibps[0]),
      baselineName: "plain Deno async server",
      baseline: median(mibps[1]),
      target: "≥ 0.9",
      higherIsBetter: true,
    },
  ];
}

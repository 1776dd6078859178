/**
 * TCP echo on 127.0.0.1: a genloop echo server against a plain Deno
 * async/await echo server, both driven by the same plain async/await
 * client code, which runs in a Worker (see `_echo_client.ts`) so that the
 * servers have the main thread to themselves.
 *
 * The genloop server reads with `readView`, which lends the stream's own
 * buffer: like the plain server, it copies no byte on the way through.
 *
 * @module
 */

import {
  accept,
  call,
  close,
  type ConnStream,
  type Operation,
  readView,
  run,
  spawn,
  write,
} from "../mod.ts";
import type { EchoRequest } from "./_echo_client.ts";
import { addNote, type Comparison, median, pairedRatios, turnOrder } from "./_measure.ts";

const HOST = "127.0.0.1";
const CONNECTIONS = 100;
const MESSAGES = 500;
const MESSAGE_BYTES = 64;
const STREAM_BYTES = 256 * 1024 * 1024;
const WARMUP_STREAM_BYTES = 32 * 1024 * 1024;
// A streaming run longer than this is scaled down (and the output says so).
const STREAM_BUDGET_MS = 1_500;
const CHUNK_BYTES = 64 * 1024;
// Rounds of both servers: odd, so the median is one round's number, and
// enough that "met in k of n rounds" says something.
const RUNS = 9;
const MiB = 1024 * 1024;

/** A running echo server and how to stop it. */
interface Server {
  port: number;
  stop(): Promise<void>;
}

/**
 * Echoes one connection until end of stream, then closes it. `readView`
 * lends the stream's buffer, so no byte is copied on the way through, as in
 * the plain server; each view is written on before the next read refills it.
 */
function* echoConnection(stream: ConnStream): Operation<void> {
  try {
    for (;;) {
      const chunk = yield* readView(stream, CHUNK_BYTES);
      if (chunk === null) return;
      yield* write(stream, chunk);
    }
  } finally {
    yield* close(stream);
  }
}

/** Accepts forever, one child task per connection. */
function* acceptLoop(listener: Deno.Listener): Operation<never> {
  for (;;) {
    const stream = yield* accept(listener);
    yield* spawn(echoConnection(stream));
  }
}

function startGenloopServer(): Server {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => stop = resolve);
  const serving = run(function* main() {
    yield* spawn(acceptLoop(listener));
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
// The client: the same plain async/await code for both servers, in a Worker.

/** The client Worker, asked for one measurement at a time. */
class EchoClient {
  #worker = new Worker(new URL("./_echo_client.ts", import.meta.url), { type: "module" });

  /** Runs one measurement in the Worker and returns its number. */
  measure(request: EchoRequest): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#worker.onmessage = (event: MessageEvent<{ value?: number; error?: string }>) => {
        const { value, error } = event.data;
        if (error !== undefined) reject(new Error(`echo client: ${error}`));
        else resolve(value!);
      };
      this.#worker.postMessage(request);
    });
  }

  roundTrips(port: number): Promise<number> {
    return this.measure({
      kind: "roundTrips",
      port,
      connections: CONNECTIONS,
      messages: MESSAGES,
      bytes: MESSAGE_BYTES,
    });
  }

  streaming(port: number, total: number): Promise<number> {
    return this.measure({ kind: "streaming", port, total, chunk: CHUNK_BYTES });
  }

  close(): void {
    this.#worker.terminate();
  }
}

/** Measures both servers with the same clients, alternating between them. */
export async function benchEcho(): Promise<Comparison[]> {
  const client = new EchoClient();
  const genloopServer = startGenloopServer();
  const plainServer = startPlainServer();
  const servers = [genloopServer, plainServer];
  const rps: [number[], number[]] = [[], []];
  const mibps: [number[], number[]] = [[], []];
  let streamBytes = STREAM_BYTES;
  try {
    // Warm up both, and find how much one streaming run can move in budget.
    let slowest = Infinity;
    for (const server of servers) {
      await client.roundTrips(server.port);
      slowest = Math.min(slowest, await client.streaming(server.port, WARMUP_STREAM_BYTES));
    }
    while (
      streamBytes > WARMUP_STREAM_BYTES && streamBytes / MiB / slowest > STREAM_BUDGET_MS / 1000
    ) {
      streamBytes /= 2;
    }
    for (let run = 0; run < RUNS; run++) {
      for (const s of turnOrder(servers.length, run)) {
        rps[s].push(await client.roundTrips(servers[s].port));
      }
      for (const s of turnOrder(servers.length, run)) {
        mibps[s].push(await client.streaming(servers[s].port, streamBytes));
      }
    }
  } finally {
    client.close();
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
      rounds: pairedRatios(rps[0], rps[1]),
    },
    {
      group: "echo",
      name: `one connection streaming ${streamBytes / MiB} MiB${
        streamBytes < STREAM_BYTES ? " (scaled down)" : ""
      }, server uses readView`,
      unit: "MiB/s",
      genloop: median(mibps[0]),
      baselineName: "plain Deno async server",
      baseline: median(mibps[1]),
      target: "≥ 0.9",
      higherIsBetter: true,
      rounds: pairedRatios(mibps[0], mibps[1]),
    },
  ];
}

/**
 * TCP echo on 127.0.0.1: the genloop echo server of
 * `examples/07_echo_server.ts` against a plain Deno async/await echo server,
 * both driven by the same plain async/await client code.
 *
 * @module
 */

import { call, Loop, race } from "../mod.ts";
import { echoServer, type EchoStats } from "../examples/07_echo_server.ts";
import type { Comparison } from "./_measure.ts";

const HOST = "127.0.0.1";
const CONNECTIONS = 100;
const MESSAGES = 1_000;
const MESSAGE_BYTES = 64;
const STREAM_BYTES = 256 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

/** A running echo server and how to stop it. */
interface Server {
  port: number;
  stop(): Promise<void>;
}

function startGenloopServer(): Server {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const stats: EchoStats = { connections: 0, bytes: 0 };
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => stop = resolve);
  const serving = new Loop().runUntilComplete(function* main() {
    yield* race([echoServer(listener, stats), call(() => stopped)]);
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

/** MB/s over one connection: stream bytes in while reading the echo out. */
async function streaming(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const chunk = new Uint8Array(CHUNK_BYTES).fill(7);
  const start = performance.now();
  const sending = (async () => {
    for (let sent = 0; sent < STREAM_BYTES; sent += CHUNK_BYTES) {
      let offset = 0;
      while (offset < chunk.length) offset += await conn.write(chunk.subarray(offset));
    }
  })();
  const buffer = new Uint8Array(CHUNK_BYTES);
  let received = 0;
  while (received < STREAM_BYTES) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("stream ended early");
    received += n;
  }
  await sending;
  conn.close();
  return STREAM_BYTES / (1024 * 1024) / ((performance.now() - start) / 1000);
}

async function measure(start: () => Server): Promise<{ rps: number; mbps: number }> {
  const server = start();
  try {
    await roundTrips(server.port); // warm-up
    const rps = await roundTrips(server.port);
    const mbps = await streaming(server.port);
    return { rps, mbps };
  } finally {
    await server.stop();
  }
}

/** Measures both servers with the same clients. */
export async function benchEcho(): Promise<Comparison[]> {
  const genloop = await measure(startGenloopServer);
  const plain = await measure(startPlainServer);
  return [
    {
      group: "echo",
      name: `${CONNECTIONS} connections x ${MESSAGE_BYTES} B messages`,
      unit: "round trips/s",
      genloop: genloop.rps,
      baselineName: "plain Deno async server",
      baseline: plain.rps,
      target: "≥ 0.9",
      higherIsBetter: true,
    },
    {
      group: "echo",
      name: `one connection streaming ${STREAM_BYTES / (1024 * 1024)} MiB`,
      unit: "MiB/s",
      genloop: genloop.mbps,
      baselineName: "plain Deno async server",
      baseline: plain.mbps,
      target: "≥ 0.9",
      higherIsBetter: true,
    },
  ];
}

/**
 * Many concurrent echo clients as genloop tasks, each verifying every byte
 * it gets back. With --with-server, the echo server of 07_echo_server.ts runs
 * in the same loop, and a short summary is printed (this is `deno task demo`).
 *
 * Run: deno run --allow-net=127.0.0.1 examples/08_echo_client.ts --with-server
 *      deno run --allow-net=127.0.0.1 examples/08_echo_client.ts --port 8007
 *
 * @module
 */

import { bold, cyan, green } from "@std/fmt/colors";
import {
  close,
  connect,
  gather,
  type Operation,
  read,
  run,
  spawn,
  type Stream,
  write,
} from "../mod.ts";
import { echoServer, type EchoStats } from "./07_echo_server.ts";

/** How many clients, and how many messages each sends. */
export interface ClientOptions {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** Concurrent clients. */
  clients: number;
  /** Messages per client. */
  messages: number;
}

/** What the clients did. */
export interface ClientStats {
  /** Messages sent and verified. */
  messages: number;
  /** Bytes sent (and received back). */
  bytes: number;
}

/**
 * The size of message `k` of client `id`: from 1 B to 64 KiB, mostly small
 * (as real traffic is), with every hundredth message at each extreme.
 */
export function messageSize(id: number, k: number): number {
  if (k % 100 === 0) return 1;
  if (k % 100 === 99) return 64 * 1024;
  const x = (Math.imul(id + 1, 2654435761) ^ Math.imul(k + 1, 40503)) >>> 0;
  return k % 10 === 9 ? 1 + (x % 65536) : 1 + (x % 256);
}

/** Reads exactly `expected.length` bytes and checks each one. */
export function* expectEcho(stream: Stream, expected: Uint8Array): Operation<void> {
  let offset = 0;
  while (offset < expected.length) {
    const chunk = yield* read(stream, expected.length - offset);
    if (chunk === null) throw new Error(`Echo ended after ${offset} of ${expected.length} bytes`);
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== expected[offset + i]) {
        throw new Error(`Echo differs at byte ${offset + i} of ${expected.length}`);
      }
    }
    offset += chunk.length;
  }
}

/** One client: sends `messages` messages, each checked byte by byte. */
export function* echoClient(id: number, options: ClientOptions): Operation<ClientStats> {
  const stream = yield* connect({ hostname: "127.0.0.1", port: options.port });
  const stats: ClientStats = { messages: 0, bytes: 0 };
  try {
    for (let k = 0; k < options.messages; k++) {
      const message = new Uint8Array(messageSize(id, k));
      for (let i = 0; i < message.length; i++) message[i] = (id + k + i) & 0xff;
      yield* write(stream, message);
      yield* expectEcho(stream, message);
      stats.messages++;
      stats.bytes += message.length;
    }
  } finally {
    yield* close(stream);
  }
  return stats;
}

/** Runs `options.clients` clients concurrently and adds up what they did. */
export function* echoClients(options: ClientOptions): Operation<ClientStats> {
  const clients = Array.from({ length: options.clients }, (_, id) => echoClient(id, options));
  const all = yield* gather(clients);
  return {
    messages: all.reduce((sum, s) => sum + s.messages, 0),
    bytes: all.reduce((sum, s) => sum + s.bytes, 0),
  };
}

/** Server and clients in one loop; the server stops when the clients are done. */
export function* demo(
  listener: Deno.TcpListener,
  clients: number,
  messages: number,
): Operation<{ client: ClientStats; server: EchoStats }> {
  const server: EchoStats = { connections: 0, bytes: 0, lost: 0 };
  const serving = yield* spawn(echoServer(listener, server), { name: "echo server" });
  const client = yield* echoClients({ port: listener.addr.port, clients, messages });
  serving.cancel("the clients are done");
  return { client, server };
}

function option(name: string, fallback: number): number {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Number(Deno.args[index + 1]) : fallback;
}

if (import.meta.main) {
  const clients = option("--clients", 50);
  const messages = option("--messages", 200);
  const started = performance.now();
  let client: ClientStats;
  let connections = clients;
  if (Deno.args.includes("--with-server")) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const result = await run(demo(listener, clients, messages));
      client = result.client;
      connections = result.server.connections;
    } finally {
      listener.close();
    }
  } else {
    client = await run(echoClients({ port: option("--port", 8007), clients, messages }));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(bold("genloop echo demo"));
  console.log(`  connections      ${cyan(String(connections))}`);
  console.log(`  messages         ${cyan(String(client.messages))} (every byte checked)`);
  console.log(`  bytes echoed     ${cyan(String(client.bytes))}`);
  console.log(
    `  round trips/s    ${green(Math.round(client.messages / seconds).toLocaleString("en"))}`,
  );
  console.log(`  time             ${seconds.toFixed(2)} s`);
}

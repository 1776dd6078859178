/**
 * A TCP echo server where every connection is a genloop task. The tutorial's
 * empty "Handling I/O" section, done for real: the same selector that polls
 * simulated streams waits on real sockets.
 *
 * Run: deno run --allow-net=127.0.0.1 examples/07_echo_server.ts [port]
 * (serves until Ctrl-C, which stops the loop cleanly; `deno task demo` runs
 * it together with clients).
 *
 * @module
 */

import {
  accept,
  CancelledError,
  close,
  type ConnStream,
  Loop,
  type Operation,
  readInto,
  spawn,
  write,
} from "../mod.ts";

/** What the echo server has done so far. */
export interface EchoStats {
  /** Connections accepted. */
  connections: number;
  /** Bytes echoed back. */
  bytes: number;
  /** Connections that ended with a network error (the client vanished). */
  lost: number;
}

/**
 * Whether `error` says the peer went away (a reset, a broken pipe). Such an
 * error ends that one connection; anything else is a bug worth failing for.
 */
function isConnectionLost(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.UnexpectedEof;
}

/** Echoes everything read from `stream` back to it until end of stream. */
export function* echoConnection(stream: ConnStream, stats: EchoStats): Operation<void> {
  // One buffer per connection, reused: write() returns only once every byte
  // is out, so the next read cannot overwrite bytes still being sent.
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = yield* readInto(stream, buffer);
      if (n === null) return;
      yield* write(stream, buffer.subarray(0, n));
      stats.bytes += n;
    }
  } catch (error) {
    // Unjoined, a failing connection task would fail the server with it:
    // one rude client must not take the others down.
    if (!isConnectionLost(error)) throw error;
    stats.lost++;
  } finally {
    yield* close(stream);
  }
}

/**
 * Accepts connections on `listener` forever, one child task per connection.
 * Cancel the task running it to stop: its connection tasks are cancelled
 * with it (structured concurrency) and close their sockets.
 */
export function* echoServer(listener: Deno.Listener, stats: EchoStats): Operation<never> {
  for (;;) {
    const stream = yield* accept(listener);
    stats.connections++;
    yield* spawn(echoConnection(stream, stats), { name: `echo ${stream.name}` });
  }
}

if (import.meta.main) {
  const port = Number(Deno.args[0] ?? 8007);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log(`echo server listening on 127.0.0.1:${listener.addr.port} (Ctrl-C stops it)`);
  const stats: EchoStats = { connections: 0, bytes: 0, lost: 0 };
  const loop = new Loop();
  // Ctrl-C cancels the server task; its connection tasks close their sockets.
  Deno.addSignalListener("SIGINT", () => loop.stop("SIGINT"));
  try {
    await loop.runUntilComplete(function* server() {
      try {
        yield* echoServer(listener, stats);
      } finally {
        // Also closes a connection that arrived for the cancelled accept().
        yield* close(listener);
      }
    });
  } catch (error) {
    if (!(error instanceof CancelledError)) throw error;
  }
  console.log(
    `stopped after ${stats.connections} connections (${stats.lost} lost), ${stats.bytes} bytes echoed`,
  );
  Deno.exit(0);
}

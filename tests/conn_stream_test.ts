import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  accept,
  call,
  cancel,
  CancelledError,
  close,
  connect,
  ConnStream,
  currentTask,
  gather,
  join,
  Loop,
  type Operation,
  read,
  readView,
  run,
  runSync,
  SimulatedStream,
  sleep,
  spawn,
  type Task,
  write,
  yieldNow,
} from "../mod.ts";
import { demo, messageSize } from "../examples/08_echo_client.ts";

const HOST = "127.0.0.1";

/** Runs `body` with a fresh listener on 127.0.0.1, always closed afterwards. */
async function withListener<T>(body: (listener: Deno.TcpListener) => Promise<T>): Promise<T> {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    return await body(listener);
  } finally {
    listener.close();
  }
}

/** A connected pair over `listener`: the client end and the accepted server end. */
function* connectPair(listener: Deno.TcpListener): Operation<[ConnStream, ConnStream]> {
  const client = yield* connect({ hostname: HOST, port: listener.addr.port });
  const server = yield* accept(listener);
  return [client, server];
}

function* readAll(stream: ConnStream): Operation<string> {
  let text = "";
  for (;;) {
    const chunk = yield* read(stream);
    if (chunk === null) return text;
    text += new TextDecoder().decode(chunk);
  }
}

Deno.test("ConnStream: an error raised while running tasks a socket woke rejects the run (it is not lost in the socket's callback)", async () => {
  // A clock that fails once, when the task the socket woke asks it to.
  let breakOnce = false;
  const clock = {
    now(): number {
      if (breakOnce) {
        breakOnce = false;
        throw new Error("clock broke");
      }
      return performance.now();
    },
  };
  await withListener(async (listener) => {
    await assertRejects(
      () =>
        new Loop({ clock }).runUntilComplete(function* main() {
          const [client, server] = yield* connectPair(listener);
          // Keeps a timer armed, so every tick asks the clock.
          yield* spawn(function* sleeper() {
            yield* sleep(60_000);
          });
          try {
            const reader = yield* spawn(function* reader() {
              yield* read(server); // woken by the socket
              breakOnce = true;
              yield* yieldNow();
            });
            yield* write(client, "wake up");
            yield* join(reader);
          } finally {
            yield* close(client);
            yield* close(server);
          }
        }),
      Error,
      "clock broke",
    );
  });
});

Deno.test("ConnStream: echo server handles 200 concurrent clients x 1,000 messages, every byte checked", async () => {
  const result = await withListener((listener) => run(demo(listener, 200, 1_000)));
  assertEquals(result.client.messages, 200 * 1_000);
  let expectedBytes = 0;
  for (let id = 0; id < 200; id++) {
    for (let k = 0; k < 1_000; k++) expectedBytes += messageSize(id, k);
  }
  assertEquals(result.client.bytes, expectedBytes);
  assertEquals(result.server.connections, 200);
  assertEquals(result.server.bytes, expectedBytes);
});

Deno.test("ConnStream: message sizes cover 1 B to 64 KiB", () => {
  let min = Infinity;
  let max = 0;
  for (let id = 0; id < 200; id++) {
    for (let k = 0; k < 1_000; k++) {
      min = Math.min(min, messageSize(id, k));
      max = Math.max(max, messageSize(id, k));
    }
  }
  assertEquals([min, max], [1, 65_536]);
});

Deno.test("ConnStream: real sockets and simulated streams share one loop and selector", async () => {
  const log: string[] = [];
  await withListener((listener) =>
    run(function* main() {
      const server = yield* spawn(function* server() {
        const stream = yield* accept(listener);
        log.push(`server got ${yield* readAll(stream)}`);
        yield* close(stream);
      });
      const simulated = yield* spawn(function* simulated() {
        const pipe = new SimulatedStream("sim", { waitCycles: 5, data: "bytes", ended: true });
        const chunk = yield* read(pipe);
        log.push(`simulated got ${new TextDecoder().decode(chunk!)}`);
      });
      const client = yield* connect({ hostname: HOST, port: listener.addr.port });
      yield* write(client, "over tcp");
      yield* close(client);
      yield* join(simulated);
      yield* join(server);
    })
  );
  assertEquals(log.sort(), ["server got over tcp", "simulated got bytes"]);
});

Deno.test("ConnStream: read() returns null at end of stream after all data", async () => {
  const text = await withListener((listener) =>
    run(function* main() {
      const sender = yield* spawn(function* sender() {
        const stream = yield* connect({ hostname: HOST, port: listener.addr.port });
        yield* write(stream, "last words");
        yield* close(stream);
      });
      const stream = yield* accept(listener);
      const received = yield* readAll(stream);
      const again = yield* read(stream);
      yield* close(stream);
      yield* join(sender);
      return [received, again];
    })
  );
  assertEquals(text, ["last words", null]);
});

Deno.test("ConnStream: readView lends the read buffer (no copy), honours max, and ends with null", async () => {
  const bytes = new Uint8Array(200_000).map((_, i) => i % 251);
  const result = await withListener((listener) =>
    run(function* main() {
      const sender = yield* spawn(function* sender() {
        const stream = yield* connect({ hostname: HOST, port: listener.addr.port });
        yield* write(stream, bytes);
        yield* close(stream);
      });
      const stream = yield* accept(listener);
      const received = new Uint8Array(bytes.length);
      const backings = new Set<ArrayBufferLike>();
      let length = 0;
      let largest = 0;
      for (;;) {
        const view = yield* readView(stream, 1000);
        if (view === null) break;
        backings.add(view.buffer);
        largest = Math.max(largest, view.length);
        // Used before the next read, as the contract asks.
        received.set(view, length);
        length += view.length;
      }
      const again = yield* readView(stream);
      yield* close(stream);
      yield* join(sender);
      return { received, length, backings: backings.size, largest, again };
    })
  );
  assertEquals(result.length, bytes.length);
  assertEquals(result.received, bytes);
  // Every view is a window on the stream's one read buffer: nothing was copied.
  assertEquals(result.backings, 1);
  assertEquals(result.largest, 1000);
  assertEquals(result.again, null);
});

Deno.test("readView: streams without tryReadView fall back to tryRead; bad arguments throw at the call", () => {
  const source = new SimulatedStream("source", { data: "abcdef", ended: true });
  const views = runSync(function* main() {
    const first = yield* readView(source, 4);
    const second = yield* readView(source, 4);
    const end = yield* readView(source, 4);
    return [first, second, end];
  });
  const decoded = views.map((view) => view === null ? null : new TextDecoder().decode(view));
  assertEquals(decoded, ["abcd", "ef", null]);
  assertThrows(() => readView(source, 0), RangeError, "max must be a positive integer");
  assertThrows(
    () => readView({} as unknown as SimulatedStream),
    TypeError,
    "expected a genloop Stream",
  );
});

Deno.test("ConnStream: a peer reset throws a Deno.errors error into the writer", async () => {
  const outcome = await withListener((listener) =>
    run(function* main() {
      const [client, server] = yield* connectPair(listener);
      // Closing a socket that still has unread input makes the kernel send
      // RST instead of FIN: the peer sees a reset, not a clean shutdown.
      yield* write(client, "unread");
      yield* waitUntilArrived();
      yield* close(server);
      yield* waitUntilArrived();
      try {
        // Deno reports a reset to a reader as end of stream; a writer gets the error.
        const eof = yield* read(client);
        for (let attempt = 0; attempt < 100; attempt++) {
          yield* write(client, "after reset");
          yield* sleep(1);
        }
        return ["no error", eof];
      } catch (error) {
        return [error, null];
      } finally {
        yield* close(client);
      }
    })
  );
  const [error, eof] = outcome;
  assertEquals(eof, null);
  assert(
    error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset,
    `expected BrokenPipe or ConnectionReset, got ${String(error)}`,
  );
});

/** Waits (without reading) until the server side has the bytes queued. */
function* waitUntilArrived(): Operation<void> {
  yield* sleep(20);
}

Deno.test("ConnStream: close() wakes a task waiting to read with BadResource", async () => {
  const outcome = await withListener((listener) =>
    run(function* main() {
      const [client, server] = yield* connectPair(listener);
      const reader = yield* spawn(function* reader() {
        try {
          yield* read(server);
          return "read";
        } catch (error) {
          return error;
        }
      });
      yield* yieldNow();
      yield* close(server);
      const result = yield* join(reader);
      yield* close(client);
      return result;
    })
  );
  assertInstanceOf(outcome, Deno.errors.BadResource);
  assertStringIncludes((outcome as Error).message, 'while task "reader" waited on it');
});

Deno.test("ConnStream: cancelling a reader unregisters it; its cleanup leaves no pending op", async () => {
  const state = await withListener((listener) =>
    run(function* main() {
      const [client, server] = yield* connectPair(listener);
      const reader = yield* spawn(function* reader() {
        try {
          yield* read(server);
        } finally {
          yield* close(server);
        }
      });
      yield* yieldNow();
      reader.cancel("test");
      try {
        yield* join(reader);
      } catch {
        // expected: CancelledError
      }
      yield* close(client);
      return reader.state;
    })
  );
  // The op sanitizer fails this test if the in-flight conn.read leaked.
  assertEquals(state, "cancelled");
});

Deno.test("ConnStream: bytes read in flight when a reader is cancelled go to the next read", async () => {
  const text = await withListener((listener) =>
    run(function* main() {
      const [client, server] = yield* connectPair(listener);
      const first = yield* spawn(function* firstReader() {
        yield* read(server);
      });
      yield* yieldNow();
      yield* cancel(first);
      yield* write(client, "kept");
      yield* close(client);
      const received = yield* readAll(server);
      yield* close(server);
      return received;
    })
  );
  assertEquals(text, "kept");
});

Deno.test("connect() to a closed port throws ConnectionRefused into the task", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = listener.addr.port;
  listener.close();
  const error = await run(function* main() {
    try {
      yield* connect({ hostname: HOST, port });
    } catch (error) {
      return error;
    }
  });
  assertInstanceOf(error, Deno.errors.ConnectionRefused);
  assertStringIncludes(error.message, `Cannot connect to ${HOST}:${port}: `);
});

Deno.test("connect(): a task cancelled after its connection arrived, before it ran, leaks no connection", async () => {
  // The sanitizer is the assertion: an unclosed connection fails this test.
  const accepted = await withListener(async (listener) => {
    const accepting = listener.accept();
    const state = await run(function* main() {
      const connector = yield* spawn(function* connector() {
        const stream = yield* connect({ hostname: HOST, port: listener.addr.port });
        yield* close(stream); // not reached: cancelled before it resumes
      });
      yield* yieldNow(); // the connector starts and waits in connect()
      // Wait until the connection arrived and the connector is queued with it.
      while (connector.state === "waiting") yield* yieldNow();
      const queued = connector.state;
      connector.cancel("not needed after all");
      yield* cancel(connector);
      return queued;
    });
    assertEquals(state, "ready");
    return await accepting;
  });
  accepted.close();
});

Deno.test("ConnStream: large writes complete fully in both directions at once", async () => {
  const size = 8 * 1024 * 1024;
  const payload = new Uint8Array(size).map((_, i) => i * 7);
  const ok = await withListener((listener) =>
    run(function* main() {
      const [client, server] = yield* connectPair(listener);
      const [written, received] = yield* gather([
        function* sendAll() {
          const n = yield* write(client, payload);
          yield* close(client);
          return n;
        },
        function* receiveAll() {
          let total = 0;
          let same = true;
          for (;;) {
            const chunk = yield* read(server);
            if (chunk === null) break;
            for (let i = 0; i < chunk.length && same; i++) {
              same = chunk[i] === payload[total + i];
            }
            total += chunk.length;
          }
          yield* close(server);
          return same ? total : -1;
        },
      ]);
      return written === size && received === size;
    })
  );
  assert(ok);
});

Deno.test("Loop: runSync refuses to wait on a socket, naming what it waits for", async () => {
  await withListener(async (listener) => {
    const loop = new Loop();
    let message = "";
    try {
      loop.runSync(function* main() {
        yield* accept(listener);
      });
    } catch (error) {
      message = (error as Error).message;
    }
    assertStringIncludes(message, "Cannot finish with runSync()");
    assertStringIncludes(
      message,
      `task "main" waits for accept on ${HOST}:${listener.addr.port}`,
    );
    // Let the pending accept settle once the listener closes.
    await Promise.resolve();
  });
});

/**
 * A stand-in for a `Deno.Conn` whose writes take at most `maxPerWrite`
 * bytes and whose write number `failAt` (counting from 1) rejects.
 */
function trickleConn(maxPerWrite: number, failAt = Infinity): {
  conn: Deno.Conn;
  written: number[];
} {
  const written: number[] = [];
  let writes = 0;
  const conn = {
    write(data: Uint8Array): Promise<number> {
      writes++;
      if (writes === failAt) return Promise.reject(new Deno.errors.BrokenPipe("peer went away"));
      const n = Math.min(maxPerWrite, data.length);
      written.push(...data.subarray(0, n));
      return Promise.resolve(n);
    },
    close(): void {},
  } as unknown as Deno.Conn;
  return { conn, written };
}

Deno.test("ConnStream: a write the connection takes a few bytes at a time is continued until all is out", async () => {
  const { conn, written } = trickleConn(3);
  const stream = new ConnStream(conn, { name: "trickle" });
  const bytes = Uint8Array.from({ length: 20 }, (_, i) => i);
  const count = await run(function* main() {
    const first = yield* write(stream, bytes);
    const second = yield* write(stream, "ok");
    yield* close(stream);
    return first + second;
  });
  assertEquals(count, 22);
  assertEquals(written, [...bytes, ...new TextEncoder().encode("ok")]);
});

Deno.test("ConnStream: a write that fails part way throws the connection's error into the writer", async () => {
  const { conn, written } = trickleConn(3, 2);
  const stream = new ConnStream(conn, { name: "broken" });
  const error = await assertRejects(() =>
    run(function* main() {
      try {
        yield* write(stream, "0123456789");
      } finally {
        yield* close(stream);
      }
    })
  );
  assertInstanceOf(error, Deno.errors.BrokenPipe);
  assertEquals(written.length, 3, "the first write went out, the second failed");
});

/** A host write of `hostWrites()`: what it was given, and how to settle it. */
interface HostWrite {
  data: string;
  resolve: (n: number) => void;
  reject: (error: Error) => void;
}

/** A stand-in for a `Deno.Conn` whose host writes settle when the test says. */
function hostWrites(): { conn: Deno.Conn; writes: HostWrite[] } {
  const writes: HostWrite[] = [];
  const conn = {
    write(data: Uint8Array): Promise<number> {
      return new Promise((resolve, reject) =>
        writes.push({ data: new TextDecoder().decode(data), resolve, reject })
      );
    },
    close(): void {},
  } as unknown as Deno.Conn;
  return { conn, writes };
}

/** Lets the settled host writes' reactions run. */
function hostTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Runs `main` over a ConnStream of `hostWrites()` named `name`, on a loop
 * whose warnings are kept.
 */
async function withPeer(
  main: (stream: ConnStream, writes: HostWrite[]) => Operation<void>,
  name = "peer",
): Promise<{ stream: ConnStream; writes: HostWrite[]; warnings: string[] }> {
  const { conn, writes } = hostWrites();
  const stream = new ConnStream(conn, { name });
  const warnings: string[] = [];
  const loop = new Loop({ onWarning: (message) => warnings.push(message) });
  await loop.runUntilComplete(() => main(stream, writes));
  return { stream, writes, warnings };
}

/**
 * Runs writers of `texts` on a stream named `name`, one after the other,
 * each cancelled once its write is in flight or waiting behind the one
 * before (see withPeer).
 */
function cancelWritesInFlight(
  texts: string[],
  name = "peer",
): Promise<{ stream: ConnStream; writes: HostWrite[]; warnings: string[] }> {
  return withPeer(function* main(stream) {
    for (const [i, text] of texts.entries()) {
      const writer = yield* spawn(function* writer() {
        yield* write(stream, text);
      }, { name: `writer${i + 1}` });
      // The writer hands its bytes over, and waits for them to go out.
      yield* yieldNow();
      yield* cancel(writer);
    }
  }, name);
}

Deno.test("ConnStream: bytes of a cancelled write that fail to go out later are reported through onWarning, not dropped", async () => {
  const { stream, writes, warnings } = await cancelWritesInFlight(["0123456789"], "slow peer");
  assertEquals(warnings, []);
  writes[0].reject(new Deno.errors.ConnectionReset("peer reset"));
  await hostTurn();
  assertEquals(warnings, [
    'A write to stream "slow peer" that task "writer1" stopped waiting for (it was cancelled) failed afterwards, before all of it was sent: ConnectionReset: peer reset. The stream\'s next write throws this error too; close a stream whose writes were cancelled rather than write to it again',
  ]);
  // As documented: the next write gets the error as well.
  const error = await assertRejects(() => run(write(stream, "more")));
  assertInstanceOf(error, Deno.errors.ConnectionReset);
  await run(close(stream));
});

Deno.test("ConnStream: of two cancelled writes, only the one whose bytes failed to go out is reported", async () => {
  const { stream, writes, warnings } = await cancelWritesInFlight(["aaaa", "bbbb"]);
  // Every byte of the first went out; the second's, queued behind, fail.
  writes[0].resolve(4);
  await hostTurn();
  assertEquals(writes.map((w) => w.data), ["aaaa", "bbbb"]);
  writes[1].reject(new Deno.errors.ConnectionReset("reset"));
  await hostTurn();
  assertEquals(warnings.length, 1, warnings.join("\n"));
  assertStringIncludes(warnings[0], 'that task "writer2" stopped waiting for');
  await run(close(stream));
});

/** Joins `task`, which is to end cancelled. */
function* joinCancelled(task: Task<unknown>): Operation<void> {
  try {
    yield* join(task);
  } catch (error) {
    if (!(error instanceof CancelledError)) throw error;
  }
}

Deno.test("ConnStream: a write made by a task that had cancelled itself goes out, and its bytes' later failure is reported through onWarning", async () => {
  const { stream, writes, warnings } = await withPeer(function* main(stream) {
    const writer = yield* spawn(function* writer() {
      // A server told to quit: cancels itself, then says goodbye.
      (yield* currentTask()).cancel("quit");
      yield* write(stream, "bye\n");
    });
    yield* joinCancelled(writer);
  });
  // The bytes were handed to the host although the writer was cancelled.
  assertEquals(writes.map((w) => w.data), ["bye\n"]);
  writes[0].reject(new Deno.errors.ConnectionReset("peer reset"));
  await hostTurn();
  assertEquals(warnings.length, 1, "the failed bytes of the cancelled write reached nobody");
  assertStringIncludes(warnings[0], 'that task "writer" stopped waiting for');
  await run(close(stream));
});

Deno.test("ConnStream: a write whose host write failed just before its task was cancelled is reported through onWarning", async () => {
  const { stream, warnings } = await withPeer(function* main(stream, writes) {
    const writer = yield* spawn(function* writer() {
      yield* write(stream, "0123456789");
    });
    // The writer hands its bytes to the host and waits for them to go out.
    yield* yieldNow();
    // The host write fails in the same host turn that wakes main, so main
    // runs before the woken writer.
    yield* call(() => {
      const settled = Promise.resolve();
      settled.then(() => writes[0].reject(new Deno.errors.ConnectionReset("peer reset")));
      return settled;
    });
    writer.cancel();
    yield* joinCancelled(writer);
  });
  await hostTurn();
  assertEquals(warnings.length, 1, "the cancelled write's failure reached nobody");
  // The error is still kept for a next write, as documented.
  const next = await run(write(stream, "more")).catch((error) => error);
  assertInstanceOf(next, Deno.errors.ConnectionReset);
  await run(close(stream));
});

Deno.test("ConnStream: a cancelled write cut short by close() is no failure to warn about", async () => {
  const { stream, writes, warnings } = await cancelWritesInFlight(["0123456789"], "closed early");
  const closed = run(close(stream));
  writes[0].reject(new Deno.errors.BadResource("closed"));
  await closed;
  assertEquals(warnings, []);
});

Deno.test("ConnStream: a write cancelled by task.cancel() just after the stream woke it goes out before what its canceller writes next", async () => {
  const { conn, writes } = hostWrites();
  const stream = new ConnStream(conn, { name: "peer" });
  // The host completes one write per millisecond, in order.
  let completed = 0;
  const pump = setInterval(() => {
    if (completed < writes.length) writes[completed++].resolve(4);
  }, 1);
  try {
    await new Loop().runUntilComplete(function* main() {
      const writerA = yield* spawn(function* writeA() {
        yield* write(stream, "AAAA");
      });
      // AAAA's host write is in flight: cancelled, it still goes out.
      yield* yieldNow();
      writerA.cancel();
      const writerB = yield* spawn(function* writeB() {
        yield* write(stream, "BBBB");
      });
      // writeB waits behind AAAA to hand over BBBB.
      yield* yieldNow();
      // Busy (bounded) until the host completed AAAA: the loop's next look
      // at the stream wakes writeB, queued behind this task.
      const start = performance.now();
      while (completed < 1 && performance.now() - start < 2_000) yield* yieldNow();
      writerB.cancel();
      yield* write(stream, "CCCC");
      // Waits until what cancelled writes left is out.
      yield* write(stream, "");
    });
  } finally {
    clearInterval(pump);
  }
  assertEquals(writes.map((w) => w.data), ["AAAA", "BBBB", "CCCC"]);
  await run(close(stream));
});

Deno.test("ConnStream: a task of another Loop that reads a stream a task already reads gets an error naming both; the first still gets the bytes", async () => {
  await withListener(async (listener) => {
    const [client, conn] = await Promise.all([
      Deno.connect({ hostname: HOST, port: listener.addr.port }),
      listener.accept(),
    ]);
    const stream = new ConnStream(conn, { name: "shared" });
    function* readOnce(): Operation<unknown> {
      try {
        return new TextDecoder().decode((yield* read(stream))!);
      } catch (error) {
        return error;
      }
    }
    // Each run starts synchronously: readerA waits in read() when this returns.
    const loopA = new Loop();
    const first = loopA.runUntilComplete(function* readerA() {
      return yield* readOnce();
    });
    const second = new Loop().runUntilComplete(function* readerB() {
      return yield* readOnce();
    });
    // Only bounds the hang of a reader whose wake-up went elsewhere.
    const guard = setTimeout(() => loopA.stop("readerA was never woken"), 1_000);
    await client.write(new TextEncoder().encode("hello"));
    const [a, b] = await Promise.all([first, second]).finally(() => clearTimeout(guard));
    await run(close(stream));
    client.close();
    assertEquals(a, "hello");
    assertInstanceOf(b, Deno.errors.Busy);
    assertEquals(
      b.message,
      'Cannot wait for EVENT_READ on stream "shared" in task "readerB": task "readerA" in another Loop already waits for it; use one reader and one writer per stream (for several writers, one writer task that the others hand their data to)',
    );
  });
});

Deno.test("ConnStream: a connection whose read() throws at once fails that read only; the next read waits and gets the bytes", async () => {
  let reads = 0;
  const conn = {
    remoteAddr: { transport: "tcp", hostname: HOST, port: 1 },
    read(buffer: Uint8Array): Promise<number | null> {
      if (++reads === 1) throw new Deno.errors.Interrupted("read refused");
      buffer.set([104, 105]);
      return Promise.resolve(2);
    },
    close(): void {},
  } as unknown as Deno.Conn;
  const stream = new ConnStream(conn, { name: "throwing" });
  const loop = new Loop();
  const outcome = await loop.runUntilComplete(function* main() {
    let first: unknown = null;
    try {
      yield* read(stream);
    } catch (error) {
      first = error;
    }
    // Its wait left nothing behind: not "task "main" already waits for it".
    const waits = loop.selector.size;
    const second = new TextDecoder().decode((yield* read(stream))!);
    return [first, waits, second];
  });
  assertInstanceOf(outcome[0], Deno.errors.Interrupted);
  assertEquals(outcome.slice(1), [0, "hi"]);
  assertEquals(reads, 2);
});

Deno.test("ConnStream: a write in flight when the stream is closed from outside its loop throws BadResource, not a byte count", async () => {
  let failWrite: (error: Error) => void = () => {};
  const conn = {
    remoteAddr: { transport: "tcp", hostname: HOST, port: 1 },
    // A peer that reads nothing: the write is in flight until the close.
    write: (): Promise<number> => new Promise((_, reject) => failWrite = reject),
    close(): void {
      failWrite(new Deno.errors.BadResource("Bad resource ID"));
    },
  } as unknown as Deno.Conn;
  const stream = new ConnStream(conn, { name: "stuck" });
  const writing = run(function* writer() {
    try {
      return yield* write(stream, "never sent");
    } catch (error) {
      return error;
    }
  });
  // Another Loop's task, or a signal handler, closes it.
  await run(close(stream));
  const outcome = await writing;
  assertInstanceOf(outcome, Deno.errors.BadResource);
  assertEquals(
    outcome.message,
    'Stream "stuck" is closed: it was closed while a write was in flight, before all of it was sent',
  );
});

// ---------------------------------------------------------------------------
// close(): waiting for host operations in flight, and using a closed stream.

/**
 * The server end of a fresh connection as a ConnStream over the real
 * socket, with a flag that says whether its last host read has settled.
 */
function* observedPair(
  listener: Deno.TcpListener,
): Operation<{ client: ConnStream; server: ConnStream; readSettled: () => boolean }> {
  const [client, accepted] = yield* connectPair(listener);
  const conn = accepted.conn;
  let settled = true;
  const server = new ConnStream({
    remoteAddr: conn.remoteAddr,
    read(buffer: Uint8Array): Promise<number | null> {
      settled = false;
      return conn.read(buffer).finally(() => settled = true);
    },
    write: (data: Uint8Array) => conn.write(data),
    close: () => conn.close(),
  } as unknown as Deno.Conn);
  return { client, server, readSettled: () => settled };
}

Deno.test("close(): a close cancelled while it waits for the in-flight read does not let run() return before that read settled", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    let readSettled = () => false;
    await run(function* main() {
      const pair = yield* observedPair(listener);
      readSettled = pair.readSettled;
      yield* close(pair.client);
      yield* spawn(function* reader() {
        try {
          yield* read(pair.server); // the host read is in flight
        } catch {
          // closed by the closer
        }
      });
      yield* yieldNow();
      yield* spawn(function* closer() {
        yield* close(pair.server); // waits for the host read to settle
      });
      yield* yieldNow();
      // main returns: the closer is cancelled in its close().
    });
    // As connect() promises for a connect cancelled in flight: no host
    // operation outlives the awaited run.
    assertEquals(
      readSettled(),
      true,
      "run() returned while the closed stream's host read was pending",
    );
  } finally {
    listener.close();
  }
});

Deno.test("close(): a second close() of a stream returns only once the host read in flight settled, as the first one does", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    const settledAfterSecondClose = await run(function* main() {
      const { client, server, readSettled } = yield* observedPair(listener);
      yield* close(client);
      const reader = yield* spawn(function* reader() {
        try {
          yield* read(server);
        } catch {
          // closed
        }
      });
      yield* yieldNow(); // the reader's host read is in flight
      const closer = yield* spawn(function* closer() {
        yield* close(server); // closes, then waits for the host read
      });
      yield* yieldNow();
      yield* close(server); // "closing twice is harmless"
      const settled = readSettled();
      yield* join(closer);
      yield* join(reader);
      return settled;
    });
    assertEquals(
      settledAfterSecondClose,
      true,
      "the second close() returned with the host read pending",
    );
  } finally {
    listener.close();
  }
});

Deno.test("read()/write() on a closed ConnStream: the error names the task and what to do", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    const messages = await run(function* main() {
      const [client, server] = yield* connectPair(listener);
      yield* close(client);
      const messages: string[] = [];
      for (const op of [read(client), write(client, "x")] as Operation<unknown>[]) {
        try {
          yield* op;
        } catch (error) {
          assertInstanceOf(error, Deno.errors.BadResource);
          messages.push(error.message);
        }
      }
      yield* close(server);
      return messages;
    });
    assertEquals(messages.length, 2);
    for (const message of messages) {
      assert(message.includes('task "main"'), `does not name the task: ${message}`);
    }
  } finally {
    listener.close();
  }
});

Deno.test("runSync(close(stream)) that must wait for a host read names the close, not an anonymous call()", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const loop = new Loop();
  try {
    const [client, server] = await loop.runUntilComplete(function* main() {
      const pair = yield* connectPair(listener);
      yield* spawn(function* reader() {
        yield* read(pair[1]); // cancelled at the run's end; its host read stays in flight
      });
      yield* yieldNow();
      return pair;
    });
    let message = "";
    try {
      loop.runSync(close(server));
    } catch (error) {
      message = (error as Error).message;
    }
    await loop.runUntilComplete(function* cleanup() {
      yield* close(server);
      yield* close(client);
    });
    assert(message.startsWith("Cannot finish with runSync()"), message);
    assert(message.includes("close of stream"), `does not say what it waits for: ${message}`);
  } finally {
    listener.close();
  }
});

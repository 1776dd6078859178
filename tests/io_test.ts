// The operations of src/io.ts beyond reading and writing bytes: accept() and
// its listener, connect(), cancelled writes, and bad arguments to write()
// and ConnStream.
import {
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  accept,
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
  SimulatedStream,
  sleep,
  spawn,
  type Task,
  TaskFailedError,
  timeout,
  TimeoutError,
  write,
  yieldNow,
} from "../mod.ts";

const HOST = "127.0.0.1";
const decode = (bytes: Uint8Array | null): string | null =>
  bytes === null ? null : new TextDecoder().decode(bytes);

/**
 * Runs `body` with a fresh listener on 127.0.0.1. The tests close it with
 * `close(listener)`; this closes it too if a test failed before that, so a
 * failure is reported rather than left waiting on the listener.
 */
async function withListener<T>(body: (listener: Deno.TcpListener) => Promise<T>): Promise<T> {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    return await body(listener);
  } finally {
    try {
      listener.close();
    } catch {
      // Closed by the test already.
    }
  }
}

/**
 * Only bounds a hang, so that a dropped client fails the test instead of
 * stalling it; nothing waits this long when the code works.
 */
const GUARD_MS = 5_000;

/** Whether `operation` throws a TimeoutError within `ms`. */
function* timesOut(ms: number, operation: Operation<unknown>): Operation<boolean> {
  try {
    yield* timeout(ms, operation);
    return false;
  } catch (error) {
    if (error instanceof TimeoutError) return true;
    throw error;
  }
}

/**
 * Connects a client, accepts it, sends `text` from the server side and
 * returns what the client read; closes both ends and the listener.
 */
function* greetNextClient(listener: Deno.TcpListener, text: string): Operation<string | null> {
  const client = yield* connect({ hostname: HOST, port: listener.addr.port });
  const server = yield* timeout(GUARD_MS, accept(listener));
  yield* write(server, text);
  const greeting = decode(yield* read(client));
  yield* close(server);
  yield* close(client);
  yield* close(listener);
  return greeting;
}

Deno.test("accept(): after an accept() cancelled by timeout(), the next accept() gets the next client", async () => {
  const [timedOut, greeting] = await withListener((listener) =>
    run(function* main() {
      // No client exists yet: this accept() is cancelled for sure.
      const timedOut = yield* timesOut(10, accept(listener));
      const greeting = yield* greetNextClient(listener, "hello");
      return [timedOut, greeting];
    })
  );
  assertEquals([timedOut, greeting], [true, "hello"]);
});

Deno.test("accept(): a client that connects while nobody accepts is kept for the next accept()", async () => {
  const received = await withListener((listener) =>
    run(function* main() {
      yield* timesOut(10, accept(listener));
      const client = yield* connect({ hostname: HOST, port: listener.addr.port });
      yield* write(client, "early");
      // Gives the host's pending accept time to bring the connection in
      // while no task accepts; the next accept() must get it either way.
      yield* sleep(20);
      const server = yield* timeout(GUARD_MS, accept(listener));
      const received = decode(yield* read(server));
      yield* close(server);
      yield* close(client);
      yield* close(listener);
      return received;
    })
  );
  assertEquals(received, "early");
});

Deno.test("accept(): a server stopped while it accepts can accept again on the same listener in a new run", async () => {
  const greeting = await withListener(async (listener) => {
    const first = new Loop();
    const stopped = first.runUntilComplete(function* server() {
      yield* accept(listener);
    });
    setTimeout(() => first.stop("restart"), 10);
    await assertRejects(() => stopped, CancelledError);
    return await run(greetNextClient(listener, "back"));
  });
  assertEquals(greeting, "back");
});

Deno.test("close(listener): a connection kept for an accept() that never comes is closed, and its client sees the end", async () => {
  const end = await withListener((listener) =>
    run(function* main() {
      yield* timesOut(10, accept(listener));
      const client = yield* connect({ hostname: HOST, port: listener.addr.port });
      yield* sleep(20); // the connection arrives with nobody accepting
      yield* close(listener);
      const end = yield* read(client);
      yield* close(client);
      return end;
    })
  );
  // The sanitizers check the rest: no connection left open, no op pending.
  assertEquals(end, null);
});

Deno.test("close(listener): a task waiting in accept() gets BadResource naming the listener and both tasks", async () => {
  const [error, port] = await withListener(async (listener) => {
    const error = await run(function* main() {
      const server = yield* spawn(function* server() {
        try {
          yield* accept(listener);
        } catch (error) {
          return error;
        }
      });
      yield* sleep(5);
      yield* close(listener);
      return yield* join(server);
    });
    return [error, listener.addr.port];
  });
  assertInstanceOf(error, Deno.errors.BadResource);
  assertStringIncludes(
    error.message,
    `Listener ${HOST}:${port} is closed: task "main" closed it while task "server" waited in accept() on it`,
  );
});

Deno.test("accept(): a second task accepting on the same listener gets Busy, naming both tasks", async () => {
  const [second, first, port] = await withListener(async (listener) => {
    const [second, first] = await run(function* main() {
      const first = yield* spawn(function* first() {
        try {
          yield* accept(listener);
        } catch (error) {
          return error;
        }
      });
      yield* sleep(5);
      let second: unknown = null;
      try {
        yield* accept(listener);
      } catch (error) {
        second = error;
      }
      yield* close(listener);
      return [second, yield* join(first)];
    });
    return [second, first, listener.addr.port];
  });
  assertInstanceOf(second, Deno.errors.Busy);
  assertStringIncludes(
    second.message,
    `Cannot accept on ${HOST}:${port} in task "main": task "first" already waits there`,
  );
  // The first one kept waiting until the listener was closed.
  assertInstanceOf(first, Deno.errors.BadResource);
});

Deno.test("accept(): something other than a listener is a TypeError at the call", () => {
  assertThrows(
    () => accept({} as Deno.Listener),
    TypeError,
    "accept() expected a Deno.Listener (from Deno.listen), but got an object of class Object",
  );
});

Deno.test("Loop({ stallTimeoutMs }): a server idle in accept() until a late client is not a stall", async () => {
  await withListener(async (listener) => {
    // A plain async client that shows up after twice the stall limit.
    const client = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const conn = await Deno.connect({ hostname: HOST, port: listener.addr.port });
      const buffer = new Uint8Array(16);
      const n = await conn.read(buffer);
      conn.close();
      return n === null ? null : decode(buffer.subarray(0, n));
    })();
    const served = await new Loop({ stallTimeoutMs: 50 }).runUntilComplete(function* server() {
      const conn = yield* accept(listener);
      yield* write(conn, "hi");
      yield* close(conn);
      return "served";
    });
    assertEquals([served, await client], ["served", "hi"]);
  });
});

Deno.test("connect(): runSync names the connect it cannot wait for, and the connection that arrives after is closed", async () => {
  await withListener(async (listener) => {
    const port = listener.addr.port;
    assertThrows(
      () =>
        new Loop().runSync(function* main() {
          yield* connect({ hostname: HOST, port });
        }),
      Error,
      `task "main" waits for connect to ${HOST}:${port}`,
    );
    // The run gave up on the connection; the server still sees it, and then its end.
    const peer = await listener.accept();
    const end = await peer.read(new Uint8Array(1));
    peer.close();
    assertEquals(end, null);
  });
});

/**
 * A stand-in for a `Deno.Conn` that takes at most `maxPerWrite` bytes per
 * write and copies them when the write is called; each write completes a
 * few microtasks later, so a task can be cancelled while one is in flight.
 */
function slowConn(maxPerWrite: number): { conn: Deno.Conn; sent: () => string } {
  const sent: number[] = [];
  const conn = {
    remoteAddr: { transport: "tcp", hostname: HOST, port: 1 },
    write(data: Uint8Array): Promise<number> {
      const n = Math.min(maxPerWrite, data.length);
      sent.push(...data.subarray(0, n));
      return new Promise((resolve) => setTimeout(() => resolve(n), 0));
    },
    close(): void {},
  } as unknown as Deno.Conn;
  return { conn, sent: () => new TextDecoder().decode(new Uint8Array(sent)) };
}

// Both ways to cancel: yield* cancel() waits for the writer's cleanup;
// task.cancel() returns at once, before the writer runs again, so the read
// after it starts in the same step.
const cancelWriter: [string, (writer: Task<void>) => Operation<void>][] = [
  ["yield* cancel(writer)", (writer) => cancel(writer)],
  ["writer.cancel() (it returns at once)", function* (writer) {
    writer.cancel();
  }],
];

for (const [how, stop] of cancelWriter) {
  Deno.test(`ConnStream: a write cancelled with ${how} is finished from a copy, not from the caller's buffer, before the next write`, async () => {
    const { conn, sent } = slowConn(4);
    const stream = new ConnStream(conn, { name: "slow" });
    const buffer = new TextEncoder().encode("AAAAAAAAAAAA");
    const outcome = await run(function* main() {
      const writer = yield* spawn(function* writer() {
        yield* write(stream, buffer);
      });
      yield* yieldNow(); // the writer starts; its first host write is in flight
      yield* stop(writer);
      // The caller's buffer is its own again, except for that host write,
      // which this stand-in has copied already.
      buffer.fill("B".charCodeAt(0));
      yield* write(stream, "next");
      return writer.state;
    });
    assertEquals(outcome, "cancelled");
    assertEquals(sent(), "AAAAAAAAAAAAnext");
  });
}

Deno.test("ConnStream: a write cancelled while it waits behind an earlier cancelled write still goes out in full, in order", async () => {
  const { conn, sent } = slowConn(4);
  const stream = new ConnStream(conn, { name: "slow" });
  const second = new TextEncoder().encode("BBBB");
  const outcome = await run(function* main() {
    const writer = yield* spawn(function* writer() {
      yield* write(stream, "AAAAAAAA");
    });
    yield* yieldNow(); // its first host write is in flight
    yield* cancel(writer);
    const waiter = yield* spawn(function* waiter() {
      yield* write(stream, second);
    });
    yield* yieldNow(); // it waits for the cancelled write to be out
    yield* cancel(waiter);
    second.fill("X".charCodeAt(0)); // the caller's buffer is its own again
    yield* write(stream, "next");
    return [writer.state, waiter.state];
  });
  assertEquals(outcome, ["cancelled", "cancelled"]);
  // "BBBB" used to be dropped: the cancelled write was never sent at all.
  assertEquals(sent(), "AAAAAAAABBBBnext");
});

/**
 * A stand-in for a `Deno.Conn` whose writes take every byte but read them
 * only when they complete, 10 ms later, as a host write on a full socket
 * reads its buffer while it sends, until the peer has taken it all.
 */
function lateReadingConn(): { conn: Deno.Conn; sent: () => string } {
  let sent = "";
  const conn = {
    remoteAddr: { transport: "tcp", hostname: HOST, port: 2 },
    write(data: Uint8Array): Promise<number> {
      return new Promise((resolve) =>
        setTimeout(() => {
          sent += new TextDecoder().decode(data);
          resolve(data.length);
        }, 10)
      );
    },
    close(): void {},
  } as unknown as Deno.Conn;
  return { conn, sent: () => sent };
}

/** A stand-in for a `Deno.Conn` that reads `chunks`, one per read, then the end. */
function chunksConn(chunks: string[]): Deno.Conn {
  const left = chunks.map((chunk) => new TextEncoder().encode(chunk));
  return {
    remoteAddr: { transport: "tcp", hostname: HOST, port: 3 },
    read(buffer: Uint8Array): Promise<number | null> {
      return new Promise((resolve) =>
        setTimeout(() => {
          const chunk = left.shift();
          if (chunk === undefined) return resolve(null);
          buffer.set(chunk);
          resolve(chunk.length);
        }, 0)
      );
    },
    close(): void {},
  } as unknown as Deno.Conn;
}

for (const [how, stop] of cancelWriter) {
  Deno.test(`ConnStream: a readView view that a write cancelled with ${how} is still sending is not overwritten by the next read`, async () => {
    const from = new ConnStream(chunksConn(["AAAA", "BBBB"]), { name: "from" });
    const { conn, sent } = lateReadingConn();
    const to = new ConnStream(conn, { name: "to" });
    const outcome = await run(function* main() {
      const view = (yield* readView(from))!;
      const writer = yield* spawn(function* writer() {
        yield* write(to, view);
      });
      yield* yieldNow(); // its host write is in flight, and reads the view as it goes
      yield* stop(writer);
      // The next read must not refill the buffer the host is still sending.
      const next = yield* readView(from);
      yield* write(to, "next");
      return [writer.state, decode(next)];
    });
    assertEquals(outcome, ["cancelled", "BBBB"]);
    assertEquals(sent(), "AAAAnext");
  });
}

Deno.test("write(): data that is not a Uint8Array or a string is a TypeError at the call that says how to pass it", () => {
  const stream = new SimulatedStream("sink");
  const cases: [unknown, string][] = [
    [new ArrayBuffer(4), "an object of class ArrayBuffer; wrap it as new Uint8Array(buffer)"],
    [
      new DataView(new ArrayBuffer(4)),
      "an object of class DataView; write its bytes as new Uint8Array(view.buffer, view.byteOffset, view.byteLength)",
    ],
    [new Uint16Array(2), "an object of class Uint16Array; write its bytes as new Uint8Array("],
    [undefined, "undefined; encode it first"],
    [42, "number 42; encode it first"],
  ];
  for (const [data, expected] of cases) {
    assertThrows(
      () => write(stream, data as Uint8Array),
      TypeError,
      `Cannot write(sink, …): data must be a Uint8Array or a string, but got ${expected}`,
    );
  }
  assertEquals(stream.buffered, 0);
});

Deno.test("new ConnStream(conn, { bufferSize }): anything but a positive integer is a RangeError naming bufferSize", () => {
  const { conn } = slowConn(1);
  for (const bufferSize of [0, -1, 1.5, NaN, Infinity]) {
    assertThrows(
      () => new ConnStream(conn, { name: "c", bufferSize }),
      RangeError,
      `Cannot create ConnStream "c": bufferSize must be a positive integer (bytes), got ${bufferSize}`,
    );
  }
  assertEquals(new ConnStream(conn, { bufferSize: 1 }).name, `${HOST}:1`);
});

Deno.test("close(listener) after a connection woke the accepting task, before it ran: accept() throws BadResource", async () => {
  const real = Deno.listen({ hostname: HOST, port: 0 });
  const loop = new Loop();
  let hostAccepts = 0;
  // Counts the host's accept() calls: a task spinning on a closed listener
  // would start one after another (and, all in microtasks, starve timers:
  // the count is what stops it).
  const listener = {
    addr: real.addr,
    accept(): Promise<Deno.Conn> {
      if (++hostAccepts === 100) loop.stop("the accepting task spins");
      return real.accept();
    },
    close(): void {
      real.close();
    },
  } as unknown as Deno.Listener;
  const error = await loop.runUntilComplete(function* main() {
    const server = yield* spawn(function* server(): Operation<unknown> {
      try {
        yield* accept(listener);
        return "accepted";
      } catch (error) {
        return error;
      }
    });
    yield* spawn(function* closer() {
      while (server.state !== "ready") yield* yieldNow(); // woken by the client
      yield* close(listener);
    });
    yield* close(yield* connect({ hostname: HOST, port: real.addr.port }));
    return yield* join(server);
  });
  assertInstanceOf(error, Deno.errors.BadResource);
  assertStringIncludes(error.message, `Cannot accept on ${HOST}:${real.addr.port}: it was closed`);
  assertEquals(hostAccepts, 1);
});

Deno.test("accept(): a task of another Loop accepting on the same listener gets Busy, and the first still accepts", async () => {
  await withListener(async (listener) => {
    const first = new Loop();
    const accepting = first.runUntilComplete(function* serverA() {
      const stream = yield* timeout(GUARD_MS, accept(listener));
      yield* close(stream);
      return "accepted";
    });
    // Let the first loop's task start waiting in accept().
    while (!first.running) await new Promise((resolve) => setTimeout(resolve, 1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    const error = await run(function* serverB() {
      try {
        yield* accept(listener);
      } catch (error) {
        return error;
      }
    });
    assertInstanceOf(error, Deno.errors.Busy);
    assertStringIncludes(error.message, 'in task "serverB": task "');
    assertStringIncludes(error.message, '" already waits there');
    const client = await Deno.connect({ hostname: HOST, port: listener.addr.port });
    assertEquals(await accepting, "accepted");
    client.close();
  });
});

Deno.test("accept(): a server woken by a client, then interrupted before it ran, keeps accepting (no Busy against itself)", async () => {
  const log: string[] = [];
  await withListener((listener) =>
    run(function* main() {
      const server = yield* spawn(function* server(): Operation<void> {
        const me = yield* currentTask();
        // A handler that fails just as a client arrives, while the server is
        // queued: the server resumes with the failure at its accept().
        yield* spawn(function* handler(): Operation<never> {
          while (me.state !== "ready") yield* yieldNow();
          throw new Error("handler failed");
        });
        while (log.filter((entry) => entry === "accepted").length < 2) {
          try {
            yield* close(yield* accept(listener));
            log.push("accepted");
          } catch (error) {
            if (!(error instanceof TaskFailedError)) throw error;
            log.push("handler failure logged");
          }
        }
      });
      yield* close(yield* connect({ hostname: HOST, port: listener.addr.port }));
      while (!log.includes("accepted")) yield* yieldNow();
      yield* close(yield* connect({ hostname: HOST, port: listener.addr.port }));
      yield* timeout(GUARD_MS, join(server));
      yield* close(listener);
    })
  );
  assertEquals(log, ["handler failure logged", "accepted", "accepted"]);
});

Deno.test("close(listener) in one loop ends an accept() waiting on it in another with BadResource", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const first = new Loop();
  const accepting = first.runUntilComplete(function* serverA() {
    try {
      yield* timeout(GUARD_MS, accept(listener));
      return "accepted";
    } catch (error) {
      return (error as Error).name;
    }
  });
  while (!first.running) await new Promise((resolve) => setTimeout(resolve, 1));
  await new Promise((resolve) => setTimeout(resolve, 10)); // serverA waits in accept()
  await run(function* closer() {
    yield* close(listener);
  });
  assertEquals(await accepting, "BadResource");
});

Deno.test("new ConnStream() given something other than a connection is a TypeError at the call that says what to pass", () => {
  const stream = new ConnStream(slowConn(1).conn, { name: "c" });
  const listener = { addr: { transport: "tcp" }, accept() {}, close() {} };
  const cases: [unknown, string][] = [
    // These used to fail with "Cannot read properties of undefined (reading 'remoteAddr')" or "'transport'".
    [undefined, "undefined; open one with yield* connect({ hostname, port })"],
    [stream, "an object of class ConnStream; it is a ConnStream already: use it as it is"],
    [
      listener,
      "an object of class Object; to take a connection from a listener, use yield* accept(listener)",
    ],
  ];
  for (const [conn, expected] of cases) {
    assertThrows(
      () => new ConnStream(conn as Deno.Conn),
      TypeError,
      `new ConnStream() expected a Deno.Conn (from Deno.connect() or listener.accept()), but got ${expected}`,
    );
  }
});

Deno.test("connect() given no options or a bad port throws at the call, not at the yield*", () => {
  assertThrows(
    () => connect(undefined as unknown as Deno.ConnectOptions),
    TypeError,
    'connect() expected options such as { hostname: "127.0.0.1", port: 8080 }, but got undefined',
  );
  assertThrows(
    () => connect({ hostname: HOST } as Deno.ConnectOptions),
    TypeError,
    `Cannot connect to ${HOST}:undefined: port must be an integer from 0 to 65535`,
  );
  assertThrows(
    () => connect({ hostname: HOST, port: "8080" as unknown as number }),
    TypeError,
    `Cannot connect to ${HOST}:the string "8080": port must be an integer from 0 to 65535`,
  );
  assertThrows(
    () => connect({ hostname: HOST, port: 70_000 }),
    RangeError,
    `Cannot connect to ${HOST}:70000: port must be an integer from 0 to 65535`,
  );
});

Deno.test("write(): a write refused because another task waits to write sends nothing, and the first writer's bytes go out alone", async () => {
  function* refusedWrite(stream: SimulatedStream | ConnStream, data: string): Operation<unknown> {
    try {
      yield* write(stream, data);
      return "written";
    } catch (error) {
      return error;
    }
  }
  // A simulated stream makes the first writer wait some cycles.
  const pipe = new SimulatedStream("pipe", { waitCycles: 3 });
  const [refusal, text] = await run(function* main() {
    const first = yield* spawn(function* writerA() {
      yield* write(pipe, "A");
    });
    const refused = yield* spawn(() => refusedWrite(pipe, "B"));
    yield* join(first);
    const refusal = yield* join(refused);
    pipe.end();
    let text = "";
    for (let chunk; (chunk = yield* read(pipe)) !== null;) text += decode(chunk);
    return [refusal, text];
  });
  assertInstanceOf(refusal, Error);
  assertStringIncludes(refusal.message, 'task "writerA" already waits for it');
  assertEquals(text, "A");

  // A connection whose host writes take two bytes at a time.
  const { conn, sent } = slowConn(2);
  const stream = new ConnStream(conn, { name: "slow" });
  const connRefusal = await run(function* main() {
    const first = yield* spawn(function* writerA() {
      yield* write(stream, "AAAA");
    });
    yield* yieldNow();
    const refusal = yield* refusedWrite(stream, "BBBB");
    yield* join(first);
    // Waits for anything still going out.
    yield* write(stream, "");
    return refusal;
  });
  assertInstanceOf(connRefusal, Error);
  assertStringIncludes(connRefusal.message, 'task "writerA" already waits for it');
  assertEquals(sent(), "AAAA");
});

/**
 * Runs `main` on `loop` with a guard that stops it after GUARD_MS: a run
 * that only the guard could end rejects with the guard's reason.
 */
async function runGuarded<T>(loop: Loop, main: () => Operation<T>): Promise<T> {
  const guard = setTimeout(() => loop.stop("stopped by the guard"), GUARD_MS);
  try {
    return await loop.runUntilComplete(main);
  } finally {
    clearTimeout(guard);
  }
}

/**
 * Connects a client to `listener` and accepts it, runs `body` with both
 * ends, then closes them and the listener.
 */
function* withConnection<T>(
  listener: Deno.TcpListener,
  body: (client: ConnStream, server: ConnStream) => Operation<T>,
): Operation<T> {
  const client = yield* connect({ hostname: HOST, port: listener.addr.port });
  const server = yield* accept(listener);
  try {
    return yield* body(client, server);
  } finally {
    yield* close(client);
    yield* close(server);
    yield* close(listener);
  }
}

Deno.test("Task.cancel() from a host callback reaches a task waiting on a socket while the run waits for the outside world", async () => {
  await withListener(async (listener) => {
    const reason = await runGuarded(
      new Loop(),
      () =>
        withConnection(listener, function* cancelReader(_client, server) {
          const reader = yield* spawn(function* reader() {
            yield* read(server); // no byte ever comes
          });
          // Fires once every task waits: the reader on its socket, main on it.
          setTimeout(() => reader.cancel("cancelled from a host timer"), 0);
          try {
            yield* join(reader);
          } catch (error) {
            assertInstanceOf(error, CancelledError);
            return error.reason;
          }
          return "not cancelled";
        }),
    );
    assertEquals(reason, "cancelled from a host timer");
  });
});

Deno.test("loop.spawn() from a host callback starts its task while the run waits on a socket", async () => {
  await withListener(async (listener) => {
    const loop = new Loop();
    const received = await runGuarded(
      loop,
      () =>
        withConnection(listener, function* awaitByte(client, server) {
          // Fires once main waits for the byte that only this task sends.
          setTimeout(() =>
            loop.spawn(function* late() {
              yield* write(client, "x");
            }), 0);
          return decode(yield* read(server));
        }),
    );
    assertEquals(received, "x");
  });
});

Deno.test("connect(), accept() and close(): a second yield* of one operation is a TypeError, not undefined", async () => {
  await withListener(async (listener) => {
    const port = listener.addr.port;
    const messages = await run(function* main() {
      const connecting = connect({ hostname: HOST, port });
      const client = yield* connecting;
      const accepting = accept(listener);
      const server = yield* accepting;
      const closing = close(client);
      yield* closing;
      const messages: string[] = [];
      for (const operation of [connecting, accepting, closing]) {
        try {
          yield* operation as Operation<unknown>;
          messages.push("ran again");
        } catch (error) {
          assertInstanceOf(error, TypeError);
          messages.push(error.message);
        }
      }
      yield* close(server);
      yield* close(listener);
      return messages;
    });
    const twice = (what: string): string =>
      `Cannot run an operation twice (${what}) in task "main"; call the operation function again for each use`;
    assertEquals(messages.slice(0, 2), [
      twice(`connect to ${HOST}:${port}`),
      twice(`accept on ${HOST}:${port}`),
    ]);
    assertStringIncludes(messages[2], "Cannot run an operation twice (close of stream");
  });
});

Deno.test("gather(accept(listener)) is refused as one body without accepting: the waiting client goes to the next accept()", async () => {
  await withListener(async (listener) => {
    const port = listener.addr.port;
    const greeting = await run(function* main() {
      const client = yield* connect({ hostname: HOST, port });
      assertThrows(
        () => gather(accept(listener) as never),
        TypeError,
        "gather() expected a list of bodies, but got one task body (an operation)",
      );
      const server = yield* timeout(GUARD_MS, accept(listener));
      yield* write(server, "hello");
      const greeting = decode(yield* read(client));
      yield* close(server);
      yield* close(client);
      yield* close(listener);
      return greeting;
    });
    assertEquals(greeting, "hello");
  });
});

Deno.test("connect(): a connect cancelled while in flight at the run's end has settled when run() returns", async () => {
  await withListener(async (listener) => {
    // Counts the host operations connect() starts, and those settled.
    const realConnect = Deno.connect;
    const started: Promise<void>[] = [];
    let settled = 0;
    Deno.connect = ((options: Deno.ConnectOptions) => {
      const opening = realConnect(options);
      started.push(opening.then(() => void settled++, () => void settled++));
      return opening;
    }) as typeof Deno.connect;
    try {
      await run(function* main() {
        yield* spawn(function* dialer() {
          yield* connect({ hostname: HOST, port: listener.addr.port });
        });
        yield* yieldNow(); // the dialer starts connecting; main returns
      });
      assertEquals([started.length, settled], [1, 1]);
    } finally {
      Deno.connect = realConnect;
      await Promise.all(started);
    }
  });
});

Deno.test("connect(): a connect that a timeout gives up on is aborted, so the run ends at once, not when the host's connect would", async () => {
  const realConnect = Deno.connect;
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  let signal: AbortSignal | undefined;
  // A connect that stays in flight (a host that drops the SYN) until
  // aborted, or until the test ends it.
  Deno.connect = ((options: Deno.ConnectOptions) => {
    signal = options.signal;
    return new Promise<Deno.Conn>((_resolve, reject) => {
      const refuse = () => reject(new Deno.errors.ConnectionRefused("refused"));
      options.signal?.addEventListener("abort", refuse);
      released.then(refuse);
    });
  }) as typeof Deno.connect;
  // Ends the host's connect anyway, so that a run waiting for it fails the
  // test rather than hangs it.
  const guard = setTimeout(() => release(), GUARD_MS);
  try {
    const outcome = await run(function* main() {
      try {
        yield* timeout(20, connect({ hostname: HOST, port: 9 }));
        return "connected";
      } catch (error) {
        if (!(error instanceof TimeoutError)) throw error;
        return "gave up";
      }
    });
    assertEquals(outcome, "gave up");
    assertEquals(signal?.aborted, true);
  } finally {
    clearTimeout(guard);
    release();
    Deno.connect = realConnect;
  }
});

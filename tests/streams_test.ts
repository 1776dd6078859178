import { Buffer } from "node:buffer";
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertInstanceOf,
  assertLess,
  assertRejects,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  call,
  cancel,
  close,
  DeadlockError,
  EVENT_READ,
  EVENT_WRITE,
  gather,
  join,
  Loop,
  type Operation,
  race,
  read,
  readInto,
  readView,
  run,
  runSync,
  Selector,
  SimulatedStream,
  type SimulatedStreamOptions,
  sleep,
  spawn,
  type Stream,
  timeout,
  TimeoutError,
  VirtualClock,
  WOULD_BLOCK,
  write,
  yieldNow,
} from "../mod.ts";

const decode = (bytes: Uint8Array | null): string | null =>
  bytes === null ? null : new TextDecoder().decode(bytes);

Deno.test("SimulatedStream reproduces the tutorial: B (1 cycle) before A (20 cycles)", () => {
  const log: string[] = [];
  runSync(function* helloWorld() {
    yield* gather([
      function* helloWorldRead() {
        const stream = new SimulatedStream("A", { waitCycles: 20, data: "x" });
        yield* read(stream);
        log.push("Stream A is reading...");
      },
      function* helloWorldWrite() {
        const stream = new SimulatedStream("B", { waitCycles: 1 });
        yield* write(stream, "Hello World!");
        log.push("Stream B writing Hello World!...");
      },
    ]);
  });
  assertEquals(log, ["Stream B writing Hello World!...", "Stream A is reading..."]);
});

Deno.test("SimulatedStream becomes ready after exactly waitCycles selector polls", () => {
  const stream = new SimulatedStream("A", { waitCycles: 3, data: "hi" });
  const loop = new Loop();
  const task = loop.spawn(function* idle() {});
  const selector = new Selector();
  selector.register(stream, EVENT_READ, task);
  assertEquals(selector.select().length, 0);
  assertEquals(selector.select().length, 0);
  const ready = selector.select();
  assertEquals(ready.map((key) => [key.stream.name, key.event, key.task]), [[
    "A",
    EVENT_READ,
    task,
  ]]);
  assertEquals(selector.size, 0, "registrations are one-shot");
});

Deno.test("SimulatedStream with a reader and a writer waiting counts each select once, as the tutorial's MySelect asks each stream once", () => {
  const stream = new SimulatedStream("RW", { waitCycles: 4, data: "hi" });
  const loop = new Loop();
  const reader = loop.spawn(function* reader() {});
  const writer = loop.spawn(function* writer() {});
  const selector = new Selector();
  selector.register(stream, EVENT_WRITE, writer);
  selector.register(stream, EVENT_READ, reader);
  const readyPerSelect = [1, 2, 3, 4].map(() =>
    selector.select().map((key) => `${key.event} ${key.task.name}`)
  );
  assertEquals(readyPerSelect, [[], [], [], [`${EVENT_READ} reader`, `${EVENT_WRITE} writer`]]);
});

Deno.test("SimulatedStream copies its initial data: the caller's array is neither read back nor watched", () => {
  const data = new TextEncoder().encode("abc");
  const stream = new SimulatedStream("copy", { data, ended: true });
  data.fill("x".charCodeAt(0));
  const chunk = runSync(function* main() {
    return yield* read(stream);
  });
  assertEquals(decode(chunk), "abc");
  assertEquals(chunk === data, false, "read() returns a new array");
});

Deno.test("Selector rejects a second reader on the same stream with a clear error", () => {
  const stream = new SimulatedStream("S");
  const loop = new Loop();
  const first = loop.spawn(function* first() {});
  const second = loop.spawn(function* second() {});
  const selector = new Selector();
  selector.register(stream, EVENT_READ, first);
  selector.register(stream, EVENT_WRITE, second);
  const error = assertThrows(
    () => selector.register(stream, EVENT_READ, second),
    Deno.errors.Busy,
  );
  assertStringIncludes(error.message, 'task "first" already waits for it');
  selector.unregister(stream);
  assertEquals(selector.size, 0);
});

Deno.test("read() returns partial chunks, then null at the end of the stream", () => {
  const stream = new SimulatedStream("data", { data: "abcdef", ended: true });
  const chunks = runSync(function* main() {
    const out: (string | null)[] = [];
    out.push(decode(yield* read(stream, 4)));
    out.push(decode(yield* read(stream, 4)));
    out.push(decode(yield* read(stream)));
    out.push(decode(yield* read(stream)));
    return out;
  });
  assertEquals(chunks, ["abcd", "ef", null, null]);
});

Deno.test("SimulatedStream is a loopback pipe between a writer task and a reader task", () => {
  const pipe = new SimulatedStream("pipe", { waitCycles: 2 });
  const received = runSync(function* main() {
    const reader = yield* spawn(function* reader() {
      let text = "";
      for (;;) {
        const chunk = yield* read(pipe);
        if (chunk === null) return text;
        text += decode(chunk);
      }
    });
    for (const word of ["one ", "two ", "three"]) {
      yield* write(pipe, word);
      yield* yieldNow();
    }
    pipe.end();
    return yield* join(reader);
  });
  assertEquals(received, "one two three");
});

Deno.test("read() and write() operations run once: a second yield* of the same one is a TypeError, not a silent undefined", () => {
  const stream = new SimulatedStream("A", { data: "abcdef" });
  const errors = runSync(function* main() {
    const found: string[] = [];
    const reading = read(stream, 2);
    yield* reading;
    try {
      yield* reading;
    } catch (error) {
      found.push((error as Error).message);
    }
    const writing = write(stream, "x");
    yield* writing;
    try {
      yield* writing;
    } catch (error) {
      found.push((error as Error).message);
    }
    return found;
  });
  assertEquals(errors.length, 2);
  for (const message of errors) assertStringIncludes(message, "Cannot run an operation twice");
  assertStringIncludes(errors[0], 'EVENT_READ on stream "A"');
  assertStringIncludes(errors[1], 'EVENT_WRITE on stream "A"');
});

Deno.test("read() and write() that failed or were cancelled: a second yield* of the same one is a TypeError, not a retry or a silent undefined", () => {
  const outcomes = runSync(function* main() {
    const found: string[] = [];
    function* twice(op: Operation<unknown>): Operation<unknown> {
      let first: unknown;
      for (let i = 0; i < 2; i++) {
        try {
          found.push(`value ${yield* op}`);
        } catch (error) {
          found.push((error as Error).name);
          first ??= error;
        }
      }
      return first;
    }
    // A read whose stream threw once: the same read does not read again.
    const failing = new SimulatedStream("failing", { data: "abc" });
    const tryRead = failing.tryRead.bind(failing);
    failing.tryRead = () => {
      failing.tryRead = tryRead;
      throw new Error("transient");
    };
    yield* twice(read(failing));
    // A read and a write cancelled while they wait.
    const waiting = [
      read(new SimulatedStream("silent")),
      write(new SimulatedStream("slow", { waitCycles: 100 }), "xyz"),
    ];
    for (const op of waiting) {
      const task = yield* spawn(function* cancelled() {
        throw yield* twice(op);
      });
      yield* yieldNow();
      yield* cancel(task);
    }
    return found;
  });
  assertEquals(outcomes, [
    "Error",
    "TypeError",
    "CancelledError",
    "TypeError",
    "CancelledError",
    "TypeError",
  ]);
});

Deno.test("read() on a stream nobody writes is a DeadlockError naming the task and stream", () => {
  const stream = new SimulatedStream("silent");
  const error = assertThrows(
    () =>
      runSync(function* lonelyReader() {
        yield* read(stream);
      }),
    DeadlockError,
  );
  assertStringIncludes(
    error.message,
    'task "lonelyReader" waits for EVENT_READ on stream "silent"',
  );
});

Deno.test("close() wakes a task waiting to read with BadResource; others keep running", () => {
  const stream = new SimulatedStream("S");
  const outcome = runSync(function* main() {
    const reader = yield* spawn(function* reader() {
      try {
        yield* read(stream);
        return "read";
      } catch (error) {
        return error;
      }
    });
    const bystander = yield* spawn(function* bystander() {
      yield* yieldNow();
      return "still running";
    });
    yield* yieldNow();
    yield* close(stream);
    return [yield* join(reader), yield* join(bystander)];
  });
  assertInstanceOf(outcome[0], Deno.errors.BadResource);
  assertStringIncludes((outcome[0] as Error).message, 'task "main" closed it while task "reader"');
  assertEquals(outcome[1], "still running");
});

Deno.test("read() and write() reject non-streams and bad sizes at the call", () => {
  assertThrows(() => read({} as never), TypeError, "new ConnStream(conn)");
  assertThrows(() => read(new SimulatedStream("S"), 0), RangeError);
  assertThrows(() => new SimulatedStream("S", { waitCycles: -1 }), RangeError);
});

Deno.test("write() to a closed stream throws BadResource into the writer, also when it writes nothing", () => {
  for (const data of ["late", ""]) {
    const stream = new SimulatedStream("S");
    const error = runSync(function* main() {
      yield* close(stream);
      try {
        yield* write(stream, data);
      } catch (error) {
        return error;
      }
    });
    assertInstanceOf(error, Deno.errors.BadResource);
    assertEquals(
      error.message,
      'Stream "S" is closed: task "main" cannot write to it; close a stream only once no task reads or writes it any more',
    );
  }
});

Deno.test("write() to an ended stream throws BrokenPipe into the writer", () => {
  const stream = new SimulatedStream("S", { ended: true });
  const error = runSync(function* main() {
    try {
      yield* write(stream, "late");
    } catch (error) {
      return error;
    }
  });
  assertInstanceOf(error, Deno.errors.BrokenPipe);
});

Deno.test("call() resumes with the fulfilled value and throws the rejection", async () => {
  const result = await run(function* main() {
    const value = yield* call(() => Promise.resolve(41));
    try {
      yield* call(() => Promise.reject(new RangeError("nope")));
    } catch (error) {
      return [value + 1, (error as Error).name];
    }
  });
  assertEquals(result, [42, "RangeError"]);
});

Deno.test("call() takes plain values and sync throws; rejects non-functions at the call", async () => {
  const result = await run(function* main() {
    const plain = yield* call(() => 7);
    try {
      yield* call((): number => {
        throw new Error("sync");
      });
    } catch (error) {
      return [plain, (error as Error).message];
    }
  });
  assertEquals(result, [7, "sync"]);
  assertThrows(() => call(42 as never), TypeError);
});

Deno.test("call(fn, { abortable: true }): fn's signal is aborted, with an AbortError naming the task, when the wait is cancelled, timed out or loses a race; not when it settles", async () => {
  const reasons: string[] = [];
  /** Work that ends only when its signal is aborted. */
  const untilAborted = (signal: AbortSignal): Promise<never> =>
    new Promise((_, reject) =>
      signal.addEventListener("abort", () => {
        reasons.push(`${signal.reason.name}: ${signal.reason.message}`);
        reject(signal.reason);
      })
    );
  let settledSignal: AbortSignal | undefined;
  const ABORTABLE = { abortable: true } as const;
  await run(function* main() {
    const fetcher = yield* spawn(function* fetcher() {
      yield* call(untilAborted, ABORTABLE);
    });
    yield* yieldNow();
    yield* cancel(fetcher);
    try {
      yield* timeout(1, function* slow() {
        yield* call(untilAborted, ABORTABLE);
      });
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
    }
    yield* race([function* loser() {
      yield* call(untilAborted, ABORTABLE);
    }, yieldNow()]);
    yield* call((signal) => {
      settledSignal = signal;
      return Promise.resolve(1);
    }, ABORTABLE);
  });
  assertEquals(reasons, [
    'AbortError: Task "fetcher" stopped waiting for a Promise from call(untilAborted) (it was cancelled or interrupted)',
    'AbortError: Task "slow" stopped waiting for a Promise from call(untilAborted) (it was cancelled or interrupted)',
    'AbortError: Task "loser" stopped waiting for a Promise from call(untilAborted) (it was cancelled or interrupted)',
  ]);
  assertEquals(settledSignal?.aborted, false);
});

Deno.test("call(fn) without { abortable: true } calls fn with no argument: a parameter of its own keeps its default", async () => {
  function load(path?: string): Promise<string> {
    return Promise.resolve(path ?? "default.json");
  }
  assertEquals(await run(() => call(load)), "default.json");
  // A function that needs the signal does not type-check without the option.
  // @ts-expect-error: (signal: AbortSignal) => … is no () => …
  const _unasked = () => call((signal: AbortSignal) => Promise.resolve(signal.aborted));
});

Deno.test("call() of a Promise that never settles is reported as waiting on it", async () => {
  const error = await assertRejects(
    () =>
      new Loop({ stallTimeoutMs: 30 }).runUntilComplete(function* main() {
        yield* call(function neverSettles() {
          return new Promise<void>(() => {});
        });
      }),
    DeadlockError,
  );
  assertStringIncludes(error.message, 'task "main" waits for a Promise from call(neverSettles)');
});

Deno.test("cancelling a task waiting on call() ignores the late outcome", async () => {
  let release!: (value: string) => void;
  const result = await run(function* main() {
    const waiter = yield* spawn(function* waiter() {
      return yield* call(() => new Promise<string>((resolve) => release = resolve));
    });
    yield* yieldNow();
    waiter.cancel("no longer needed");
    try {
      yield* join(waiter);
    } catch (error) {
      release("late");
      yield* call(() => Promise.resolve());
      return [waiter.state, (error as Error).name];
    }
  });
  assertEquals(result, ["cancelled", "CancelledError"]);
});

Deno.test("Selector: describe(), waiters() and unregister() see push and polled registrations alike, each selector only its own", () => {
  const loop = new Loop();
  const reader = loop.spawn(function* reader() {});
  const writer = loop.spawn(function* writer() {});
  const notifies: (() => void)[] = [];
  const pushed = {
    name: "socket",
    watch(_event: string, notify: () => void): void {
      notifies.push(notify);
    },
  };
  const polled = new SimulatedStream("simulated", { waitCycles: 5 });
  const selector = new Selector();
  const other = new Selector();
  selector.register(pushed, EVENT_READ, reader);
  selector.register(pushed, EVENT_WRITE, writer);
  selector.register(polled, EVENT_READ, reader);
  assertEquals(selector.describe().sort(), [
    'EVENT_READ on stream "simulated"',
    'EVENT_READ on stream "socket"',
    'EVENT_WRITE on stream "socket"',
  ]);
  assertEquals(selector.waiters(pushed).map((task) => task.name), ["reader", "writer"]);
  // Another selector has nothing there, and cannot take it away.
  assertEquals(other.waiters(pushed), []);
  other.unregister(pushed);
  assertEquals(selector.size, 3);
  selector.unregister(pushed, EVENT_WRITE);
  assertEquals(selector.describe().sort(), [
    'EVENT_READ on stream "simulated"',
    'EVENT_READ on stream "socket"',
  ]);
  // A woken registration is taken by select(), once, even if notified twice.
  notifies[0]();
  notifies[0]();
  assertEquals(selector.select().map((key) => `${key.event} ${key.task.name}`), [
    "EVENT_READ reader",
  ]);
  assertEquals(selector.describe(), ['EVENT_READ on stream "simulated"']);
  selector.unregister(polled);
  assertEquals([selector.size, selector.describe().length, selector.waiters(polled).length], [
    0,
    0,
    0,
  ]);
  // The stream is free again, for this selector or another.
  other.register(pushed, EVENT_READ, reader);
  assertEquals(other.waiters(pushed).map((task) => task.name), ["reader"]);
  other.unregister(pushed);
});

/**
 * A read-only push stream for tests: `watch` is the test's; reads take
 * what `take()` gives, or would block while it gives null.
 */
function pushStream(
  name: string,
  watch: (event: string, notify: () => void) => void,
  take: () => Uint8Array | null,
): Stream {
  return {
    name,
    closed: false,
    watch,
    tryRead: () => take() ?? WOULD_BLOCK,
    tryReadInto: () => WOULD_BLOCK,
    tryWrite: () => WOULD_BLOCK,
    flushed: () => true,
    close: () => undefined,
  };
}

Deno.test("read(): a push stream that reports readiness twice wakes its reader once", async () => {
  let data: Uint8Array | null = null;
  let ready: (() => void) | null = null;
  const stream = pushStream("chatty", (_event, notify) => ready = notify, () => {
    const taken = data;
    data = null;
    return taken;
  });
  const chunks = await run(function* main() {
    const got: number[] = [];
    yield* spawn(function* feeder() {
      yield* call(() => Promise.resolve());
      data = new Uint8Array(3);
      ready!();
      ready!(); // once more: must not wake the reader a second time
    });
    got.push((yield* read(stream))!.length);
    // Woken twice, the reader would run again at once, and the second
    // wake-up would end this sleep before its time.
    const start = performance.now();
    yield* sleep(20);
    got.push(performance.now() - start >= 19 ? 1 : 0);
    return got;
  });
  assertEquals(chunks, [3, 1]);
});

Deno.test("Selector.select(timeoutMs) resolves early when a push stream becomes ready", async () => {
  const loop = new Loop();
  const task = loop.spawn(function* idle() {});
  const selector = new Selector();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pushed = {
    name: "pushed",
    watch(_event: string, notify: () => void): void {
      timer = setTimeout(notify, 5);
    },
  };
  const started = performance.now();
  selector.register(pushed, EVENT_READ, task);
  assertEquals(selector.watching, true);
  const keys = await selector.select(5_000);
  clearTimeout(timer);
  assertEquals(keys.map((key) => key.stream.name), ["pushed"]);
  assertLess(performance.now() - started, 1_000, "it did not wait for the 5 s timeout");
  assertEquals(selector.size, 0);
});

Deno.test("Selector.wait(timeoutMs, onReady) calls onReady inside the callback that made a push stream ready, and only then", async () => {
  const loop = new Loop();
  const task = loop.spawn(function* idle() {});
  const selector = new Selector();
  let notify: () => void = () => {};
  const pushed = {
    name: "pushed",
    watch(_event: string, ready: () => void): void {
      notify = ready;
    },
  };
  const calls: string[] = [];
  selector.register(pushed, EVENT_READ, task);
  const waiting = selector.wait(Infinity, () => calls.push("ready"));
  notify();
  assertEquals(calls, ["ready"], "called before notify() returned");
  await waiting;
  assertEquals(selector.select().map((key) => key.stream.name), ["pushed"]);
  // A wakeup or a timeout ends the wait without calling onReady.
  const woken = selector.wait(Infinity, () => calls.push("wakeup"));
  selector.wakeup();
  await woken;
  await selector.wait(1, () => calls.push("timeout"));
  assertEquals(calls, ["ready"]);
});

/**
 * A user stream whose data is handed over by code outside its loop, which
 * reports readiness synchronously; `receive` runs a loop that reads it.
 */
function handoffStream(): {
  deliver(text: string): void;
  receive(): Promise<void>;
  /** What the receiving task has read so far, as its own code saw it. */
  received(): string;
} {
  let received = "";
  let notify: (() => void) | null = null;
  let data: Uint8Array | null = null;
  const stream = pushStream("handoff", (_event, ready) => {
    if (data !== null) ready();
    else notify = ready;
  }, () => {
    const taken = data;
    data = null;
    return taken;
  });
  return {
    deliver(text: string): void {
      data = new TextEncoder().encode(text);
      notify!();
    },
    receive: () =>
      new Loop().runUntilComplete(function* receiver() {
        received = new TextDecoder().decode((yield* read(stream))!);
      }),
    received: () => received,
  };
}

Deno.test("a push stream that reports readiness from inside another loop's task does not run this loop's tasks there", async () => {
  const handoff = handoffStream();
  const receiving = handoff.receive();
  await new Promise((resolve) => setTimeout(resolve, 5));
  let seenInsideSender = "not yet";
  runSync(function* sender() {
    handoff.deliver("hello");
    // The receiving loop runs later, from its own driver, not in this step.
    seenInsideSender = handoff.received();
  });
  await receiving;
  assertEquals(seenInsideSender, "");
  assertEquals(handoff.received(), "hello");
});

Deno.test("a push stream that reports readiness from another loop's select phase does not run this loop's tasks there", async () => {
  const handoff = handoffStream();
  const receiving = handoff.receive();
  await new Promise((resolve) => setTimeout(resolve, 5));
  let seenInsidePoll = "not yet";
  let polled = false;
  // The sender's own stream hands the data over from inside poll(), which
  // the sender loop calls in the select phase of a tick.
  const trigger: Stream = {
    name: "trigger",
    closed: false,
    poll(): boolean {
      handoff.deliver("hello");
      seenInsidePoll = handoff.received();
      polled = true;
      return true;
    },
    tryRead: () => polled ? null : WOULD_BLOCK,
    tryReadInto: () => WOULD_BLOCK,
    tryWrite: () => WOULD_BLOCK,
    flushed: () => true,
    close: () => undefined,
  };
  runSync(function* sender() {
    yield* read(trigger);
  });
  await receiving;
  assertEquals(seenInsidePoll, "");
  assertEquals(handoff.received(), "hello");
});

Deno.test("Selector.select(timeoutMs) returns nothing after the timeout when nothing is ready", async () => {
  const loop = new Loop();
  const task = loop.spawn(function* idle() {});
  const selector = new Selector();
  selector.register(new SimulatedStream("slow", { waitCycles: 100 }), EVENT_READ, task);
  const started = performance.now();
  assertEquals(await selector.select(20), []);
  assertGreaterOrEqual(performance.now() - started, 19);
  assertEquals(selector.size, 1, "the registration stays until it is ready");
});

Deno.test("Selector.wait() while another wait is pending rejects, and the first wait keeps its own timeout", async () => {
  const selector = new Selector();
  const started = performance.now();
  const first = selector.wait(30);
  const second = await assertRejects(() => selector.wait(5));
  assertStringIncludes(String(second), "it serves one wait at a time");
  await assertRejects(() => selector.select(5), Error, "one wait at a time");
  assertEquals(await first, true, "the first wait timed out");
  assertGreaterOrEqual(performance.now() - started, 29);
  // Once it has ended, the selector waits again.
  const third = selector.wait(Infinity);
  selector.wakeup();
  assertEquals(await third, false);
});

Deno.test("VirtualClock stands still while a task waits on a Promise", async () => {
  const loop = new Loop({ clock: new VirtualClock() });
  const log: string[] = [];
  await loop.runUntilComplete(function* main() {
    const sleeper = yield* spawn(function* sleeper() {
      yield* sleep(1_000);
      log.push(`sleeper woke@${loop.time()}`);
    });
    yield* call(() => new Promise((resolve) => setTimeout(resolve, 10)));
    log.push(`promise settled@${loop.time()}`);
    yield* join(sleeper);
  });
  assertEquals(log, ["promise settled@0", "sleeper woke@1000"]);
});

Deno.test("new SimulatedStream(): data that is not a Uint8Array or a string, or options that are no object, is a TypeError that says how to pass it", () => {
  const cases: [unknown, string][] = [
    // It used to be kept as it was: buffered NaN, and read() said end of stream.
    [
      { data: new ArrayBuffer(3) },
      "data must be a Uint8Array or a string, but got an object of class ArrayBuffer; wrap it as new Uint8Array(buffer)",
    ],
    // read() returned the caller's array itself, not bytes.
    [
      { data: [104, 105] },
      "data must be a Uint8Array or a string, but got an array; encode it first",
    ],
    [
      { data: new Uint16Array(2) },
      "data must be a Uint8Array or a string, but got an object of class Uint16Array; write its bytes as new Uint8Array(",
    ],
    // The text was ignored: an empty stream.
    [
      "hi",
      'options must be an object such as { data: "text", waitCycles: 2 }, but got the string "hi"',
    ],
  ];
  for (const [options, expected] of cases) {
    assertThrows(
      () => new SimulatedStream("S", options as SimulatedStreamOptions),
      TypeError,
      `Cannot create SimulatedStream "S": ${expected}`,
    );
  }
  assertThrows(
    () => new SimulatedStream("S", { waitCycles: "2" as unknown as number }),
    RangeError,
    'Cannot create SimulatedStream "S": waitCycles must be an integer >= 0, got the string "2"',
  );
});

Deno.test("readInto(), read() and readView() given a buffer or a max of the wrong kind say at the call what they got and what to pass", () => {
  const stream = new SimulatedStream("S", { data: "abc" });
  const buffers: [unknown, string][] = [
    [
      new ArrayBuffer(4),
      "an object of class ArrayBuffer; read into its bytes as new Uint8Array(buffer)",
    ],
    [
      new Uint16Array(4),
      "an object of class Uint16Array; read into its bytes as new Uint8Array(view.buffer, view.byteOffset, view.byteLength)",
    ],
    [64, "number 64; allocate one as new Uint8Array(size)"],
  ];
  for (const [buffer, expected] of buffers) {
    assertThrows(
      () => readInto(stream, buffer as Uint8Array),
      TypeError,
      `Cannot readInto(S, …): buffer must be a Uint8Array, but got ${expected}`,
    );
  }
  assertThrows(
    () => readInto(stream, new Uint8Array(0)),
    RangeError,
    "Cannot readInto(S, …): buffer must not be empty; allocate one as new Uint8Array(size)",
  );
  // "5" used to show as 5, as if the number 5 were refused.
  assertThrows(
    () => read(stream, "5" as unknown as number),
    RangeError,
    'Cannot read(S, the string "5"): max must be a positive integer',
  );
  assertThrows(
    () => readView(stream, 5n as unknown as number),
    RangeError,
    "Cannot readView(S, bigint 5): max must be a positive integer",
  );
  assertThrows(
    () => read(new Uint8Array(4) as unknown as Stream),
    TypeError,
    "read() expected a genloop Stream (SimulatedStream, ConnStream, …), but got an object of class Uint8Array; wrap a Deno.Conn with new ConnStream(conn)",
  );
  assertEquals(stream.buffered, 3);
});

Deno.test("SimulatedStream: a write cancelled while the stream's wait cycles pass still goes out in full", () => {
  const stream = new SimulatedStream("slow", { waitCycles: 3 });
  const text = runSync(function* main() {
    const writer = yield* spawn(function* writer() {
      yield* write(stream, "late");
    });
    yield* yieldNow(); // the writer waits for the stream to be ready
    yield* cancel(writer);
    stream.end();
    return decode(yield* read(stream));
  });
  assertEquals(text, "late");
});

Deno.test("call(): a thenable that fulfils with a Promise or another thenable evaluates to its outcome, a rejection thrown at the yield*, as await does", async () => {
  const innerThenable = { then: (ok: (value: number) => void) => ok(42) };
  const fulfils = { then: (ok: (value: unknown) => void) => ok(innerThenable) };
  const failure = new Error("work failed");
  const rejected = Promise.reject(failure);
  // Keeps the test process alive whatever call() does with the rejection.
  rejected.catch(() => {});
  const rejects = { then: (ok: (value: unknown) => void) => ok(rejected) };
  const outcome = await run(function* main() {
    const value = yield* call(() => fulfils as PromiseLike<number>);
    try {
      yield* call(() => rejects as PromiseLike<number>);
      return [value, "nothing thrown"];
    } catch (error) {
      return [value, error];
    }
  });
  assertEquals(outcome, [42, failure]);
});

Deno.test("call(): a thenable fulfilled with an object whose then getter throws fails at the yield*, as await does", async () => {
  const boom = new Error("then getter");
  const value = {
    get then(): unknown {
      throw boom;
    },
  };
  const thenable = {
    then(onFulfilled: (value: unknown) => void): void {
      Promise.resolve().then(() => onFulfilled(value));
    },
  };
  const outcome = await run(function* main() {
    try {
      yield* call(() => thenable as PromiseLike<unknown>);
      return "no error";
    } catch (error) {
      return error;
    }
  }, { stallTimeoutMs: 1_000 });
  assertStrictEquals(outcome, boom);
});

Deno.test("read() of part of a SimulatedStream's chunk gives bytes of their own, not a view of the next read's", () => {
  const stream = new SimulatedStream("s");
  const [first, rest] = runSync(function* main() {
    yield* write(stream, "hello world");
    stream.end();
    return [yield* read(stream, 5), yield* read(stream)];
  });
  assertEquals(new TextDecoder().decode(first!), "hello");
  assertEquals(new TextDecoder().decode(rest!), " world");
  assert(first!.buffer !== rest!.buffer, "two reads share one ArrayBuffer");
});

/** A minimal user Stream whose close() hands back what `closing` makes. */
function userStream(closing: () => Promise<void> | undefined): Stream {
  let closed = false;
  return {
    name: "user",
    get closed() {
      return closed;
    },
    poll: () => true,
    tryRead: () => WOULD_BLOCK,
    tryReadInto: () => WOULD_BLOCK,
    tryWrite: (data: Uint8Array) => data.length,
    flushed: () => true,
    close() {
      closed = true;
      return closing();
    },
  };
}

Deno.test("close(): a user Stream whose close() returns a PromiseLike: the awaited run ends, no TypeError and no endless microtask spin", async () => {
  // Run in a child process: on failure the awaited run spins on microtasks
  // for ever (Loop.#settleHostOps awaiting Promise.all([undefined])), which
  // would starve this test's own timers.
  const mod = new URL("../mod.ts", import.meta.url).href;
  const script = `
    import { close, Loop, WOULD_BLOCK } from ${JSON.stringify(mod)};
    let closed = false;
    const stream = {
      name: "user",
      get closed() { return closed; },
      poll: () => true,
      tryRead: () => WOULD_BLOCK,
      tryReadInto: () => WOULD_BLOCK,
      tryWrite: (data) => data.length,
      flushed: () => true,
      // A PromiseLike, as a stream wrapping another library may return.
      close() { closed = true; return { then(onFulfilled) { setTimeout(onFulfilled, 5); } }; },
    };
    const loop = new Loop();
    let outcome = "ok";
    try {
      await loop.runUntilComplete(function* main() { yield* close(stream); });
    } catch (error) {
      outcome = "threw " + error;
    }
    console.log(outcome);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 2_000);
  const { stdout } = await child.output();
  clearTimeout(timer);
  assertEquals(new TextDecoder().decode(stdout).trim(), "ok");
});

Deno.test("close(): timeout() around close() of a user Stream whose close() Promise never settles still lets run() return", async () => {
  const loop = new Loop();
  let timedOut = false;
  const running = loop.runUntilComplete(function* main() {
    try {
      yield* timeout(20, close(userStream(() => new Promise<void>(() => {}))));
    } catch (error) {
      assertInstanceOf(error, TimeoutError);
      timedOut = true;
    }
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = await Promise.race([
    running.then(() => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 1_000)),
  ]);
  clearTimeout(timer);
  assertEquals(timedOut, true);
  assertEquals(ended, true, "run() had not returned 1 s after its main task returned");
});

/** A user stream, always ready, whose one read gives `chunk` (its own bytes, not a copy). */
function oneChunkStream(name: string, chunk: Uint8Array): Stream {
  let given = false;
  return {
    name,
    closed: false,
    poll: () => true,
    tryRead() {
      if (given) return null;
      given = true;
      return chunk;
    },
    tryReadInto: () => WOULD_BLOCK,
    tryWrite: () => WOULD_BLOCK,
    flushed: () => true,
    close: () => undefined,
  };
}

Deno.test("read(): the bytes are over an ArrayBuffer of their own, copied out of a stream's SharedArrayBuffer", async () => {
  const shared = new Uint8Array(new SharedArrayBuffer(4));
  shared.set([104, 105, 33, 0]);
  const sharedStream = oneChunkStream("shared", shared.subarray(0, 3));
  const simulated = new SimulatedStream("plain", { data: "abc", ended: true });
  const [fromShared, fromSimulated] = runSync(function* main() {
    return [yield* read(sharedStream), yield* read(simulated)];
  });
  assert(fromShared !== null && fromSimulated !== null);
  assertInstanceOf(fromShared.buffer, ArrayBuffer);
  assertInstanceOf(fromSimulated.buffer, ArrayBuffer);
  // Typed as Uint8Array<ArrayBuffer>: a Blob takes it without a cast.
  assertEquals(await new Blob([fromShared]).text(), "hi!");
  assertEquals(await new Blob([fromSimulated]).text(), "abc");
  shared[0] = 0;
  assertEquals(fromShared[0], 104, "a copy, not a view of the shared bytes");
});

Deno.test("read(): a Node Buffer chunk over a SharedArrayBuffer (whose slice() is a view) is copied too", async () => {
  const shared = Buffer.from(new SharedArrayBuffer(4));
  shared.set([104, 105, 33, 0]);
  const stream = oneChunkStream("buffer over shared memory", shared.subarray(0, 3));
  const bytes = runSync(function* main() {
    return yield* read(stream);
  });
  assertInstanceOf(bytes?.buffer, ArrayBuffer);
  shared[0] = 0;
  assertEquals(bytes[0], 104, "a copy, not a view of the shared bytes");
  assertEquals(await new Blob([bytes]).text(), "hi!");
});

/** A polled user stream, always ready, that never has data or room. */
function contractStream(overrides: Partial<Stream>): Stream {
  return {
    name: "user",
    closed: false,
    poll: () => true,
    tryRead: () => WOULD_BLOCK,
    tryReadInto: () => WOULD_BLOCK,
    tryWrite: () => WOULD_BLOCK,
    flushed: () => true,
    close: () => undefined,
    ...overrides,
  };
}

/**
 * Runs `op` in a task beside a ticker that sleeps three times; returns
 * what `op` gave or threw, and how often the ticker got to run.
 */
function besideTicker(op: () => Operation<unknown>): { outcome: unknown; ticks: number } {
  return new Loop({ clock: new VirtualClock() }).runSync(function* main() {
    const ticker = yield* spawn(function* ticker() {
      let ticks = 0;
      while (ticks < 3) {
        yield* sleep(1);
        ticks++;
      }
      return ticks;
    });
    let outcome: unknown;
    try {
      outcome = yield* op();
    } catch (error) {
      outcome = error;
    }
    return { outcome, ticks: yield* join(ticker) };
  });
}

Deno.test("write(): a user stream whose tryWrite returns a count it cannot mean (0, -1, NaN, undefined, more than offered) gets a TypeError naming it, not a loop spinning for ever or a wrong count", () => {
  for (const bad of [0, -1, NaN, undefined, 100]) {
    let calls = 0;
    const stream = contractStream({
      tryWrite: () => {
        // Bounds the spin a 0 or -1 once caused, so the test ends either way.
        if (++calls > 1_000) throw new Error(`tryWrite called ${calls} times`);
        return bad as number;
      },
    });
    const { outcome, ticks } = besideTicker(() => write(stream, "abc"));
    assertInstanceOf(outcome, TypeError, `tryWrite returning ${bad}: write() gave ${outcome}`);
    assertEquals(
      outcome.message,
      `Stream "user": tryWrite(3 bytes) returned ${
        bad === undefined ? "undefined" : `number ${bad}`
      }; it must return how many of them it took (1 to 3), or WOULD_BLOCK when it has no room`,
    );
    assertEquals(calls, 1);
    assertEquals(ticks, 3);
  }
});

Deno.test("read()/readInto(): a user stream giving what the Stream contract does not allow gets a TypeError naming it, not made-up or empty bytes", () => {
  for (const bad of [5, "abc", undefined, new Uint8Array(0)]) {
    const stream = contractStream({ tryRead: () => bad as Uint8Array });
    const { outcome, ticks } = besideTicker(() => read(stream, 8));
    assertInstanceOf(outcome, TypeError, `tryRead returning ${Deno.inspect(bad)}: ${outcome}`);
    assertStringIncludes(
      outcome.message,
      'Stream "user": tryRead(8) returned ',
    );
    assertStringIncludes(
      outcome.message,
      "; it must return a Uint8Array of 1 to 8 bytes, null at the end of the stream, or WOULD_BLOCK when no bytes are buffered",
    );
    assertEquals(ticks, 3);
  }
  // More bytes than asked for breaks read(stream, max)'s promise too.
  const tooMany = contractStream({ tryRead: () => new Uint8Array(9) });
  const { outcome: tooManyError } = besideTicker(() => read(tooMany, 8));
  assertInstanceOf(tooManyError, TypeError);
  assertStringIncludes(tooManyError.message, "tryRead(8) returned a Uint8Array of 9 bytes;");
  for (const bad of [99, 0, 1.5]) {
    const into = contractStream({ tryReadInto: () => bad });
    const { outcome } = besideTicker(() => readInto(into, new Uint8Array(4)));
    assertInstanceOf(outcome, TypeError, `tryReadInto returning ${bad}: ${outcome}`);
    assertEquals(
      outcome.message,
      `Stream "user": tryReadInto(a buffer of 4 bytes) returned number ${bad}; it must return how many bytes it put there (1 to 4), null at the end of the stream, or WOULD_BLOCK when no bytes are buffered`,
    );
  }
});

Deno.test("read(): a user stream whose poll() throws fails the waiting read with that error, not the whole run", () => {
  const failure = new Error("poll failed");
  let polls = 0;
  const stream = contractStream({
    poll: () => {
      polls++;
      throw failure;
    },
  });
  const { outcome, ticks } = besideTicker(function* reader() {
    // Not at once: the first read finds no bytes, and waits.
    return yield* read(stream);
  });
  assertStrictEquals(outcome, failure);
  assertEquals(polls, 1);
  assertEquals(ticks, 3);
});

Deno.test("read(): a user stream with neither poll() nor watch() gets a TypeError naming it at the wait, not a crash of the run", () => {
  const stream = contractStream({ poll: undefined });
  const { outcome, ticks } = besideTicker(() => read(stream));
  assertInstanceOf(outcome, TypeError);
  assertEquals(
    outcome.message,
    'Cannot wait for EVENT_READ on stream "user" in task "main": the stream has neither poll() nor watch(), so nothing can say when it is ready; give it one of them',
  );
  assertEquals(ticks, 3);
});

Deno.test("SimulatedStream: thousands of small chunks come out in order, also across the slots it gives back while draining", () => {
  const stream = new SimulatedStream("pipe", { waitCycles: 0 });
  const chunks = 5_000;
  for (let i = 0; i < chunks; i++) stream.tryWrite(Uint8Array.of(i % 251, (i + 1) % 251));
  const out: number[] = [];
  // Reads of 3 bytes take one chunk and part of the next; of 1, what is left.
  for (let size = 3; out.length < 2 * chunks; size = size === 3 ? 1 : 3) {
    const got = stream.tryRead(size);
    if (!(got instanceof Uint8Array)) throw new Error(`stream ran dry at ${out.length}`);
    out.push(...got);
  }
  const expected = Array.from({ length: chunks }, (_, i) => [i % 251, (i + 1) % 251]).flat();
  assertEquals(out, expected);
  assertStrictEquals(stream.tryRead(1), WOULD_BLOCK);
  // Written after a drain, read as before.
  stream.tryWrite(Uint8Array.of(7));
  assertEquals(stream.tryRead(5), Uint8Array.of(7));
});

Deno.test("write(): a write cancelled by task.cancel() just after its stream woke it still goes out in full, before what its canceller writes next, and before end()", () => {
  for (const next of ["write", "end"] as const) {
    const stream = new SimulatedStream("s", { waitCycles: 1 });
    const got = new Loop({ clock: new VirtualClock() }).runSync(function* main() {
      const writer = yield* spawn(function* writeA() {
        // Waits: the stream spends a wait cycle first.
        yield* write(stream, "AAAA");
      });
      yield* yieldNow();
      // The select that spends the cycle wakes writeA: queued behind main.
      yield* yieldNow();
      writer.cancel();
      if (next === "write") yield* write(stream, "BBBB");
      stream.end();
      const parts: string[] = [];
      for (let chunk; (chunk = yield* read(stream)) !== null;) parts.push(decode(chunk)!);
      return parts.join("|");
    });
    assertEquals(got, next === "write" ? "AAAA|BBBB" : "AAAA");
  }
});

Deno.test("write(): a write whose wait failed because the stream's poll() threw asks the stream to send none of the rest", () => {
  const log: string[] = [];
  let polls = 0;
  const flaky = contractStream({
    poll: () => {
      if (++polls >= 2) throw new Error("device gone");
      return false;
    },
    tryWrite: (data) => {
      if (log.length > 0) return WOULD_BLOCK;
      log.push(`took 2 of ${data.length}`);
      return 2;
    },
    abandonWrite: (rest) => {
      log.push(`abandonWrite(${rest === undefined ? "" : `${rest.length} bytes`})`);
    },
  });
  const { outcome } = besideTicker(() => write(flaky, "abcdef"));
  assertEquals((outcome as Error).message, "device gone");
  assertEquals(log, ["took 2 of 6", "abandonWrite()"]);
});

Deno.test("read(): a user stream whose stalled() throws fails the waiting read with that error, not the whole run", () => {
  const failure = new Error("stalled failed");
  const stream = contractStream({
    poll: () => false,
    stalled: () => {
      throw failure;
    },
  });
  const { outcome, ticks } = besideTicker(() => read(stream));
  assertStrictEquals(outcome, failure);
  assertEquals(ticks, 3);
});

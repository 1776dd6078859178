// Errors: propagation through join, unjoined failures, bad instructions, bad
// task bodies, impossible joins, deadlocks and runSync's refusal to wait.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
  fail,
} from "@std/assert";
import {
  call,
  cancel,
  CancelledError,
  close,
  currentTask,
  DeadlockError,
  gather,
  InvalidInstructionError,
  join,
  Loop,
  type LoopOptions,
  type Operation,
  race,
  read,
  run,
  runSync,
  SimulatedStream,
  sleep,
  spawn,
  suspend,
  type Task,
  TaskFailedError,
  timeout,
  VirtualClock,
  write,
  type Yielded,
  yieldNow,
} from "../mod.ts";
import { failFast, slowToCancel } from "./_group_failure.ts";

function virtualLoop(options: LoopOptions = {}): Loop {
  return new Loop({ clock: new VirtualClock(), ...options });
}

/** Runs `turns` turns, then records that it finished: proof the loop went on. */
function* bystander(log: string[], turns = 5): Operation<string> {
  for (let i = 0; i < turns; i++) yield* yieldNow();
  log.push("bystander finished");
  return "bystander ok";
}

/** Runs `body` and returns what it threw (fails if it did not throw). */
function* caught(body: () => Operation<unknown>): Operation<unknown> {
  try {
    yield* body();
  } catch (error) {
    return error;
  }
  fail("expected an error");
}

// ---------------------------------------------------------------------------
// Errors through join.

Deno.test("join() throws the child's error into the joiner, where it can be caught and the joiner goes on", () => {
  const boom = new RangeError("out of range");
  const loop = virtualLoop();
  const outcome = loop.runSync(function* main() {
    const child = yield* spawn(function* failing() {
      yield* sleep(5);
      throw boom;
    });
    let error: unknown;
    try {
      yield* join(child);
      fail("join should have thrown");
    } catch (e) {
      error = e;
    }
    // The joiner is healthy: it keeps using the loop.
    yield* sleep(5);
    return { error, state: child.state, time: loop.time() };
  });
  assertStrictEquals(outcome.error, boom, "the very same error object");
  assertEquals(outcome.state, "failed");
  assertEquals(outcome.time, 10);
});

Deno.test("join() of a task that already failed throws its error at once, every time", () => {
  const boom = new Error("early");
  const errors = runSync(function* main() {
    const child = yield* spawn(function* failing() {
      throw boom;
    });
    const first = yield* caught(() => join(child));
    yield* yieldNow();
    const second = yield* caught(() => join(child));
    return [first, second];
  });
  assertStrictEquals(errors[0], boom);
  assertStrictEquals(errors[1], boom);
});

Deno.test("join() lets an uncaught error climb through every joiner up to run()", async () => {
  function* level(depth: number): Operation<number> {
    if (depth === 0) {
      yield* yieldNow();
      throw new URIError("from the bottom");
    }
    const child = yield* spawn(level(depth - 1));
    return yield* join(child);
  }
  await assertRejects(() => run(level(5)), URIError, "from the bottom");
  assertThrows(() => runSync(level(5)), URIError, "from the bottom");
});

Deno.test("join() throws a non-Error thrown value through unchanged", () => {
  const thrown = runSync(function* main() {
    const child = yield* spawn(function* throwsString() {
      yield* yieldNow();
      throw "a plain string";
    });
    return yield* caught(() => join(child));
  });
  assertEquals(thrown, "a plain string");
});

// ---------------------------------------------------------------------------
// Failures nobody joins.

Deno.test("TaskFailedError: an unjoined failure reaches the parent at its current yield*, naming the task", () => {
  const loop = virtualLoop();
  const boom = new SyntaxError("nobody listens");
  const log: string[] = [];
  const error = loop.runSync(function* main() {
    yield* spawn(function* doomed() {
      yield* sleep(10);
      throw boom;
    });
    try {
      yield* sleep(1_000);
      fail("the sleep should have been interrupted");
    } catch (error) {
      log.push(`parent caught at ${loop.time()}`);
      // Caught: the parent goes on normally.
      yield* sleep(1);
      log.push(`parent goes on at ${loop.time()}`);
      return error;
    }
  });
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.name, "TaskFailedError");
  assertEquals(error.taskName, "doomed");
  assertStringIncludes(error.message, 'Task "doomed" failed and nobody joined it');
  assertStringIncludes(error.message, "SyntaxError: nobody listens");
  assertStrictEquals(error.cause, boom);
  assertEquals(log, ["parent caught at 10", "parent goes on at 11"]);
  assertEquals(loop._timerCount, 0, "the interrupted sleep's timer was removed");
});

Deno.test("TaskFailedError: uncaught, it fails runSync() and rejects run() and runUntilComplete()", async () => {
  function* program(): Operation<void> {
    yield* spawn(function* doomed() {
      yield* yieldNow();
      throw new Error("lost?");
    });
    yield* sleep(100);
  }
  const sync = assertThrows(() => runSync(program, { clock: new VirtualClock() }));
  const viaRun = await assertRejects(() => run(program, { clock: new VirtualClock() }));
  const viaLoop = await assertRejects(() => virtualLoop().runUntilComplete(program));
  for (const error of [sync, viaRun, viaLoop]) {
    assertInstanceOf(error, TaskFailedError);
    assertEquals(error.taskName, "doomed");
    assertEquals((error.cause as Error).message, "lost?");
  }
});

Deno.test("TaskFailedError goes to the failed task's own parent, not to the main task", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const middle = yield* spawn(function* middle() {
      yield* spawn(function* grandchild() {
        yield* sleep(1);
        throw new Error("deep");
      });
      try {
        yield* sleep(100);
      } catch (error) {
        assertInstanceOf(error, TaskFailedError);
        log.push(`middle caught ${error.taskName}`);
      }
      return "middle survived";
    });
    log.push(yield* join(middle));
  });
  assertEquals(log, ["middle caught grandchild", "middle survived"]);
});

Deno.test("TaskFailedError: a failure while the parent waits for its children to close fails the parent", () => {
  const loop = virtualLoop();
  const error = loop.runSync(function* main() {
    const parent = yield* spawn(function* parent() {
      yield* spawn(function* child() {
        try {
          yield* sleep(1_000);
        } finally {
          yield* sleep(2);
          // deno-lint-ignore no-unsafe-finally
          throw new Error("cleanup broke");
        }
      });
      yield* sleep(1);
      return "parent result";
    });
    return yield* caught(() => join(parent));
  });
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "child");
  assertEquals((error.cause as Error).message, "cleanup broke");
  assertEquals(loop.time(), 3);
});

Deno.test("TaskFailedError: a task from loop.spawn() that fails unjoined is reported to the main task", () => {
  const loop = virtualLoop();
  loop.spawn(function* outsider() {
    yield* sleep(3);
    throw new Error("outside failure");
  });
  const error = loop.runSync(function* main() {
    return yield* caught(() => sleep(10));
  });
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "outsider");
  assertEquals(loop.time(), 3);
});

Deno.test("TaskFailedError: a detached task's unjoined failure is reported to the run's main task", () => {
  const report = runSync(function* main() {
    yield* spawn(function* parent() {
      yield* spawn(function* orphan() {
        yield* yieldNow();
        throw new Error("orphan failed");
      }, { detached: true });
    });
    return yield* caught(() => suspend());
  });
  assertInstanceOf(report, TaskFailedError);
  assertEquals(report.taskName, "orphan");
  assertEquals((report.cause as Error).message, "orphan failed");
});

Deno.test("TaskFailedError: a joined failure is not reported a second time", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const child = yield* spawn(function* failing() {
      yield* sleep(1);
      throw new Error("joined");
    });
    const error = yield* caught(() => join(child));
    log.push((error as Error).message);
    yield* sleep(10); // no TaskFailedError arrives here
    log.push("quiet");
  });
  assertEquals(log, ["joined", "quiet"]);
});

Deno.test("TaskFailedError: a child whose cleanup fails after its gather was interrupted is reported", () => {
  const loop = virtualLoop();
  const error = loop.runSync(function* main() {
    const gathering = yield* spawn(function* gatherer() {
      yield* gather([function* member() {
        try {
          yield* sleep(100);
        } finally {
          yield* sleep(1);
          // deno-lint-ignore no-unsafe-finally
          throw new Error("member cleanup failed");
        }
      }]);
    });
    yield* sleep(10);
    gathering.cancel();
    return yield* caught(() => join(gathering));
  });
  // Not swallowed by the abandoned gather: reported to the gathering task.
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "member");
  assertEquals(loop.time(), 11);
});

for (const group of [gather, race]) {
  Deno.test(`TaskFailedError: a ${group.name}() child that failed before the waiting task was interrupted is reported`, () => {
    const loop = virtualLoop();
    const error = loop.runSync(function* main() {
      const grouping = yield* spawn(function* grouper() {
        yield* group([
          function* failing(): Operation<never> {
            yield* sleep(5);
            throw new Error("boom: child failed");
          },
          function* slowCleanup(): Operation<void> {
            try {
              yield* sleep(1_000);
            } finally {
              yield* sleep(10); // the group waits for this until t=15
            }
          },
        ]);
      });
      yield* sleep(7); // "failing" failed at t=5: the group holds its error
      grouping.cancel("shutting down");
      return yield* caught(() => join(grouping));
    });
    // Not dropped with the abandoned group: reported to the grouping task.
    assertInstanceOf(error, TaskFailedError);
    assertEquals(error.taskName, "failing");
    assertStringIncludes(
      error.message,
      `in a ${group.name}() whose waiting task was interrupted`,
    );
    assertStringIncludes(error.message, "boom: child failed");
  });
}

Deno.test("TaskFailedError: a group's held failure does not cut the cancelled waiter's cleanup short; it joins its outcome", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const shared = new Error("backend unavailable"); // one error object, thrown twice
  const error = loop.runSync(function* main() {
    const worker = yield* spawn(function* worker() {
      try {
        yield* gather([
          function* second(): Operation<void> {
            try {
              yield* sleep(1_000);
            } finally {
              // deno-lint-ignore no-unsafe-finally
              throw shared; // fails again in its own cleanup
            }
          },
          function* first(): Operation<never> {
            yield* sleep(1);
            throw shared;
          },
          function* slow(): Operation<void> {
            try {
              yield* sleep(1_000);
            } finally {
              yield* sleep(10); // the gather waits for this until t=11
            }
          },
        ]);
      } finally {
        log.push("cleanup started");
        yield* sleep(5);
        log.push("cleanup finished");
      }
    });
    yield* sleep(2); // "first" failed, "second" failed in its cleanup
    worker.cancel("shutting down");
    return yield* caught(() => join(worker));
  });
  assertEquals(log, ["cleanup started", "cleanup finished"]);
  // Both failures are reported once each, the first one included.
  assertInstanceOf(error, AggregateError);
  const names = error.errors.map((each) => (each as TaskFailedError).taskName).sort();
  assertEquals(names, ["first", "second"]);
});

Deno.test("DeadlockError: a child's failed cleanup held by a task that can never settle (another child's cleanup hangs) is its cause", () => {
  const error = assertThrows(
    () =>
      virtualLoop().runSync(function* main() {
        const parent = yield* spawn(function* parent(): Operation<void> {
          yield* spawn(function* failing(): Operation<void> {
            try {
              yield* suspend();
            } finally {
              // deno-lint-ignore no-unsafe-finally
              throw new Error("cleanup failed");
            }
          });
          yield* spawn(function* hanging(): Operation<void> {
            try {
              yield* suspend();
            } finally {
              yield* suspend();
            }
          });
          yield* yieldNow();
        });
        yield* join(parent);
      }),
    DeadlockError,
  );
  assertInstanceOf(error.cause, TaskFailedError);
  assertEquals(error.cause.taskName, "failing");
});

Deno.test("DeadlockError: a group's held failure for a cancelled task whose cleanup hangs is its cause", () => {
  const error = assertThrows(
    () =>
      virtualLoop().runSync(function* main() {
        const worker = yield* spawn(function* worker(): Operation<void> {
          try {
            yield* gather([failFast, slowToCancel]);
          } finally {
            yield* suspend(); // a cleanup that hangs
          }
        });
        yield* sleep(2); // failFast failed; the gather waits for slowToCancel
        yield* cancel(worker);
      }),
    DeadlockError,
  );
  assertInstanceOf(error.cause, TaskFailedError);
  assertEquals(error.cause.taskName, "failFast");
});

Deno.test("TaskFailedError: a group's failure held when its waiter is interrupted by another error reaches it at its next yield*", () => {
  const loop = virtualLoop();
  const seen: string[] = [];
  const outcome = loop.runSync(function* main() {
    const server = yield* spawn(function* server(): Operation<string> {
      yield* spawn(function* handler(): Operation<never> {
        yield* sleep(3);
        throw new Error("handler crashed"); // unjoined: thrown into the server
      });
      try {
        yield* gather([failFast, slowToCancel]);
      } catch (error) {
        seen.push(`t=${loop.time()} ${(error as TaskFailedError).taskName}`);
      }
      try {
        yield* sleep(100); // serving on
      } catch (error) {
        seen.push(`t=${loop.time()} ${(error as TaskFailedError).taskName}`);
      }
      return "served";
    });
    return yield* join(server);
  });
  // The handler's failure waits for the gather's cleanup (until t=11), as
  // any interruption does; then, not being a cancellation, it has no
  // cleanup to protect, so the gather's failure comes at the next yield*.
  assertEquals(seen, ["t=11 handler", "t=11 failFast"]);
  assertEquals(outcome, "served");
});

Deno.test("TaskFailedError: a body whose cleanup fails after its timeout's waiter was interrupted is reported", () => {
  const loop = virtualLoop();
  const error = loop.runSync(function* main() {
    const waiter = yield* spawn(function* waiter() {
      yield* timeout(1_000, function* body() {
        try {
          yield* sleep(100);
        } finally {
          yield* sleep(1);
          // deno-lint-ignore no-unsafe-finally
          throw new Error("body cleanup failed");
        }
      });
    });
    yield* sleep(10);
    waiter.cancel();
    return yield* caught(() => join(waiter));
  });
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "body");
});

// ---------------------------------------------------------------------------
// Bad instructions.

interface BadCase {
  what: string;
  value: () => unknown;
  message: RegExp[];
}

const BAD_INSTRUCTIONS: BadCase[] = [
  {
    what: "a number",
    value: () => 42,
    message: [/yielded number 42/, /not a genloop instruction/, /yield\* sleep\(ms\)/],
  },
  {
    what: "a Promise",
    value: () => Promise.resolve("later"),
    message: [/yielded a Promise/, /yield\* call\(\(\) => promise\)/],
  },
  {
    what: "an operation with a forgotten * (yield sleep(1))",
    value: () => sleep(1),
    message: [/yielded an operation \(sleep\(1\)\) with `yield`/, /write `yield\*`/],
  },
  {
    what: "a generator object",
    value: () => (function* helper() {})(),
    message: [/yielded a generator object with `yield`/, /yield\*/, /spawn/],
  },
];

for (const bad of BAD_INSTRUCTIONS) {
  Deno.test(`InvalidInstructionError: yielding ${bad.what} throws into that task, which can catch it and go on`, () => {
    const loop = virtualLoop();
    const log: string[] = [];
    const value = bad.value();
    const outcome = loop.runSync(function* main() {
      const others = yield* spawn(bystander(log));
      const offender = yield* spawn(function* offender() {
        let error: unknown;
        try {
          yield value as never;
          fail("the loop resumed a bad yield normally");
        } catch (e) {
          error = e;
        }
        // Caught: the task goes on and uses the loop normally.
        yield* sleep(2);
        return error;
      });
      const error = yield* join(offender);
      return { error, others: yield* join(others) };
    });
    const error = outcome.error;
    assertInstanceOf(error, InvalidInstructionError);
    assertInstanceOf(error, TypeError);
    assertEquals(error.name, "InvalidInstructionError");
    assertStrictEquals(error.yielded, value);
    assertStringIncludes(error.message, 'Task "offender" yielded');
    for (const pattern of bad.message) assertMatch(error.message, pattern);
    assertEquals(outcome.others, "bystander ok");
    assertEquals(log, ["bystander finished"]);
    assertEquals(loop.time(), 2);
  });
}

Deno.test("InvalidInstructionError: the error arrives at that yield, not later, and the next statement runs", () => {
  const log: string[] = [];
  runSync(function* main() {
    log.push("before");
    try {
      yield 1 as never;
    } catch {
      log.push("caught at the yield");
    }
    log.push("after");
    yield* yieldNow();
    log.push("still running");
  });
  assertEquals(log, ["before", "caught at the yield", "after", "still running"]);
});

Deno.test("InvalidInstructionError: uncaught, it fails only that task; the others complete", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const result = loop.runSync(function* main() {
    const a = yield* spawn(bystander(log, 3));
    const bad = yield* spawn(function* bad() {
      yield* yieldNow();
      yield Promise.resolve() as never;
    });
    const b = yield* spawn(bystander(log, 7));
    const error = yield* caught(() => join(bad));
    return [(error as Error).name, bad.state, yield* join(a), yield* join(b)];
  });
  assertEquals(result, ["InvalidInstructionError", "failed", "bystander ok", "bystander ok"]);
  assertEquals(log, ["bystander finished", "bystander finished"]);
});

Deno.test("InvalidInstructionError: an operation run twice is a TypeError at the second yield*", () => {
  const message = runSync(function* main() {
    const once = yieldNow();
    yield* once; // shared and stateless: fine twice
    yield* once;
    const op = spawn(function* child() {});
    yield* op;
    try {
      yield* op;
    } catch (error) {
      assertInstanceOf(error, TypeError);
      return (error as Error).message;
    }
  });
  assertStringIncludes(
    message!,
    'Cannot run an operation twice (spawn of "child") in task "main";',
  );
  // Outside any task, the message names no task.
  const loop = virtualLoop();
  const closing = close(new SimulatedStream("pipe"));
  loop.spawn(closing);
  assertThrows(
    () => loop.spawn(closing),
    TypeError,
    'Cannot run an operation twice (close of stream "pipe"); call the operation function again',
  );
  loop.runSync(function* main() {});
});

Deno.test("an operation whose wait was ended by an error: a second yield* is a TypeError, not a silent undefined", () => {
  // The waiters catch their CancelledError and go on: warned about, as it should be.
  const warnings: string[] = [];
  const loop = new Loop({ clock: new VirtualClock(), onWarning: (w) => warnings.push(w) });
  const found = loop.runSync(function* main() {
    const log: string[] = [];
    const sleeper = yield* spawn(function* sleeper() {
      yield* sleep(1_000);
    });
    const ops: Operation<unknown>[] = [join(sleeper), sleep(1_000)];
    for (const op of ops) {
      const waiter = yield* spawn(function* waiter() {
        for (let i = 0; i < 2; i++) {
          try {
            log.push(`value ${yield* op}`);
          } catch (error) {
            log.push((error as Error).name);
          }
        }
      });
      yield* yieldNow(); // it waits in op
      waiter.cancel(); // the CancelledError ends the wait; the second yield* comes next
      try {
        yield* join(waiter);
      } catch (error) {
        assertInstanceOf(error, CancelledError);
      }
    }
    sleeper.cancel();
    return log;
  });
  assertEquals(found, ["CancelledError", "TypeError", "CancelledError", "TypeError"]);
  assertEquals(warnings.length, 2);
});

// An operation object that one task waits on, yield*-ed by a second task:
// the second is refused at once, and the first still gets its own outcome
// (before, the second finished at once with undefined and took the first's
// wake-up, which then got the TypeError).
const waitedOnOperations: [string, (loop: Loop, child: Task<number>) => Operation<unknown>][] = [
  ["sleep()", () => sleep(100)],
  ["join()", (_loop, child) => join(child)],
  ["read()", (loop) => read(stream(loop))],
];

function stream(loop: Loop): SimulatedStream {
  const stream = new SimulatedStream("pipe");
  loop.spawn(function* feeder() {
    yield* sleep(100);
    yield* write(stream, "data");
  });
  return stream;
}

for (const [what, make] of waitedOnOperations) {
  Deno.test(`${what}: a second task's yield* of an operation another task waits on is a TypeError, and the first is not disturbed`, () => {
    const loop = virtualLoop();
    const log: string[] = [];
    loop.runSync(function* main() {
      const child = yield* spawn(function* child() {
        yield* sleep(100);
        return 42;
      });
      const shared = make(loop, child);
      function* waiter(name: string): Operation<void> {
        try {
          const value = yield* shared;
          const shown = value instanceof Uint8Array ? new TextDecoder().decode(value) : value;
          log.push(`${name} got ${shown}@${loop.time()}`);
        } catch (error) {
          assertInstanceOf(error, TypeError);
          assertStringIncludes(error.message, `in task "${name}"`);
          assertStringIncludes(error.message, "another task is waiting on this very operation");
          log.push(`${name} refused@${loop.time()}`);
        }
      }
      const a = yield* spawn(waiter("a"), { name: "a" });
      const b = yield* spawn(waiter("b"), { name: "b" });
      yield* join(a);
      yield* join(b);
    });
    const value = what === "sleep()" ? "undefined" : what === "join()" ? "42" : "data";
    assertEquals(log, ["b refused@0", `a got ${value}@100`]);
  });
}

Deno.test("InvalidInstructionError: uncaught in the main task, it rejects the run; the loop stays usable", async () => {
  const loop = new Loop();
  const error = await assertRejects(
    () =>
      loop.runUntilComplete(function* main() {
        yield 1 as never;
      }),
    InvalidInstructionError,
  );
  assertStringIncludes(error.message, 'Task "main" yielded number 1');
  assertEquals(loop.running, false);
  assertEquals(
    await loop.runUntilComplete(function* again() {
      yield* yieldNow();
      return "healthy";
    }),
    "healthy",
  );
  assertEquals(
    await run(function* fresh() {
      return "fresh";
    }),
    "fresh",
  );
});

// ---------------------------------------------------------------------------
// Bad task bodies: TypeError at the call.

const NOT_BODIES: [string, unknown][] = [
  ["a number", 42],
  ["null", null],
  ["undefined", undefined],
  ["a plain object", { not: "an iterator" }],
  ["an async function", async function asyncWorker() {}],
  ["an array", [1, 2, 3]],
  ["a string", "work"],
  ["a Promise", Promise.resolve(1)],
  ["a non-generator function", function notAGenerator() {
    return 5;
  }],
  ["an iterator without throw()", [1][Symbol.iterator]()],
  ["an async generator function", async function* asyncGen() {}],
];

for (const [what, body] of NOT_BODIES) {
  Deno.test(`spawn() of ${what} throws TypeError at the call, before any yield*`, () => {
    const log: string[] = [];
    const result = runSync(function* main() {
      const others = yield* spawn(bystander(log));
      let error: unknown;
      try {
        spawn(body as never); // the call alone throws: no yield* needed
        fail("spawn() accepted it");
      } catch (e) {
        error = e;
      }
      return { error, others: yield* join(others) };
    });
    assertInstanceOf(result.error, TypeError);
    assertMatch(result.error.message, /^spawn\(\) expected a generator/);
    assertEquals(result.others, "bystander ok", "other tasks keep running");
  });
}

Deno.test("spawn() of an async function does not run it, and says to drop async", () => {
  let ran = false;
  const error = assertThrows(
    () =>
      spawn(async function fetcher() {
        ran = true;
        await Promise.resolve();
        throw new Error("would be an unhandled rejection");
      } as never),
    TypeError,
  );
  assertEquals(ran, false, "its body never ran");
  assertStringIncludes(error.message, '"fetcher" is async');
  assertStringIncludes(error.message, "function* (not async)");
  assertStringIncludes(error.message, "yield* call(");
});

Deno.test("spawn() of a function returning a rejected Promise: TypeError, and no unhandled rejection", async () => {
  const error = assertThrows(
    () => spawn((() => Promise.reject(new Error("abandoned"))) as never),
    TypeError,
  );
  assertStringIncludes(error.message, "returned a Promise");
  // An unhandled rejection would fail this test once the microtasks ran.
  await new Promise<void>((resolve) => queueMicrotask(resolve));
  await Promise.resolve();
});

Deno.test("spawn() of an async generator (function or object) is a TypeError, not a hang", () => {
  async function* agen() {
    yield 1;
  }
  assertThrows(() => spawn(agen as never), TypeError, '"agen" is async');
  assertThrows(() => spawn(agen() as never), TypeError, "async generator object");
  const message = runSync(function* main() {
    try {
      yield* spawn(agen() as never);
    } catch (error) {
      return (error as Error).message;
    }
  });
  assertStringIncludes(message!, "not async function*");
});

Deno.test("spawn() messages say what was given and what to write instead", () => {
  const messageOf = (body: unknown) => {
    try {
      spawn(body as never);
    } catch (error) {
      return (error as Error).message;
    }
    return "accepted";
  };
  assertStringIncludes(messageOf(42), "got number 42");
  assertStringIncludes(messageOf(null), "got null");
  assertStringIncludes(messageOf([1]), "got an array");
  assertStringIncludes(messageOf({}), "needs next(value) and throw(error)");
  assertStringIncludes(messageOf(Promise.resolve()), "yield* call(() => promise)");
  assertStringIncludes(
    messageOf(function plain() {
      return 5;
    }),
    '"plain" returned number 5; declare it with function*',
  );
});

Deno.test("gather(), race(), timeout(), loop.spawn() and run() reject bad bodies at the call too", async () => {
  assertThrows(() => gather([function* ok() {}, 7 as never]), TypeError, "gather() expected");
  assertThrows(() => race([null as never]), TypeError, "race() expected");
  assertThrows(() => timeout(10, {} as never), TypeError, "timeout() expected");
  assertThrows(
    () => new Loop().spawn((async () => {}) as never),
    TypeError,
    "loop.spawn() expected",
  );
  assertThrows(() => runSync("main" as never), TypeError, "run() expected");
  await assertRejects(() => run((async () => {}) as never), TypeError, "run() expected");
});

// ---------------------------------------------------------------------------
// Impossible joins.

Deno.test("join() of yourself is a clear error thrown into the task, which goes on", () => {
  const log: string[] = [];
  const result = runSync(function* main() {
    const others = yield* spawn(bystander(log));
    const self = yield* spawn(function* selfJoiner() {
      const me = yield* currentTask();
      const error = yield* caught(() => join(me));
      yield* yieldNow(); // goes on after catching
      return error;
    });
    return { error: yield* join(self), others: yield* join(others) };
  });
  assertInstanceOf(result.error, Error);
  assertEquals(
    result.error.message,
    'Task "selfJoiner" cannot join itself: it would wait forever; join a task it spawned instead',
  );
  assertEquals(result.others, "bystander ok");
});

Deno.test("join() and cancel() of something that is not a Task: a TypeError at the call, with the likely slip", () => {
  function* worker(): Operation<number> {
    yield* sleep(5);
    return 1;
  }
  const result = virtualLoop().runSync(function* main() {
    // The slip: `spawn(worker)` without `yield*` is the operation, not the Task.
    const forgot = spawn(worker) as unknown as Task<number>;
    return [
      yield* caught(() => join(forgot)),
      yield* caught(() => cancel(forgot)),
      yield* caught(() => join(undefined as unknown as Task<number>)),
      yield* caught(() => cancel(null as unknown as Task<number>)),
      yield* caught(() => join({ _parent: null, settled: true } as unknown as Task<number>)),
    ];
  });
  const [joinOp, cancelOp, joinUndefined, cancelNull, joinLookalike] = result.map((error) => {
    assertInstanceOf(error, TypeError);
    return error;
  });
  assertEquals(
    joinOp.message,
    "join() expected a Task, but got an object of class SpawnInstruction; did you forget `yield*` before `spawn(...)`? `yield* spawn(body)` evaluates to the Task",
  );
  assertStringIncludes(cancelOp.message, "cancel() expected a Task");
  assertStringIncludes(cancelOp.message, "did you forget `yield*`");
  assertEquals(
    joinUndefined.message,
    "join() expected a Task, but got undefined; pass the Task that `yield* spawn(body)` returned",
  );
  assertStringIncludes(cancelNull.message, "cancel() expected a Task, but got null");
  assertStringIncludes(joinLookalike.message, "join() expected a Task, but got an object");
});

Deno.test("gather(), race(), timeout() and spawn() given a Task (as asyncio.gather takes one) say to pass join(task)", () => {
  const messages = runSync(function* main() {
    const running = yield* spawn(function* worker() {
      yield* yieldNow();
    });
    const asBody = running as unknown as Operation<void>;
    return [
      yield* caught(() => gather([asBody])),
      yield* caught(() => race([asBody])),
      yield* caught(() => timeout(10, asBody)),
      yield* caught(() => spawn(asBody)),
      // The way that works.
      yield* gather([join(running)]),
    ];
  });
  const [gathered, raced, timed, spawned, joined] = messages;
  for (
    const [where, error] of [["gather()", gathered], ["race()", raced], ["timeout()", timed], [
      "spawn()",
      spawned,
    ]] as const
  ) {
    assertInstanceOf(error, TypeError);
    assertStringIncludes(
      error.message,
      `${where} expected a generator object, a generator function or an operation, but got an object of class Task; task "worker" is a task, not a body: to wait for it, pass join(task) instead of the task`,
    );
  }
  assertEquals(joined, [undefined]);
});

Deno.test("join() of a task of another Loop is a clear error; both loops stay usable", () => {
  const otherLoop = new Loop();
  const foreign = otherLoop.spawn(function* foreign() {
    return "theirs";
  });
  const log: string[] = [];
  const result = runSync(function* main() {
    const others = yield* spawn(bystander(log));
    const error = yield* caught(() => join(foreign));
    return { error, others: yield* join(others) };
  });
  assertInstanceOf(result.error, Error);
  assertStringIncludes(
    (result.error as Error).message,
    'Task "main" cannot join task "foreign": that task belongs to another Loop; join it from a task of that Loop, or hand its result over through a Promise (yield* call(() => promise))',
  );
  assertEquals(result.others, "bystander ok");
  // The foreign task is untouched and runs on its own loop.
  assertEquals(foreign.state, "ready");
  assertEquals(
    otherLoop.runSync(function* theirMain() {
      return yield* join(foreign);
    }),
    "theirs",
  );
});

// ---------------------------------------------------------------------------
// Deadlocks.

Deno.test("DeadlockError: a detached task is cancelled and its finally runs even when main's cleanup blocks", () => {
  const log: string[] = [];
  assertThrows(
    () =>
      virtualLoop().runSync(function* main() {
        yield* spawn(function* detachedWorker(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            log.push("detached released");
          }
        }, { detached: true });
        try {
          yield* suspend();
        } finally {
          log.push("main released");
          yield* suspend(); // a cleanup that blocks: main stays suspended
        }
      }),
    DeadlockError,
  );
  assertEquals(log.sort(), ["detached released", "main released"]);
});

/** A stream that never becomes ready and has no writer: reading it deadlocks. */
function neverReady(name: string): SimulatedStream {
  return new SimulatedStream(name, { waitCycles: 0 });
}

/** Waits for ever; its cleanup fails after 1 ms with `message`. */
function* failsInCleanup(message: string): Operation<void> {
  try {
    yield* read(neverReady("a"));
  } finally {
    yield* sleep(1);
    // deno-lint-ignore no-unsafe-finally
    throw new Error(message);
  }
}

/**
 * Waits on a stream nobody writes (the run deadlocks), then cleans up for
 * 5 ms, as a best-effort cleanup that ignores its own errors.
 */
function* deadlocksThenCleansUp(log: string[]): Operation<void> {
  try {
    yield* read(neverReady("b"));
  } finally {
    try {
      yield* sleep(5); // releasing something takes a while
      log.push("main cleanup done");
    } catch (e) {
      log.push(`main cleanup interrupted: ${(e as Error).message}`);
    }
  }
}

Deno.test("DeadlockError: a detached task's cleanup failure does not cut main's cleanup short; it is the DeadlockError's cause", async () => {
  const log: string[] = [];
  const loop = new Loop({ clock: new VirtualClock() });
  const error = await assertRejects(() =>
    loop.runUntilComplete(function* main() {
      yield* spawn(failsInCleanup("worker cleanup failed"), { detached: true });
      yield* deadlocksThenCleansUp(log);
    })
  );
  assertInstanceOf(error, DeadlockError);
  assertEquals(log, ["main cleanup done"]);
  assertInstanceOf(error.cause, TaskFailedError);
  assertStringIncludes(error.cause.message, "worker cleanup failed");
});

Deno.test("DeadlockError under runSync: a loop.spawn task's cleanup failure does not cut main's cleanup short; it is the run error's cause", () => {
  const log: string[] = [];
  const loop = new Loop({ clock: new VirtualClock() });
  loop.spawn(failsInCleanup("root cleanup failed"));
  const error = assertThrows(() => loop.runSync(() => deadlocksThenCleansUp(log)), DeadlockError);
  assertEquals(log, ["main cleanup done"]);
  assertInstanceOf(error.cause, TaskFailedError);
  assertStringIncludes(error.cause.message, "root cleanup failed");
});

/** Every error reachable from `error` through `cause` and `AggregateError.errors`, with repeats. */
function reachableErrors(error: unknown, out: unknown[] = [], depth = 0): unknown[] {
  if (depth > 20 || error === null || typeof error !== "object") return out;
  out.push(error);
  if (error instanceof AggregateError) {
    for (const each of error.errors) reachableErrors(each, out, depth + 1);
  }
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined) reachableErrors(cause, out, depth + 1);
  return out;
}

Deno.test("DeadlockError: a detached task's failure that main's cleanup joins is reported once in the DeadlockError's cause", () => {
  const boom = new Error("flush failed");
  const loop = new Loop({ clock: new VirtualClock() });
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      const helper = yield* spawn(function* helper() {
        yield* suspend();
      });
      const flusher = yield* spawn(function* flusher() {
        try {
          yield* join(helper); // ends when the unwind cancels helper (and flusher)
        } catch {
          throw boom;
        }
      }, { detached: true });
      try {
        yield* suspend(); // deadlock: the run fails
      } finally {
        yield* sleep(5);
        yield* join(flusher); // throws boom: main fails with it
      }
    })
  );
  assertInstanceOf(error, DeadlockError);
  const occurrences = reachableErrors(error.cause).filter((e) => e === boom).length;
  assertEquals(occurrences, 1, `"flush failed" appears ${occurrences} times in the run's error`);
});

Deno.test("DeadlockError: a task whose body returned, waiting for its children, is not reported as one whose body threw when a child failed", () => {
  const error = assertThrows(
    () =>
      new Loop({ clock: new VirtualClock() }).runSync(function* main() {
        const parent = yield* spawn(function* parent() {
          yield* spawn(function* failer() {
            try {
              yield* sleep(100);
            } finally {
              // deno-lint-ignore no-unsafe-finally
              throw new Error("cleanup failed");
            }
          });
          yield* spawn(function* stuck() {
            try {
              yield* sleep(100);
            } finally {
              yield* suspend();
            }
          });
          yield* sleep(1);
          return "ok";
        });
        return yield* join(parent);
      }),
    DeadlockError,
  );
  const line = error.blocked.find((l) => l.startsWith('task "parent"'));
  assert(line !== undefined, error.message);
  assert(!line.includes("its body threw"), line);
  assertStringIncludes(line, "its body returned, but a child failed:");
});

Deno.test("TaskFailedError: a detached task whose body threw before the run ended is reported as unjoined, not as failing while cancelled at the run's end", () => {
  let caught: unknown;
  try {
    new Loop({ clock: new VirtualClock() }).runSync(function* main() {
      yield* spawn(function* det() {
        yield* spawn(function* kid() {
          try {
            yield* sleep(100);
          } finally {
            yield* sleep(10);
          }
        });
        yield* sleep(1);
        throw new Error("det body failed");
      }, { detached: true });
      yield* sleep(2);
      return "main done";
    });
  } catch (error) {
    caught = error;
  }
  assertInstanceOf(caught, TaskFailedError);
  assertEquals(caught.taskName, "det");
  assertStringIncludes(caught.message, "det body failed");
  assert(!caught.message.includes("while cancelled at the end of the run"), caught.message);
  assertStringIncludes(caught.message, "failed and nobody joined it");
});

Deno.test("DeadlockError: two tasks joining each other; .blocked names each and what it waits for", () => {
  const error = assertThrows(
    () =>
      runSync(function* main() {
        const pair: Task<void>[] = [];
        pair.push(
          yield* spawn(function* alice() {
            yield* yieldNow();
            yield* join(pair[1]);
          }),
        );
        pair.push(
          yield* spawn(function* bob() {
            yield* yieldNow();
            yield* join(pair[0]);
          }),
        );
        yield* join(pair[0]);
      }),
    DeadlockError,
  );
  assertEquals(error.name, "DeadlockError");
  assertEquals([...error.blocked].sort(), [
    'task "alice" waits for task "bob" to finish (join)',
    'task "bob" waits for task "alice" to finish (join)',
    'task "main" waits for task "alice" to finish (join)',
  ]);
  assertMatch(error.message, /^Deadlock: no task can make progress and nothing could wake one/);
  for (const line of error.blocked) assertStringIncludes(error.message, line);
});

Deno.test("DeadlockError: suspend() with nothing to cancel it", () => {
  const error = assertThrows(
    () =>
      runSync(function* main() {
        yield* suspend();
      }, { clock: new VirtualClock() }),
    DeadlockError,
  );
  assertEquals(error.blocked, [
    'task "main" waits for nothing: it is suspended until cancelled (suspend)',
  ]);
});

Deno.test("DeadlockError: run() rejects with it too, and only blocked (not finished) tasks are listed", async () => {
  const error = await assertRejects(
    () =>
      run(function* main() {
        const finished = yield* spawn(function* finished() {});
        yield* join(finished);
        yield* gather([function* stuck() {
          yield* sleep(Infinity);
        }]);
      }),
    DeadlockError,
  );
  assertEquals([...error.blocked].sort(), [
    'task "main" waits for gather of 1 task (1 still running)',
    'task "stuck" waits for sleep(Infinity)',
  ]);
});

Deno.test("DeadlockError: not raised while a timer can still wake a task", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    const waiter = yield* spawn(function* waiter() {
      yield* suspend();
    });
    yield* sleep(500); // only a timer is pending: not a deadlock
    yield* cancel(waiter);
    return waiter.state;
  });
  assertEquals(result, "cancelled");
  assertEquals(loop.time(), 500);
});

Deno.test("DeadlockError: other tasks ran to completion before it was raised", () => {
  const log: string[] = [];
  const error = assertThrows(
    () =>
      runSync(function* main() {
        yield* spawn(bystander(log, 10));
        yield* suspend();
      }, { clock: new VirtualClock() }),
    DeadlockError,
  );
  assertEquals(log, ["bystander finished"]);
  assertEquals(error.blocked.length, 1);
});

Deno.test("DeadlockError: the blocked tasks are cancelled first, so their finally blocks release", () => {
  const log: string[] = [];
  const error = assertThrows(
    () =>
      runSync(function* main() {
        yield* spawn(function* holder() {
          try {
            yield* suspend();
          } finally {
            log.push("holder released");
          }
        });
        try {
          yield* suspend();
        } finally {
          log.push("main released");
        }
      }),
    DeadlockError,
  );
  assertEquals(log.sort(), ["holder released", "main released"]);
  assertEquals(error.blocked.length, 2, "the report lists the tasks as they were blocked");
});

Deno.test("DeadlockError: a cleanup that blocks again still ends the run with the first error", async () => {
  const loop = new Loop();
  const error = await assertRejects(
    () =>
      loop.runUntilComplete(function* main() {
        try {
          yield* suspend();
        } finally {
          yield* suspend();
        }
      }),
    DeadlockError,
  );
  assertStringIncludes(error.message, 'task "main" waits for nothing');
  assertEquals(loop.running, false);
});

/** Spawns a child whose cleanup never ends, then fails with `error`. */
function* failWhileACleanupHangs(error: Error): Operation<never> {
  yield* spawn(function* holder() {
    try {
      yield* suspend();
    } finally {
      yield* suspend(); // a stuck close, say
    }
  });
  yield* yieldNow();
  throw error;
}

Deno.test("DeadlockError: the error that started the shutdown is its cause and is named in its message", async () => {
  const boom = new Error("boom: the real cause");
  const sync = assertThrows(
    () => virtualLoop().runSync(failWhileACleanupHangs(boom)),
    DeadlockError,
  );
  const async = await assertRejects(
    () => virtualLoop().runUntilComplete(failWhileACleanupHangs(boom)),
    DeadlockError,
  );
  for (const error of [sync, async]) {
    assertStrictEquals(error.cause, boom);
    assertStringIncludes(
      error.message,
      "waits for its children to finish their cleanup (its body threw Error: boom: the real cause)",
    );
  }
});

Deno.test("runSync() refusing to wait for real time keeps the body's error as its cause", () => {
  const boom = new Error("boom: the real cause");
  const error = assertThrows(() =>
    new Loop().runSync(function* main() {
      yield* spawn(function* lingering() {
        try {
          yield* suspend();
        } finally {
          yield* sleep(5); // a graceful close with a linger
        }
      });
      yield* yieldNow();
      throw boom;
    }), Error);
  assertMatch(error.message, /^Cannot finish with runSync\(\)/);
  assertStrictEquals(error.cause, boom);
});

Deno.test("DeadlockError: an error the run was already carrying (a throwing warning hook) is its cause", () => {
  const hookError = new Error("the hook failed");
  const loop = virtualLoop({
    onWarning: () => {
      throw hookError;
    },
  });
  const error = assertThrows(
    () =>
      loop.runSync(function* main() {
        const stubborn = yield* spawn(function* stubborn() {
          try {
            yield* suspend();
          } catch {
            return "swallowed"; // warned about: the hook throws
          }
        });
        yield* yieldNow();
        yield* cancel(stubborn);
        yield* suspend();
      }),
    DeadlockError,
  );
  assertStrictEquals(error.cause, hookError);
});

Deno.test("DeadlockError: a cancelled task that keeps waiting is listed as cancelled, still running", () => {
  const error = assertThrows(
    () =>
      virtualLoop().runSync(function* main() {
        const stubborn = yield* spawn(function* stubborn(): Operation<void> {
          try {
            yield* suspend();
          } catch {
            yield* suspend(); // ignores its cancellation and waits again
          }
        });
        yield* yieldNow();
        stubborn.cancel();
        yield* join(stubborn);
      }),
    DeadlockError,
  );
  assertStringIncludes(
    error.message,
    'task "stubborn" (cancelled, still running) waits for nothing',
  );
});

// ---------------------------------------------------------------------------
// runSync and real time.

Deno.test("runSync() throws a clear error when it would have to wait for real time", () => {
  const log: string[] = [];
  const error = assertThrows(
    () =>
      runSync(function* main() {
        yield* spawn(bystander(log));
        try {
          yield* sleep(10);
        } finally {
          log.push("main cleaned up");
        }
      }),
    Error,
  );
  assert(!(error instanceof DeadlockError), "not a deadlock: time would end it");
  assertStringIncludes(error.message, "Cannot finish with runSync()");
  assertMatch(error.message, /task "main" waits for sleep\(10\) until t=[\d.]+ ms/);
  assertStringIncludes(
    error.message,
    "run it with await run(body) (await loop.runUntilComplete(body) on a Loop), or give the loop a VirtualClock",
  );
  // What could run did run, and the main task was cancelled so it cleaned up.
  assertEquals(log, ["bystander finished", "main cleaned up"]);
});

Deno.test("runSync() of a task waiting for a Promise does not advise a VirtualClock, which would not help", () => {
  const error = assertThrows(
    () =>
      runSync(function* main() {
        return yield* call(() =>
          new Promise<number>((resolve) => queueMicrotask(() => resolve(1)))
        );
      }, { clock: new VirtualClock() }),
    Error,
  );
  assertStringIncludes(error.message, "Cannot finish with runSync()");
  assert(
    error.message.endsWith(
      "run it with await run(body) (await loop.runUntilComplete(body) on a Loop)",
    ),
    error.message,
  );
});

Deno.test("runSync() of a loop with a VirtualClock already, stuck on a Promise beside a sleeper, does not advise giving it a VirtualClock", () => {
  const loop = new Loop({ clock: new VirtualClock() });
  let message = "";
  try {
    loop.runSync(function* main() {
      yield* spawn(function* sleeper() {
        yield* sleep(10);
      });
      yield* call(() => new Promise<void>(() => {}));
    });
  } catch (error) {
    message = (error as Error).message;
  }
  assertStringIncludes(message, "Cannot finish with runSync()");
  assertEquals(message.includes("give the loop a VirtualClock"), false, message);
});

Deno.test("runSync() with the same program on a VirtualClock does not refuse", () => {
  const clock = new VirtualClock();
  assertEquals(
    runSync(function* main() {
      yield* sleep(10);
      return "slept";
    }, { clock }),
    "slept",
  );
  assertEquals(clock.now(), 10);
});

Deno.test("runSync() refuses real time even for a sleeping child; the child is cancelled", () => {
  const loop = new Loop();
  let cleaned = false;
  assertThrows(
    () =>
      loop.runSync(function* main() {
        const child = yield* spawn(function* napper() {
          try {
            yield* sleep(5);
          } finally {
            cleaned = true;
          }
        });
        yield* join(child);
      }),
    Error,
    'task "napper" waits for sleep(5)',
  );
  assertEquals(cleaned, true);
  assertEquals(loop._timerCount, 0);
  assertEquals(loop.running, false);
});

Deno.test("CancelledError is what a cancelled run's joiner sees, distinct from failures", () => {
  const error = runSync(function* main() {
    const child = yield* spawn(suspend());
    child.cancel("done with it");
    return yield* caught(() => join(child));
  });
  assertInstanceOf(error, CancelledError);
  assert(!(error instanceof TaskFailedError));
  assertEquals(error.reason, "done with it");
});

// Regression test for a bug fixed after these tests found it:
// a failure report that reaches a task already queued with another error
// (here: its CancelledError) is dropped by Loop's #interrupt ("a pending
// error wins"), so the child's failure vanishes.
Deno.test({
  name:
    "TaskFailedError: a child failing while its parent is queued with its CancelledError is not lost",
  fn() {
    const loop = virtualLoop();
    const error = loop.runSync(function* main() {
      const parent = yield* spawn(function* parent() {
        yield* spawn(function* child() {
          yield* sleep(10);
          throw new Error("child failed");
        });
        yield* sleep(1_000);
      });
      yield* sleep(10); // armed before the child's sleep: main runs first at t=10
      parent.cancel(); // the parent is queued with its CancelledError; then the child fails
      return yield* caught(() => join(parent));
    });
    const reported = error instanceof TaskFailedError ||
      (error instanceof AggregateError && error.errors.some((e) => e instanceof TaskFailedError));
    assert(reported, `the child's failure was dropped; the joiner got ${error}`);
  },
});

// ---------------------------------------------------------------------------
// A task whose own wait gets undone while it starts that wait.

/**
 * Spawns a parent that waits on `waitOn(kid)`, where the kid cancels that
 * very parent; returns the kid once the parent's cancellation is joined.
 */
function cancelParentFromInside(
  waitOn: (kid: () => Operation<void>) => Operation<unknown>,
): Task<unknown> {
  const loop = new Loop({ clock: new VirtualClock() });
  let kid: Task<unknown> | undefined;
  loop.runSync(function* main() {
    const parent: Task<unknown> = yield* spawn(function* parentBody() {
      yield* waitOn(function* kidBody() {
        kid = yield* currentTask();
        yield* cancel(parent);
      });
    });
    try {
      yield* join(parent);
    } catch (error) {
      assertInstanceOf(error, CancelledError);
    }
    // Time for a wrongly queued settled kid to be stepped again.
    yield* sleep(1);
    yield* sleep(1);
  });
  return kid!;
}

Deno.test("cancel(parent) from a child of the gather the parent waits on: the child is cancelled once, not resumed after it settled", () => {
  const kid = cancelParentFromInside((body) => gather([body]));
  assertEquals(kid.state, "cancelled");
});

Deno.test("cancel(parent) from the body of a timeout() the parent waits on: the body is cancelled once", () => {
  const kid = cancelParentFromInside((body) => timeout(100, body));
  assertEquals(kid.state, "cancelled");
});

Deno.test("cancel(main) from a gather child leaves the loop fit for its next run", () => {
  const loop = new Loop({ clock: new VirtualClock() });
  assertThrows(
    () =>
      loop.runSync(function* main() {
        const me = yield* currentTask();
        yield* gather([function* kid() {
          yield* cancel(me);
        }]);
      }),
    CancelledError,
  );
  const second = loop.runSync(function* second() {
    yield* sleep(1);
    return 42;
  });
  assertEquals(second, 42);
});

// ---------------------------------------------------------------------------
// A thenable whose then() throws.

/** A thenable that calls back `late` (if given) soon, and throws from then(). */
function brokenThenable(late?: unknown): PromiseLike<unknown> {
  return {
    then(resolve?: ((value: unknown) => unknown) | null): never {
      if (late !== undefined) setTimeout(() => resolve?.(late), 0);
      throw new Error("bad then");
    },
  } as PromiseLike<unknown>;
}

Deno.test("call() of a thenable whose then() throws: the error reaches the task and a later deadlock is still reported", async () => {
  const caught: string[] = [];
  await assertRejects(
    () =>
      new Loop().runUntilComplete(function* main() {
        try {
          yield* call(() => brokenThenable());
        } catch (error) {
          caught.push((error as Error).message);
        }
        yield* suspend();
      }),
    DeadlockError,
  );
  assertEquals(caught, ["bad then"]);
});

Deno.test("call() of a thenable that fulfils at once and then throws evaluates to its value, as await does", async () => {
  const settlesThenThrows = (): PromiseLike<string> => ({
    then<R>(resolve?: ((value: string) => R) | null): never {
      resolve?.("value");
      throw new Error("bad then, after settling");
    },
  } as PromiseLike<string>);
  assertEquals(await settlesThenThrows(), "value");
  // Followed as await follows it: later, never inside the step.
  const value = await run(function* main() {
    return yield* call(settlesThenThrows);
  });
  assertEquals(value, "value");
});

Deno.test("call() of a thenable whose then() throws after registering: its late value reaches nobody", async () => {
  const value = await new Loop().runUntilComplete(function* main() {
    try {
      yield* call(() => brokenThenable("stale"));
    } catch {
      // expected: bad then
    }
    return yield* call(() => new Promise((resolve) => setTimeout(() => resolve("real"), 30)));
  });
  assertEquals(value, "real");
});

Deno.test("a task failing unjoined with a value String() cannot convert is reported as a TaskFailedError; the loop runs on", () => {
  // A "dictionary" payload: String() of an object without a prototype throws.
  const payload = Object.create(null) as Record<string, unknown>;
  payload.code = "E_BAD";
  const log: string[] = [];
  const loop = virtualLoop();
  const report = loop.runSync(function* main() {
    yield* spawn(function* bad() {
      throw payload;
    });
    const other = yield* spawn(() => bystander(log, 1));
    try {
      yield* sleep(10);
    } catch (error) {
      yield* join(other);
      return error;
    }
  });
  assertInstanceOf(report, TaskFailedError);
  assertStrictEquals(report.cause, payload);
  assertEquals(
    report.message,
    'Task "bad" failed and nobody joined it: (a value that cannot be converted to a string)',
  );
  assertEquals(log, ["bystander finished"]);
  assertEquals(
    loop.runSync(function* again() {
      return "the loop is usable";
    }),
    "the loop is usable",
  );
});

Deno.test("task.cancel(reason) takes a reason String() cannot convert, and keeps it", () => {
  const reason = Object.create(null) as Record<string, unknown>;
  reason.why = "shutdown";
  const error = virtualLoop().runSync(function* main() {
    const child = yield* spawn(function* child() {
      yield* suspend();
    });
    yield* yieldNow();
    child.cancel(reason);
    return yield* caught(() => join(child));
  });
  assertInstanceOf(error, CancelledError);
  assertStrictEquals(error.reason, reason);
  assertEquals(
    error.message,
    'Task "child" was cancelled: (a value that cannot be converted to a string)',
  );
});

Deno.test("a body that throws its own AggregateError while a child's cleanup fails: that error is kept whole, beside the child's report", () => {
  class BatchError extends AggregateError {
    readonly batch = 7;
  }
  const mine = new BatchError([new Error("item 1"), new Error("item 2")], "batch failed");
  const error = assertThrows(() =>
    virtualLoop().runSync(function* main() {
      yield* spawn(function* child() {
        try {
          yield* suspend();
        } catch {
          throw new Error("cleanup failed");
        }
      });
      yield* yieldNow();
      throw mine;
    })
  );
  assertInstanceOf(error, AggregateError);
  assertEquals(error.errors.length, 2);
  assertStrictEquals(error.errors[0], mine);
  assertInstanceOf(error.errors[1], TaskFailedError);
  assertEquals((error.errors[1] as TaskFailedError).taskName, "child");
});

Deno.test("a task closing many children that fail in cleanup reports every failure once, in the order they failed", () => {
  const CHILDREN = 5_000;
  const error = assertThrows(() =>
    virtualLoop().runSync(function* main() {
      for (let i = 0; i < CHILDREN; i++) {
        yield* spawn(function* fragile() {
          try {
            yield* suspend();
          } catch {
            throw new Error(`cleanup ${i} failed`);
          }
        });
      }
      yield* yieldNow();
    })
  );
  assertInstanceOf(error, AggregateError);
  assertEquals(error.errors.length, CHILDREN);
  const causes = error.errors.map((report) => ((report as TaskFailedError).cause as Error).message);
  // Children are cancelled newest first, so they fail in that order.
  assertEquals(
    causes,
    Array.from({ length: CHILDREN }, (_, i) => `cleanup ${CHILDREN - 1 - i} failed`),
  );
});

Deno.test("gather(): siblings that fail in their cleanup after the first failure reach the waiting task as one flat AggregateError, each once", () => {
  const SIBLINGS = 3_000;
  function* fragile(i: number): Operation<void> {
    try {
      yield* suspend();
    } catch {
      throw new Error(`cleanup ${i} failed`);
    }
  }
  function* first(): Operation<void> {
    yield* yieldNow();
    throw new Error("first failure");
  }
  const [gatherError, late] = virtualLoop().runSync(function* main() {
    const bodies = [first(), ...Array.from({ length: SIBLINGS }, (_, i) => fragile(i))];
    const gatherError = yield* caught(() => gather(bodies));
    // The cleanup failures come after the gather's own error, at the next yield*.
    const late = yield* caught(() => yieldNow());
    return [gatherError, late];
  });
  assertEquals((gatherError as Error).message, "first failure");
  assertInstanceOf(late, AggregateError);
  assertEquals(late.errors.length, SIBLINGS);
  const causes = new Set(
    late.errors.map((report) => ((report as TaskFailedError).cause as Error).message),
  );
  assertEquals(causes.size, SIBLINGS);
  assert(late.errors.every((report) => report instanceof TaskFailedError));
});

Deno.test("InvalidInstructionError: close() yielded without * is reported as an operation, named, with the fix", () => {
  const message = runSync(function* main() {
    try {
      yield close(new SimulatedStream("s")) as unknown as never;
    } catch (error) {
      assertInstanceOf(error, InvalidInstructionError);
      return error.message;
    }
    return "nothing thrown";
  });
  assertStringIncludes(message, 'an operation (close of stream "s") with `yield`; write `yield*`');
});

/** A user operation that logs each step of a void operation it forwards to. */
class Logged implements Iterator<Yielded, void, unknown> {
  readonly #inner: Iterator<Yielded, void, unknown>;
  readonly log: string[];
  constructor(op: Operation<void>, log: string[]) {
    this.#inner = op[Symbol.iterator]();
    this.log = log;
  }
  [Symbol.iterator](): Iterator<Yielded, void, unknown> {
    return this;
  }
  // A void operation: its resume value is of no interest, so it is not passed on.
  next(): IteratorResult<Yielded, void> {
    this.log.push("step");
    return this.#inner.next();
  }
  throw(error: unknown): IteratorResult<Yielded, void> {
    return this.#inner.throw!(error);
  }
}

Deno.test("a user operation whose next() drops its argument (as Iterator.from() does) still finishes sleep(): the loop's resume is told from a second task's yield*", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    yield* new Logged(sleep(5), log);
  });
  assertEquals(loop.time(), 5);
  assertEquals(log, ["step", "step"]);
});

Deno.test("a hand-written task body resumed after sleep() sees undefined", () => {
  const loop = virtualLoop();
  let phase = 0;
  let seen: unknown = "unset";
  const body = {
    next(value?: unknown): IteratorResult<Yielded, unknown> {
      if (phase++ === 0) return sleep(5)[Symbol.iterator]().next();
      seen = value;
      return { value, done: true };
    },
    throw(error: unknown): IteratorResult<Yielded, unknown> {
      throw error;
    },
  };
  const result = loop.runSync(body);
  assertStrictEquals(seen, undefined);
  assertStrictEquals(result, undefined);
});

Deno.test("a generator stepped by hand to its first yield* and then spawned is not refused as waited on by another task", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    function* worker(): Generator<Yielded, string> {
      yield* sleep(5);
      return "ok";
    }
    const g = worker();
    g.next(); // stepped to its first yield* by hand
    const t = yield* spawn(g);
    return yield* join(t);
  });
  assertEquals(result, "ok");
});

Deno.test("errors that meet: a body's thrown undefined is an error like any other, kept beside a child's failed cleanup", () => {
  const error = assertThrows(() =>
    virtualLoop().runSync(function* main() {
      yield* spawn(function* child() {
        try {
          yield* sleep(100);
        } finally {
          // deno-lint-ignore no-unsafe-finally
          throw new Error("child cleanup failed");
        }
      });
      yield* sleep(1);
      throw undefined;
    })
  );
  assertInstanceOf(error, AggregateError);
  assertEquals(error.errors.length, 2);
  assertStrictEquals(error.errors[0], undefined);
  assertInstanceOf(error.errors[1], TaskFailedError);
  assertEquals(error.errors[1].taskName, "child");
});

Deno.test("errors that meet: a body's thrown undefined is kept beside a failure deferred behind the error it caught", () => {
  const outcome = virtualLoop().runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<void> {
      const joined = yield* spawn(function* joined() {
        yield* sleep(5);
        throw new Error("joined failed");
      });
      yield* spawn(function* unjoined() {
        yield* sleep(5);
        // The same tick: its report waits behind the join's error.
        throw new Error("unjoined failed");
      });
      try {
        yield* join(joined);
      } catch {
        // No yield* after: the waiting report joins the outcome.
        throw undefined;
      }
    });
    return yield* caught(() => join(worker));
  });
  assertInstanceOf(outcome, AggregateError);
  assertEquals(outcome.errors.length, 2);
  assertStrictEquals(outcome.errors[0], undefined);
  assertInstanceOf(outcome.errors[1], TaskFailedError);
  assertEquals(outcome.errors[1].taskName, "unjoined");
});

for (const group of [gather, race]) {
  Deno.test(`DeadlockError: a ${group.name}() child's failure the unwind took from its waiting task says the run failed, not that the task was interrupted`, () => {
    const error = assertThrows(
      () =>
        runSync(function* main() {
          yield* group([
            function* failing(): Operation<never> {
              yield* yieldNow();
              throw new Error("A");
            },
            function* stuck(): Operation<void> {
              try {
                yield* suspend();
              } finally {
                // Its cleanup never ends: the run deadlocks.
                yield* suspend();
              }
            },
          ]);
        }),
      DeadlockError,
    );
    assertInstanceOf(error.cause, TaskFailedError);
    assertEquals(
      error.cause.message,
      `Task "failing" failed in a ${group.name}() whose waiting task was cancelled when the run failed: Error: A`,
    );
  });
}

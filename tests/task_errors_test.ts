import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  currentTask,
  DeadlockError,
  gather,
  InvalidInstructionError,
  join,
  Loop,
  type Operation,
  run,
  runSync,
  sleep,
  spawn,
  suspend,
  TaskFailedError,
  VirtualClock,
  yieldNow,
} from "../mod.ts";

function* survivor(log: string[]): Operation<string> {
  for (let i = 0; i < 3; i++) yield* yieldNow();
  log.push("survivor finished");
  return "ok";
}

Deno.test("join() throws the child's error into the joiner, where it can be caught", () => {
  const caught = runSync(function* main() {
    const child = yield* spawn(function* failing() {
      yield* yieldNow();
      throw new RangeError("out of range");
    });
    try {
      yield* join(child);
      return "not thrown";
    } catch (error) {
      return [(error as Error).name, (error as Error).message, child.state];
    }
  });
  assertEquals(caught, ["RangeError", "out of range", "failed"]);
});

Deno.test("an uncaught child error propagates through join to the run", () => {
  assertThrows(
    () =>
      runSync(function* main() {
        const child = yield* spawn(function* failing() {
          throw new URIError("deep");
        });
        yield* join(child);
      }),
    URIError,
    "deep",
  );
});

Deno.test("a failing task nobody joins reaches its parent as TaskFailedError naming it", () => {
  const report = runSync(function* main() {
    yield* spawn(function* forgotten() {
      throw new TypeError("lost?");
    });
    try {
      for (let i = 0; i < 5; i++) yield* yieldNow();
      return "never reported";
    } catch (error) {
      return error;
    }
  });
  assertInstanceOf(report, TaskFailedError);
  assertEquals(report.taskName, "forgotten");
  assertInstanceOf(report.cause, TypeError);
  assertStringIncludes(report.message, 'Task "forgotten" failed and nobody joined it');
});

Deno.test("an unjoined failure nobody catches rejects the run, naming the task", async () => {
  const loop = new Loop({ clock: new VirtualClock() });
  let error: unknown;
  try {
    await loop.runUntilComplete(function* main() {
      yield* spawn(function* background() {
        yield* sleep(5);
        throw new Error("background broke");
      });
      yield* sleep(100);
    });
  } catch (e) {
    error = e;
  }
  assertInstanceOf(error, TaskFailedError);
  assertStringIncludes(error.message, '"background"');
  assertStringIncludes(error.message, "background broke");
  assertEquals(loop.time(), 5, "the failure interrupted main's sleep at once");
});

Deno.test("a detached task's unjoined failure is reported to the run's main task", () => {
  const report = runSync(function* main() {
    yield* spawn(function* parent() {
      yield* spawn(function* orphan() {
        yield* yieldNow();
        throw new Error("orphan failed");
      }, { detached: true });
    });
    try {
      yield* suspend();
    } catch (error) {
      return error;
    }
  });
  assertInstanceOf(report, TaskFailedError);
  assertEquals(report.taskName, "orphan");
});

Deno.test("yielding a number throws InvalidInstructionError into that task; others keep running", () => {
  const log: string[] = [];
  const message = runSync(function* main() {
    const other = yield* spawn(survivor(log));
    let text = "";
    try {
      yield 42;
    } catch (error) {
      assertInstanceOf(error, InvalidInstructionError);
      assertEquals(error.yielded, 42);
      text = error.message;
    }
    yield* join(other);
    return text;
  });
  assertStringIncludes(message, 'Task "main" yielded number 42');
  assertStringIncludes(message, "yield*");
  assertEquals(log, ["survivor finished"]);
});

Deno.test("yielding a Promise suggests call()", () => {
  const message = runSync(function* main() {
    try {
      yield Promise.resolve(1);
    } catch (error) {
      return (error as Error).message;
    }
  });
  assertStringIncludes(message!, "yielded a Promise");
  assertStringIncludes(message!, "yield* call(() => promise)");
});

Deno.test("a forgotten * (yield sleep(1)) says to write yield*", () => {
  const [name, message] = runSync(function* main() {
    try {
      yield sleep(1);
    } catch (error) {
      return [(error as Error).name, (error as Error).message];
    }
    return [];
  }, { clock: new VirtualClock() });
  assertEquals(name, "InvalidInstructionError");
  assertStringIncludes(message, "with `yield`; write `yield*`");
});

Deno.test("yielding a generator object raw suggests yield* or spawn", () => {
  function* helper(): Operation<void> {}
  const message = runSync(function* main() {
    try {
      yield helper();
    } catch (error) {
      return (error as Error).message;
    }
  });
  assertStringIncludes(message!, "yielded a generator object");
});

Deno.test("an uncaught InvalidInstructionError fails only that task", () => {
  const log: string[] = [];
  const outcome = runSync(function* main() {
    const bad = yield* spawn(function* bad() {
      yield "oops";
    });
    const good = yield* spawn(survivor(log));
    const results: string[] = [];
    try {
      yield* join(bad);
    } catch (error) {
      results.push((error as Error).name);
    }
    results.push(yield* join(good));
    return results;
  });
  assertEquals(outcome, ["InvalidInstructionError", "ok"]);
});

Deno.test("spawn() of something that is not a task body throws TypeError at the call", () => {
  const cases: unknown[] = [
    42,
    null,
    undefined,
    { not: "an iterator" },
    [1, 2, 3],
    async function asyncWorker() {},
    function notAGenerator() {
      return 5;
    },
  ];
  const messages = runSync(function* main() {
    const out: string[] = [];
    for (const value of cases) {
      try {
        spawn(value as never);
        out.push("accepted");
      } catch (error) {
        assertInstanceOf(error, TypeError);
        out.push(error.message);
      }
    }
    return out;
  });
  assert(messages.every((m) => m.startsWith("spawn() expected")), messages.join("\n"));
  assertStringIncludes(messages[5], "(not async)");
  assertStringIncludes(messages[6], '"notAGenerator" returned number 5');
});

Deno.test("joining yourself is a clear error thrown into the task", () => {
  const message = runSync(function* main() {
    const me = yield* currentTask();
    try {
      yield* join(me);
      return "joined itself?";
    } catch (error) {
      return (error as Error).message;
    }
  });
  assertStringIncludes(message, 'Task "main" cannot join itself');
});

Deno.test("joining a task of another Loop is a clear error", () => {
  const foreign = new Loop().spawn(function* foreign() {});
  const message = runSync(function* main() {
    try {
      yield* join(foreign);
    } catch (error) {
      return (error as Error).message;
    }
  });
  assertStringIncludes(message!, 'cannot join task "foreign": that task belongs to another Loop');
});

Deno.test("DeadlockError lists every blocked task and what it waits for", () => {
  const error = assertThrows(
    () =>
      runSync(function* main() {
        const a = yield* spawn(function* waitsForever() {
          yield* suspend();
        });
        yield* join(a);
      }),
    DeadlockError,
  );
  assertEquals([...error.blocked].sort(), [
    'task "main" waits for task "waitsForever" to finish (join)',
    'task "waitsForever" waits for nothing: it is suspended until cancelled (suspend)',
  ]);
  assertStringIncludes(error.message, "Deadlock: no task can make progress");
});

Deno.test("two tasks joining each other deadlock, and are both named", () => {
  const error = assertThrows(
    () =>
      runSync(function* main() {
        const tasks: import("../mod.ts").Task<void>[] = [];
        tasks.push(
          yield* spawn(function* first() {
            yield* yieldNow();
            yield* join(tasks[1]);
          }),
        );
        tasks.push(
          yield* spawn(function* second() {
            yield* yieldNow();
            yield* join(tasks[0]);
          }),
        );
        yield* gather([]);
        yield* join(tasks[0]);
      }),
    DeadlockError,
  );
  assertStringIncludes(error.message, 'task "first" waits for task "second" to finish');
  assertStringIncludes(error.message, 'task "second" waits for task "first" to finish');
});

Deno.test("runSync() refuses to wait on the real clock with a clear error", () => {
  const error = assertThrows(
    () =>
      runSync(function* main() {
        yield* sleep(10);
      }),
    Error,
    "Cannot finish with runSync()",
  );
  assertStringIncludes(error.message, 'task "main" waits for sleep(10)');
  assertStringIncludes(error.message, "VirtualClock");
});

Deno.test("after a bad instruction the loop stays healthy for the next run", async () => {
  const loop = new Loop();
  try {
    await loop.runUntilComplete(function* main() {
      yield 1;
    });
  } catch (error) {
    assertInstanceOf(error, InvalidInstructionError);
  }
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
  const error = await loop.runUntilComplete(function* main() {
    try {
      yield* suspend();
    } finally {
      yield* suspend();
    }
  }).catch((e) => e);
  assertInstanceOf(error, DeadlockError);
  assertStringIncludes(error.message, 'task "main" waits for nothing');
  assertEquals(loop.running, false);
});

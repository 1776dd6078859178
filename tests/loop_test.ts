import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  call,
  CancelledError,
  currentTask,
  gather,
  type Instruction,
  join,
  Loop,
  type Operation,
  run,
  runSync,
  spawn,
  type Task,
  yieldNow,
} from "../mod.ts";

function* stepper(log: string[], name: string, steps: number): Operation<string> {
  for (let i = 0; i < steps; i++) {
    log.push(`${name}${i}`);
    yield* yieldNow();
  }
  return name;
}

Deno.test("yieldNow() resumes ready tasks in FIFO order, round robin", () => {
  const log: string[] = [];
  runSync(function* main() {
    yield* gather([stepper(log, "a", 3), stepper(log, "b", 2), stepper(log, "c", 3)]);
  });
  assertEquals(log, ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "c2"]);
});

Deno.test("spawn() returns at once; the child starts on a later turn", () => {
  const log: string[] = [];
  runSync(function* main() {
    const child = yield* spawn(function* child() {
      log.push("child runs");
    });
    log.push(`parent continues, child is ${child.state}`);
    yield* yieldNow();
    log.push(`parent after yield, child is ${child.state}`);
  });
  assertEquals(log, [
    "parent continues, child is ready",
    "child runs",
    "parent after yield, child is done",
  ]);
});

Deno.test("join() evaluates to the child's return value, typed", () => {
  const result = runSync(function* main() {
    const child: Task<number> = yield* spawn(function* answer() {
      yield* yieldNow();
      return 42;
    });
    const n: number = yield* join(child);
    return n + 1;
  });
  assertEquals(result, 43);
});

Deno.test("join() of a task that already finished returns at once", () => {
  const result = runSync(function* main() {
    const child = yield* spawn(function* quick() {
      return "early";
    });
    yield* yieldNow();
    yield* yieldNow();
    return [child.state, yield* join(child), yield* join(child)];
  });
  assertEquals(result, ["done", "early", "early"]);
});

Deno.test("gather() returns results in input order, not finish order", () => {
  const finished: string[] = [];
  function* after(turns: number, name: string): Operation<string> {
    for (let i = 0; i < turns; i++) yield* yieldNow();
    finished.push(name);
    return name;
  }
  const results = runSync(function* main() {
    return yield* gather([after(3, "slow"), after(0, "fast"), after(1, "medium")]);
  });
  assertEquals(results, ["slow", "fast", "medium"]);
  assertEquals(finished, ["fast", "medium", "slow"]);
});

Deno.test("gather() of nothing is an empty array", () => {
  assertEquals(
    runSync(function* main() {
      return yield* gather([]);
    }),
    [],
  );
});

Deno.test("Task.name comes from options, the generator function, or task-<id>", () => {
  const names = runSync(function* main() {
    const named = yield* spawn(function* ignored() {}, { name: "custom" });
    const fromFunction = yield* spawn(function* worker() {});
    const anonymous = yield* spawn((function* () {})());
    return [named.name, fromFunction.name, anonymous.name, anonymous.id > fromFunction.id];
  });
  assertEquals(names.slice(0, 2), ["custom", "worker"]);
  assert(/^task-\d+$/.test(names[2] as string), `got ${names[2]}`);
  assertEquals(names[3], true);
});

Deno.test("Task state goes ready -> running -> waiting -> done, with result and error", () => {
  const seen: string[] = [];
  runSync(function* main() {
    const me = yield* currentTask();
    seen.push(`main ${me.state}`);
    const child = yield* spawn(function* child() {
      const self = yield* currentTask();
      seen.push(`child ${self.state}`);
      yield* yieldNow();
      return 7;
    });
    seen.push(`child ${child.state}`);
    yield* yieldNow();
    seen.push(`child ${child.state}`);
    yield* join(child);
    seen.push(`child ${child.state} result=${child.result} error=${child.error}`);
  });
  assertEquals(seen, [
    "main running",
    "child ready",
    "child running",
    "child ready",
    "child done result=7 error=undefined",
  ]);
});

Deno.test("currentTask() is the running task, in parent and child", () => {
  const [parentSelf, childSelf, child] = runSync(function* main() {
    const me = yield* currentTask();
    const spawned = yield* spawn(function* child() {
      return yield* currentTask();
    });
    return [me, yield* join(spawned), spawned];
  });
  assertEquals(parentSelf.name, "main");
  assertStrictEquals(childSelf, child);
});

Deno.test("spawn(worker) and spawn(worker()) both run the body", () => {
  function* worker(): Operation<number> {
    yield* yieldNow();
    return 5;
  }
  const sum = runSync(function* main() {
    const a = yield* spawn(worker);
    const b = yield* spawn(worker());
    return (yield* join(a)) + (yield* join(b));
  });
  assertEquals(sum, 10);
});

Deno.test("a hand-written iterator object runs as a task", () => {
  const log: unknown[] = [];
  // A body without generators: it walks the yieldNow() operation by hand,
  // forwarding the instruction to the loop and its resumption back.
  let step = 0;
  let pending: Iterator<Instruction, void, unknown> | null = null;
  const body: Iterator<unknown, string, unknown> = {
    next(value?: unknown): IteratorResult<unknown, string> {
      if (pending !== null) {
        const resumed = pending.next(value);
        pending = null;
        log.push(`resumed done=${resumed.done}`);
      }
      if (step < 2) {
        step++;
        pending = yieldNow()[Symbol.iterator]();
        return pending.next() as IteratorResult<unknown, string>;
      }
      return { value: "hand-made", done: true };
    },
    throw(error: unknown): IteratorResult<unknown, string> {
      throw error;
    },
  };
  const result = runSync(function* main() {
    const task = yield* spawn(body, { name: "manual" });
    log.push("spawned");
    return yield* join(task);
  });
  assertEquals(result, "hand-made");
  assertEquals(log, ["spawned", "resumed done=true", "resumed done=true"]);
});

Deno.test("Loop.runUntilComplete resolves with the value and rejects with the error", async () => {
  assertEquals(
    await new Loop().runUntilComplete(function* main() {
      yield* yieldNow();
      return "value";
    }),
    "value",
  );
  await assertRejects(
    () =>
      new Loop().runUntilComplete(function* main() {
        yield* yieldNow();
        throw new SyntaxError("bad");
      }),
    SyntaxError,
    "bad",
  );
});

Deno.test("run() and runSync() use a fresh loop each time", async () => {
  assertEquals(
    await run(function* main() {
      return 1;
    }),
    1,
  );
  assertEquals(
    runSync(function* main() {
      return 2;
    }),
    2,
  );
  assertThrows(() =>
    runSync(function* main() {
      throw new EvalError("sync");
    }), EvalError);
});

Deno.test("loop.spawn() schedules a root task from outside; the next run drives it", () => {
  const loop = new Loop();
  const log: string[] = [];
  const outside = loop.spawn(function* outside() {
    log.push("outside ran");
    return "o";
  });
  assertEquals(outside.state, "ready");
  const result = loop.runSync(function* main() {
    const value = yield* join(outside);
    log.push("main joined it");
    return value;
  });
  assertEquals(result, "o");
  assertEquals(log, ["outside ran", "main joined it"]);
});

Deno.test("Loop refuses to start a run while one is in progress", () => {
  const loop = new Loop();
  const error = runSyncCatching(loop, function* main() {
    loop.runSync(function* nested() {});
  });
  assertInstanceOf(error, Error);
  assert(/already running task "main"/.test((error as Error).message));
});

function runSyncCatching(loop: Loop, body: () => Generator<never, void>): unknown {
  try {
    loop.runSync(body);
  } catch (error) {
    return error;
  }
  return undefined;
}

Deno.test("Loop.stop() cancels a run that waits on the outside world; cleanup runs first", async () => {
  const loop = new Loop();
  const log: string[] = [];
  const running = loop.runUntilComplete(function* server() {
    yield* spawn(function* worker() {
      try {
        yield* call(() => new Promise<void>(() => {}));
      } finally {
        log.push("worker cleaned up");
      }
    });
    try {
      yield* call(() => new Promise<void>(() => {}));
    } finally {
      log.push("server cleaned up");
    }
  });
  const timer = setTimeout(() => loop.stop("shutting down"), 10);
  const error = await running.catch((e) => e);
  clearTimeout(timer);
  assertInstanceOf(error, CancelledError);
  assertEquals(error.reason, "shutting down");
  assertEquals(log.sort(), ["server cleaned up", "worker cleaned up"]);
  assertEquals(loop.running, false);
  loop.stop(); // no run in progress: nothing happens
});

// Scheduling: the order in which ready tasks run, spawn/join/gather, the
// Task record (name, id, state, result, error), hand-written task bodies,
// and the ways to start a run.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  call,
  CancelledError,
  currentTask,
  DeadlockError,
  gather,
  Instruction,
  join,
  Loop,
  type Operation,
  race,
  run,
  runSync,
  sleep,
  spawn,
  suspend,
  type Task,
  TaskFailedError,
  timeout,
  VirtualClock,
  type Yielded,
  yieldNow,
} from "../mod.ts";

function virtualLoop(): Loop {
  return new Loop({ clock: new VirtualClock() });
}

/** Logs `name<i>` and yields, `steps` times. */
function* stepper(log: string[], name: string, steps: number): Operation<string> {
  for (let i = 0; i < steps; i++) {
    log.push(`${name}${i}`);
    yield* yieldNow();
  }
  log.push(`${name} done`);
  return name;
}

/** Sleeps `ms` on the loop's clock, logs when it finished, returns `name`. */
function* after(loop: Loop, log: string[], name: string, ms: number): Operation<string> {
  yield* sleep(ms);
  log.push(`${name}@${loop.time()}`);
  return name;
}

// ---------------------------------------------------------------------------
// Order of ready tasks.

Deno.test("yieldNow() interleaves ready tasks round robin, in the order they became ready", () => {
  const log: string[] = [];
  runSync(function* main() {
    const a = yield* spawn(stepper(log, "a", 3));
    const b = yield* spawn(stepper(log, "b", 1));
    const c = yield* spawn(stepper(log, "c", 2));
    log.push("main spawned");
    yield* join(a);
    yield* join(b);
    yield* join(c);
    log.push("main joined");
  });
  assertEquals(log, [
    "main spawned",
    "a0",
    "b0",
    "c0",
    "a1",
    "b done",
    "c1",
    "a2",
    "c done",
    "a done",
    "main joined",
  ]);
});

Deno.test("spawn() queues a child behind every task that is already ready", () => {
  const log: string[] = [];
  runSync(function* main() {
    yield* spawn(function* first() {
      log.push("first runs");
      const grandchild = yield* spawn(function* grandchild() {
        log.push("grandchild runs");
      });
      log.push("first spawned grandchild");
      yield* join(grandchild);
    });
    yield* spawn(function* second() {
      log.push("second runs");
    });
    log.push("main yields");
    yield* yieldNow();
    log.push("main resumes");
    yield* yieldNow();
    log.push("main resumes again");
  });
  // first and second were queued before main's yieldNow; the grandchild was
  // queued by first, after main re-queued itself.
  assertEquals(log, [
    "main yields",
    "first runs",
    "first spawned grandchild",
    "second runs",
    "main resumes",
    "grandchild runs",
    "main resumes again",
  ]);
});

Deno.test("yieldNow() lets every other ready task run once, then continues", () => {
  const log: string[] = [];
  const result = runSync(function* main() {
    yield* spawn(stepper(log, "x", 5));
    yield* spawn(stepper(log, "y", 5));
    yield* yieldNow();
    log.push("main after 1");
    yield* yieldNow();
    log.push("main after 2");
    return "main";
  });
  assertEquals(result, "main");
  // The children are cancelled when main returns, so the log ends there.
  assertEquals(log, ["x0", "y0", "main after 1", "x1", "y1", "main after 2"]);
});

Deno.test("yieldNow() with no other ready task continues at once (the run does not stall)", () => {
  const loop = virtualLoop();
  const count = loop.runSync(function* main() {
    let n = 0;
    for (let i = 0; i < 1_000; i++) {
      yield* yieldNow();
      n++;
    }
    return n;
  });
  assertEquals(count, 1_000);
  assertEquals(loop.time(), 0, "yielding does not advance the clock");
});

Deno.test("sleep() queues a woken task behind the tasks that were already ready", () => {
  const clock = new VirtualClock();
  const loop = new Loop({ clock });
  const log: string[] = [];
  loop.runSync(function* main() {
    yield* gather([
      function* sleeper() {
        yield* sleep(1);
        log.push(`sleeper@${loop.time()}`);
      },
      function* busy() {
        for (let i = 0; i < 3; i++) {
          log.push(`busy${i}`);
          // Time passes by hand while busy is queued again: the timer fires
          // on the next tick and the sleeper joins the queue behind busy.
          if (i === 0) clock.advance(1);
          yield* yieldNow();
        }
      },
    ]);
  });
  assertEquals(log, ["busy0", "busy1", "sleeper@1", "busy2"]);
});

// ---------------------------------------------------------------------------
// spawn, join, gather.

Deno.test("spawn() returns the Task at once; the child starts on a later turn", () => {
  const log: string[] = [];
  let started = 0;
  runSync(function* main() {
    const child = yield* spawn(function* child() {
      started++;
      log.push("child runs");
      return "c";
    });
    assertEquals(started, 0, "spawn() did not run the body");
    log.push(`parent continues, child ${child.state}`);
    // More synchronous work and instructions that resume at once do not
    // give the child a turn.
    yield* currentTask();
    const other = yield* spawn(function* other() {});
    log.push(`still ${child.state}, other ${other.state}`);
    yield* yieldNow();
    log.push(`after one turn, child ${child.state} with ${child.result}`);
  });
  assertEquals(started, 1);
  assertEquals(log, [
    "parent continues, child ready",
    "still ready, other ready",
    "child runs",
    "after one turn, child done with c",
  ]);
});

Deno.test("spawn(), currentTask() and join() of a settled task finish inside the step: next() is done at once in a task, not outside one", () => {
  const outside = spawn(function* never() {})[Symbol.iterator]().next();
  assert(!outside.done, "outside any task, spawn() waits for a loop to perform it");
  const { first, me, self, joined, joinError, pending } = runSync(function* main() {
    const first = spawn(function* child() {
      return 5;
    })[Symbol.iterator]().next();
    const me = currentTask()[Symbol.iterator]().next();
    const failing = yield* spawn(function* failing() {
      throw new Error("boom");
    });
    const child = first.value as Task<number>;
    const pending = join(child)[Symbol.iterator]().next();
    try {
      yield* join(failing); // observed, so its failure is not escalated
    } catch {
      // expected: boom
    }
    const joined = join(child)[Symbol.iterator]().next();
    let joinError: unknown;
    try {
      join(failing)[Symbol.iterator]().next();
    } catch (error) {
      joinError = error;
    }
    return { first, me, self: yield* currentTask(), joined, joinError, pending };
  });
  assert(first.done, "inside a task the child is spawned by next() itself");
  assertEquals((first.value as Task<unknown>).name, "child");
  assert(me.done);
  assertStrictEquals(me.value, self);
  assert(!pending.done, "joining a task that has not settled waits");
  assertEquals([joined.value, joined.done], [5, true]);
  assertEquals((joinError as Error).message, "boom");
});

Deno.test("spawn() right after cancelling yourself throws CancelledError there and spawns nothing", () => {
  const log: string[] = [];
  const [selfCanceller, probe] = runSync(function* main() {
    const task = yield* spawn(function* selfCanceller(): Operation<void> {
      const me = yield* currentTask();
      me.cancel("enough");
      try {
        yield* spawn(function* unwanted() {
          log.push("unwanted ran");
        });
        log.push("spawned?");
      } catch (error) {
        log.push(`got ${(error as CancelledError).reason}`);
        throw error;
      }
    });
    try {
      yield* join(task);
    } catch (error) {
      assertInstanceOf(error, CancelledError);
    }
    return [task, yield* spawn(function* probe() {})];
  });
  assertEquals(log, ["got enough"]);
  assertEquals(selfCanceller.state, "cancelled");
  // Ids count every task made: the probe follows the canceller directly.
  assertEquals(probe.id, selfCanceller.id + 1);
});

function spawnedTwiceMessage(owner: string, id: number): string {
  return `Cannot spawn a task for the generator object that task "${owner}" (#${id}) runs already; a generator object can run only once: make one for each task (spawn(worker()) every time, or spawn(worker))`;
}

Deno.test("spawn() of the generator object the task spawned just before still runs throws a TypeError at that yield*; the first task and the loop run on", () => {
  const log: string[] = [];
  function* worker(): Operation<string> {
    log.push("worker starts");
    yield* yieldNow();
    log.push("worker ends");
    return "result";
  }
  const [result, first, next] = runSync(function* main() {
    const shared = worker();
    const first = yield* spawn(shared, { name: "first" });
    let error: unknown;
    try {
      yield* spawn(shared);
    } catch (caught) {
      error = caught;
    }
    assertInstanceOf(error, TypeError);
    assertEquals(error.message, spawnedTwiceMessage("first", first.id));
    // A new generator of the same function is welcome.
    const next = yield* spawn(worker());
    return [yield* join(first), first, next] as const;
  });
  assertEquals(result, "result");
  assertEquals(log, ["worker starts", "worker starts", "worker ends", "worker ends"]);
  assertEquals(first.state, "done");
  // The refused spawn took no id.
  assertEquals(next.id, first.id + 1);
});

Deno.test("spawn() of a generator object an earlier (not the newest) child runs: the TypeError at the second task's first step names the generator object, not an operation", () => {
  function* napper(): Operation<string> {
    yield* sleep(10);
    return "rested";
  }
  const loop = new Loop({ clock: new VirtualClock() });
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      const shared = napper();
      const first = yield* spawn(shared, { name: "first" });
      yield* spawn(napper());
      // Not the newest child's generator: not compared at the spawn.
      yield* spawn(shared, { name: "second" });
      return yield* join(first);
    })
  );
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "second");
  assertInstanceOf(error.cause, TypeError);
  assertEquals(
    error.cause.message,
    'Cannot run task "second": it resumes the generator object that task "first" runs (which waits there on sleep(10) until t=10 ms); a generator object is one task\'s: pass the generator function, or call it again for each task',
  );
});

Deno.test("loop.spawn() and gather() refuse the generator object that the newest sibling still runs, and spawn nothing", () => {
  const loop = virtualLoop();
  function* worker(): Operation<void> {
    yield* sleep(5);
  }
  const shared = worker();
  const root = loop.spawn(shared, { name: "root" });
  const rootError = assertThrows(() => loop.spawn(shared), TypeError);
  assertEquals(rootError.message, spawnedTwiceMessage("root", root.id));
  const [child, error, probe] = loop.runSync(function* main() {
    const own = worker();
    const child = yield* spawn(own, { name: "child" });
    let error: unknown;
    try {
      yield* gather([own, worker()]);
    } catch (caught) {
      error = caught;
    }
    yield* join(child);
    return [child, error, yield* spawn(function* probe() {})] as const;
  });
  assertInstanceOf(error, TypeError);
  assertEquals(error.message, spawnedTwiceMessage("child", child.id));
  assertEquals(child.state, "done");
  // Neither of gather's bodies was spawned: the probe follows the child.
  assertEquals(probe.id, child.id + 1);
  assertEquals(root.state, "done");
  assertEquals(loop.time(), 5);
});

Deno.test("spawn() after a nested runSync() inside a task still spawns into the task's own loop", () => {
  const outer = virtualLoop();
  const result = outer.runSync(function* main() {
    const inner = new Loop({ clock: new VirtualClock() }).runSync(function* innerMain() {
      return yield* join(
        yield* spawn(function* innerChild() {
          return 1;
        }),
      );
    });
    const child = yield* spawn(function* outerChild() {
      return 2;
    });
    return inner + (yield* join(child));
  });
  assertEquals(result, 3);
});

Deno.test("join() evaluates to the child's return value, for every joiner and every join", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    const child: Task<{ n: number }> = yield* spawn(function* answer() {
      yield* sleep(10);
      return { n: 42 };
    });
    const second = yield* spawn(function* secondJoiner() {
      return yield* join(child);
    });
    const value = yield* join(child);
    const again = yield* join(child); // already done: at once
    const viaOther = yield* join(second);
    assertStrictEquals(again, value);
    assertStrictEquals(viaOther, value);
    return value.n + 1;
  });
  assertEquals(result, 43);
  assertEquals(loop.time(), 10);
});

Deno.test("join() of a task that already finished returns without waiting for a turn", () => {
  const log: string[] = [];
  runSync(function* main() {
    const quick = yield* spawn(function* quick() {
      return "early";
    });
    yield* yieldNow();
    yield* spawn(function* bystander() {
      log.push("bystander");
    });
    const value = yield* join(quick);
    log.push(`joined ${value}`);
    yield* yieldNow();
  });
  // A join that resumed at once did not let the queued bystander run first.
  assertEquals(log, ["joined early", "bystander"]);
});

Deno.test("gather() evaluates to results in input order, not finish order", () => {
  const loop = virtualLoop();
  const finished: string[] = [];
  const results = loop.runSync(function* main() {
    return yield* gather([
      after(loop, finished, "slow", 30),
      after(loop, finished, "fast", 10),
      after(loop, finished, "medium", 20),
      after(loop, finished, "instant", 0),
    ]);
  });
  assertEquals(results, ["slow", "fast", "medium", "instant"]);
  assertEquals(finished, ["instant@0", "fast@10", "medium@20", "slow@30"]);
  assertEquals(loop.time(), 30);
});

Deno.test("gather() accepts generator functions, generator objects and operations together", () => {
  const loop = virtualLoop();
  const results = loop.runSync(function* main() {
    return yield* gather<unknown>([
      function* named() {
        return "from a function";
      },
      (function* () {
        yield* yieldNow();
        return "from an object";
      })(),
      sleep(5),
    ]);
  });
  assertEquals(results, ["from a function", "from an object", undefined]);
  assertEquals(loop.time(), 5);
});

/** Whether A and B are the same type (not merely assignable). */
type Exact<A, B> = (<G>() => G extends A ? 1 : 2) extends (<G>() => G extends B ? 1 : 2) ? true
  : false;

Deno.test("types: a plain yield, a list given as one body, or one body given as a list does not type-check", () => {
  function* worker(): Operation<number> {
    yield* sleep(1);
    return 1;
  }
  function* forgotStar() {
    yield sleep(5);
  }
  function* yieldsValue() {
    yield 42;
  }
  // Each is refused at run time too; the type-checker catches it first.
  const mistakes = [
    // @ts-expect-error: an operation yielded without `*`
    () => runSync(forgotStar),
    // @ts-expect-error: a value yielded to the loop
    () => runSync(yieldsValue),
    // @ts-expect-error: a list of bodies given to spawn (gather takes lists)
    () => spawn([worker(), worker()]),
    // @ts-expect-error: a string is iterable, but not a task body
    () => spawn("abc"),
    // @ts-expect-error: one body given to gather as if it were the list
    () => gather(worker()),
    // @ts-expect-error: one operation given to race as if it were the list
    () => race(sleep(5)),
  ];
  for (const mistake of mistakes) assertThrows(mistake, TypeError);
});

Deno.test("types: gather() and race() take a built-in iterator of bodies (Map, Set and array values())", () => {
  function* worker(): Operation<number> {
    yield* sleep(1);
    return 1;
  }
  const byName = new Map<string, Operation<number>>([["a", worker()], ["b", worker()]]);
  const kinds = new Set([worker]);
  const results = virtualLoop().runSync(function* main() {
    const fromMap: number[] = yield* gather(byName.values());
    const fromSet: number[] = yield* gather(kinds.values());
    const raced: number = yield* race([worker, worker].values());
    return [fromMap, fromSet, raced];
  });
  assertEquals(results, [[1, 1], [1], 1]);
});

Deno.test("gather() and race() of bodies returning different types: results typed in order, and as any of them", () => {
  function* name(): Operation<string> {
    yield* sleep(2);
    return "genloop";
  }
  function* count(): Generator<Yielded, number, unknown> {
    yield* sleep(1);
    return 3;
  }
  const counts: Generator<Yielded, number, unknown>[] = [count(), count()];
  // deno-lint-ignore no-explicit-any
  const untyped: any[] = [count()];
  const loop = virtualLoop();
  const [gathered, raced, listed] = loop.runSync(function* main() {
    const gathered = yield* gather([name(), count, sleep(1)]);
    const raced = yield* race([name(), sleep(1)]);
    const listed = yield* gather(counts);
    const anyRace = yield* race(untyped);
    const anyGather = yield* gather(untyped);
    // An any body is any, as with Promise.all.
    // deno-lint-ignore no-explicit-any
    const anyTypes: [Exact<typeof anyRace, any>, Exact<typeof anyGather, any[]>] = [true, true];
    assert(anyTypes[0] && anyTypes[1]);
    return [gathered, raced, listed] as const;
  });
  const gatheredType: Exact<typeof gathered, [string, number, void]> = true;
  const racedType: Exact<typeof raced, string | void> = true;
  const listedType: Exact<typeof listed, number[]> = true;
  assert(gatheredType && racedType && listedType);
  assertEquals(gathered, ["genloop", 3, undefined]);
  assertEquals(raced, undefined);
  assertEquals(listed, [3, 3]);
});

Deno.test("types: a body whose type is a union of bodies returning different types is typed as any of their results", async () => {
  function* name(): Operation<string> {
    yield* sleep(1);
    return "genloop";
  }
  function* count(): Operation<number> {
    return 3;
  }
  // Chosen at run time, so the body's type is the union of both.
  const pick = (wantName: boolean) => wantName ? name() : count();
  const pickFunction = (wantName: boolean) => wantName ? name : count;
  const loop = virtualLoop();
  const spawned = loop.runSync(function* main() {
    const fromObject = yield* join(yield* spawn(pick(true)));
    const fromFunction = yield* join(yield* spawn(pickFunction(false)));
    const inTime = yield* timeout(10, pick(false));
    const types: [
      Exact<typeof fromObject, string | number>,
      Exact<typeof fromFunction, string | number>,
      Exact<typeof inTime, string | number>,
    ] = [true, true, true];
    assert(types.every((same) => same));
    return [fromObject, fromFunction, inTime];
  });
  assertEquals(spawned, ["genloop", 3, 3]);
  const ran = runSync(pick(false));
  const awaited = await run(pickFunction(true), { clock: new VirtualClock() });
  const other = virtualLoop();
  // Queued before the main task, and done at once: settled when the run ends.
  const rooted = other.spawn(pick(false));
  const ranOn = other.runSync(pickFunction(false));
  const awaitedOn = await virtualLoop().runUntilComplete(pick(true));
  const types: [
    Exact<typeof ran, string | number>,
    Exact<typeof awaited, string | number>,
    Exact<typeof rooted, Task<string | number>>,
    Exact<typeof ranOn, string | number>,
    Exact<typeof awaitedOn, string | number>,
  ] = [true, true, true, true, true];
  assert(types.every((same) => same));
  assertEquals([ran, awaited, rooted.result, ranOn, awaitedOn], [3, "genloop", 3, 3, "genloop"]);
});

Deno.test("gather() of an empty list evaluates to [] without waiting for time", () => {
  const loop = virtualLoop();
  const results = loop.runSync(function* main() {
    yield* spawn(sleep(50)); // a timer that must not fire first
    const empty = yield* gather([]);
    return [empty, loop.time()];
  });
  assertEquals(results, [[], 0]);
});

Deno.test("gather() children are named after their generator functions and run as children", () => {
  const names = runSync(function* main() {
    const me = yield* currentTask();
    const seen: string[] = [];
    function* reporter(): Operation<void> {
      const self = yield* currentTask();
      seen.push(`${self.name} ${self.id > me.id}`);
    }
    yield* gather([reporter, function* second() {
      yield* reporter();
    }]);
    return seen;
  });
  assertEquals(names, ["reporter true", "second true"]);
});

for (const failing of [0, 1, 2]) {
  Deno.test(`gather() when child #${failing} of 3 fails: others cancelled, their cleanup (which sleeps) finishes, then the error`, () => {
    const loop = virtualLoop();
    const log: string[] = [];
    const boom = new Error(`child ${failing} failed`);
    function* member(index: number): Operation<string> {
      if (index === failing) {
        yield* sleep(10);
        log.push(`${index} fails@${loop.time()}`);
        throw boom;
      }
      try {
        yield* sleep(1_000);
        log.push(`${index} finished?`);
        return `${index}`;
      } catch (error) {
        log.push(`${index} got ${(error as Error).name}@${loop.time()}`);
        throw error;
      } finally {
        // Cleanup that itself waits, for a different time per child.
        yield* sleep(5 + index);
        log.push(`${index} cleaned@${loop.time()}`);
      }
    }
    const caught = loop.runSync(function* main() {
      const gathering = yield* spawn(function* gatherer() {
        return yield* gather([member(0), member(1), member(2)]);
      });
      try {
        yield* join(gathering);
        return undefined;
      } catch (error) {
        log.push(`gather threw@${loop.time()}`);
        return error;
      }
    });
    assertStrictEquals(caught, boom);
    const others = [0, 1, 2].filter((i) => i !== failing);
    assertEquals(log, [
      `${failing} fails@10`,
      ...others.map((i) => `${i} got CancelledError@10`),
      ...others.map((i) => `${i} cleaned@${15 + i}`),
      `gather threw@${15 + others[1]}`,
    ]);
    assertEquals(loop._timerCount, 0);
  });
}

Deno.test("gather() leaves every sibling settled (cancelled) by the time it throws", () => {
  const loop = virtualLoop();
  const states = loop.runSync(function* main() {
    const children: Task<unknown>[] = [];
    function* tracked(body: () => Operation<void>): Operation<void> {
      children.push(yield* currentTask());
      yield* body();
    }
    try {
      yield* gather([
        tracked(function* () {
          yield* sleep(100);
        }),
        tracked(function* () {
          yield* sleep(1);
          throw new TypeError("second fails");
        }),
        tracked(function* () {
          try {
            yield* sleep(100);
          } finally {
            yield* sleep(7);
          }
        }),
      ]);
    } catch (error) {
      assertInstanceOf(error, TypeError);
    }
    return children.map((task) => task.state);
  });
  assertEquals(states, ["cancelled", "failed", "cancelled"]);
  assertEquals(loop.time(), 8);
});

Deno.test("gather() with a child cancelled from elsewhere throws CancelledError after the others' cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const outcome = loop.runSync(function* main() {
    const victim: { task?: Task<unknown> } = {};
    const gathering = yield* spawn(function* gatherer() {
      return yield* gather([
        function* victimBody() {
          victim.task = yield* currentTask();
          yield* sleep(1_000);
        },
        function* bystander() {
          try {
            yield* sleep(1_000);
          } finally {
            yield* sleep(3);
            log.push(`bystander cleaned@${loop.time()}`);
          }
        },
      ]);
    });
    yield* sleep(4);
    victim.task!.cancel("from outside");
    try {
      yield* join(gathering);
    } catch (error) {
      log.push(`gather threw ${(error as Error).name}@${loop.time()}`);
      return (error as CancelledError).reason;
    }
  });
  assertEquals(outcome, "from outside");
  assertEquals(log, ["bystander cleaned@7", "gather threw CancelledError@7"]);
});

Deno.test("gather() throws the first failure; a cancelled sibling whose cleanup fails is reported after it, not dropped", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      try {
        yield* gather([
          function* cleanupFails() {
            try {
              yield* sleep(100);
            } finally {
              // deno-lint-ignore no-unsafe-finally
              throw new Error("second failure, in cleanup");
            }
          },
          function* firstFailure() {
            yield* sleep(1);
            throw new Error("first failure");
          },
        ]);
      } catch (error) {
        log.push(`gather threw ${(error as Error).message}`);
      }
      // The cleanup failure is thrown here, at the next yield*.
      yield* yieldNow();
      log.push("unreachable");
    }), TaskFailedError);
  assertEquals(log, ["gather threw first failure"]);
  assertEquals(error.taskName, "cleanupFails");
  assertStringIncludes(error.message, "after its gather() had decided");
  assertEquals((error.cause as Error).message, "second failure, in cleanup");
});

// ---------------------------------------------------------------------------
// currentTask and the Task record.

Deno.test("currentTask() evaluates to the running task, the same object spawn() returned", () => {
  const [mainSelf, childSelf, child, grandSelf] = runSync(function* main() {
    const me = yield* currentTask();
    let grand: Task<unknown> | null = null;
    const spawned = yield* spawn(function* child() {
      const inner = yield* spawn(function* grandchild() {
        return yield* currentTask();
      });
      grand = yield* join(inner);
      assertStrictEquals(grand, inner);
      return yield* currentTask();
    });
    return [me, yield* join(spawned), spawned, grand as unknown as Task<unknown>];
  });
  assertEquals(mainSelf.name, "main");
  assertStrictEquals(childSelf, child);
  assertEquals(child.name, "child");
  assertEquals(grandSelf.name, "grandchild");
  assert(mainSelf !== childSelf);
});

Deno.test("Task.name is options.name, else the generator function's name, else task-<id>", () => {
  function* worker(): Operation<void> {}
  const names = runSync(function* main() {
    const named = yield* spawn(worker, { name: "custom" });
    const namedObject = yield* spawn(worker(), { name: "custom object" });
    const fromFunction = yield* spawn(worker);
    const fromObject = yield* spawn(worker());
    const anonymous = yield* spawn((function* () {})());
    const fromOperation = yield* spawn(sleep(0));
    return [named, namedObject, fromFunction, fromObject, anonymous, fromOperation].map((t) => [
      t.name,
      t.id,
    ]);
  });
  assertEquals(names.slice(0, 3).map(([name]) => name), ["custom", "custom object", "worker"]);
  for (const [name, id] of names.slice(3)) assertEquals(name, `task-${id}`);
});

Deno.test("Task.name of a run's main task and of loop.spawn() tasks follows the same rules", () => {
  const loop = new Loop();
  const outside = loop.spawn(function* outsideWorker() {});
  const renamed = loop.spawn(function* ignored() {}, { name: "renamed" });
  const bare = loop.spawn((function* () {})());
  const mainName = loop.runSync(function* theMain() {
    return (yield* currentTask()).name;
  });
  assertEquals(mainName, "theMain");
  assertEquals([outside.name, renamed.name, bare.name], [
    "outsideWorker",
    "renamed",
    `task-${bare.id}`,
  ]);
  const anonymousMain = runSync((function* () {
    return (yield* currentTask()).name;
  })());
  assertMatch(anonymousMain, /^task-\d+$/);
});

Deno.test("Task.name outlives the task's body: settled tasks keep their names, however they ended", () => {
  function* worker(): Operation<string> {
    yield* yieldNow();
    return "ok";
  }
  function* failing(): Operation<void> {
    yield* yieldNow();
    throw new Error("boom");
  }
  const loop = virtualLoop();
  const tasks = loop.runSync(function* main() {
    const done = yield* spawn(worker);
    const failed = yield* spawn(failing);
    const cancelledEarly = yield* spawn(worker);
    cancelledEarly.cancel();
    const cancelledLate = yield* spawn(function* sleeper() {
      yield* sleep(1000);
    });
    const given = yield* spawn(worker, { name: "given" });
    // The same function's generator object, passed as such, has no name.
    const objectOfKnownFunction = yield* spawn(worker());
    const napping = (): Operation<void> => sleep(1);
    const fromArrow = yield* spawn(napping);
    yield* yieldNow();
    cancelledLate.cancel();
    try {
      yield* join(failed);
    } catch {
      // Joined so that its failure is observed; the name is what counts.
    }
    yield* join(done);
    yield* join(objectOfKnownFunction);
    yield* join(fromArrow);
    return [done, failed, cancelledEarly, cancelledLate, given, objectOfKnownFunction, fromArrow];
  });
  assertEquals(tasks.map((task) => task.state), [
    "done",
    "failed",
    "cancelled",
    "cancelled",
    "done",
    "done",
    "done",
  ]);
  assertEquals(tasks.map((task) => task.name), [
    "worker",
    "failing",
    "worker",
    "sleeper",
    "given",
    `task-${tasks[5].id}`,
    "napping",
  ]);
});

Deno.test("Task.id is unique within a loop and increases in spawn order", () => {
  const loop = new Loop();
  const ids = loop.runSync(function* main() {
    const me = yield* currentTask();
    const out = [me.id];
    for (let i = 0; i < 5; i++) out.push((yield* spawn(function* child() {})).id);
    const group: Task<unknown>[] = [];
    function* record(): Operation<void> {
      group.push(yield* currentTask());
    }
    yield* gather([record, record]);
    out.push(...group.map((task) => task.id));
    return out;
  });
  assertEquals(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
  // A second run on the same loop keeps counting.
  const next = loop.runSync(function* again() {
    return (yield* currentTask()).id;
  });
  assertEquals(next, 9);
});

Deno.test("Task.state goes ready -> running -> ready -> waiting -> ready -> running -> done", () => {
  const loop = virtualLoop();
  const seen: string[] = [];
  loop.runSync(function* main() {
    const child = yield* spawn(function* child() {
      seen.push(`inside: ${(yield* currentTask()).state}`);
      yield* yieldNow();
      seen.push(`inside again: ${(yield* currentTask()).state}`);
      yield* sleep(10);
      return "r";
    });
    seen.push(`spawned: ${child.state}`);
    yield* yieldNow(); // the child runs up to its yieldNow
    seen.push(`after its yieldNow: ${child.state}`);
    yield* yieldNow(); // the child runs up to its sleep
    seen.push(`while it sleeps: ${child.state}`);
    yield* sleep(10); // armed after the child's timer: fires after it
    seen.push(`both timers fired: ${child.state}`);
    yield* yieldNow();
    seen.push(`finished: ${child.state} result=${child.result} error=${child.error}`);
  });
  assertEquals(seen, [
    "spawned: ready",
    "inside: running",
    "after its yieldNow: ready",
    "inside again: running",
    "while it sleeps: waiting",
    // Both timers fired in one tick, the child's first: it ran already.
    "both timers fired: done",
    "finished: done result=r error=undefined",
  ]);
});

Deno.test("Task.state is ready when its timer has fired but it has not run yet", () => {
  const loop = virtualLoop();
  const seen = loop.runSync(function* main() {
    const child = yield* spawn(sleep(5));
    // Armed before the child's own sleep (it has not run yet): same
    // deadline, so main is woken first and sees the child queued.
    yield* sleep(5);
    const states = [child.state];
    yield* yieldNow();
    states.push(child.state);
    return states;
  });
  assertEquals(seen, ["ready", "done"]);
});

Deno.test("Task.state is read-only: assigning it throws and the loop's bookkeeping stays intact", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    const child = yield* spawn(function* child() {
      yield* yieldNow();
      return 42;
    });
    assertThrows(
      () => {
        // @ts-expect-error: state is a getter; only the loop moves a task.
        child.state = "done";
      },
      TypeError,
    );
    assertEquals(child.state, "ready");
    return yield* join(child);
  });
  assertEquals(result, 42);
});

Deno.test("Task.result and Task.error: done has a result, failed and cancelled have an error", () => {
  const loop = virtualLoop();
  const boom = new RangeError("boom");
  const [ok, failed, cancelled] = loop.runSync(function* main() {
    const ok = yield* spawn(function* ok() {
      return 7;
    });
    const failed = yield* spawn(function* failed() {
      throw boom;
    });
    const cancelled = yield* spawn(function* cancelled() {
      yield* sleep(100);
      return "never";
    });
    for (const task of [ok, failed, cancelled]) {
      assertEquals([task.result, task.error], [undefined, undefined], `${task} before`);
    }
    cancelled.cancel("test");
    for (const task of [ok, failed, cancelled]) {
      try {
        yield* join(task as Task<unknown>);
      } catch {
        // inspected below
      }
    }
    return [ok, failed, cancelled] as Task<unknown>[];
  });
  assertEquals([ok.state, ok.result, ok.error], ["done", 7, undefined]);
  assertEquals([failed.state, failed.result], ["failed", undefined]);
  assertStrictEquals(failed.error, boom);
  assertEquals([cancelled.state, cancelled.result], ["cancelled", undefined]);
  assertInstanceOf(cancelled.error, CancelledError);
  assertEquals((cancelled.error as CancelledError).reason, "test");
  assertEquals(ok.settled && failed.settled && cancelled.settled, true);
  assertEquals(String(ok), `Task "ok" (#${ok.id}, done)`);
});

Deno.test("Task.result stays undefined for a task that returned undefined; settled says it is done", () => {
  const task = runSync(function* main() {
    const child = yield* spawn(function* nothing() {});
    assertEquals(child.settled, false);
    yield* join(child);
    return child;
  });
  assertEquals([task.state, task.result, task.error, task.settled], [
    "done",
    undefined,
    undefined,
    true,
  ]);
});

// ---------------------------------------------------------------------------
// Task bodies.

Deno.test("spawn(worker) calls the generator function once; spawn(worker()) takes the object", () => {
  const log: string[] = [];
  let calls = 0;
  function* worker(tag: string): Operation<string> {
    log.push(`${tag} body starts`);
    yield* yieldNow();
    return tag;
  }
  // A plain function returning a generator object counts its calls.
  function byFunction(): Operation<string> {
    calls++;
    return worker("function");
  }
  const results = runSync(function* main() {
    const a = yield* spawn(byFunction);
    assertEquals(calls, 1, "the function was called at spawn");
    const b = yield* spawn(worker("object"));
    assertEquals(log, [], "neither body ran yet");
    return [yield* join(a), yield* join(b), a.name, b.name.startsWith("task-")];
  });
  assertEquals(results, ["function", "object", "byFunction", true]);
  assertEquals(calls, 1);
  assertEquals(log, ["function body starts", "object body starts"]);
});

Deno.test("spawn() of a function returning an operation or a hand-made iterator runs it", () => {
  const loop = virtualLoop();
  const results = loop.runSync(function* main() {
    const fromOperation = yield* spawn(() => sleep(3));
    const fromIterator = yield* spawn(() => ({
      next: () => ({ value: "iterated", done: true as const }),
      throw: (error: unknown): never => {
        throw error;
      },
    }));
    yield* join(fromOperation);
    return [loop.time(), yield* join(fromIterator)];
  });
  assertEquals(results, [3, "iterated"]);
});

Deno.test("an iterator tagged as a Generator that is not a native one (a transpiled generator) runs as a task body", () => {
  // What regenerator-style transpilers make of a function*: an object with
  // next/throw whose toStringTag is "Generator", driven through its own next.
  class TranspiledGenerator {
    #op: Iterator<Yielded, unknown, unknown> | null = null;
    get [Symbol.toStringTag](): string {
      return "Generator";
    }
    next(value?: unknown): IteratorResult<Yielded, string> {
      if (this.#op === null) {
        this.#op = sleep(4)[Symbol.iterator]();
        return this.#op.next() as IteratorYieldResult<Yielded>;
      }
      this.#op.next(value);
      return { value: "transpiled", done: true };
    }
    throw(error: unknown): IteratorResult<Yielded, string> {
      throw error;
    }
  }
  const loop = virtualLoop();
  const results = loop.runSync(function* main() {
    const object = yield* spawn(new TranspiledGenerator());
    const fromFunction = yield* spawn(() => new TranspiledGenerator());
    return [yield* join(object), yield* join(fromFunction)];
  });
  assertEquals(results, ["transpiled", "transpiled"]);
  assertEquals(loop.runSync(new TranspiledGenerator()), "transpiled");
  assertEquals(loop.time(), 8);
});

/**
 * A task body without generators: a plain object with next/throw that runs
 * `sleep(ms)`, then `join(other)`, by iterating each operation by hand and
 * forwarding the instruction it produces to the loop.
 */
function handWritten(
  loop: Loop,
  log: string[],
  other: Task<number>,
): Iterator<Yielded, string, unknown> {
  let phase = 0;
  let op: Iterator<Yielded, unknown, unknown> | null = null;
  return {
    next(value?: unknown): IteratorResult<Yielded, string> {
      switch (phase++) {
        case 0:
          log.push("hand: start");
          op = sleep(5)[Symbol.iterator]();
          return op.next() as IteratorYieldResult<Yielded>;
        case 1: {
          const slept = op!.next(value);
          log.push(`hand: slept until ${loop.time()} (done=${slept.done})`);
          op = join(other)[Symbol.iterator]();
          return op.next() as IteratorYieldResult<Yielded>;
        }
        case 2: {
          const joined = op!.next(value);
          log.push(`hand: joined ${joined.value} (done=${joined.done})`);
          return { value: `total ${Number(joined.value) + 1}`, done: true };
        }
        default:
          throw new Error("resumed after it finished");
      }
    },
    throw(error: unknown): IteratorResult<Yielded, string> {
      // Let the pending operation see the error (it completes), then stop.
      try {
        op?.throw?.(error);
      } catch {
        // expected: an instruction rethrows what it is given
      }
      log.push(`hand: got ${(error as Error).name}`);
      phase = 99;
      return { value: "caught", done: true };
    },
  };
}

Deno.test("a hand-written iterator object runs as a task, with instructions taken from operations by hand", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const result = loop.runSync(function* main() {
    const other = yield* spawn(function* other() {
      yield* sleep(8);
      return 41;
    });
    const task = yield* spawn(handWritten(loop, log, other), { name: "hand" });
    log.push(`spawned ${task.name}`);
    return yield* join(task);
  });
  assertEquals(result, "total 42");
  assertEquals(log, [
    "spawned hand",
    "hand: start",
    "hand: slept until 5 (done=true)",
    "hand: joined 41 (done=true)",
  ]);
  assertEquals(loop.time(), 8);
});

Deno.test("a hand-written iterator's throw() receives cancellation at its pending instruction", () => {
  const warnings: string[] = [];
  const loop = new Loop({ clock: new VirtualClock(), onWarning: (w) => warnings.push(w) });
  const log: string[] = [];
  const task = loop.runSync(function* main() {
    const other = (yield* spawn(sleep(1_000))) as unknown as Task<number>;
    const hand = yield* spawn(handWritten(loop, log, other), { name: "hand" });
    yield* sleep(2); // the hand-written task is inside sleep(5)
    hand.cancel();
    try {
      yield* join(hand);
    } catch (error) {
      log.push(`joiner got ${(error as Error).name}`);
    }
    return hand;
  });
  // It caught the cancellation and returned: that is reported as cancelled.
  assertEquals(log, ["hand: start", "hand: got CancelledError", "joiner got CancelledError"]);
  assertEquals(task.state, "cancelled");
  assertEquals(warnings.length, 1);
  assertEquals(loop._timerCount, 0, "its sleep's timer was removed");
});

Deno.test("a hand-written iterator yielding a yieldNow() instruction obtained with next()", () => {
  const log: string[] = [];
  let turns = 0;
  const body = {
    next(): IteratorResult<Yielded, number> {
      if (turns === 3) return { value: turns, done: true };
      turns++;
      log.push(`hand ${turns}`);
      // The instruction itself, as yield* would have produced it.
      return yieldNow()[Symbol.iterator]().next() as IteratorYieldResult<Yielded>;
    },
    throw(error: unknown): IteratorResult<Yielded, number> {
      throw error;
    },
  };
  const result = runSync(function* main() {
    const hand = yield* spawn(body);
    yield* spawn(stepper(log, "gen", 2));
    return yield* join(hand);
  });
  assertEquals(result, 3);
  assertEquals(log, ["hand 1", "gen0", "hand 2", "gen1", "hand 3", "gen done"]);
});

Deno.test("a hand-written iterator that yields a non-instruction gets InvalidInstructionError via throw()", () => {
  const thrown: unknown[] = [];
  const body = {
    next(): IteratorResult<Yielded, string> {
      return { value: 123 as never, done: false };
    },
    throw(error: unknown): IteratorResult<Yielded, string> {
      thrown.push(error);
      return { value: "recovered", done: true };
    },
  };
  const result = runSync(function* main() {
    return yield* join(yield* spawn(body));
  });
  assertEquals(result, "recovered");
  assertEquals(thrown.length, 1);
  assertEquals((thrown[0] as Error).name, "InvalidInstructionError");
});

// ---------------------------------------------------------------------------
// Starting runs.

Deno.test("runSync() returns the main task's value and throws its error", () => {
  assertEquals(
    runSync(function* main() {
      yield* yieldNow();
      return 6 * 7;
    }),
    42,
  );
  const boom = new EvalError("sync failure");
  const thrown = assertThrows(() =>
    runSync(function* main() {
      yield* yieldNow();
      throw boom;
    })
  );
  assertStrictEquals(thrown, boom);
  // Operations and generator objects are fine as a main body too.
  const clock = new VirtualClock();
  assertEquals(runSync(sleep(10), { clock }), undefined);
  assertEquals(clock.now(), 10);
});

Deno.test("Loop.runUntilComplete() resolves with the value and rejects with the error", async () => {
  const loop = virtualLoop();
  assertEquals(
    await loop.runUntilComplete(function* main() {
      yield* sleep(100);
      return "value";
    }),
    "value",
  );
  assertEquals(loop.time(), 100);
  assertEquals(loop.running, false);
  const boom = new SyntaxError("async failure");
  const rejected = await assertRejects(() =>
    loop.runUntilComplete(function* main() {
      yield* sleep(1);
      throw boom;
    })
  );
  assertStrictEquals(rejected, boom);
  assertEquals(loop.running, false);
  // The loop is reusable after a failed run.
  assertEquals(
    await loop.runUntilComplete(function* again() {
      return "again";
    }),
    "again",
  );
});

Deno.test("Loop.running is true only while a run is in progress", async () => {
  const loop = new Loop();
  assertEquals(loop.running, false);
  const inside = loop.runSync(function* main() {
    return loop.running;
  });
  assertEquals([inside, loop.running], [true, false]);
  const promise = loop.runUntilComplete(function* main() {
    yield* sleep(1);
    return loop.running;
  });
  assertEquals(loop.running, true);
  assertEquals(await promise, true);
  assertEquals(loop.running, false);
});

Deno.test("run() resolves with the body's value on a fresh loop and rejects with its error", async () => {
  const clock = new VirtualClock();
  assertEquals(
    await run(function* main() {
      yield* sleep(60_000);
      return (yield* currentTask()).id;
    }, { clock }),
    1,
  );
  assertEquals(clock.now(), 60_000, "run() used the given clock");
  assertEquals(
    await run(function* main() {
      return (yield* currentTask()).id;
    }),
    1,
    "every run() starts a fresh loop",
  );
  await assertRejects(
    () =>
      run(function* main() {
        yield* sleep(1);
        throw new URIError("rejected");
      }),
    URIError,
    "rejected",
  );
});

Deno.test("Loop.spawn() from outside a task: a root task that runs once a run starts", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const outside = loop.spawn(function* outside() {
    log.push(`outside starts@${loop.time()}`);
    yield* sleep(10);
    log.push(`outside ends@${loop.time()}`);
    return "o";
  });
  assertEquals(outside.state, "ready");
  assertEquals(log, [], "nothing runs before a run starts");
  const result = loop.runSync(function* main() {
    log.push("main starts");
    const value = yield* join(outside);
    log.push(`main joined ${value}`);
    return value;
  });
  assertEquals(result, "o");
  // Spawned first, so it runs before main on the first tick.
  assertEquals(log, ["outside starts@0", "main starts", "outside ends@10", "main joined o"]);
  assertEquals(outside.state, "done");
});

Deno.test("Loop.spawn() during a run: not a child of the task that called it", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent() {
      // Called directly (not through yield* spawn): a root task.
      loop.spawn(function* root() {
        try {
          yield* sleep(20);
          log.push(`root finished@${loop.time()}`);
        } finally {
          log.push("root finally");
        }
      });
      yield* sleep(5);
      log.push(`parent ends@${loop.time()}`);
    });
    yield* join(parent);
    yield* sleep(30);
  });
  // The parent ended at 5 without cancelling it.
  assertEquals(log, ["parent ends@5", "root finished@20", "root finally"]);
});

Deno.test("Loop.spawn() rejects a bad body at the call", () => {
  const loop = new Loop();
  assertThrows(() => loop.spawn(42 as never), TypeError, "loop.spawn() expected");
  assertThrows(() => loop.runSync(null as never), TypeError, "run() expected");
  assertEquals(loop.running, false);
});

Deno.test("new Loop() rejects options that would fail later, saying which and what to pass", () => {
  const cases: [unknown, typeof TypeError | typeof RangeError, string][] = [
    [null, TypeError, "options must be an object"],
    [{ clock: {} }, TypeError, "clock must have a now() method"],
    [{ clock: Date.now }, TypeError, "clock must have a now() method"],
    [
      { onWarning: "console" },
      TypeError,
      "onWarning must be a function taking the message, got string",
    ],
    [{ stallTimeoutMs: NaN }, RangeError, "stallTimeoutMs must be a number of milliseconds >= 0"],
    [{ stallTimeoutMs: -1 }, RangeError, "(Infinity for no limit), got -1"],
    [{ stallTimeoutMs: "50" }, RangeError, "got string"],
    [
      { cleanupWarningMs: NaN },
      RangeError,
      "cleanupWarningMs must be a number of milliseconds >= 0",
    ],
  ];
  for (const [options, ErrorClass, message] of cases) {
    assertThrows(() => new Loop(options as never), ErrorClass, message);
  }
  // Limits of 0 and Infinity are fine, as are the defaults.
  new Loop({ stallTimeoutMs: 0, cleanupWarningMs: Infinity });
  new Loop({ clock: new VirtualClock(), onWarning: () => {} });
  new Loop();
});

Deno.test("new Loop() rejects a clock whose now() cannot be called or gives no number, or whose jumpTo is no function", () => {
  // performance.now taken off its object throws "Illegal invocation" when
  // called: accepted, the loop failed only at the first sleep of a run.
  const cases: [unknown, string][] = [
    [{ now: performance.now }, "clock.now() threw TypeError: Illegal invocation"],
    [{ now: () => "0" }, "clock.now() must return a number of milliseconds, got string"],
    [{ now: () => NaN }, "clock.now() must return a number of milliseconds, got NaN"],
    [{ now: () => 0, jumpTo: null }, "clock.jumpTo must be a function if given, got object"],
  ];
  for (const [clock, message] of cases) {
    assertThrows(() => new Loop({ clock: clock as never }), TypeError, message);
  }
  // A clock of one's own, with now() on its prototype, is fine.
  class StepClock {
    #t = 5;
    now(): number {
      return this.#t;
    }
    jumpTo(time: number): void {
      this.#t = time;
    }
  }
  assertEquals(new Loop({ clock: new StepClock() }).time(), 5);
  assertEquals(new Loop({ clock: performance }).clock, performance);
});

Deno.test("Loop refuses to start a run while one is in progress, naming the running task", () => {
  const loop = new Loop();
  let nestedRan = false;
  assertThrows(
    () =>
      loop.runSync(function* main() {
        loop.runSync(function* nested() {
          nestedRan = true;
        });
      }),
    Error,
    'already running task "main"',
  );
  assertEquals(nestedRan, false);
  assertEquals(loop.running, false);
});

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
  const error = await assertRejects(() => running, CancelledError);
  clearTimeout(timer);
  assertEquals(error.reason, "shutting down");
  assertEquals(log.sort(), ["server cleaned up", "worker cleaned up"]);
  assertEquals(loop.running, false);
  loop.stop(); // no run in progress: nothing happens
  assertEquals(loop.running, false);
});

Deno.test("Loop.stop() that finds the main task cancelled already, or its body ended, is no stall: the run ends as its cleanup decides", async () => {
  // Resolved from a host callback right after the stop() it follows.
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  function stopThenRelease(loop: Loop, reason: string): void {
    setTimeout(() => {
      loop.stop(reason);
      setTimeout(release, 0);
    }, 0);
  }
  // A limit no wait in this test comes near: only a wrong verdict reaches it.
  const options = { stallTimeoutMs: 60_000 };
  const stopped = new Loop(options);
  const running = stopped.runUntilComplete(function* server() {
    try {
      yield* call(() => new Promise<void>(() => {}));
    } finally {
      // The second stop() comes while this cleanup waits on a Promise.
      stopThenRelease(stopped, "second signal");
      yield* call(() => released);
    }
  });
  setTimeout(() => stopped.stop("first signal"), 0);
  const error = await assertRejects(() => running, CancelledError);
  assertEquals(error.reason, "first signal");

  let releaseChild!: () => void;
  const childReleased = new Promise<void>((resolve) => releaseChild = resolve);
  const ended = new Loop(options);
  const result = await ended.runUntilComplete(function* main() {
    yield* spawn(function* server() {
      try {
        yield* suspend();
      } finally {
        // main's body has returned: its stop() queues nothing.
        setTimeout(() => {
          ended.stop("late signal");
          setTimeout(releaseChild, 0);
        }, 0);
        yield* call(() => childReleased);
      }
    });
    yield* yieldNow();
    return "main done";
  });
  assertEquals(result, "main done");
});

Deno.test("Loop.stop() cancels the run's detached tasks at once too, so main's cleanup may wait for one", async () => {
  const loop = new Loop();
  const log: string[] = [];
  const running = loop.runUntilComplete(function* main() {
    const flusher = yield* spawn(function* flusher() {
      try {
        yield* call(() => new Promise<void>(() => {}));
      } finally {
        log.push("flusher cleaned up");
      }
    }, { detached: true });
    try {
      yield* call(() => new Promise<void>(() => {}));
    } finally {
      // Waits for the detached task: only stop() can end it.
      log.push(`main joins flusher: ${yield* caughtName(() => join(flusher))}`);
    }
  });
  const timer = setTimeout(() => loop.stop("SIGINT"), 5);
  const error = await assertRejects(() => running, CancelledError);
  clearTimeout(timer);
  assertEquals(error.reason, "SIGINT");
  assertEquals(log, ["flusher cleaned up", "main joins flusher: CancelledError"]);
});

Deno.test("Loop.stop() from a detached task's cleanup during the run's end changes nothing of how the run ends", () => {
  const messages: string[] = [];
  for (const stop of [false, true]) {
    const loop = new Loop({ clock: new VirtualClock() });
    const error = assertThrows(() =>
      loop.runSync(function* main() {
        yield* spawn(function* server(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            yield* sleep(5);
            if (stop) loop.stop("second Ctrl-C");
            // deno-lint-ignore no-unsafe-finally
            throw new Error("cleanup failed");
          }
        }, { detached: true });
        yield* yieldNow();
        return "done";
      })
    );
    messages.push((error as Error).message);
  }
  const report =
    'Task "server" failed while cancelled at the end of the run: Error: cleanup failed';
  assertEquals(messages, [report, report]);
});

Deno.test("Loop.stop() during the run's end still cancels a detached task that a leftover's cleanup waits for", () => {
  const loop = new Loop({ clock: new VirtualClock() });
  const log: string[] = [];
  const outcome = loop.runSync(function* main() {
    loop.spawn(function* leftover() {
      try {
        yield* suspend();
      } finally {
        // Cancelled at the run's end; its cleanup waits for a helper that
        // only a cancellation ends.
        const helper = yield* spawn(function* helper() {
          try {
            yield* suspend();
          } finally {
            log.push("helper ended");
          }
        }, { detached: true });
        yield* yieldNow();
        // As a signal handler would, while the run ends: main has settled.
        loop.stop("shutdown");
        yield* join(helper);
      }
    });
    yield* yieldNow();
    return "main done";
  });
  assertEquals(outcome, "main done");
  assertEquals(log, ["helper ended"]);
});

/** Runs `op`; evaluates to the name of the error it threw ("none" if none). */
function* caughtName(op: () => Operation<unknown>): Operation<string> {
  try {
    yield* op();
    return "none";
  } catch (error) {
    return (error as Error).name;
  }
}

Deno.test("Loop({ stallTimeoutMs }): a stall is reported while a host timer keeps cancelling a task cancelled already", async () => {
  const loop = new Loop({ stallTimeoutMs: 100, onWarning: () => {} });
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  let stuck: Task<void> | null = null;
  // Each cancel wakes the loop and queues nothing: the stall limit runs on.
  const recancel = setInterval(() => stuck?.cancel("again"), 20);
  // Ends the run normally, which fails the test, if no stall is reported.
  const guard = setTimeout(release, 3_000);
  try {
    await assertRejects(
      () =>
        loop.runUntilComplete(function* main() {
          const task = yield* spawn(function* cleanupHangs() {
            try {
              yield* suspend();
            } finally {
              yield* call(() => released);
            }
          });
          stuck = task;
          yield* yieldNow();
          task.cancel("first");
          yield* join(task);
        }),
      DeadlockError,
      "Stalled: for 100 ms no Promise that a task waits on settled, and nothing else could wake one",
    );
  } finally {
    clearInterval(recancel);
    clearTimeout(guard);
    release();
  }
});

Deno.test("Task.cancel() and loop.spawn() from a host callback reach a run sleeping on the real clock at once", async () => {
  // Far longer than these runs take when the loop wakes: a run that sleeps
  // it out ends the other way.
  const LONG_MS = 5_000;
  function* settled(task: Task<unknown>): Operation<string> {
    try {
      yield* join(task);
    } catch {
      // Its CancelledError.
    }
    return task.state;
  }
  const state = await new Loop().runUntilComplete(function* main() {
    const worker = yield* spawn(function* worker() {
      yield* suspend();
    });
    setTimeout(() => worker.cancel("from a host timer"), 0);
    return yield* race<string | void>([sleep(LONG_MS), settled(worker)]);
  });
  assertEquals(state, "cancelled");

  const loop = new Loop();
  const running = loop.runUntilComplete(function* main() {
    const me = yield* currentTask();
    setTimeout(() =>
      loop.spawn(function* outside() {
        me.cancel("by the task loop.spawn() added");
      }), 0);
    yield* sleep(LONG_MS);
  });
  const error = await assertRejects(() => running, CancelledError);
  assertEquals(error.reason, "by the task loop.spawn() added");
});

// An awaited run must leave the host event loop its turns even when no
// socket or Promise of its own is pending: a timer or a signal handler
// outside the loop may be what stops it. Each body gives up after GIVE_UP_MS
// of wall time, so a loop that starves the host fails the test, not hangs it.
const GIVE_UP_MS = 3_000;

function* untilStopped(step: () => Operation<void>): Operation<string> {
  const start = performance.now();
  while (performance.now() - start < GIVE_UP_MS) yield* step();
  return "never stopped";
}

for (
  const { what, clock, step } of [
    {
      what: "a virtual clock jumping from deadline to deadline",
      clock: () => new VirtualClock(),
      step: () => sleep(1),
    },
    { what: "tasks taking turns on the real clock", clock: () => undefined, step: yieldNow },
    {
      // Each wait ends in a microtask, before the host's timers had a turn.
      what: "tasks awaiting settled Promises through call()",
      clock: () => undefined,
      step: () => call(() => Promise.resolve()),
    },
  ]
) {
  Deno.test(`Loop.stop() from a host timer reaches a busy awaited run: ${what}`, async () => {
    const loop = new Loop({ clock: clock() });
    const running = loop.runUntilComplete(function* main() {
      yield* spawn(() => untilStopped(step));
      return yield* untilStopped(step);
    });
    const started = performance.now();
    const timer = setTimeout(() => loop.stop("from outside"), 20);
    const error = await assertRejects(() => running, CancelledError);
    clearTimeout(timer);
    assertEquals(error.reason, "from outside");
    // The timer ran within a few of the loop's 10 ms stretches of work.
    assert(performance.now() - started < GIVE_UP_MS / 2);
  });
}

/**
 * Runs a task that computes `stepMs` between yields, stops its loop from a
 * host timer due at 5 ms, and evaluates to how late that timer ran.
 */
async function stopLateness(stepMs: number): Promise<number> {
  const loop = new Loop();
  const running = loop.runUntilComplete(() =>
    untilStopped(function* computeThenYield() {
      const start = performance.now();
      while (performance.now() - start < stepMs) {
        // Work that takes a while between two yields.
      }
      yield* yieldNow();
    })
  );
  const started = performance.now();
  let late = Infinity;
  const timer = setTimeout(() => {
    late = performance.now() - started - 5;
    loop.stop("from outside");
  }, 5);
  const error = await assertRejects(() => running, CancelledError);
  clearTimeout(timer);
  assertEquals(error.reason, "from outside");
  return late;
}

Deno.test("Loop.stop() from a host timer reaches an awaited run within tens of ms when each step computes for a while", async () => {
  const late = await stopLateness(0.25);
  // The loop looks at the clock about every millisecond, whatever a step
  // costs, and gives the host a turn after 10 ms of work.
  assert(late < 250, `the timer ran ${late.toFixed(0)} ms late`);
});

Deno.test("Loop.stop() from a host timer reaches an awaited run within tens of ms when its very first steps each compute 10 ms", async () => {
  const late = await stopLateness(10);
  // The first look at the clock of each stretch comes after one step: 10 ms
  // of work and a step or two more. Counting 64 steps first took 650 ms.
  assert(late < 100, `the timer ran ${late.toFixed(0)} ms late`);
});

Deno.test("Loop.stop() from a host timer reaches an awaited run after a few steps when many ready tasks each compute for a while", async () => {
  const TASKS = 400;
  const STEP_MS = 1;
  let steps = 0;
  function* computer(): Operation<never> {
    for (;;) {
      const start = performance.now();
      while (performance.now() - start < STEP_MS) {
        // Work that takes a while between two yields.
      }
      steps++;
      yield* yieldNow();
    }
  }
  const loop = new Loop();
  const running = loop.runUntilComplete(function* main() {
    for (let i = 0; i < TASKS; i++) yield* spawn(computer);
    yield* suspend();
  });
  let stepsBeforeTimer = -1;
  const timer = setTimeout(() => {
    stepsBeforeTimer = steps;
    loop.stop("from outside");
  }, 5);
  const error = await assertRejects(() => running, CancelledError);
  clearTimeout(timer);
  assertEquals(error.reason, "from outside");
  // The host gets its turn once a look at the clock finds 10 ms of work
  // done: the first looks come after up to 64 steps each (as many as the
  // loop expects to cost a millisecond until it has measured these), not
  // after the whole batch of 400 ready tasks.
  assert(
    stepsBeforeTimer >= 0 && stepsBeforeTimer < TASKS / 2,
    `${stepsBeforeTimer} steps ran before the host timer`,
  );
});

Deno.test("Loop: after a failed run whose cleanup blocked, the next run is refused, naming the blocked task, rather than failed by it", async () => {
  const loop = new Loop({ clock: new VirtualClock() });
  await assertRejects(
    () =>
      loop.runUntilComplete(function* main() {
        try {
          yield* suspend();
        } finally {
          yield* suspend(); // a cleanup that blocks
        }
      }),
    DeadlockError,
  );
  let ran = false;
  const error = await assertRejects(() =>
    loop.runUntilComplete(function* next() {
      ran = true;
    })
  );
  assertEquals(ran, false);
  assertStringIncludes(
    (error as Error).message,
    "Cannot start a run: this loop's previous run failed and the cleanup of its tasks blocked",
  );
  assertStringIncludes((error as Error).message, 'task "main"');
  assertStringIncludes((error as Error).message, "use a new Loop");
});

Deno.test("Loop: runSync refuses the next run when a failed run's cleanup waits for real time", () => {
  const loop = new Loop();
  assertThrows(
    () =>
      loop.runSync(function* main() {
        try {
          yield* sleep(10); // runSync cannot wait for the real clock
        } finally {
          yield* sleep(10); // nor can the cleanup
        }
      }),
    Error,
    "Cannot finish with runSync()",
  );
  assertThrows(
    () => loop.runSync(function* next() {}),
    Error,
    "previous run failed and the cleanup of its tasks blocked",
  );
});

Deno.test("Loop: a failed run whose cleanup finished leaves the loop fit for another run", () => {
  const loop = new Loop({ clock: new VirtualClock() });
  assertThrows(
    () =>
      loop.runSync(function* main() {
        try {
          yield* suspend();
        } finally {
          yield* sleep(5); // cleanup that waits, and ends
        }
      }),
    DeadlockError,
  );
  assertEquals(
    loop.runSync(function* next() {
      return "fine";
    }),
    "fine",
  );
});

Deno.test("Loop.stop() from a host timer reaches an awaited run soon also when cheap switching turns into computing", async () => {
  const STEP_MS = 1;
  const loop = new Loop();
  let late = Infinity;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let started = 0;
  const running = loop.runUntilComplete(function* main() {
    // A stretch of cheap switches teaches the loop that steps cost little.
    const cheapUntil = performance.now() + 30;
    while (performance.now() < cheapUntil) yield* yieldNow();
    started = performance.now();
    timer = setTimeout(() => {
      late = performance.now() - started - 1;
      loop.stop("from outside");
    }, 1);
    return yield* untilStopped(function* computeThenYield() {
      const start = performance.now();
      while (performance.now() - start < STEP_MS) {
        // Work that takes a while between two yields.
      }
      yield* yieldNow();
    });
  });
  const error = await assertRejects(() => running, CancelledError);
  clearTimeout(timer);
  assertEquals(error.reason, "from outside");
  // At most 256 of the dearer steps pass before the loop looks at the clock
  // again; counting up to 4096 of them took seconds.
  assert(late < 500, `the timer ran ${late.toFixed(0)} ms late`);
});

/** A user-written instruction, initialising `value` and `done` as the docs say. */
class Ping extends Instruction<number> {
  override value: unknown = undefined;
  override done = false;
  perform(task: Task<unknown>, loop: Loop): void {
    loop._resumeNow(task, 42);
  }
  describe(): string {
    return "ping";
  }
}

/** An operation that forwards another's steps in result objects of its own. */
function forwarded<T>(op: Operation<T>): Operation<T> {
  return {
    [Symbol.iterator]() {
      const it = op[Symbol.iterator]();
      return {
        next(value?: unknown) {
          const step = it.next(value);
          return step.done ? step : { value: step.value, done: false as const };
        },
        throw(error?: unknown) {
          return it.throw!(error);
        },
      };
    },
  };
}

Deno.test("an Instruction subclass handed over through a forwarding operation is not an InvalidInstructionError", () => {
  const result = virtualLoop().runSync(function* main(): Operation<number[]> {
    const direct = yield* new Ping();
    const viaWrapper = yield* forwarded(new Ping());
    return [direct, viaWrapper];
  });
  assertEquals(result, [42, 42]);
});

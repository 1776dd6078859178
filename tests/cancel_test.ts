// Cancellation: where it lands, what it undoes, cleanup that waits, cancel(),
// swallowed cancellations, and structured concurrency (children do not
// outlive their parent unless detached).

import {
  assert,
  assertEquals,
  assertInstanceOf,
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
  currentTask,
  DeadlockError,
  gather,
  join,
  Loop,
  type LoopOptions,
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
  yieldNow,
} from "../mod.ts";
import { failFast, FAILING_FIRST, slowToCancel } from "./_group_failure.ts";

function virtualLoop(options: LoopOptions = {}): Loop {
  return new Loop({ clock: new VirtualClock(), ...options });
}

/** Joins `task` and returns what it threw (fails if it did not throw). */
function* joinError(task: Task<unknown>): Operation<unknown> {
  try {
    yield* join(task);
  } catch (error) {
    return error;
  }
  fail(`joining ${task} did not throw`);
}

/** A child that sleeps, then in its finally waits `cleanupMs`, logging both. */
function* sleeper(
  loop: Loop,
  log: string[],
  name: string,
  ms: number,
  cleanupMs: number,
): Operation<string> {
  try {
    yield* sleep(ms);
    log.push(`${name} finished@${loop.time()}`);
    return name;
  } finally {
    if (cleanupMs > 0) yield* sleep(cleanupMs);
    log.push(`${name} cleaned@${loop.time()}`);
  }
}

// ---------------------------------------------------------------------------
// Where cancellation lands.

Deno.test("cancel() while sleeping: CancelledError at the yield*, its timer removed, finally runs", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const task = yield* spawn(function* napper(): Operation<void> {
      try {
        yield* sleep(1_000);
        log.push("woke up?");
      } catch (error) {
        assertInstanceOf(error, CancelledError);
        log.push(`caught: ${error.message} (reason ${error.reason})`);
        throw error;
      } finally {
        log.push("finally");
      }
    });
    yield* sleep(10);
    assertEquals(loop._timerCount, 1);
    task.cancel("no longer needed");
    assertEquals(loop._timerCount, 0, "the timer goes at once, not at t=1000");
    assertEquals(task.state, "ready", "queued to receive its CancelledError");
    const error = yield* joinError(task);
    assertStrictEquals(error, task.error);
    log.push(`state ${task.state}`);
  });
  assertEquals(log, [
    'caught: Task "napper" was cancelled: no longer needed (reason no longer needed)',
    "finally",
    "state cancelled",
  ]);
  assertEquals(loop.time(), 10, "nothing waited for the cancelled timer");
});

Deno.test("cancel() while joining: the join is undone and the joined task goes on undisturbed", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<string> {
      yield* sleep(50);
      log.push(`worker finished@${loop.time()}`);
      return "work";
    });
    const joiner = yield* spawn(function* joiner(): Operation<void> {
      try {
        yield* join(worker);
        log.push("joiner resumed normally?");
      } finally {
        log.push(`joiner finally@${loop.time()}`);
      }
    });
    yield* sleep(5);
    joiner.cancel();
    const error = yield* joinError(joiner);
    assertInstanceOf(error, CancelledError);
    log.push(`worker is ${worker.state}`);
    log.push(`main joined ${yield* join(worker)}`);
  });
  assertEquals(log, [
    "joiner finally@5",
    "worker is waiting",
    "worker finished@50",
    "main joined work",
  ]);
});

Deno.test("cancel() before the task started: its body never runs, not even its finally", () => {
  const log: string[] = [];
  const loop = virtualLoop();
  const task = loop.runSync(function* main() {
    const task = yield* spawn(function* neverRuns(): Operation<void> {
      try {
        log.push("body ran");
        yield* sleep(1);
      } finally {
        log.push("finally ran");
      }
    });
    assertEquals(task.state, "ready");
    task.cancel("too early");
    const error = yield* joinError(task);
    assertInstanceOf(error, CancelledError);
    assertEquals(error.reason, "too early");
    return task;
  });
  assertEquals(log, []);
  assertEquals(task.state, "cancelled");
  assertEquals(loop._timerCount, 0);
});

Deno.test("cancel() after the task finished is a no-op: done stays done, failed stays failed", () => {
  const boom = new Error("failed earlier");
  const [done, failed] = runVirtual(function* main() {
    const done = yield* spawn(function* done() {
      return "result";
    });
    const failed = yield* spawn(function* failed() {
      throw boom;
    });
    // Observe the failure (so it is not reported as unjoined), then wait.
    yield* joinError(failed);
    yield* join(done);
    done.cancel("late");
    failed.cancel("late");
    yield* cancel(done); // completes at once
    yield* cancel(failed);
    return [done, failed] as Task<unknown>[];
  });
  assertEquals([done.state, done.result, done.error], ["done", "result", undefined]);
  assertEquals(failed.state, "failed");
  assertStrictEquals(failed.error, boom);
});

function runVirtual<T>(body: () => Operation<T>): T {
  return virtualLoop().runSync(body);
}

Deno.test("cancel() twice: the first reason is kept and the cleanup is not interrupted again", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = loop.runSync(function* main() {
    const task = yield* spawn(function* cleaner(): Operation<void> {
      try {
        yield* sleep(100);
      } finally {
        yield* sleep(10); // a second cancel must not cut this short
        log.push(`cleanup finished@${loop.time()}`);
      }
    });
    yield* sleep(1);
    task.cancel("first");
    yield* sleep(2);
    task.cancel("second");
    return yield* joinError(task);
  });
  assertInstanceOf(error, CancelledError);
  assertEquals(error.reason, "first");
  assertEquals(log, ["cleanup finished@11"]);
});

Deno.test("cancel() of itself in its own cleanup, once cancelled, completes at once instead of waiting for itself", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = loop.runSync(function* main() {
    const task = yield* spawn(function* worker(): Operation<void> {
      try {
        yield* suspend();
      } finally {
        // A shutdown helper that cancels every worker, this one included.
        yield* cancel(yield* currentTask(), "again");
        yield* sleep(5);
        log.push(`cleanup finished@${loop.time()}`);
      }
    });
    yield* yieldNow();
    task.cancel("first");
    return yield* joinError(task);
  });
  assertInstanceOf(error, CancelledError);
  assertEquals(error.reason, "first");
  assertEquals(log, ["cleanup finished@5"]);
});

for (const levels of [1, 2]) {
  Deno.test(`cancel() of its ${levels === 1 ? "parent" : "grandparent"} in its own cleanup, once cancelled, cancels it and completes at once instead of a deadlock`, () => {
    const loop = virtualLoop();
    const log: string[] = [];
    let workerTask: Task<void> | undefined;
    const [state, error] = loop.runSync(function* main() {
      const supervisor = yield* spawn(function* supervisor(): Operation<void> {
        const me = yield* currentTask();
        function* worker(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            // A shutdown helper that cancels the supervisor too.
            yield* cancel(me, "shutting down");
            yield* sleep(5);
            log.push(`worker cleanup finished@${loop.time()}`);
          }
        }
        function* middle(): Operation<void> {
          workerTask = yield* spawn(worker);
          yield* suspend();
        }
        if (levels === 1) workerTask = yield* spawn(worker);
        else yield* spawn(middle);
        try {
          yield* suspend();
        } finally {
          log.push(`supervisor cleanup@${loop.time()}`);
        }
      });
      // Until the worker waits in its try block.
      for (let turn = 0; turn <= levels; turn++) yield* yieldNow();
      workerTask!.cancel("stop");
      const error = yield* joinError(supervisor);
      return [supervisor.state, error] as const;
    });
    assertEquals(state, "cancelled");
    assertInstanceOf(error, CancelledError);
    assertEquals(error.reason, "shutting down");
    assertEquals(log, ["supervisor cleanup@0", "worker cleanup finished@5"]);
  });
}

Deno.test("a task queued with an error, then cancelled before it runs, fails with that error alone when it does not catch it", () => {
  const error = runVirtual(function* main() {
    const task = yield* spawn(function* worker() {
      const child = yield* spawn(function* child() {
        yield* yieldNow();
        throw new Error("boom");
      });
      yield* join(child); // throws boom; not caught
    });
    yield* spawn(function* canceller() {
      yield* yieldNow();
      yield* yieldNow(); // the worker is queued with the child's error now
      task.cancel("late");
    });
    return yield* joinError(task);
  });
  // Not an AggregateError of boom and a CancelledError the task never saw:
  // a cancellation joins no other error (the other order gave boom already).
  assertInstanceOf(error, Error);
  assertEquals(error.constructor, Error);
  assertEquals((error as Error).message, "boom");
});

Deno.test("CancelledError: joining a cancelled task throws it, naming the task and the reason", () => {
  const errors = runVirtual(function* main() {
    const task = yield* spawn(function* victim() {
      yield* suspend();
    });
    yield* yieldNow();
    task.cancel({ code: 7 });
    const first = yield* joinError(task);
    const again = yield* joinError(task); // settled: thrown at once
    return [first, again];
  });
  const [first, again] = errors;
  assertInstanceOf(first, CancelledError);
  assertStrictEquals(again, first);
  assertEquals(first.name, "CancelledError");
  assertStringIncludes(first.message, 'Task "victim" was cancelled');
  assertEquals(first.reason, { code: 7 });
});

// ---------------------------------------------------------------------------
// Cleanup that waits.

Deno.test("cancel(): cleanup that sleeps and joins a helper finishes before the joiner resumes", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const task = yield* spawn(function* resourceHolder(): Operation<void> {
      try {
        log.push("holder acquired");
        yield* sleep(1_000);
      } finally {
        log.push(`holder cleanup starts@${loop.time()}`);
        yield* sleep(5);
        log.push(`holder slept in cleanup@${loop.time()}`);
        const helper = yield* spawn(function* flusher(): Operation<string> {
          yield* sleep(7);
          log.push(`flusher done@${loop.time()}`);
          return "flushed";
        });
        log.push(`holder joined ${yield* join(helper)}@${loop.time()}`);
      }
    });
    yield* sleep(10);
    task.cancel();
    log.push("main cancelled it and joins");
    const error = yield* joinError(task);
    log.push(`main resumed with ${(error as Error).name}@${loop.time()}`);
  });
  assertEquals(log, [
    "holder acquired",
    "main cancelled it and joins",
    "holder cleanup starts@10",
    "holder slept in cleanup@15",
    "flusher done@22",
    "holder joined flushed@22",
    "main resumed with CancelledError@22",
  ]);
});

Deno.test("cancel(): every joiner of a cancelled task waits for the whole cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const task = yield* spawn(sleeper(loop, log, "target", 1_000, 20));
    const joiners: Task<void>[] = [];
    for (const name of ["j1", "j2"]) {
      joiners.push(
        yield* spawn(function* joiner(): Operation<void> {
          const error = yield* joinError(task);
          log.push(`${name} got ${(error as Error).name}@${loop.time()}`);
        }),
      );
    }
    yield* sleep(3);
    task.cancel();
    for (const joiner of joiners) yield* join(joiner);
  });
  assertEquals(log, [
    "target cleaned@23",
    "j1 got CancelledError@23",
    "j2 got CancelledError@23",
  ]);
});

Deno.test("cancel() operation: yield* cancel(task) waits for the cleanup and does not throw", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const returned = loop.runSync(function* main() {
    const task = yield* spawn(sleeper(loop, log, "worker", 1_000, 5));
    yield* sleep(1);
    const value: void = yield* cancel(task, "shutdown");
    log.push(`cancel returned@${loop.time()}: worker ${task.state}`);
    assertEquals((task.error as CancelledError).reason, "shutdown");
    return value;
  });
  assertEquals(returned, undefined);
  assertEquals(log, ["worker cleaned@6", "cancel returned@6: worker cancelled"]);
});

Deno.test("cancel() operation: a cleanup that fails is thrown as a TaskFailedError naming the task", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const task = loop.runSync(function* main() {
    const task = yield* spawn(function* badCleanup(): Operation<void> {
      try {
        yield* sleep(100);
      } finally {
        yield* sleep(1);
        // deno-lint-ignore no-unsafe-finally
        throw new Error("cleanup failed");
      }
    });
    yield* sleep(1);
    try {
      yield* cancel(task);
      log.push("cancel returned");
    } catch (error) {
      assertInstanceOf(error, TaskFailedError);
      assertEquals(error.taskName, "badCleanup");
      assertStrictEquals(error.cause, task.error);
      assertStringIncludes(error.message, "while cancelled by cancel(): Error: cleanup failed");
      log.push(`cancel threw@${loop.time()}`);
    }
    return task;
  });
  // Thrown once the cleanup has ended, not before.
  assertEquals(log, ["cancel threw@2"]);
  assertEquals(task.state, "failed");
  assertEquals((task.error as Error).message, "cleanup failed");
});

Deno.test("cancel() operation: a task whose body failed before the cancel (even with undefined) is not said to have failed while cancelled", () => {
  for (const [body, error] of FAILING_FIRST) {
    const loop = virtualLoop();
    const message = loop.runSync(function* main() {
      const task = yield* spawn(body);
      yield* sleep(2);
      try {
        yield* cancel(task);
        return "cancel returned";
      } catch (error) {
        assertInstanceOf(error, TaskFailedError);
        return error.message;
      }
    });
    assertEquals(message, `Task "${body.name}" failed before cancel() reached it: ${error}`);
  }
});

Deno.test("cancel() operation: uncaught, a failed cleanup fails the canceller, not silently nothing", () => {
  const error = assertThrows(
    () =>
      runVirtual(function* main() {
        const task = yield* spawn(function* badCleanup(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            // deno-lint-ignore no-unsafe-finally
            throw new Error("cleanup failed");
          }
        });
        yield* sleep(1);
        yield* cancel(task);
      }),
    TaskFailedError,
  );
  assertEquals(error.taskName, "badCleanup");
});

Deno.test("cancel() operation: a group failure the cancelled task held reaches the canceller", () => {
  const loop = virtualLoop();
  const error = loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<void> {
      yield* gather([failFast, slowToCancel]);
    });
    yield* sleep(2); // failFast failed at t=1; the gather waits for slowToCancel
    try {
      yield* cancel(worker);
    } catch (error) {
      return error;
    }
  });
  // Thrown once slowToCancel's cleanup (cancelled by the gather at t=1) has ended.
  assertEquals(loop.time(), 11);
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "worker");
  assertInstanceOf(error.cause, TaskFailedError);
  assertEquals(error.cause.taskName, "failFast");
});

Deno.test("cancel() operation: a task that failed before it was cancelled completes it at once", () => {
  const log: string[] = [];
  runVirtual(function* main() {
    const task = yield* spawn(function* failsEarly(): Operation<void> {
      yield* sleep(1);
      throw new Error("early");
    });
    try {
      yield* join(task);
    } catch (error) {
      log.push(`joined: ${(error as Error).message}`);
    }
    // Reported to its joiner already: cancel() has nothing to add.
    yield* cancel(task);
    log.push(`cancel returned: ${task.state}`);
  });
  assertEquals(log, ["joined: early", "cancel returned: failed"]);
});

Deno.test("cancel() operation: a task of another Loop is a clear error, and that task is untouched", () => {
  const otherLoop = new Loop();
  const foreign = otherLoop.spawn(function* foreign() {
    return "theirs";
  });
  const warnings: string[] = [];
  const error = runSync(function* main() {
    try {
      yield* cancel(foreign);
    } catch (error) {
      return error;
    }
    fail("cancel() of another Loop's task did not throw");
  }, { onWarning: (message) => warnings.push(message) });
  assertInstanceOf(error, Error);
  assertStringIncludes(
    error.message,
    'Task "main" cannot cancel task "foreign" with yield* cancel(): that task belongs to another Loop',
  );
  assertEquals(warnings, []);
  // Neither cancelled nor queued in the wrong loop: it runs on its own.
  assertEquals(foreign.state, "ready");
  assertEquals(
    otherLoop.runSync(function* theirMain() {
      return yield* join(foreign);
    }),
    "theirs",
  );
});

Deno.test("cancel() operation: cancelling yourself throws CancelledError at that yield*", () => {
  const log: string[] = [];
  const task = runVirtual(function* main() {
    const task = yield* spawn(function* selfCanceller(): Operation<void> {
      const me = yield* currentTask();
      try {
        yield* cancel(me, "enough");
        log.push("went on?");
      } catch (error) {
        log.push(`got ${(error as CancelledError).reason}`);
        throw error;
      }
    });
    yield* joinError(task);
    return task;
  });
  assertEquals(log, ["got enough"]);
  assertEquals(task.state, "cancelled");
});

Deno.test("Task.cancel() on yourself while running: delivered at your next yield*", () => {
  const log: string[] = [];
  runVirtual(function* main() {
    const task = yield* spawn(function* selfCanceller(): Operation<void> {
      const me = yield* currentTask();
      me.cancel("self");
      log.push("still running synchronously");
      try {
        yield* sleep(100);
        log.push("slept?");
      } catch (error) {
        log.push(`got ${(error as CancelledError).reason}`);
        throw error;
      }
    });
    yield* joinError(task);
  });
  assertEquals(log, ["still running synchronously", "got self"]);
});

// Operations that finish inside the task's step (spawn, currentTask, join
// of a settled task) must still throw an error that is due at that yield*.

Deno.test("deferred error: spawn() right after catching the first error throws the second there and spawns nothing", () => {
  const log: string[] = [];
  runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<void> {
      const failing = yield* spawn(function* failing(): Operation<void> {
        throw new Error("boom");
      });
      try {
        yield* join(failing);
      } catch (error) {
        log.push(`caught ${(error as Error).message}`);
      }
      try {
        yield* spawn(function* unwanted() {
          log.push("unwanted ran");
        }, { detached: true });
        log.push("spawned");
        yield* yieldNow();
        log.push("after yieldNow");
      } catch (error) {
        log.push(`got ${(error as CancelledError).reason}`);
        throw error;
      }
    });
    yield* yieldNow(); // worker spawns `failing` and joins it
    yield* spawn(function* killer() {
      // Runs after `failing` threw and `worker` was queued with "boom":
      // the CancelledError is deferred to worker's next yield*.
      worker.cancel("stop");
    });
    try {
      yield* join(worker);
    } catch (error) {
      log.push(`worker ${(error as Error).name}`);
    }
    yield* yieldNow();
    yield* yieldNow();
  });
  assertEquals(log, ["caught boom", "got stop", "worker CancelledError"]);
});

/**
 * Runs a task that lets a loop nested in its step interrupt it, then tries
 * an operation that would finish inside the step; returns what happened.
 */
function interruptedFromNestedLoop(
  interrupt: (me: Task<unknown>, outer: Loop) => void,
  attempt: () => Operation<unknown>,
): string[] {
  const log: string[] = [];
  const outer = new Loop({ clock: new VirtualClock() });
  try {
    outer.runSync(function* main(): Operation<void> {
      const me = yield* currentTask();
      new Loop({ clock: new VirtualClock() }).runSync(function* inner() {
        interrupt(me, outer);
      });
      try {
        yield* attempt();
        log.push("went on");
        yield* yieldNow();
      } catch (error) {
        log.push(`got ${(error as CancelledError).reason}`);
        throw error;
      }
    });
  } catch (error) {
    log.push(`run ${(error as Error).name}`);
  }
  return log;
}

Deno.test("nested runSync: a task cancelled from inside a nested loop gets the CancelledError at its next spawn()", () => {
  let ran = false;
  const log = interruptedFromNestedLoop(
    (me) => me.cancel("from inner loop"),
    () =>
      spawn(function* unwanted() {
        ran = true;
      }, { detached: true }),
  );
  assertEquals(log, ["got from inner loop", "run CancelledError"]);
  assertEquals(ran, false);
});

Deno.test("nested runSync: outer.stop() from inside a nested loop is thrown at the outer task's next currentTask()", () => {
  const log = interruptedFromNestedLoop(
    (_me, outer) => outer.stop("stop from inner"),
    () => currentTask(),
  );
  assertEquals(log, ["got stop from inner", "run CancelledError"]);
});

/** Spawns a task whose call(fn) cancels that very task, joins it, and logs both sides. */
function* cancelInsideCall(log: string[], produce: () => unknown): Operation<void> {
  const victim = yield* spawn(function* victim(): Operation<void> {
    const me = yield* currentTask();
    try {
      const value = yield* call(() => {
        me.cancel("inside fn");
        return produce();
      });
      log.push(`got ${value}`);
      yield* yieldNow();
    } catch (error) {
      log.push(`caught ${(error as CancelledError).reason}`);
      throw error;
    }
  });
  try {
    yield* join(victim);
  } catch (error) {
    log.push(`joined ${(error as Error).name}`);
  }
}

Deno.test("call(fn) whose fn cancels its own task: CancelledError at that yield*, the value dropped", () => {
  const log: string[] = [];
  runSync(cancelInsideCall(log, () => 5));
  assertEquals(log, ["caught inside fn", "joined CancelledError"]);
});

Deno.test("call(fn) whose fn cancels its own task and returns a Promise: the loop still counts later Promises", async () => {
  const log: string[] = [];
  const result = await run(function* main() {
    yield* cancelInsideCall(log, () => Promise.resolve(5));
    // A miscount of pending Promises would make this wait look like a deadlock.
    return yield* call(() => new Promise<number>((resolve) => setTimeout(() => resolve(7), 20)));
  });
  assertEquals(result, 7);
  assertEquals(log, ["caught inside fn", "joined CancelledError"]);
});

Deno.test("call(fn) whose fn cancels its own task and returns a thenable that calls back at once: CancelledError at that yield*", () => {
  const log: string[] = [];
  const warnings: string[] = [];
  runSync(
    cancelInsideCall(log, () => ({
      then(resolve: (value: number) => void) {
        resolve(5); // synchronously, inside then()
      },
    })),
    { onWarning: (message) => warnings.push(message) },
  );
  assertEquals(log, ["caught inside fn", "joined CancelledError"]);
  assertEquals(warnings, []);
});

// ---------------------------------------------------------------------------
// Swallowed cancellation.

Deno.test("a warning hook that throws does not leave the swallowing task half-settled; the run rejects with the hook's error", () => {
  const loop = new Loop({
    clock: new VirtualClock(),
    onWarning: () => {
      throw new Error("hook refused");
    },
  });
  let swallower: Task<unknown> | undefined;
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      swallower = yield* spawn(function* swallower() {
        try {
          yield* sleep(10);
        } catch {
          // swallowed: the loop warns, and the hook throws
        }
        return "ignored";
      });
      yield* sleep(1);
      swallower.cancel();
      yield* sleep(5);
    })
  );
  assertEquals((error as Error).message, "hook refused");
  assertEquals(swallower!.state, "cancelled");
});

Deno.test("LoopOptions.onWarning: a task that catches CancelledError and returns is warned about and ends cancelled", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
  const [task, error] = loop.runSync(function* main() {
    const task = yield* spawn(function* stubborn(): Operation<string> {
      try {
        yield* sleep(1_000);
      } catch {
        yield* sleep(2); // some cleanup, then it returns as if nothing happened
        return "I refuse";
      }
      return "finished";
    });
    yield* sleep(1);
    task.cancel("stop");
    return [task, yield* joinError(task)] as const;
  });
  assertEquals(task.state, "cancelled");
  assertEquals(task.result, undefined, "its return value is discarded");
  assertInstanceOf(error, CancelledError);
  assertEquals(error.reason, "stop");
  assertStrictEquals(task.error, error);
  assertEquals(warnings.length, 1);
  assertStringIncludes(
    warnings[0],
    'Task "stubborn" caught its CancelledError and returned normally',
  );
  assertStringIncludes(warnings[0], "Re-throw CancelledError");
  assertEquals(loop.time(), 3);
});

/** Catches every CancelledError and goes on sleeping, `rounds` times. */
function* stubborn(rounds: number): Operation<number> {
  let caught = 0;
  for (let i = 0; i < rounds; i++) {
    try {
      yield* sleep(1_000);
    } catch (error) {
      if (!(error instanceof CancelledError)) throw error;
      caught++;
    }
  }
  return caught;
}

Deno.test("LoopOptions.cleanupWarningMs: a task that catches its cancellation and runs on is warned about once, naming it", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({
    onWarning: (message) => warnings.push(`t=${loop.time()} ${message}`),
  });
  const error = loop.runSync(function* main() {
    const task = yield* spawn(stubborn(60), { name: "stubborn" });
    yield* sleep(1);
    task.cancel();
    return yield* joinError(task);
  });
  assertInstanceOf(error, CancelledError);
  // Once when it waited 10 s after the cancellation (not at each of its 50
  // later waits), then the usual report when it returned normally.
  assertEquals(warnings.length, 2);
  assertStringIncludes(
    warnings[0],
    't=10001 Task "stubborn" still runs 10000 ms after it was cancelled',
  );
  assertStringIncludes(warnings[0], "must re-throw it after cleanup");
  assertStringIncludes(warnings[1], 'Task "stubborn" caught its CancelledError');
});

Deno.test("LoopOptions.cleanupWarningMs: cleanup that waits less is not warned about; the limit can be set or turned off", () => {
  function* slowCleanup(): Operation<void> {
    try {
      yield* suspend();
    } finally {
      yield* sleep(400);
      yield* sleep(400);
    }
  }
  const warningsWith = (options: LoopOptions): string[] => {
    const warnings: string[] = [];
    virtualLoop({ ...options, onWarning: (message) => warnings.push(message) }).runSync(
      function* main() {
        const task = yield* spawn(slowCleanup);
        yield* sleep(1);
        yield* cancel(task);
      },
    );
    return warnings;
  };
  assertEquals(warningsWith({}), []);
  assertEquals(warningsWith({ cleanupWarningMs: Infinity }), []);
  const warnings = warningsWith({ cleanupWarningMs: 300 });
  assertEquals(warnings.length, 1);
  assertStringIncludes(warnings[0], 'Task "slowCleanup" still runs 400 ms after it was cancelled');
});

Deno.test("LoopOptions.onWarning: not called when the task re-throws CancelledError", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
  loop.runSync(function* main() {
    const task = yield* spawn(function* polite(): Operation<void> {
      try {
        yield* sleep(1_000);
      } catch (error) {
        yield* sleep(2);
        throw error;
      }
    });
    yield* sleep(1);
    yield* cancel(task);
  });
  assertEquals(warnings, []);
});

Deno.test("LoopOptions.onWarning: not called for a task that cancels itself and returns before its next yield*", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
  const outcome = loop.runSync(function* main() {
    const quitter = yield* spawn(function* quitter(): Operation<string> {
      const me = yield* currentTask();
      me.cancel("done early");
      return "bye"; // it never saw the CancelledError
    });
    return yield* joinError(quitter);
  });
  assertInstanceOf(outcome, CancelledError);
  assertEquals(outcome.reason, "done early");
  assertThrows(
    () =>
      loop.runSync(function* main() {
        loop.stop("user typed quit");
        return "bye";
      }),
    CancelledError,
  );
  assertEquals(warnings, []);
});

Deno.test("LoopOptions.onWarning: a swallowed CancelledError is warned about even with a second error waiting behind it", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
  loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<string> {
      yield* spawn(function* bomb(): Operation<never> {
        yield* sleep(5);
        throw new Error("bomb"); // unjoined: reaches the worker after its cancellation
      });
      try {
        yield* sleep(100);
      } catch {
        // swallows everything, its CancelledError included
      }
      return "carried on";
    });
    yield* sleep(5); // runs before the bomb in the t=5 batch
    worker.cancel("shutting down");
    const error = yield* joinError(worker);
    assertInstanceOf(error, TaskFailedError);
  });
  assertEquals(warnings.length, 1);
  assertStringIncludes(warnings[0], 'Task "worker" caught its CancelledError');
});

Deno.test("LoopOptions.onWarning: a task that swallows cancellation and throws something else fails with it", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
  const task = loop.runSync(function* main() {
    const task = yield* spawn(function* converter(): Operation<void> {
      try {
        yield* sleep(1_000);
      } catch {
        throw new RangeError("converted");
      }
    });
    yield* sleep(1);
    try {
      yield* cancel(task);
      fail("cancel() of a task that failed instead did not throw");
    } catch (error) {
      assertInstanceOf(error, TaskFailedError);
      assertStrictEquals(error.cause, task.error);
    }
    return task;
  });
  assertEquals(task.state, "failed");
  assertEquals((task.error as Error).message, "converted");
  assertEquals(warnings, []);
});

// ---------------------------------------------------------------------------
// Structured concurrency: a parent's end cancels its children.

Deno.test("spawn(): a parent that returns cancels its running children and waits for their cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<string> {
      yield* spawn(sleeper(loop, log, "childA", 1_000, 4));
      yield* spawn(sleeper(loop, log, "childB", 1_000, 9));
      yield* spawn(sleeper(loop, log, "quick", 1, 0)); // finishes on its own
      yield* sleep(2);
      log.push(`parent returns@${loop.time()}`);
      return "parent result";
    });
    const value = yield* join(parent);
    log.push(`joiner got ${value}@${loop.time()}, parent ${parent.state}`);
  });
  assertEquals(log, [
    "quick finished@1",
    "quick cleaned@1",
    "parent returns@2",
    "childA cleaned@6",
    "childB cleaned@11",
    "joiner got parent result@11, parent done",
  ]);
});

Deno.test("spawn(): while its children clean up, a parent whose body ended is waiting, not settled", () => {
  const loop = virtualLoop();
  const seen: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<void> {
      yield* spawn(sleeper(loop, [], "child", 1_000, 10));
      yield* yieldNow();
    });
    yield* sleep(5);
    seen.push(`${parent.state} ${parent.settled}`);
    yield* join(parent);
    seen.push(`${parent.state}@${loop.time()}`);
  });
  assertEquals(seen, ["waiting false", "done@10"]);
});

Deno.test("spawn(): a parent that fails cancels its children; its joiner gets the error after their cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const boom = new TypeError("parent broke");
  const error = loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<void> {
      yield* spawn(sleeper(loop, log, "child", 1_000, 6));
      yield* sleep(3);
      log.push(`parent throws@${loop.time()}`);
      throw boom;
    });
    const error = yield* joinError(parent);
    log.push(`joiner got it@${loop.time()}`);
    return error;
  });
  assertStrictEquals(error, boom);
  assertEquals(log, ["parent throws@3", "child cleaned@9", "joiner got it@9"]);
});

Deno.test("spawn(): a cancelled parent cancels its children, all levels, before its joiner resumes", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<void> {
      yield* spawn(function* child(): Operation<void> {
        yield* spawn(sleeper(loop, log, "grandchild", 1_000, 8));
        yield* sleeper(loop, log, "child", 1_000, 2);
      });
      yield* sleeper(loop, log, "parent", 1_000, 1);
    });
    yield* sleep(10);
    parent.cancel("shutdown");
    const error = yield* joinError(parent);
    log.push(`joiner resumed@${loop.time()}`);
    return error;
  });
  assertInstanceOf(error, CancelledError);
  assertEquals(error.reason, "shutdown");
  // Each level's own cleanup runs first (it was interrupted); its children
  // are cancelled once its body has ended; the joiner resumes last.
  assertEquals(log, [
    "parent cleaned@11",
    "child cleaned@13",
    "grandchild cleaned@21",
    "joiner resumed@21",
  ]);
});

Deno.test("spawn(): children not started yet when the parent ends never run", () => {
  const log: string[] = [];
  const result = runVirtual(function* main() {
    const parent = yield* spawn(function* parent(): Operation<Task<void>> {
      return yield* spawn(function* unborn(): Operation<void> {
        log.push("unborn ran");
      });
    });
    const child = yield* join(parent);
    return child.state;
  });
  assertEquals(result, "cancelled");
  assertEquals(log, []);
});

Deno.test("spawn(): a child whose cleanup fails while its parent closes fails the parent with TaskFailedError", () => {
  const loop = virtualLoop();
  const error = loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<string> {
      yield* spawn(function* brittle(): Operation<void> {
        try {
          yield* sleep(1_000);
        } finally {
          // deno-lint-ignore no-unsafe-finally
          throw new Error("cleanup failed");
        }
      });
      yield* yieldNow();
      return "would be the result";
    });
    return yield* joinError(parent);
  });
  assertInstanceOf(error, TaskFailedError);
  assertEquals(error.taskName, "brittle");
});

Deno.test("spawn({ detached: true }): not cancelled when its parent ends", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<Task<string>> {
      const detached = yield* spawn(sleeper(loop, log, "detached", 20, 0), {
        detached: true,
        name: "independent",
      });
      const attached = yield* spawn(sleeper(loop, log, "attached", 20, 0));
      yield* sleep(5);
      log.push(`parent ends@${loop.time()}; attached is ${attached.state}`);
      return detached;
    });
    const detached = yield* join(parent);
    log.push(`parent ${parent.state}; detached is ${detached.state}`);
    log.push(`main joined ${yield* join(detached)}@${loop.time()}`);
    assertEquals(detached.name, "independent");
  });
  assertEquals(log, [
    "parent ends@5; attached is waiting",
    "attached cleaned@5",
    "parent done; detached is waiting",
    "detached finished@20",
    "detached cleaned@20",
    "main joined detached@20",
  ]);
});

Deno.test("spawn({ detached: true }): not cancelled when its parent is cancelled or fails either", () => {
  const loop = virtualLoop();
  const finished: string[] = [];
  loop.runSync(function* main() {
    const detachedTasks: Task<string>[] = [];
    function* parentThat(ending: "cancelled" | "failed"): Operation<void> {
      detachedTasks.push(
        yield* spawn(sleeper(loop, finished, `detached of ${ending}`, 30, 0), { detached: true }),
      );
      if (ending === "failed") {
        yield* sleep(15); // main is joining it by then
        throw new Error("parent failed");
      }
      yield* suspend();
    }
    const cancelled = yield* spawn(parentThat("cancelled"));
    const failed = yield* spawn(parentThat("failed"));
    yield* sleep(10);
    cancelled.cancel();
    yield* joinError(cancelled);
    yield* joinError(failed);
    assertEquals([cancelled.state, failed.state], ["cancelled", "failed"]);
    for (const task of detachedTasks) yield* join(task);
  });
  assertEquals(finished.filter((line) => line.includes("finished")).sort(), [
    "detached of cancelled finished@30",
    "detached of failed finished@30",
  ]);
});

// ---------------------------------------------------------------------------
// Cancellation through gather.

Deno.test("run end: detached and loop.spawn() tasks still running when main settles are cancelled and awaited", async () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const outside = loop.spawn(sleeper(loop, log, "outside", 100, 2), { name: "outside" });
  let detached: Task<string> | undefined;
  const result = await loop.runUntilComplete(function* main() {
    detached = yield* spawn(sleeper(loop, log, "detached", 100, 1), { detached: true });
    yield* sleep(10);
    return "main done";
  });
  // Their cleanup ran within the run, at the instant main ended and after.
  assertEquals(result, "main done");
  assertEquals(log, ["detached cleaned@11", "outside cleaned@12"]);
  assertEquals(outside.state, "cancelled");
  assertEquals(detached!.state, "cancelled");
  assertEquals(loop.running, false);
  // Nothing of the first run turns up in the next one.
  assertEquals(
    loop.runSync(function* second() {
      yield* sleep(500);
      return "second done";
    }),
    "second done",
  );
  assertEquals(log.length, 2);
});

Deno.test("run end: a leftover waiting on a Promise does not keep the next run from reporting its deadlock", async () => {
  const loop = virtualLoop();
  await loop.runUntilComplete(function* first() {
    yield* spawn(function* waiter() {
      yield* call(() => new Promise<never>(() => {})); // never settles
    }, { detached: true });
    yield* yieldNow();
  });
  // Had the waiter survived, its pending call() would make this run wait
  // for the outside world for ever instead of seeing the deadlock.
  await assertRejects(
    () =>
      loop.runUntilComplete(function* second() {
        yield* suspend();
      }),
    DeadlockError,
  );
});

Deno.test("run end: a detached task spawned by a leftover's cleanup is closed with the run too", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  let flusher: Task<void> | undefined;
  loop.runSync(function* first() {
    yield* spawn(function* background() {
      try {
        yield* suspend();
      } finally {
        flusher = yield* spawn(function* flusher() {
          yield* sleep(5);
          log.push("flusher ran");
        }, { detached: true });
      }
    }, { detached: true });
    yield* yieldNow();
  });
  assertEquals(flusher?.state, "cancelled");
  loop.runSync(function* second() {
    yield* sleep(10);
  });
  assertEquals(log, []);
});

Deno.test("run end: cleanups that keep spawning detached tasks end the run with a clear error, not for ever", () => {
  const loop = virtualLoop();
  function* supervised(): Operation<void> {
    try {
      yield* suspend();
    } finally {
      yield* spawn(supervised, { detached: true }); // restarts itself,
      yield* yieldNow(); // and lets the successor start before it ends
    }
  }
  const error = assertThrows(
    () =>
      loop.runSync(function* main() {
        yield* spawn(supervised, { detached: true });
        yield* yieldNow();
      }),
    Error,
  );
  assertStringIncludes(error.message, "Cannot end the run: after 100 rounds");
  assertStringIncludes(error.message, '"supervised"');
  // It still holds the last round's tasks: rather than run them in the next
  // run, it refuses one.
  const refusal = assertThrows(() => loop.runSync(function* next() {}), Error);
  assertStringIncludes(
    refusal.message,
    "Cannot start a run: this loop could not end its previous one",
  );
});

Deno.test("LoopOptions.onWarning: a cancelled task that swallows its CancelledError is warned about even with a group failure held for it", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
  loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<string> {
      try {
        yield* gather([failFast, slowToCancel]);
      } catch {
        // swallows the CancelledError: the bug the warning exists for
      }
      return "carried on";
    });
    yield* sleep(2); // failFast failed; the gather waits for slowToCancel
    worker.cancel();
    const error = yield* joinError(worker);
    assertInstanceOf(error, TaskFailedError); // the held failure is its outcome
  });
  assertEquals(warnings.length, 1);
  assertStringIncludes(warnings[0], 'Task "worker" caught its CancelledError');
});

Deno.test("run end: a last round that closes everything ends the run normally, and the loop stays usable", () => {
  const loop = virtualLoop();
  let generations = 0;
  function* relay(): Operation<void> {
    generations++;
    try {
      yield* suspend();
    } finally {
      // Hands over 101 times in all: one more round than the limit, which
      // then leaves nothing behind.
      if (generations <= 100) yield* spawn(relay, { detached: true });
      yield* yieldNow();
    }
  }
  assertEquals(
    loop.runSync(function* main() {
      yield* spawn(relay, { detached: true });
      yield* yieldNow();
      return "done";
    }),
    "done",
  );
  assertEquals(generations, 101);
  assertEquals(
    loop.runSync(function* next() {
      return "usable";
    }),
    "usable",
  );
});

Deno.test("run end: a leftover task whose cleanup fails makes the run reject, naming it", () => {
  const loop = virtualLoop();
  const error = assertThrows(
    () =>
      loop.runSync(function* main() {
        yield* spawn(function* brittle(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            // deno-lint-ignore no-unsafe-finally
            throw new Error("cleanup failed");
          }
        }, { detached: true });
        yield* yieldNow();
        return "main done";
      }),
    TaskFailedError,
  );
  assertEquals(error.taskName, "brittle");
  assertStringIncludes(
    error.message,
    "while cancelled at the end of the run: Error: cleanup failed",
  );
});
Deno.test("gather(): cancelling the gathering task cancels every child, and its joiner waits for their cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const states = loop.runSync(function* main() {
    const members: Task<unknown>[] = [];
    function* member(name: string, cleanupMs: number): Operation<void> {
      members.push(yield* currentTask());
      yield* sleeper(loop, log, name, 1_000, cleanupMs);
    }
    const gathering = yield* spawn(function* gatherer(): Operation<void> {
      yield* gather([member("m1", 3), member("m2", 6)]);
    });
    yield* sleep(2);
    gathering.cancel();
    const error = yield* joinError(gathering);
    assertInstanceOf(error, CancelledError);
    log.push(`joiner resumed@${loop.time()}`);
    return members.map((task) => task.state);
  });
  assertEquals(states, ["cancelled", "cancelled"]);
  assertEquals(log, ["m1 cleaned@5", "m2 cleaned@8", "joiner resumed@8"]);
  assert(loop._timerCount === 0);
});

// A task waiting in gather/race/timeout owns the children that wait
// started: interrupted, it cancels them and is resumed with the error only
// once their cleanup has run, so its own finally never runs beside theirs.
const owningWaits: [string, (bodies: Operation<string>[]) => Operation<unknown>][] = [
  ["gather()", (bodies) => gather(bodies)],
  ["race()", (bodies) => race(bodies)],
  ["timeout()", (bodies) => timeout(1_000, bodies[0])],
];
for (const [what, wait] of owningWaits) {
  Deno.test(`${what}: a cancelled waiting task's cleanup runs after its children's cleanup`, () => {
    const loop = virtualLoop();
    const log: string[] = [];
    const state = loop.runSync(function* main() {
      const waiter = yield* spawn(function* waiter(): Operation<void> {
        try {
          yield* wait([sleeper(loop, log, "child", 1_000, 4)]);
        } catch (error) {
          log.push(`waiter caught ${(error as Error).name}@${loop.time()}`);
          throw error;
        } finally {
          log.push(`waiter cleaned@${loop.time()}`);
        }
      });
      yield* sleep(2);
      waiter.cancel("stop");
      yield* joinError(waiter);
      return waiter.state;
    });
    assertEquals(state, "cancelled");
    assertEquals(log, ["child cleaned@6", "waiter caught CancelledError@6", "waiter cleaned@6"]);
  });

  Deno.test(`${what}: a failure reported to the waiting task reaches it after its children's cleanup`, () => {
    const loop = virtualLoop();
    const log: string[] = [];
    const boom = new Error("unjoined sibling failed");
    const error = loop.runSync(function* main() {
      yield* spawn(function* failing(): Operation<never> {
        yield* sleep(2);
        throw boom;
      });
      try {
        yield* wait([sleeper(loop, log, "child", 1_000, 3)]);
      } catch (error) {
        log.push(`caught@${loop.time()}`);
        return error;
      }
    });
    assertInstanceOf(error, TaskFailedError);
    assertStrictEquals(error.cause, boom);
    assertEquals(log, ["child cleaned@5", "caught@5"]);
  });
}

Deno.test("gather(): an error reaching the waiting task while its children clean up is thrown at its next yield*", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const second = new Error("second");
  const outcome = loop.runSync(function* main() {
    const waiter = yield* spawn(function* waiter(): Operation<void> {
      try {
        yield* gather([sleeper(loop, log, "child", 1_000, 4)]);
      } catch (error) {
        log.push(`first: ${(error as Error).message}@${loop.time()}`);
      }
      try {
        yield* yieldNow();
      } catch (error) {
        log.push(`then: ${(error as Error).message}@${loop.time()}`);
      }
    });
    yield* sleep(2);
    loop._interrupt(waiter, new Error("first"));
    yield* sleep(1);
    loop._interrupt(waiter, second);
    yield* join(waiter);
    return waiter.state;
  });
  assertEquals(outcome, "done");
  assertEquals(log, ["child cleaned@6", "first: first@6", "then: second@6"]);
});

Deno.test("gather(): children stuck in cleanup keep the cancelled waiting task waiting, and a deadlock names them", () => {
  const loop = virtualLoop();
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      const waiter = yield* spawn(function* waiter(): Operation<void> {
        yield* gather([function* stuck(): Operation<void> {
          try {
            yield* sleep(1_000);
          } finally {
            yield* suspend();
          }
        }]);
      });
      yield* sleep(1);
      waiter.cancel();
      yield* join(waiter);
    })
  );
  assertInstanceOf(error, DeadlockError);
  assertStringIncludes(error.message, "stuck");
  assertStringIncludes(error.message, "gather of 1 task");
});

// Regression test for a bug fixed after these tests found it:
// a cancellation that reaches a task already queued with another error is
// marked as delivered but never thrown into it, so the task runs on (and
// cannot be cancelled again), and is then warned about as if it had
// swallowed a CancelledError it never saw.
Deno.test({
  name: "Task.cancel(): a task queued with another error still receives its cancellation",
  fn() {
    const warnings: string[] = [];
    const loop = virtualLoop({ onWarning: (message) => warnings.push(message) });
    const log: string[] = [];
    const state = loop.runSync(function* main() {
      const parent = yield* spawn(function* parent(): Operation<void> {
        const child = yield* spawn(function* child(): Operation<void> {
          yield* sleep(10);
          throw new Error("child failed");
        });
        try {
          yield* join(child);
        } catch (error) {
          log.push(`parent caught ${(error as Error).message}`);
        }
        yield* sleep(1_000); // the cancellation must land here
        log.push("parent slept on despite being cancelled");
      });
      yield* yieldNow();
      yield* yieldNow(); // the child's timer is armed before main's
      yield* sleep(10); // the child fails first, queueing its error for the parent
      parent.cancel("stop");
      yield* joinError(parent);
      return parent.state;
    });
    assertEquals(log, ["parent caught child failed"]);
    assertEquals(state, "cancelled");
    assertEquals(loop.time(), 10);
    assertEquals(warnings, []);
  },
});

Deno.test("Task.cancel(): a task queued with two errors already still receives its cancellation after the first", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const target = yield* spawn(function* target(): Operation<void> {
      for (const name of ["a", "b"]) {
        yield* spawn(function* failing(): Operation<never> {
          yield* sleep(1);
          throw new Error(`${name} failed`);
        }, { name });
      }
      try {
        yield* sleep(1_000); // "a" fails, then "b": the second error waits
      } catch (error) {
        log.push(`caught ${(error as TaskFailedError).taskName}`);
      }
      try {
        yield* sleep(1_000); // the cancellation, with "b", must land here
        log.push("slept on despite being cancelled");
      } catch (error) {
        log.push(`then ${(error as Error).name}`);
        throw error;
      }
    });
    yield* sleep(1);
    yield* yieldNow(); // after both children failed
    target.cancel("stop");
    yield* joinError(target);
  });
  assertEquals(log, ["caught a", "then CancelledError"]);
  assertEquals(loop.time(), 1);
});

Deno.test("Task.cancel(): a cancellation waiting behind one error is not dropped when another error follows it", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<void> {
      yield* spawn(function* bombA(): Operation<never> {
        yield* sleep(5);
        throw new Error("A");
      });
      yield* spawn(function* bombB(): Operation<never> {
        yield* yieldNow();
        yield* yieldNow(); // its timer is armed after main's
        yield* sleep(5);
        throw new Error("B");
      });
      for (let round = 0; round < 3; round++) {
        try {
          yield* sleep(100);
          log.push(`served@${loop.time()}`);
        } catch (error) {
          if (error instanceof CancelledError) throw error; // a well-behaved task stops when cancelled
          log.push(`handled@${loop.time()}`);
        }
      }
    });
    yield* yieldNow();
    yield* yieldNow(); // main's timer is armed after bombA's, before bombB's
    yield* sleep(5);
    worker.cancel("stop"); // A is queued for the worker; B follows the cancellation
    return yield* joinError(worker);
  });
  // A handled; then the cancellation, alone, so the usual check sees it: no serving on.
  assertEquals(log, ["handled@5"]);
  assertInstanceOf(error, TaskFailedError); // B joined the outcome, and outranks the cancellation
  assertEquals(error.taskName, "bombB");
});

// Each level waits on the next through a gather, a race or a timeout, whose
// undo cancels the level below: cancelling the top reaches every level, in a
// loop rather than a recursion as deep as the tree.
const DEEP = 5_000;
const nestings: [string, (inner: Operation<unknown>) => Operation<unknown>][] = [
  ["gather", (inner) => gather([inner])],
  ["race", (inner) => race([inner])],
  ["timeout", (inner) => timeout(1_000_000, inner)],
];
for (const [name, around] of nestings) {
  Deno.test(`cancel() reaches every level of ${name}() nested ${DEEP} deep, and each cleans up`, () => {
    let cleaned = 0;
    function* level(depth: number): Operation<unknown> {
      try {
        if (depth === 0) return yield* suspend();
        return yield* around(level(depth - 1));
      } finally {
        cleaned++;
      }
    }
    const loop = virtualLoop();
    const state = loop.runSync(function* main() {
      const root = yield* spawn(level(DEEP));
      yield* sleep(1);
      yield* cancel(root);
      return root.state;
    });
    assertEquals(state, "cancelled");
    assertEquals(cleaned, DEEP + 1);
  });
}

/** A child that waits forever and records the CancelledError it gets. */
function* recordsCancellation(seen: unknown[]): Operation<void> {
  try {
    yield* suspend();
  } catch (error) {
    seen.push(error);
    throw error;
  }
}

Deno.test("cancel: the children of a task that ended share one CancelledError naming the parent", () => {
  const seen: unknown[] = [];
  const { children, loner } = runSync(function* main() {
    const loner = yield* spawn(recordsCancellation(seen), { name: "loner" });
    const children: Task<void>[] = [];
    const parent = yield* spawn(function* parent() {
      for (let i = 0; i < 3; i++) {
        children.push(yield* spawn(recordsCancellation(seen), { name: `child ${i}` }));
      }
      yield* yieldNow();
      // Cancelled on its own first: it keeps its own error.
      children[0].cancel("early");
      yield* yieldNow();
    });
    yield* join(parent);
    yield* cancel(loner);
    return { children, loner };
  });
  assertEquals(seen.length, 4);
  const [early, shared, sameShared, alone] = seen;
  assertInstanceOf(early, CancelledError);
  assertEquals(early.message, 'Task "child 0" was cancelled: early');
  assertInstanceOf(shared, CancelledError);
  assertStrictEquals(sameShared, shared);
  assertEquals(
    shared.message,
    'Cancelled together with the other children of task "parent": its parent "parent" ended',
  );
  assertEquals(shared.reason, 'its parent "parent" ended');
  assertStrictEquals(children[1].error, shared);
  assertStrictEquals(children[2].error, shared);
  assertStrictEquals(children[0].error, early);
  // A task cancelled on its own gets an error of its own.
  assertInstanceOf(alone, CancelledError);
  assertEquals(alone.message, 'Task "loner" was cancelled');
  assertStrictEquals(loner.error, alone);
});

function* failing(): Operation<void> {
  yield* sleep(1);
  throw new Error("boom");
}

Deno.test("cancel: the tasks a gather() or race() cancels share one CancelledError", () => {
  const gathered: unknown[] = [];
  const raced: unknown[] = [];
  runVirtual(function* main() {
    let failure: unknown;
    try {
      yield* gather([recordsCancellation(gathered), failing, recordsCancellation(gathered)]);
    } catch (error) {
      failure = error;
    }
    assertEquals((failure as Error).message, "boom");
    yield* race([recordsCancellation(raced), sleep(1), recordsCancellation(raced)]);
  });
  assertSharedCancellation(
    gathered,
    'Cancelled together with the other tasks of a gather(): task "failing" of the same gather failed',
  );
  assertSharedCancellation(raced, "Cancelled together with the other tasks of a race(): task ");
});

Deno.test("cancel: cancelling a gather()'s waiting task gives its members one CancelledError", () => {
  const seen: unknown[] = [];
  runVirtual(function* main() {
    const waiter = yield* spawn(function* waiter() {
      yield* gather([recordsCancellation(seen), recordsCancellation(seen)]);
    });
    yield* yieldNow();
    yield* yieldNow();
    yield* cancel(waiter, "stop");
  });
  assertSharedCancellation(
    seen,
    "Cancelled together with the other tasks of a gather(): the waiting task was interrupted",
  );
});

Deno.test("cancel: detached tasks left at the run's end share one CancelledError", () => {
  const seen: unknown[] = [];
  runSync(function* main() {
    yield* spawn(recordsCancellation(seen), { detached: true });
    yield* spawn(recordsCancellation(seen), { detached: true });
    yield* yieldNow();
  });
  assertSharedCancellation(seen, "Cancelled together with the other tasks left at the run's end: ");
});

/** Both tasks that recorded into `seen` got one CancelledError, its message starting so. */
function assertSharedCancellation(seen: unknown[], messageStart: string): void {
  assertEquals(seen.length, 2);
  assertStrictEquals(seen[0], seen[1]);
  assertInstanceOf(seen[0], CancelledError);
  assert(
    seen[0].message.startsWith(messageStart),
    `${JSON.stringify(seen[0].message)} starts with ${JSON.stringify(messageStart)}`,
  );
}

Deno.test("cancel: a reason that is a plain object is shown by its contents in the message, not as [object Object]", () => {
  const error = runSync(function* main() {
    const child = yield* spawn(function* child() {
      yield* suspend();
    });
    yield* yieldNow();
    child.cancel({ code: 42, why: "shutdown" });
    return yield* joinError(child);
  });
  assertInstanceOf(error, CancelledError);
  assertEquals(error.message, 'Task "child" was cancelled: { code: 42, why: "shutdown" }');
});

Deno.test("a cancel reason that is a large plain object gives a message of bounded size", () => {
  const reason: Record<string, number> = {};
  for (let i = 0; i < 100_000; i++) reason[`key${i}`] = i;
  const message = virtualLoop().runSync(function* main(): Operation<string> {
    const child = yield* spawn(function* child(): Operation<void> {
      yield* suspend();
    });
    yield* yieldNow();
    child.cancel(reason);
    try {
      yield* join(child);
    } catch (error) {
      return (error as Error).message;
    }
    return "";
  });
  assert(message.length < 10_000, `message of ${message.length} characters`);
});

import { assert, assertEquals, assertInstanceOf, assertStringIncludes } from "@std/assert";
import {
  cancel,
  CancelledError,
  currentTask,
  gather,
  join,
  Loop,
  type Operation,
  sleep,
  spawn,
  suspend,
  VirtualClock,
  yieldNow,
} from "../mod.ts";

function virtualLoop(onWarning?: (message: string) => void): Loop {
  return new Loop({ clock: new VirtualClock(), onWarning });
}

Deno.test("cancel while sleeping: CancelledError at the yield*, finally runs, timer removed", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const sleeper = yield* spawn(function* sleeper(): Operation<void> {
      try {
        yield* sleep(1_000);
        log.push("woke?");
      } catch (error) {
        log.push(`caught ${(error as Error).name}: ${(error as CancelledError).reason}`);
        throw error;
      } finally {
        log.push("finally");
      }
    });
    yield* sleep(10);
    sleeper.cancel("stop");
    try {
      yield* join(sleeper);
    } catch (error) {
      assertInstanceOf(error, CancelledError);
      log.push(`joiner got ${error.message}`);
    }
    log.push(`state ${sleeper.state}, timers ${loop._timerCount}`);
  });
  assertEquals(log, [
    "caught CancelledError: stop",
    "finally",
    'joiner got Task "sleeper" was cancelled: stop',
    "state cancelled, timers 0",
  ]);
  assertEquals(loop.time(), 10);
});

Deno.test("cancel while joining: the join is unregistered and the joined task goes on", () => {
  const log: string[] = [];
  virtualLoop().runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<string> {
      yield* sleep(50);
      log.push("worker finished");
      return "w";
    });
    const joiner = yield* spawn(function* joiner(): Operation<void> {
      yield* join(worker);
      log.push("joiner resumed?");
    });
    yield* sleep(10);
    yield* cancel(joiner);
    log.push(`joiner ${joiner.state}`);
    log.push(`worker result ${yield* join(worker)}`);
  });
  assertEquals(log, ["joiner cancelled", "worker finished", "worker result w"]);
});

Deno.test("cancel before start: the body never runs", () => {
  const log: string[] = [];
  virtualLoop().runSync(function* main() {
    const never = yield* spawn(function* never(): Operation<void> {
      log.push("ran!");
    });
    never.cancel();
    try {
      yield* join(never);
    } catch (error) {
      log.push(`${(error as Error).name}, state ${never.state}`);
    }
  });
  assertEquals(log, ["CancelledError, state cancelled"]);
});

Deno.test("cancel after finish is a no-op", () => {
  const result = virtualLoop().runSync(function* main() {
    const done = yield* spawn(function* done(): Operation<number> {
      return 3;
    });
    const value = yield* join(done);
    done.cancel();
    yield* cancel(done);
    return [value, done.state, done.result, yield* join(done)];
  });
  assertEquals(result, [3, "done", 3, 3]);
});

Deno.test("cleanup that sleeps and joins a helper completes before the joiner resumes", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<void> {
      try {
        yield* suspend();
      } finally {
        log.push(`cleanup starts@${loop.time()}`);
        yield* sleep(20);
        const helper = yield* spawn(function* closer(): Operation<string> {
          yield* sleep(5);
          return "socket closed";
        });
        log.push(`${yield* join(helper)}@${loop.time()}`);
      }
    });
    yield* sleep(1);
    worker.cancel();
    try {
      yield* join(worker);
    } catch (error) {
      log.push(`joiner resumed with ${(error as Error).name}@${loop.time()}`);
    }
  });
  assertEquals(log, [
    "cleanup starts@1",
    "socket closed@26",
    "joiner resumed with CancelledError@26",
  ]);
});

Deno.test("yield* cancel(task) waits for cleanup and does not throw", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const worker = yield* spawn(function* worker(): Operation<void> {
      try {
        yield* suspend();
      } finally {
        yield* sleep(7);
        log.push("cleaned");
      }
    });
    yield* yieldNow();
    yield* cancel(worker, "done with it");
    log.push(`cancel returned@${loop.time()} ${worker.state}`);
  });
  assertEquals(log, ["cleaned", "cancel returned@7 cancelled"]);
});

Deno.test("a task that swallows CancelledError and returns is reported, and ends cancelled", () => {
  const warnings: string[] = [];
  const outcome = virtualLoop((message) => warnings.push(message)).runSync(function* main() {
    const stubborn = yield* spawn(function* stubborn(): Operation<string> {
      try {
        yield* suspend();
      } catch {
        // swallowed on purpose
      }
      return "ignored the cancel";
    });
    yield* yieldNow();
    stubborn.cancel();
    try {
      yield* join(stubborn);
      return "joined normally";
    } catch (error) {
      return `${(error as Error).name}, state ${stubborn.state}, result ${stubborn.result}`;
    }
  });
  assertEquals(outcome, "CancelledError, state cancelled, result undefined");
  assertEquals(warnings.length, 1);
  assertStringIncludes(warnings[0], 'Task "stubborn" caught its CancelledError');
});

/** Asserts that `cleaned` happened (in any order) and then, last, `after`. */
function assertCleanedThen(log: string[], cleaned: string[], after: string): void {
  assertEquals(log.slice(0, cleaned.length).sort(), [...cleaned].sort());
  assertEquals(log.slice(cleaned.length), [after]);
}

function* child(log: string[], name: string, loop: Loop): Operation<void> {
  try {
    yield* suspend();
  } finally {
    yield* sleep(3);
    log.push(`${name} cleaned@${loop.time()}`);
  }
}

Deno.test("a parent that returns cancels its running children and waits for their cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<string> {
      yield* spawn(child(log, "c1", loop));
      yield* spawn(child(log, "c2", loop));
      yield* yieldNow();
      return "parent value";
    });
    log.push(`join -> ${yield* join(parent)}@${loop.time()}`);
  });
  assertCleanedThen(log, ["c1 cleaned@3", "c2 cleaned@3"], "join -> parent value@3");
});

Deno.test("a parent that fails cancels its children; the joiner gets the parent's error after cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<void> {
      yield* spawn(child(log, "c", loop));
      yield* yieldNow();
      throw new Error("parent broke");
    });
    try {
      yield* join(parent);
    } catch (error) {
      log.push(`${(error as Error).message}@${loop.time()}`);
    }
  });
  assertEquals(log, ["c cleaned@3", "parent broke@3"]);
});

Deno.test("a cancelled parent cancels its children, deepest cleanup first", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const parent = yield* spawn(function* parent(): Operation<void> {
      yield* spawn(function* middle(): Operation<void> {
        yield* spawn(child(log, "grandchild", loop));
        yield* suspend();
      });
      yield* suspend();
    });
    yield* yieldNow();
    yield* yieldNow();
    yield* cancel(parent);
    log.push(`parent ${parent.state}@${loop.time()}`);
  });
  assertEquals(log, ["grandchild cleaned@3", "parent cancelled@3"]);
});

Deno.test("a detached child outlives its parent", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    let detached!: import("../mod.ts").Task<void>;
    const parent = yield* spawn(function* parent(): Operation<void> {
      detached = yield* spawn(function* free(): Operation<void> {
        yield* sleep(10);
        log.push(`free finished@${loop.time()}`);
      }, { detached: true });
    });
    yield* join(parent);
    log.push(`parent done, free is ${detached.state}`);
    yield* join(detached);
  });
  assertEquals(log, ["parent done, free is waiting", "free finished@10"]);
});

Deno.test("gather(): when any child fails, the others are cancelled and cleaned up before it throws", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    try {
      yield* gather([
        child(log, "first", loop),
        function* third(): Operation<void> {
          yield* sleep(5);
          throw new Error("third failed");
        },
        child(log, "second", loop),
      ]);
    } catch (error) {
      log.push(`gather threw ${(error as Error).message}@${loop.time()}`);
    }
  });
  assertCleanedThen(log, ["first cleaned@8", "second cleaned@8"], "gather threw third failed@8");
});

Deno.test("gather(): cancelling the gathering task cancels every child", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const gatherer = yield* spawn(function* gatherer(): Operation<void> {
      yield* gather([child(log, "x", loop), child(log, "y", loop)]);
    });
    yield* sleep(1);
    yield* cancel(gatherer);
    log.push(`gatherer ${gatherer.state}@${loop.time()}`);
  });
  assertCleanedThen(log, ["x cleaned@4", "y cleaned@4"], "gatherer cancelled@4");
});

Deno.test("a task cancelling itself gets CancelledError at its next yield*", () => {
  const log: string[] = [];
  virtualLoop().runSync(function* main() {
    const selfish = yield* spawn(function* selfish(): Operation<void> {
      const me = yield* currentTask();
      me.cancel("by itself");
      log.push("still running after cancel()");
      try {
        yield* yieldNow();
      } catch (error) {
        log.push(`got ${(error as CancelledError).reason}`);
        throw error;
      }
    });
    try {
      yield* join(selfish);
    } catch (error) {
      assert(error instanceof CancelledError);
    }
  });
  assertEquals(log, ["still running after cancel()", "got by itself"]);
});

Deno.test("a cancelled task that keeps waiting is reported as such in a deadlock", () => {
  let message = "";
  try {
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
    });
  } catch (error) {
    message = (error as Error).message;
  }
  assertStringIncludes(message, 'task "stubborn" (cancelled, still running) waits for nothing');
});

// Scale: deep task chains must not overflow the stack (the loop resumes
// tasks from its queue, never recursively), and many tasks must stay cheap.
// Each test keeps a generous wall-time bound so a quadratic regression fails.

import { assertEquals, assertInstanceOf, assertLess, assertThrows } from "@std/assert";
import {
  CancelledError,
  currentTask,
  DeadlockError,
  gather,
  join,
  Loop,
  type Operation,
  runSync,
  sleep,
  spawn,
  suspend,
  type Task,
  VirtualClock,
  yieldNow,
} from "../mod.ts";

const WALL_LIMIT_MS = 5_000;

function timed<T>(body: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = body();
  return { value, ms: performance.now() - started };
}

function* chain(depth: number): Operation<number> {
  if (depth === 0) return 0;
  const next = yield* spawn(chain(depth - 1));
  return 1 + (yield* join(next));
}

Deno.test("join(): a chain of 100,000 tasks, each spawning and joining the next, does not overflow the stack", () => {
  const { value, ms } = timed(() => runSync(chain(100_000)));
  assertEquals(value, 100_000);
  assertLess(ms, WALL_LIMIT_MS);
});

Deno.test("join(): an error thrown at the bottom of a 100,000-task chain reaches the top", () => {
  function* failingChain(depth: number): Operation<number> {
    if (depth === 0) throw new RangeError("bottom");
    const next = yield* spawn(failingChain(depth - 1));
    return 1 + (yield* join(next));
  }
  const { value, ms } = timed(() => {
    try {
      runSync(failingChain(100_000));
    } catch (error) {
      return error;
    }
  });
  assertInstanceOf(value, RangeError);
  assertEquals(value.message, "bottom");
  assertLess(ms, WALL_LIMIT_MS);
});

Deno.test("Task.cancel(): cancelling the top of a 100,000-task chain runs every finally, bottom included", () => {
  let cleaned = 0;
  let bottom: Task<unknown> | undefined;
  function* holdingChain(depth: number): Operation<void> {
    try {
      if (depth === 0) {
        bottom = yield* currentTask();
        yield* suspend();
      }
      yield* join(yield* spawn(holdingChain(depth - 1)));
    } finally {
      cleaned++;
    }
  }
  const loop = new Loop({ clock: new VirtualClock() });
  const { value, ms } = timed(() =>
    loop.runSync(function* main() {
      const top = yield* spawn(holdingChain(100_000));
      yield* sleep(1); // the whole chain is built and waiting
      top.cancel("tear down");
      try {
        yield* join(top);
      } catch (error) {
        return error;
      }
    })
  );
  assertInstanceOf(value, CancelledError);
  assertEquals(cleaned, 100_001);
  assertEquals(bottom?.state, "cancelled");
  assertLess(ms, WALL_LIMIT_MS);
});

Deno.test("spawn(): 100,000 nested parents that end while their children run settle without overflow", () => {
  // Each task spawns the next, lets it start, and returns: its body ends
  // while its child still runs, so the child is cancelled and the task
  // settles only once the child has; at the bottom, that settling walks up
  // the whole chain at once.
  let started = 0;
  let bottomWoke = false;
  function* nest(depth: number): Operation<void> {
    started++;
    if (depth === 0) {
      yield* sleep(1);
      bottomWoke = true;
      return;
    }
    yield* spawn(nest(depth - 1));
    yield* yieldNow();
  }
  const loop = new Loop({ clock: new VirtualClock() });
  const { value, ms } = timed(() =>
    loop.runSync(function* main() {
      const top = yield* spawn(nest(100_000));
      yield* join(top);
      return top.state;
    })
  );
  assertEquals(value, "done");
  assertEquals(started, 100_001, "every level started before its parent ended");
  assertEquals(bottomWoke, false, "the bottom was cancelled, not woken");
  assertEquals(loop._timerCount, 0);
  assertLess(ms, WALL_LIMIT_MS);
});

function* one(): Operation<number> {
  return 1;
}

Deno.test("spawn() + join(): 1,000,000 tasks spawned and joined one after another", () => {
  const { value, ms } = timed(() =>
    runSync(function* main() {
      let sum = 0;
      let lastId = 0;
      for (let i = 0; i < 1_000_000; i++) {
        const task = yield* spawn(one);
        sum += yield* join(task);
        lastId = task.id;
      }
      return { sum, lastId };
    })
  );
  assertEquals(value.sum, 1_000_000);
  assertEquals(value.lastId, 1_000_001, "main is task 1, then one id per spawn");
  assertLess(ms, WALL_LIMIT_MS);
});

Deno.test("spawn(): 100,000 tasks alive at once, then all joined, sum checked", () => {
  function* value(n: number): Operation<number> {
    yield* sleep(n % 7);
    return n;
  }
  const loop = new Loop({ clock: new VirtualClock() });
  const { value: total, ms } = timed(() =>
    loop.runSync(function* main() {
      const tasks: Task<number>[] = [];
      for (let i = 0; i < 100_000; i++) tasks.push(yield* spawn(value(i)));
      let sum = 0;
      for (const task of tasks) sum += yield* join(task);
      return sum;
    })
  );
  assertEquals(total, (99_999 * 100_000) / 2);
  assertEquals(loop._timerCount, 0);
  assertLess(ms, WALL_LIMIT_MS);
});

Deno.test("yieldNow(): 20,000 ready tasks keep first-in, first-out order while the ready queue grows and then shrinks back", () => {
  const TASKS = 20_000;
  const rounds: number[][] = [[], [], [], []];
  function* worker(index: number): Operation<void> {
    rounds[0].push(index);
    yield* yieldNow();
    // Most tasks end after one turn, so the queue drains to a hundredth of
    // its size and gives its buffer back while the rest keep taking turns.
    if (index % 100 !== 0) return;
    for (let round = 1; round < rounds.length; round++) {
      rounds[round].push(index);
      yield* yieldNow();
    }
  }
  runSync(function* main() {
    const tasks: Task<void>[] = [];
    for (let i = 0; i < TASKS; i++) tasks.push(yield* spawn(worker(i)));
    for (const task of tasks) yield* join(task);
  });
  const all = Array.from({ length: TASKS }, (_, i) => i);
  assertEquals(rounds[0], all);
  for (let round = 1; round < rounds.length; round++) {
    assertEquals(rounds[round], all.filter((i) => i % 100 === 0));
  }
});

// Cancelling whole trees (a run's end, a failed run's unwind) copes with a
// task of 150k live children.
const MANY = 150_000;

Deno.test("a run's end cancels a detached task with 150k live children (no RangeError) and runs their cleanup", () => {
  const loop = new Loop({ clock: new VirtualClock() });
  let cleaned = 0;
  const result = loop.runSync(function* main(): Operation<string> {
    yield* spawn(function* wide(): Operation<void> {
      for (let i = 0; i < MANY; i++) {
        yield* spawn(function* child(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            cleaned++;
          }
        });
      }
      yield* suspend();
    }, { detached: true });
    yield* sleep(1);
    return "ok";
  });
  assertEquals(result, "ok");
  assertEquals(cleaned, MANY);
});

Deno.test("a deadlock in a gather of 150k children rejects with DeadlockError (not RangeError) after their cleanup", () => {
  const loop = new Loop({ clock: new VirtualClock() });
  let cleaned = 0;
  const error = assertThrows(() =>
    loop.runSync(function* main(): Operation<void> {
      yield* gather(Array.from({ length: MANY }, () =>
        function* child(): Operation<void> {
          try {
            yield* suspend();
          } finally {
            cleaned++;
          }
        }));
    })
  );
  assertInstanceOf(error, DeadlockError);
  assertEquals(cleaned, MANY);
});

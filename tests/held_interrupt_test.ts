// A task interrupted while it waits in gather/race/timeout gets the error
// only once the children that wait started have settled. Meanwhile the loop
// holds the error: a run that fails during the hold still reports it, a
// failed run's unwind still reaches every task, and the warning about a
// cleanup that runs on too long counts from when the task's own cleanup
// starts.

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  cancel,
  DeadlockError,
  gather,
  join,
  Loop,
  type LoopOptions,
  type Operation,
  race,
  sleep,
  spawn,
  suspend,
  TaskFailedError,
  timeout,
  VirtualClock,
  yieldNow,
} from "../mod.ts";

function virtualLoop(options: LoopOptions = {}): Loop {
  return new Loop({ clock: new VirtualClock(), ...options });
}

/** Sleeps long; once cancelled, its cleanup never ends. */
function* stuckInCleanup(): Operation<void> {
  try {
    yield* sleep(1_000);
  } finally {
    yield* suspend();
  }
}

const owningWaits: [string, (bodies: (() => Operation<void>)[]) => Operation<unknown>][] = [
  ["gather()", (bodies) => gather(bodies)],
  ["race()", (bodies) => race(bodies)],
  ["timeout()", (bodies) => timeout(1_000, bodies[0])],
];

// The held error is the loop's, not the instruction's: a run failing
// during the hold makes it the DeadlockError's cause.
for (const [what, wait] of owningWaits) {
  Deno.test(`${what}: a DeadlockError during the hold keeps the failure that interrupted the waiting task as its cause`, () => {
    const loop = virtualLoop();
    const boom = new Error("unjoined sibling failed");
    const error = assertThrows(() =>
      loop.runSync(function* main() {
        yield* spawn(function* failing(): Operation<never> {
          yield* sleep(2);
          throw boom;
        });
        yield* wait([stuckInCleanup]);
      })
    );
    assertInstanceOf(error, DeadlockError);
    assertInstanceOf(error.cause, TaskFailedError);
    assertStrictEquals(error.cause.cause, boom);
  });
}

// A group's recorded failure is reported when its waiting task is
// interrupted, not when the children have settled, which may be never.
for (const group of [gather, race]) {
  Deno.test(`${group.name}(): when a sibling's cleanup blocks, the DeadlockError keeps the first failure as its cause`, () => {
    const loop = virtualLoop();
    const error = assertThrows(() =>
      loop.runSync(function* main() {
        yield* group([
          function* failFast(): Operation<never> {
            yield* sleep(1);
            throw new Error("backend unavailable");
          },
          stuckInCleanup,
        ]);
      })
    );
    assertInstanceOf(error, DeadlockError);
    assertInstanceOf(error.cause, TaskFailedError);
    assertEquals((error.cause.cause as Error).message, "backend unavailable");
  });
}

// In a cleanup, the waiting task was cancelled before: the unwind's
// cancellation does not reach it again, and the run reports the failure
// the group holds for it all the same.
for (const group of [gather, race]) {
  Deno.test(`${group.name}() in a cleanup: when a sibling's cleanup blocks, the DeadlockError keeps the failure the group holds`, () => {
    const boom = new Error("backend unavailable");
    const error = assertThrows(
      () =>
        virtualLoop().runSync(function* main() {
          const worker = yield* spawn(function* worker(): Operation<void> {
            try {
              yield* sleep(1_000);
            } finally {
              yield* group([
                function* failFast(): Operation<never> {
                  yield* sleep(1);
                  throw boom;
                },
                stuckInCleanup,
              ]);
            }
          });
          yield* sleep(1);
          yield* cancel(worker);
        }),
      DeadlockError,
    );
    assertInstanceOf(error.cause, TaskFailedError);
    assertStrictEquals(error.cause.cause, boom);
    assertStringIncludes(error.cause.message, '"failFast"');
  });
}

// A failed run's unwind cancels every task, not only main: main's
// cancellation is held in the gather, so its body would not end and cancel
// the sibling that the gather's cleanup waits on.
Deno.test("a deadlock that cancelling main can unwind leaves the loop usable", () => {
  const loop = virtualLoop();
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      const holder = yield* spawn(function* holder(): Operation<void> {
        yield* suspend();
      });
      yield* gather([
        function* failFast(): Operation<never> {
          yield* sleep(1);
          throw new Error("backend unavailable");
        },
        function* flusher(): Operation<void> {
          try {
            yield* sleep(1_000);
          } finally {
            try {
              yield* join(holder); // ends once main's end cancels the holder
            } catch { /* its CancelledError */ }
          }
        },
      ]);
    })
  );
  assertInstanceOf(error, DeadlockError);
  const next = loop.runSync(function* next() {
    yield* sleep(1);
    return "second run";
  });
  assertEquals(next, "second run");
});

// A held waiter's own cleanup starts once its children's has run: the
// lingering-cleanup clock starts then, not at cancel().
Deno.test("cleanupWarningMs does not blame a waiting task for its children's slow cleanup", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ cleanupWarningMs: 50, onWarning: (m) => warnings.push(m) });
  loop.runSync(function* main() {
    const waiter = yield* spawn(function* waiter(): Operation<void> {
      try {
        yield* gather([function* slowLeaf(): Operation<void> {
          try {
            yield* sleep(1_000);
          } finally {
            yield* sleep(100); // the slow cleanup is this one's
          }
        }]);
      } finally {
        yield* yieldNow(); // a cleanup of no time at all
      }
    });
    yield* sleep(1);
    waiter.cancel();
    try {
      yield* join(waiter);
    } catch { /* cancelled */ }
  });
  assert(
    warnings.every((message) => !message.includes('"waiter"')),
    `the waiting task was blamed: ${warnings.join(" | ")}`,
  );
});

// Same, nested: each level's own cleanup takes 30 ms, under the limit,
// though the top one's ends 120 ms after the cancellation.
Deno.test("cleanupWarningMs: nested waiting tasks whose own cleanup is quick are not warned", () => {
  const warnings: string[] = [];
  const loop = virtualLoop({ cleanupWarningMs: 50, onWarning: (m) => warnings.push(m) });
  function* level(depth: number): Operation<void> {
    try {
      if (depth === 0) yield* sleep(1_000);
      else yield* gather([level(depth - 1)]);
    } finally {
      yield* sleep(30);
    }
  }
  loop.runSync(function* main() {
    const top = yield* spawn(level(3));
    yield* sleep(1);
    top.cancel();
    try {
      yield* join(top);
    } catch { /* cancelled */ }
  });
  assertEquals(warnings, []);
});

/** A detached task that owns a helper S and waits in a gather whose child's cleanup waits for S. */
function* owner(log: string[]): Operation<void> {
  const s = yield* spawn(function* S() {
    try {
      yield* suspend();
    } finally {
      log.push("S cleanup");
    }
  });
  yield* gather([function* C() {
    try {
      yield* suspend();
    } finally {
      try {
        yield* join(s);
      } catch {
        // S was cancelled
      }
      log.push("C cleanup");
    }
  }]);
}

Deno.test("a failed run's unwind cancels a detached task's whole tree, so its gather child's cleanup can finish", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  assertThrows(
    () =>
      loop.runSync(function* main() {
        yield* spawn(() => owner(log), { detached: true });
        yield* sleep(1);
        yield* suspend(); // deadlock
      }),
    DeadlockError,
  );
  assertEquals(log.sort(), ["C cleanup", "S cleanup"]);
  // The loop is still usable: no cleanup blocked.
  assertEquals(
    loop.runSync(function* again() {
      return 1;
    }),
    1,
  );
});

Deno.test("a run ending normally does not deadlock on a detached task held in gather() whose child waits for its other child", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    yield* spawn(() => owner(log), { detached: true });
    yield* sleep(1);
  });
  assertEquals(log.sort(), ["C cleanup", "S cleanup"]);
});

// A known limit, as with asyncio's TaskGroup: a task cancelled while it
// waits in a gather waits for the gather's children, and its other children
// are cancelled only once its body ends. A gather child whose cleanup waits
// for one of those is a cycle: the run fails with a DeadlockError naming
// it, and the unwind (which cancels every task) still runs every cleanup.
Deno.test("a cancelled task in gather() whose child's cleanup waits for the task's other child: a DeadlockError names the cycle, and every cleanup runs", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      const p = yield* spawn(() => owner(log), { name: "P" });
      yield* sleep(1);
      yield* cancel(p);
    }), DeadlockError);
  assertStringIncludes(
    error.message,
    'task "C" (cancelled, still running) waits for task "S" to finish',
  );
  assertStringIncludes(
    error.message,
    'task "P" (cancelled, still running) waits for gather of 1 task',
  );
  assertEquals(log.sort(), ["C cleanup", "S cleanup"]);
  assertEquals(
    loop.runSync(function* again() {
      return "usable";
    }),
    "usable",
  );
});

// A leftover cancelled before the run's end, cleaning up, keeps the
// children its cleanup waits for: they are cancelled when it ends.
Deno.test("a run's end: a detached task already cancelled and cleaning up keeps the children its cleanup waits for", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const d = yield* spawn(function* d(): Operation<void> {
      const flusher = yield* spawn(function* flusher(): Operation<string> {
        yield* sleep(1_000);
        log.push(`flushed@${loop.time()}`);
        return "ok";
      });
      try {
        yield* suspend();
      } finally {
        try {
          log.push(`joined ${yield* join(flusher)}`);
        } catch (error) {
          log.push(`join threw ${(error as Error).name}`);
        }
      }
    }, { detached: true });
    yield* sleep(1);
    d.cancel(); // d's cleanup starts: it waits for its flusher
    yield* sleep(1);
  }); // main returns while d still cleans up
  assertEquals(log, ["flushed@1000", "joined ok"]);
});

// The same cycle when the task was cancelled just before the run ended: its
// cancellation is held in the gather, so its children are cancelled too.
Deno.test("a run ending right after task.cancel() of a detached task held in gather() whose child's cleanup joins its other child does not deadlock", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main(): Operation<void> {
    const d = yield* spawn(() => owner(log), { detached: true });
    yield* sleep(1);
    d.cancel(); // fire and forget; main returns: the run's end must finish the job
  });
  assertEquals(log.sort(), ["C cleanup", "S cleanup"]);
});

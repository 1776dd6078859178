// One operation object yield*-ed by two tasks: the second is refused with
// a TypeError while the first waits on it (or was woken from it and has not
// run yet, or was cancelled and has not run yet), without disturbing the
// first; and the object does not keep the first task alive after its wait
// was undone.

import { assert, assertEquals } from "@std/assert";
import {
  call,
  join,
  Loop,
  type LoopOptions,
  type Operation,
  read,
  SimulatedStream,
  sleep,
  spawn,
  VirtualClock,
  write,
  yieldNow,
} from "../mod.ts";

function virtualLoop(options: LoopOptions = {}): Loop {
  return new Loop({ clock: new VirtualClock(), ...options });
}

function describeOutcome(error: unknown): string {
  if (error instanceof TypeError) {
    return error.message.includes("another task is waiting") ? "refused" : "run-twice TypeError";
  }
  return (error as Error)?.name ?? String(error);
}

/**
 * Runs `op`, logging as `who` what `onValue` makes of its value, or how it
 * was refused.
 */
function* attempt<T>(
  log: string[],
  who: string,
  op: Operation<T>,
  onValue: (value: T) => string,
): Operation<void> {
  try {
    const value = yield* op;
    log.push(`${who} ${onValue(value)}`);
  } catch (error) {
    log.push(`${who} ${describeOutcome(error)}`);
  }
}

// ---------------------------------------------------------------------------

Deno.test("second waiter: a sleep whose first waiter was woken but has not run yet is refused to another task, not finished at once", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const shared = sleep(100);
    // b's own sleep is armed before a's wait on `shared`: at t=100 both
    // fire, b first, so b runs while a is queued, not yet resumed.
    const b = yield* spawn(function* b(): Operation<void> {
      yield* sleep(100);
      yield* attempt(log, "b", shared, () => `passed@${loop.time()}`);
    });
    const a = yield* spawn(attempt(log, "a", shared, () => `woke@${loop.time()}`));
    yield* join(b);
    yield* join(a);
  });
  assertEquals(log, ["b refused", "a woke@100"]);
});

Deno.test("second waiter: a join whose first waiter was woken but has not run yet is refused to another task, not finished with undefined", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    // child's sleep is armed first, b's second: at t=100 child settles
    // (queuing a with 42), then b runs before a does.
    const child = yield* spawn(function* child(): Operation<number> {
      yield* sleep(100);
      return 42;
    });
    const shared = join(child);
    const b = yield* spawn(function* b(): Operation<void> {
      yield* sleep(100);
      yield* attempt(log, "b", shared, (value) => `got ${value}`);
    });
    const a = yield* spawn(attempt(log, "a", shared, (value) => `got ${value}`));
    yield* join(b);
    yield* join(a);
  });
  assertEquals(log, ["b refused", "a got 42"]);
});

Deno.test("second waiter: a read whose first waiter the selector woke but has not run yet is refused to another task, which must not take its data", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const stream = new SimulatedStream("pipe", { waitCycles: 0 });
  loop.runSync(function* main() {
    const shared = read(stream);
    // feeder's sleep is armed first, b's second: at t=100 feeder writes,
    // b queues itself again; the next tick's poll queues a behind b.
    const feeder = yield* spawn(function* feeder(): Operation<void> {
      yield* sleep(100);
      yield* write(stream, "data");
    });
    const decoded = (bytes: Uint8Array | null) => `got ${new TextDecoder().decode(bytes!)}`;
    const b = yield* spawn(function* b(): Operation<void> {
      yield* sleep(100);
      yield* yieldNow();
      yield* attempt(log, "b", shared, decoded);
    });
    const a = yield* spawn(attempt(log, "a", shared, decoded));
    yield* join(feeder);
    yield* join(b);
    yield* join(a);
  });
  assertEquals(log, ["b refused", "a got data"]);
});

Deno.test("second waiter: a sleep whose first waiter was cancelled but has not run yet does not let another task through at once", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const shared = sleep(100);
    const a = yield* spawn(function* a(): Operation<void> {
      yield* shared;
    });
    yield* yieldNow(); // a waits on `shared`
    a.cancel(); // a is queued with its CancelledError, not run yet
    yield* attempt(log, "main", shared, () => `passed@${loop.time()}`);
    try {
      yield* join(a);
    } catch { /* cancelled */ }
  });
  assert(log[0] !== "main passed@0", `a spent sleep let a second task through: ${log}`);
});

// ---------------------------------------------------------------------------
Deno.test("second waiter: a task with an error deferred to its next yield* is still refused an operation another task waits on", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main(): Operation<void> {
    const shared = sleep(100);
    const a = yield* spawn(function* a(): Operation<void> {
      yield* shared;
      log.push(`a woke@${loop.time()}`);
    });
    const b = yield* spawn(function* b(): Operation<void> {
      yield* spawn(function* failing(): Operation<never> {
        yield* sleep(10);
        throw new Error("child failed");
      });
      try {
        yield* sleep(1_000);
      } catch {
        // The cancellation; the child's failure, which reached b while it
        // was queued with it, waits for b's next yield*, which is this one.
        try {
          yield* shared;
          log.push("b passed");
        } catch (error) {
          const refused = error instanceof TypeError &&
            error.message.includes("another task is waiting");
          log.push(refused ? "b refused" : `b got ${error}`);
        }
      }
    });
    yield* sleep(10);
    b.cancel(); // before the child fails, in the same tick
    try {
      yield* join(b);
    } catch {
      // the child's failure, with b's outcome
    }
    yield* join(a);
  });
  assertEquals(log, ["b refused", "a woke@100"]);
});

Deno.test("a plain yield of an operation another task waits on is an InvalidInstructionError, and the first waiter still wakes", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const shared = sleep(100);
    const a = yield* spawn(function* a(): Operation<void> {
      yield* shared;
      log.push(`a woke@${loop.time()}`);
    });
    yield* yieldNow(); // a waits on `shared`
    const b = yield* spawn(function* b(): Operation<void> {
      try {
        yield shared as never;
        log.push(`b passed@${loop.time()}`);
      } catch (error) {
        log.push(`b ${(error as Error).name}`);
      }
    });
    yield* join(b);
    yield* join(a);
  });
  assertEquals(log, ["b InvalidInstructionError", "a woke@100"]);
});

/**
 * What every memory probe starts with: the library, and a collect() that
 * lets pending callbacks run and then collects twice.
 */
const PROBE_PRELUDE = `
const { call, gather, join, Loop, race, sleep, spawn, timeout, VirtualClock, yieldNow } =
  await import(${JSON.stringify(new URL("../mod.ts", import.meta.url).href)});
const gc = globalThis.gc;
async function collect() {
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
}`;

/**
 * Runs `script` in a child Deno with the garbage collector exposed, so that
 * what it keeps alive is not blurred by this test process; returns what it
 * printed, parsed as JSON.
 */
async function runGcProbe(script: string): Promise<Record<string, number>> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc", "--allow-read", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

// ---------------------------------------------------------------------------
const RETENTION_PROBE = `
${PROBE_PRELUDE}
async function probe(makeLoser) {
  const results = [];
  let count = -1;
  const loop = new Loop({ clock: new VirtualClock() });
  await loop.runUntilComplete(function* main() {
    // Due before the losers' timers: their cancelled entries stay queued.
    const long = yield* spawn(sleep(1_800_000), { detached: true });
    for (let i = 0; i < 10; i++) {
      const worker = yield* spawn(function* worker() {
        yield* race([makeLoser(), function* quick() {
          yield* yieldNow();
        }]);
        const result = new Uint8Array(1024);
        results.push(new WeakRef(result));
        return result;
      });
      yield* join(worker);
    }
    yield* call(collect);
    count = results.filter((ref) => ref.deref() !== undefined).length;
    long.cancel();
  });
  return count;
}
const forever = new Promise(() => {});
console.log(JSON.stringify({
  sleep: await probe(() => sleep(3_600_000)),
  call: await probe(() => call(() => forever)),
}));
`;

// A call() that lost a race against a Promise that lives on (a shutdown
// signal): that Promise keeps the call's handlers, but not the function
// given to call() (nor what it captured), nor the run's Loop.
const ABANDONED_CALL_PROBE = `
${PROBE_PRELUDE}
const forever = new Promise(() => {});
function* quick() {
  yield* yieldNow();
}
const loops = [];
for (let i = 0; i < 20; i++) {
  const loop = new Loop({ clock: new VirtualClock() });
  loops.push(new WeakRef(loop));
  loop.runSync(function* main() {
    yield* race([call(() => forever), quick()]);
  });
}
const captured = [];
new Loop({ clock: new VirtualClock() }).runSync(function* main() {
  for (let i = 0; i < 20; i++) {
    const request = new Uint8Array(1024);
    captured.push(new WeakRef(request));
    yield* race([call(() => (request[0] = 1, forever)), quick()]);
  }
});
await collect();
const alive = (refs) => refs.filter((ref) => ref.deref() !== undefined).length;
console.log(JSON.stringify({ loops: alive(loops), captured: alive(captured) }));
`;

Deno.test("memory: a call() abandoned on a Promise that lives on keeps neither the function's captures nor the run's Loop", async () => {
  const alive = await runGcProbe(ABANDONED_CALL_PROBE);
  assert(alive.loops <= 1 && alive.captured <= 1, `kept alive: ${JSON.stringify(alive)}`);
});

Deno.test("memory: an undone sleep (or call) an armed task left behind does not keep that task's tree and results alive", async () => {
  const alive = await runGcProbe(RETENTION_PROBE);
  assert(alive.sleep <= 1 && alive.call <= 1, `results kept alive: ${JSON.stringify(alive)}`);
});

Deno.test("a plain yield of an operation whose waiter was cancelled but has not run is an InvalidInstructionError, not a second perform", async () => {
  const loop = virtualLoop();
  let calls = 0;
  const log: string[] = [];
  await loop.runUntilComplete(function* main(): Operation<void> {
    const shared = call(() => {
      calls++;
      return Promise.resolve(7);
    });
    const a = yield* spawn(function* a(): Operation<void> {
      yield* shared;
    });
    yield* yieldNow(); // a waits on `shared`
    a.cancel(); // undone, a queued with its CancelledError
    try {
      const value: unknown = yield shared as never;
      log.push(`main passed with ${value}`);
    } catch (error) {
      log.push(`main ${(error as Error).constructor.name}`);
    }
    try {
      yield* join(a);
    } catch { /* cancelled */ }
  });
  assertEquals([...log, `fn called ${calls}x`], ["main InvalidInstructionError", "fn called 1x"]);
});

const KEPT_OPERATION_PROBE = `
${PROBE_PRELUDE}
const kept = [];
const results = [];
let count = -1;
const loop = new Loop({ clock: new VirtualClock() });
await loop.runUntilComplete(function* main() {
  for (let i = 0; i < 10; i++) {
    const worker = yield* spawn(function* worker() {
      const op = sleep(1);
      kept.push(op); // e.g. a log of what was waited on
      yield* op;
      const result = new Uint8Array(1024);
      results.push(new WeakRef(result));
      return result;
    });
    yield* join(worker);
  }
  yield* call(collect);
  count = results.filter((ref) => ref.deref() !== undefined).length;
});
console.log(JSON.stringify({ alive: count, kept: kept.length }));
`;

Deno.test("memory: an operation object kept after its wait ended does not keep the task that waited on it (and its result) alive", async () => {
  const { alive, kept } = await runGcProbe(KEPT_OPERATION_PROBE);
  assertEquals(kept, 10);
  assert(alive <= 1, `${alive} finished tasks' results kept alive by their operations`);
});

// A kept operation object does not keep the task that waited on it alive,
// whatever ended the wait, nor (for gather, race and timeout) its children.
const KEPT_WAITER_PROBE = `
${PROBE_PRELUDE}
function* failing() {
  yield* sleep(1);
  throw new Error("failed");
}
// make(task) makes the operation a worker waits on; task, when asked for,
// is a task of main's that fails (joined by the worker, so not escalated).
async function probe(make, needsTask = false) {
  const kept = [];
  const results = [];
  let count = -1;
  const loop = new Loop({ clock: new VirtualClock() });
  await loop.runUntilComplete(function* main() {
    for (let i = 0; i < 10; i++) {
      const target = needsTask ? yield* spawn(failing) : null;
      const worker = yield* spawn(function* worker() {
        const op = make(target);
        kept.push(op); // e.g. a log of what was waited on
        try { yield* op; } catch { /* expected */ }
        const result = new Uint8Array(1024);
        results.push(new WeakRef(result));
        return result;
      });
      yield* join(worker);
    }
    yield* call(collect);
    count = results.filter((ref) => ref.deref() !== undefined).length;
  });
  return count;
}
console.log(JSON.stringify({
  resolved: await probe(() => call(() => Promise.resolve(1))),
  rejected: await probe(() => call(() => Promise.reject(new Error("no")))),
  joinFailed: await probe((task) => join(task), true),
  gatherOk: await probe(() => gather([sleep(1)])),
  raceOk: await probe(() => race([sleep(1)])),
  timeoutOk: await probe(() => timeout(10, sleep(1))),
  timedOut: await probe(() => timeout(1, sleep(5))),
}));
`;

Deno.test("memory: an operation object kept after its wait ended with an error (rejected call, join of a failed task) does not keep the task that waited on it alive", async () => {
  const alive = await runGcProbe(KEPT_WAITER_PROBE);
  assert(alive.resolved <= 1, `control: ${JSON.stringify(alive)}`);
  assert(
    alive.rejected <= 1 && alive.joinFailed <= 1,
    `finished tasks' results kept alive by their operations: ${JSON.stringify(alive)}`,
  );
});

Deno.test("memory: a kept gather/race/timeout object does not keep the task that waited on it alive", async () => {
  const alive = await runGcProbe(KEPT_WAITER_PROBE);
  assert(
    alive.gatherOk <= 1 && alive.raceOk <= 1 && alive.timeoutOk <= 1 && alive.timedOut <= 1,
    `finished tasks' results kept alive by their operations: ${JSON.stringify(alive)}`,
  );
});

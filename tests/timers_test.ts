import { assert, assertEquals, assertGreaterOrEqual, assertLess, assertThrows } from "@std/assert";
import process from "node:process";
import {
  cancel,
  gather,
  Loop,
  type Operation,
  race,
  run,
  sleep,
  spawn,
  timeout,
  TimeoutError,
  VirtualClock,
  yieldNow,
} from "../mod.ts";

function virtualLoop(): Loop {
  return new Loop({ clock: new VirtualClock() });
}

function* wake(loop: Loop, log: string[], name: string, ms: number): Operation<void> {
  yield* sleep(ms);
  log.push(`${name}@${loop.time()}`);
}

Deno.test("sleep() wakes tasks in deadline order, ties in the order they slept", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    yield* gather([
      wake(loop, log, "c", 30),
      wake(loop, log, "a", 10),
      wake(loop, log, "tie1", 20),
      wake(loop, log, "tie2", 20),
      wake(loop, log, "tie3", 20),
      wake(loop, log, "b", 15),
    ]);
  });
  assertEquals(log, ["a@10", "b@15", "tie1@20", "tie2@20", "tie3@20", "c@30"]);
});

Deno.test("VirtualClock: an hour of sleeping runs instantly, loop.time() exactly one hour later", () => {
  const loop = virtualLoop();
  const started = performance.now();
  loop.runSync(function* main() {
    for (let minute = 0; minute < 60; minute++) yield* sleep(60_000);
  });
  assertEquals(loop.time(), 3_600_000);
  assertLess(performance.now() - started, 1_000);
});

Deno.test("VirtualClock: the same program gives the same event log every run", () => {
  function program(): string[] {
    const loop = virtualLoop();
    const log: string[] = [];
    loop.runSync(function* main() {
      const workers = [];
      for (let i = 0; i < 50; i++) {
        workers.push(function* worker(): Operation<void> {
          for (let k = 0; k < 5; k++) {
            yield* sleep(((i * 37 + k * 11) % 17) + 1);
            log.push(`${i}.${k}@${loop.time()}`);
            if (k % 2 === 0) yield* yieldNow();
          }
        });
      }
      yield* gather(workers);
    });
    return log;
  }
  const first = program();
  assertEquals(first.length, 250);
  assertEquals(program(), first);
  assertEquals(program(), first);
});

Deno.test("RealClock: sleep() never wakes early", async () => {
  const loop = new Loop();
  const waited = await loop.runUntilComplete(function* main() {
    const results: number[] = [];
    for (const ms of [1, 5, 20, 50]) {
      const start = performance.now();
      yield* sleep(ms);
      results.push(performance.now() - start - ms);
    }
    return results;
  });
  for (const lateness of waited) assertGreaterOrEqual(lateness, -0.001);
});

Deno.test("RealClock: while every task sleeps the process does not spin", async () => {
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  await run(function* main() {
    yield* gather([sleep(200), sleep(150), sleep(100)]);
  });
  const wall = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  assertGreaterOrEqual(wall, 200);
  // A spinning loop would burn ~100% of one core for the whole 200 ms.
  assertLess(cpuMs, wall * 0.25, `CPU ${cpuMs.toFixed(1)} ms over ${wall.toFixed(1)} ms wall`);
});

Deno.test("VirtualClock: 100,000 concurrent sleeps complete and leave no timer behind", () => {
  const loop = virtualLoop();
  let woke = 0;
  function* sleeper(ms: number): Operation<void> {
    yield* sleep(ms);
    woke++;
  }
  loop.runSync(function* main() {
    const tasks = [];
    for (let i = 0; i < 100_000; i++) tasks.push(yield* spawn(sleeper((i * 7919) % 1000 + 1)));
    yield* sleep(2_000);
  });
  assertEquals(woke, 100_000);
  assertEquals(loop._timerCount, 0);
  assertEquals(loop.time(), 2_000);
});

Deno.test("sleep(): 100,000 sleeps cancelled early leave no timer behind", () => {
  const loop = virtualLoop();
  let armed = 0;
  loop.runSync(function* main() {
    const tasks = [];
    for (let i = 0; i < 100_000; i++) tasks.push(yield* spawn(sleep(1_000 + i)));
    yield* yieldNow();
    armed = loop._timerCount;
    for (const task of tasks) task.cancel();
    yield* yieldNow();
  });
  assertEquals(armed, 100_000);
  assertEquals(loop._timerCount, 0);
  assertEquals(loop.time(), 0, "no timer ever fired");
});

Deno.test("sleep() rejects bad delays at the call; sleep(0) yields", () => {
  assertThrows(() => sleep(-1), RangeError, "sleep(-1)");
  assertThrows(() => sleep(NaN), RangeError);
  assertThrows(() => sleep("5" as never), RangeError);
  const log: string[] = [];
  virtualLoop().runSync(function* main() {
    yield* spawn(function* other() {
      log.push("other");
    });
    yield* sleep(0);
    log.push("main");
  });
  assertEquals(log, ["other", "main"]);
});

Deno.test("timeout() returns the body's result when it finishes in time", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    return yield* timeout(100, function* quick(): Operation<string> {
      yield* sleep(40);
      return "in time";
    });
  });
  assertEquals(result, "in time");
  assertEquals(loop.time(), 40);
  assertEquals(loop._timerCount, 0, "the timeout's timer was disarmed");
});

Deno.test("timeout() cancels a slow body and runs its cleanup before TimeoutError arrives", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    try {
      yield* timeout(50, function* slow(): Operation<void> {
        try {
          yield* sleep(1_000);
          log.push("slow finished?");
        } finally {
          yield* sleep(5);
          log.push(`cleanup done@${loop.time()}`);
        }
      });
    } catch (error) {
      assert(error instanceof TimeoutError);
      log.push(`${error.name}@${loop.time()}: ${error.ms}`);
    }
  });
  assertEquals(log, ["cleanup done@55", "TimeoutError@55: 50"]);
});

Deno.test("timeout() passes the body's own error through", () => {
  const error = virtualLoop().runSync(function* main() {
    try {
      yield* timeout(10, function* failing(): Operation<void> {
        throw new SyntaxError("mine");
      });
    } catch (error) {
      return error;
    }
  });
  assert(error instanceof SyntaxError);
});

Deno.test("timeout() rejects a bad limit at the call", () => {
  assertThrows(() => timeout(-5, sleep(1)), RangeError);
});

Deno.test("race(): the first to finish wins; losers are cancelled and cleaned up first", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  function* runner(name: string, ms: number): Operation<string> {
    try {
      yield* sleep(ms);
      return name;
    } finally {
      if (name !== "fast") {
        yield* sleep(3);
        log.push(`${name} cleaned@${loop.time()}`);
      }
    }
  }
  const winner = loop.runSync(function* main() {
    const value = yield* race([runner("slow", 50), runner("fast", 10), runner("slower", 70)]);
    log.push(`race returned ${value}@${loop.time()}`);
    return value;
  });
  assertEquals(winner, "fast");
  assertEquals(log, ["slow cleaned@13", "slower cleaned@13", "race returned fast@13"]);
});

Deno.test("race(): a winner that fails makes race throw", () => {
  const error = virtualLoop().runSync(function* main() {
    try {
      yield* race([sleep(100), function* fails(): Operation<void> {
        yield* sleep(1);
        throw new Error("first and failed");
      }]);
    } catch (error) {
      return (error as Error).message;
    }
  });
  assertEquals(error, "first and failed");
});

Deno.test("race([]) is a RangeError at the call", () => {
  assertThrows(() => race([]), RangeError, "empty");
});

Deno.test("cancel() of a sleeping task removes its timer at once", () => {
  const loop = virtualLoop();
  loop.runSync(function* main() {
    const sleeper = yield* spawn(sleep(10_000));
    yield* yieldNow();
    assertEquals(loop._timerCount, 1);
    yield* cancel(sleeper);
    assertEquals(loop._timerCount, 0);
  });
  assertEquals(loop.time(), 0);
});

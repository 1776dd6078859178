// Time: sleep on the virtual and the real clock, the timer heap's order,
// timer bookkeeping at scale, timeout() and race().

import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertInstanceOf,
  assertLess,
  assertRejects,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import process from "node:process";
import {
  call,
  cancel,
  CancelledError,
  currentTask,
  DeadlockError,
  gather,
  join,
  Loop,
  type Operation,
  race,
  RealClock,
  run,
  sleep,
  spawn,
  suspend,
  type Task,
  type TaskBody,
  TaskFailedError,
  timeout,
  TimeoutError,
  VirtualClock,
  type Yielded,
  yieldNow,
} from "../mod.ts";
import { FAILING_FIRST } from "./_group_failure.ts";

function virtualLoop(): Loop {
  return new Loop({ clock: new VirtualClock() });
}

// ---------------------------------------------------------------------------
// Order.

Deno.test("sleep() wakes tasks in deadline order, whatever order they were spawned in", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  function* sleeper(name: string, ms: number): Operation<void> {
    yield* sleep(ms);
    log.push(`${name}@${loop.time()}`);
  }
  loop.runSync(function* main() {
    const delays = [70, 10, 50, 30, 60, 20, 40];
    yield* gather(delays.map((ms) => sleeper(`s${ms}`, ms)));
  });
  assertEquals(log, ["s10@10", "s20@20", "s30@30", "s40@40", "s50@50", "s60@60", "s70@70"]);
});

Deno.test("sleep() ties: the same deadline fires in the order the timers were armed", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  function* sleeper(name: string, startAt: number, ms: number): Operation<void> {
    yield* sleep(startAt); // arm the real sleep at a chosen time
    yield* sleep(ms);
    log.push(`${name}@${loop.time()}`);
  }
  loop.runSync(function* main() {
    // All wake at t=100. Arming order: d (t=0), b (t=10), a (t=20), c (t=20,
    // armed after a because it was spawned after it).
    yield* gather([
      sleeper("a", 20, 80),
      sleeper("b", 10, 90),
      sleeper("c", 20, 80),
      function* d(): Operation<void> {
        yield* sleep(100);
        log.push(`d@${loop.time()}`);
      },
    ]);
  });
  assertEquals(log, ["d@100", "b@100", "a@100", "c@100"]);
});

Deno.test("sleep() ties among many timers keep arming order (heap stability)", () => {
  const loop = virtualLoop();
  const woke: number[] = [];
  loop.runSync(function* main() {
    const bodies = [];
    for (let i = 0; i < 1_000; i++) {
      bodies.push(function* tie(): Operation<void> {
        yield* sleep(50 + (i % 3) * 10); // three deadlines, many ties each
        woke.push(i);
      });
    }
    yield* gather(bodies);
  });
  const expected = [0, 1, 2].flatMap((group) =>
    Array.from({ length: 1_000 }, (_, i) => i).filter((i) => i % 3 === group)
  );
  assertEquals(woke, expected);
});

Deno.test("sleep(0) yields a turn without arming a timer or moving time", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    yield* spawn(function* other() {
      log.push(`other, timers ${loop._timerCount}`);
    });
    yield* sleep(0);
    log.push(`main@${loop.time()}`);
  });
  assertEquals(log, ["other, timers 0", "main@0"]);
});

// ---------------------------------------------------------------------------
// VirtualClock.

Deno.test("VirtualClock: a program sleeping one hour runs under runSync in well under a second", () => {
  const loop = virtualLoop();
  const started = performance.now();
  const ticks = loop.runSync(function* main() {
    let n = 0;
    const ticker = yield* spawn(function* ticker() {
      for (;;) {
        yield* sleep(1_000);
        n++;
      }
    });
    yield* sleep(30 * 60_000);
    for (let minute = 30; minute < 60; minute++) yield* sleep(60_000);
    yield* cancel(ticker);
    return n;
  });
  const wall = performance.now() - started;
  assertEquals(loop.time(), 3_600_000);
  // The tick due at exactly one hour was armed after main's last sleep, so
  // it is queued behind main, which cancels the ticker first.
  assertEquals(ticks, 3_599, "a 1 s ticker ticked every second of that hour");
  assertLess(wall, 1_000);
});

Deno.test("VirtualClock: time starts where given, and does not move while tasks are ready", () => {
  const clock = new VirtualClock(5_000);
  const loop = new Loop({ clock });
  const seen = loop.runSync(function* main() {
    const times = [loop.time()];
    yield* spawn(function* busy() {
      for (let i = 0; i < 100; i++) yield* yieldNow();
    });
    for (let i = 0; i < 50; i++) yield* yieldNow();
    times.push(loop.time());
    yield* sleep(3_600_000);
    times.push(loop.time());
    return times;
  });
  assertEquals(seen, [5_000, 5_000, 3_605_000]);
});

Deno.test("VirtualClock: jumpTo() never goes back; advance() rejects negative amounts", () => {
  const clock = new VirtualClock(100);
  clock.jumpTo(50);
  assertEquals(clock.now(), 100);
  clock.jumpTo(150);
  assertEquals(clock.now(), 150);
  clock.advance(0);
  clock.advance(25);
  assertEquals(clock.now(), 175);
  assertThrows(() => clock.advance(-1), RangeError, "must be >= 0");
  assertThrows(() => clock.advance(NaN), RangeError);
  assertEquals(clock.now(), 175);
});

Deno.test("VirtualClock rejects a start or an advance that is not a finite number of ms", () => {
  for (const bad of [NaN, Infinity, -Infinity, "7", null]) {
    const error = assertThrows(() => new VirtualClock(bad as number), RangeError);
    assertStringIncludes(error.message, `Cannot start a VirtualClock at ${String(bad)}`);
    assertStringIncludes(error.message, "finite number of milliseconds");
  }
  assertEquals(new VirtualClock(undefined).now(), 0);
  assertEquals(new VirtualClock(-250).now(), -250);
  const clock = new VirtualClock(100);
  for (const bad of [Infinity, "5", null, NaN]) {
    const error = assertThrows(() => clock.advance(bad as number), RangeError);
    assertStringIncludes(error.message, `Cannot advance a VirtualClock by ${String(bad)} ms`);
    assertStringIncludes(error.message, "must be >= 0 (a finite number of milliseconds)");
  }
  for (const bad of [Infinity, "5", null, NaN]) {
    const error = assertThrows(() => clock.jumpTo(bad as number), RangeError);
    assertEquals(
      error.message,
      `Cannot jump a VirtualClock to ${
        String(bad)
      }: the time must be a finite number of milliseconds`,
    );
  }
  // The time is still the number it was, and still moves.
  assertStrictEquals(clock.now(), 100);
  clock.advance(5);
  assertStrictEquals(clock.now(), 105);
});

Deno.test("Loop: a clock whose jumpTo stops short of the deadline is an error naming both times, not a loop that jumps for ever", () => {
  // Keeps whole nanoseconds, rounding to the nearest: 0.1 + 0.1 + 0.1 ms is
  // 0.30000000000000004 ms, which it stores as 0.3 ms.
  class NanosecondClock {
    ns = 0;
    jumps = 0;
    now(): number {
      return this.ns / 1e6;
    }
    jumpTo(ms: number): void {
      if (++this.jumps > 1_000) throw new Error("jumped 1000 times");
      this.ns = Math.max(this.ns, Math.round(ms * 1e6));
    }
  }
  const clock = new NanosecondClock();
  const error = assertThrows(() =>
    new Loop({ clock }).runSync(function* main() {
      for (let n = 0; n < 3; n++) yield* sleep(0.1);
    })
  );
  assertEquals(
    (error as Error).message,
    "Cannot go on: clock.jumpTo(0.30000000000000004) left clock.now() at 0.3, before that deadline; a clock's jumpTo must reach the time it is given (round up, not to the nearest)",
  );
  assert(clock.jumps < 10, `jumpTo was called ${clock.jumps} times`);
});

Deno.test("VirtualClock.advance() from a host callback wakes a sleeper it made due while the run waits on a Promise", async () => {
  const clock = new VirtualClock();
  const loop = new Loop({ clock });
  const log: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  // Opens the gate anyway, so that a sleeper the loop missed fails the test
  // instead of hanging it.
  const guard = setTimeout(() => open(), 2_000);
  try {
    await loop.runUntilComplete(function* main() {
      yield* spawn(function* sleeper() {
        yield* sleep(50);
        log.push(`sleeper woke at t=${loop.time()}`);
        open();
      });
      // Fires once the loop waits on the gate, virtual time standing still.
      setTimeout(() => clock.advance(100), 0);
      yield* call(() => gate);
      log.push(`gate opened at t=${loop.time()}`);
    });
  } finally {
    clearTimeout(guard);
  }
  assertEquals(log, ["sleeper woke at t=100", "gate opened at t=100"]);
});

Deno.test("VirtualClock.advance() inside a task: a sleeper it made due fires while the run then waits on a Promise", async () => {
  const clock = new VirtualClock();
  const loop = new Loop({ clock });
  const log: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await loop.runUntilComplete(function* main() {
      const sleeper = yield* spawn(function* sleeper() {
        yield* sleep(50);
        log.push(`sleeper woke at t=${loop.time()}`);
      });
      yield* yieldNow(); // the sleeper arms its timer, due at t=50
      clock.advance(100);
      // A Promise that settles late: the due sleeper must not wait for it.
      yield* call(() => new Promise<void>((resolve) => timer = setTimeout(resolve, 300)));
      log.push("call settled");
      yield* join(sleeper);
    });
  } finally {
    clearTimeout(timer);
  }
  assertEquals(log, ["sleeper woke at t=100", "call settled"]);
});

/**
 * A sleeper and 100 workers, the first of which moves the clock so that
 * the sleeper is due while the rest of their batch waits to run.
 */
function sleeperAmongWorkers(clock: VirtualClock, order: string[]): () => Operation<void> {
  function* sleeper(): Operation<void> {
    yield* sleep(5);
    order.push("sleeper");
  }
  function* worker(i: number): Operation<void> {
    if (i === 0) clock.advance(5);
    yield* yieldNow();
    order.push(`w${i}`);
  }
  return function* main() {
    yield* gather([sleeper(), ...Array.from({ length: 100 }, (_, i) => worker(i))]);
  };
}

Deno.test("Loop({ stallTimeoutMs }): a VirtualClock that a host timer keeps moving towards a sleeper's deadline is no stall", async () => {
  const clock = new VirtualClock();
  const loop = new Loop({ clock, stallTimeoutMs: 50 });
  const ticker = setInterval(() => clock.advance(10), 10);
  try {
    const woke = await loop.runUntilComplete(function* main() {
      // Waits on a Promise that never settles (a shutdown signal): virtual
      // time moves only by hand.
      yield* spawn(function* waitsForShutdown() {
        yield* call(() => new Promise<void>(() => {}));
      });
      // About 200 ms of real time: four times the stall limit.
      yield* sleep(200);
      return clock.now();
    });
    assert(woke >= 200, `woke at ${woke}`);
  } finally {
    clearInterval(ticker);
  }
});

Deno.test("VirtualClock: a program runs in the same order under runSync and awaited, whatever host turns the awaited run takes", async () => {
  const syncClock = new VirtualClock();
  const syncOrder: string[] = [];
  new Loop({ clock: syncClock }).runSync(sleeperAmongWorkers(syncClock, syncOrder));
  const asyncClock = new VirtualClock();
  const asyncOrder: string[] = [];
  await new Loop({ clock: asyncClock }).runUntilComplete(
    sleeperAmongWorkers(asyncClock, asyncOrder),
  );
  assertEquals(asyncOrder.length, 101);
  assertEquals(asyncOrder, syncOrder);
});

Deno.test("Loop({ stallTimeoutMs }): no stall while a sleeper keeps waking to clock.advance() from a host timer", async () => {
  const clock = new VirtualClock();
  const loop = new Loop({ clock, stallTimeoutMs: 400 });
  const interval = setInterval(() => clock.advance(10), 40);
  let wakes = 0;
  try {
    const result = await loop.runUntilComplete(function* main() {
      yield* gather([
        function* sleeper() {
          for (let i = 0; i < 15; i++) {
            yield* sleep(10);
            wakes++;
          }
        },
        function* caller() {
          // Settles while the sleeper still runs: no stall at any point.
          yield* call(() => new Promise<void>((resolve) => setTimeout(resolve, 500)));
        },
      ]);
      return "done";
    });
    assertEquals(result, "done");
  } finally {
    clearInterval(interval);
  }
  assertEquals(wakes, 15);
});

Deno.test("VirtualClock: the same program run twice gives the identical event log", () => {
  function program(): { log: string[]; end: number } {
    const loop = virtualLoop();
    const log: string[] = [];
    const at = (what: string) => log.push(`${loop.time()} ${what}`);
    function* worker(id: number): Operation<number> {
      let total = 0;
      for (let k = 0; k < 6; k++) {
        const ms = (id * 37 + k * 11) % 23; // includes 0: a plain yield
        yield* sleep(ms);
        total += ms;
        at(`w${id}.${k}`);
      }
      return total;
    }
    function* slowpoke(id: number): Operation<void> {
      try {
        yield* sleep(1_000 + id);
      } finally {
        yield* sleep(id % 4);
        at(`slowpoke${id} cleaned`);
      }
    }
    loop.runSync(function* main() {
      const helpers: Task<void>[] = [];
      for (let i = 0; i < 10; i++) helpers.push(yield* spawn(slowpoke(i)));
      const totals = yield* gather(Array.from({ length: 30 }, (_, i) => worker(i)));
      at(`gathered ${totals.join(",")}`);
      try {
        yield* timeout(15, slowpoke(99));
      } catch (error) {
        at((error as Error).name);
      }
      at(`race won by ${yield* race([worker(100), worker(101), worker(102)])}`);
      for (const helper of helpers.filter((_, i) => i % 2 === 0)) helper.cancel();
      yield* sleep(3);
      at("main ends");
    });
    return { log, end: loop.time() };
  }
  const first = program();
  assertGreaterOrEqual(first.log.length, 200);
  const second = program();
  assertEquals(second, first);
  // Ties and zero delays are in it, so the order is not trivially sorted by id.
  assert(
    first.log.some((line, i) => i > 0 && line.split(" ")[0] === first.log[i - 1].split(" ")[0]),
  );
});

// ---------------------------------------------------------------------------
// RealClock.

Deno.test("RealClock: sleep(50) takes at least 50 ms of wall time", async () => {
  const started = performance.now();
  const inside = await run(function* main() {
    const before = performance.now();
    yield* sleep(50);
    return performance.now() - before;
  });
  const elapsed = performance.now() - started;
  assertGreaterOrEqual(inside, 50);
  assertGreaterOrEqual(elapsed, 50);
  assertLess(elapsed, 1_000, "and not absurdly longer");
});

Deno.test("RealClock: concurrent sleeps wake in deadline order, none early", async () => {
  const loop = new Loop({ clock: new RealClock() });
  const start = loop.time();
  const woke = await loop.runUntilComplete(function* main() {
    const order: [number, number][] = [];
    function* sleeper(ms: number): Operation<void> {
      yield* sleep(ms);
      order.push([ms, loop.time() - start]);
    }
    yield* gather([sleeper(30), sleeper(5), sleeper(20), sleeper(10)]);
    return order;
  });
  assertEquals(woke.map(([ms]) => ms), [5, 10, 20, 30]);
  for (const [ms, at] of woke) assertGreaterOrEqual(at, ms);
});

Deno.test("RealClock: a sleep longer than a host timer can take (2^31-1 ms) does not wake the loop every millisecond", async () => {
  // Counts how often the loop looks at the time: once per wake-up or so.
  let looks = 0;
  const clock = {
    now(): number {
      looks++;
      return performance.now();
    },
  };
  const loop = new Loop({ clock });
  const stopper = setTimeout(() => loop.stop("enough"), 50);
  try {
    await assertRejects(
      () =>
        loop.runUntilComplete(function* main() {
          yield* sleep(2 ** 33);
        }),
      CancelledError,
    );
  } finally {
    clearTimeout(stopper);
  }
  // setTimeout fires a longer delay after 1 ms: some 50 wake-ups in 50 ms.
  assertLess(looks, 10);
});

Deno.test("RealClock: a run that sleeps 200 ms does not spin the CPU", async () => {
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  await run(function* main() {
    // Several sleepers and a deadline far apart: the loop must wait, not poll.
    yield* gather([sleep(200), sleep(120), sleep(60)]);
  });
  const wall = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1_000;
  assertGreaterOrEqual(wall, 200);
  // A spinning loop burns ~100% of a core for the whole time.
  assertLess(cpuMs, wall * 0.25, `CPU ${cpuMs.toFixed(1)} ms over ${wall.toFixed(1)} ms wall`);
});

// ---------------------------------------------------------------------------
// Timers at scale.

Deno.test("Loop._timerCount: 100k concurrent sleeps on the VirtualClock complete and leave no timer", () => {
  const loop = virtualLoop();
  let woke = 0;
  let peak = 0;
  let lastWake = -1;
  let outOfOrder = 0;
  function* sleeper(ms: number): Operation<void> {
    yield* sleep(ms);
    if (loop.time() < lastWake) outOfOrder++;
    lastWake = loop.time();
    woke++;
  }
  const started = performance.now();
  loop.runSync(function* main() {
    for (let i = 0; i < 100_000; i++) yield* spawn(sleeper(((i * 7_919) % 10_000) + 1));
    yield* yieldNow(); // every sleeper has armed its timer
    peak = loop._timerCount;
    yield* sleep(20_000);
  });
  assertEquals(peak, 100_000);
  assertEquals(woke, 100_000);
  assertEquals(outOfOrder, 0);
  assertEquals(loop._timerCount, 0);
  assertEquals(loop.time(), 20_000);
  assertLess(performance.now() - started, 5_000);
});

Deno.test("Loop._timerCount: 100k sleeps cancelled early leave it at 0, and no timer ever fires", () => {
  const loop = virtualLoop();
  let armed = 0;
  let woke = 0;
  const tasks: Task<void>[] = [];
  function* sleeper(ms: number): Operation<void> {
    yield* sleep(ms);
    woke++;
  }
  loop.runSync(function* main() {
    for (let i = 0; i < 100_000; i++) tasks.push(yield* spawn(sleeper(1_000 + i)));
    yield* yieldNow();
    armed = loop._timerCount;
    for (const task of tasks) task.cancel("early");
    assertEquals(loop._timerCount, 0, "removed at once, not when they would fire");
    yield* yieldNow();
  });
  assertEquals(armed, 100_000);
  assertEquals(woke, 0);
  assertEquals(loop._timerCount, 0);
  assertEquals(loop.time(), 0);
  assert(tasks.every((task) => task.state === "cancelled"));
});

Deno.test("Loop._timerCount: cancelling half of many sleeps keeps the others in deadline order", () => {
  const loop = virtualLoop();
  const woke: number[] = [];
  loop.runSync(function* main() {
    const tasks: Task<void>[] = [];
    for (let i = 0; i < 10_000; i++) {
      const ms = ((i * 7_919) % 5_000) + 1;
      tasks.push(
        yield* spawn(function* sleeper() {
          yield* sleep(ms);
          woke.push(ms);
        }),
      );
    }
    yield* yieldNow();
    tasks.forEach((task, i) => i % 2 === 0 && task.cancel());
    assertEquals(loop._timerCount, 5_000);
    yield* sleep(6_000);
  });
  assertEquals(woke.length, 5_000);
  assertEquals(woke, [...woke].sort((a, b) => a - b));
  assertEquals(loop._timerCount, 0);
});

// ---------------------------------------------------------------------------
// Bad delays.

Deno.test("sleep() rejects negative and non-numeric delays with RangeError at the call", () => {
  for (const bad of [-1, -0.5, NaN, -Infinity]) {
    const error = assertThrows(() => sleep(bad), RangeError);
    assertStringIncludes(error.message, `sleep(${bad})`);
    assertStringIncludes(error.message, ">= 0");
  }
  assertThrows(() => sleep("5" as never), RangeError);
  assertThrows(() => sleep(undefined as never), RangeError);
  // Thrown at the call inside a task too, where it can be caught.
  const loop = virtualLoop();
  const caught = loop.runSync(function* main() {
    try {
      yield* sleep(-1);
    } catch (error) {
      return error;
    }
  });
  assertInstanceOf(caught, RangeError);
  assertEquals(loop._timerCount, 0);
});

Deno.test("sleep(Infinity) arms no timer and ends only by cancellation", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    const forever = yield* spawn(sleep(Infinity));
    yield* yieldNow();
    const timers = loop._timerCount;
    yield* sleep(10);
    const stateMeanwhile = forever.state;
    yield* cancel(forever);
    return [timers, stateMeanwhile, forever.state];
  });
  assertEquals(result, [0, "waiting", "cancelled"]);
});

// ---------------------------------------------------------------------------
// timeout().

Deno.test("timeout() returns the body's result when it is fast, and disarms its timer", () => {
  const loop = virtualLoop();
  const result = loop.runSync(function* main() {
    const value = yield* timeout(100, function* quick(): Operation<string> {
      yield* sleep(40);
      return "in time";
    });
    return [value, loop._timerCount, loop.time()];
  });
  assertEquals(result, ["in time", 0, 40]);
});

Deno.test("timeout() throws TimeoutError when the body is slow; its cleanup (which sleeps) ran first", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  let body: Task<unknown> | undefined;
  const error = loop.runSync(function* main() {
    try {
      yield* timeout(50, function* slow(): Operation<void> {
        body = yield* currentTask();
        try {
          yield* sleep(1_000);
          log.push("slow finished?");
        } catch (error) {
          log.push(`slow got ${(error as Error).name}@${loop.time()}`);
          throw error;
        } finally {
          yield* sleep(5);
          log.push(`slow cleaned@${loop.time()}`);
        }
      });
    } catch (error) {
      log.push(`caller got ${(error as Error).name}@${loop.time()}; body ${body?.state}`);
      return error;
    }
  });
  assertInstanceOf(error, TimeoutError);
  assertEquals(error.name, "TimeoutError");
  assertEquals(error.ms, 50);
  assertStringIncludes(error.message, 'Task "slow" did not finish within 50 ms');
  assertEquals(log, [
    "slow got CancelledError@50",
    "slow cleaned@55",
    "caller got TimeoutError@55; body cancelled",
  ]);
  assertEquals(loop._timerCount, 0);
});

Deno.test("timeout() passes the body's own error through, unchanged", () => {
  const boom = new SyntaxError("mine");
  const error = virtualLoop().runSync(function* main() {
    try {
      yield* timeout(10, function* failing(): Operation<void> {
        yield* sleep(1);
        throw boom;
      });
    } catch (error) {
      return error;
    }
  });
  assertStrictEquals(error, boom);
});

Deno.test("timeout() cancelled from outside cancels its body and arms nothing more", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  loop.runSync(function* main() {
    const waiter = yield* spawn(function* waiter() {
      yield* timeout(1_000, function* body(): Operation<void> {
        try {
          yield* sleep(500);
        } finally {
          log.push(`body cleaned@${loop.time()}`);
        }
      });
    });
    yield* sleep(10);
    yield* cancel(waiter);
    log.push(`waiter ${waiter.state}, timers ${loop._timerCount}`);
  });
  assertEquals(log, ["body cleaned@10", "waiter cancelled, timers 0"]);
});

Deno.test("timeout(): a body not started when the limit passes never runs, as documented", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const outcome = loop.runSync(function* main() {
    try {
      return yield* timeout(0, function* body() {
        log.push("body ran"); // would run at once, needing no wait
        return "done";
      });
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      return "timed out";
    }
  });
  assertEquals(outcome, "timed out");
  assertEquals(log, []);
  assertEquals(loop._timerCount, 0);
});

Deno.test("timeout(Infinity) arms no timer; timeout() rejects a bad limit at the call", () => {
  const loop = virtualLoop();
  function* body(): Operation<number> {
    const armedBeforeBody = loop._timerCount; // the timeout's own timer, if any
    yield* sleep(10);
    return armedBeforeBody;
  }
  const result = loop.runSync(function* main() {
    return [yield* timeout(Infinity, body), yield* timeout(100, body)];
  });
  assertEquals(result, [0, 1]);
  assertEquals(loop.time(), 20);
  assertThrows(() => timeout(-5, sleep(1)), RangeError, "timeout(-5");
  assertThrows(() => timeout(NaN, sleep(1)), RangeError);
});

// ---------------------------------------------------------------------------
// race().

Deno.test("race(): the first to finish wins; the losers are cancelled and cleaned up before it returns", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const runners: Task<unknown>[] = [];
  function* runner(name: string, ms: number, cleanupMs: number): Operation<string> {
    runners.push(yield* currentTask());
    try {
      yield* sleep(ms);
      return name;
    } catch (error) {
      assertInstanceOf(error, CancelledError);
      log.push(`${name} cancelled@${loop.time()}`);
      throw error;
    } finally {
      if (cleanupMs > 0) yield* sleep(cleanupMs);
      log.push(`${name} finally@${loop.time()}`);
    }
  }
  const winner = loop.runSync(function* main() {
    const value = yield* race([
      runner("slow", 50, 4),
      runner("fast", 10, 0),
      runner("slower", 70, 2),
    ]);
    log.push(`race returned ${value}@${loop.time()}`);
    return value;
  });
  assertEquals(winner, "fast");
  assertEquals(log, [
    "fast finally@10",
    "slow cancelled@10",
    "slower cancelled@10",
    "slower finally@12",
    "slow finally@14",
    "race returned fast@14",
  ]);
  assertEquals(runners.map((task) => task.state), ["cancelled", "done", "cancelled"]);
  assertEquals(loop._timerCount, 0);
});

Deno.test("race(): a winner that fails makes race throw its error after the losers' cleanup", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const boom = new RangeError("first and failed");
  const error = loop.runSync(function* main() {
    try {
      yield* race([
        function* loser(): Operation<void> {
          try {
            yield* sleep(100);
          } finally {
            yield* sleep(3);
            log.push(`loser cleaned@${loop.time()}`);
          }
        },
        function* fails(): Operation<void> {
          yield* sleep(1);
          throw boom;
        },
      ]);
    } catch (error) {
      log.push(`race threw@${loop.time()}`);
      return error;
    }
  });
  assertStrictEquals(error, boom);
  assertEquals(log, ["loser cleaned@4", "race threw@4"]);
});

Deno.test("race(): a loser whose cleanup fails is reported after the race, not dropped for the winner's value", () => {
  const loop = virtualLoop();
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      return yield* race([
        function* winner(): Operation<string> {
          yield* sleep(1);
          return "won";
        },
        function* loser(): Operation<string> {
          try {
            yield* sleep(100);
            return "lost";
          } finally {
            // deno-lint-ignore no-unsafe-finally
            throw new RangeError("loser cleanup failed");
          }
        },
      ]);
    }), TaskFailedError);
  assertEquals(error.taskName, "loser");
  assertStringIncludes(error.message, "after its race() had decided");
  assertInstanceOf(error.cause, RangeError);
});

Deno.test("timeout(): a body whose cleanup fails throws TimeoutError first, then reports that failure", () => {
  const loop = virtualLoop();
  const log: string[] = [];
  const error = assertThrows(() =>
    loop.runSync(function* main() {
      try {
        yield* timeout(5, function* slow(): Operation<void> {
          try {
            yield* sleep(100);
          } finally {
            // deno-lint-ignore no-unsafe-finally
            throw new RangeError("cleanup failed");
          }
        });
      } catch (error) {
        log.push(`${(error as Error).name}@${loop.time()}`);
      }
      yield* yieldNow();
      log.push("unreachable");
    }), TaskFailedError);
  assertEquals(log, ["TimeoutError@5"]);
  assertEquals(error.taskName, "slow");
  assertStringIncludes(error.message, "cancelled by its timeout of 5 ms");
  assertEquals((error.cause as Error).message, "cleanup failed");
});

Deno.test("timeout(): a body that failed before the limit (even with undefined), its children's cleanup outlasting it, is said to have failed before", () => {
  for (const [body, cause] of FAILING_FIRST) {
    const loop = virtualLoop();
    const log: string[] = [];
    const error = assertThrows(() =>
      loop.runSync(function* main() {
        try {
          yield* timeout(5, body);
        } catch (error) {
          log.push(`${(error as Error).name}@${loop.time()}`);
        }
        yield* yieldNow();
        log.push("unreachable");
      }), TaskFailedError);
    assertEquals(log, ["TimeoutError@11"]);
    assertEquals(
      error.message,
      `Task "${body.name}" failed before its timeout of 5 ms passed: ${cause}`,
    );
  }
});

Deno.test("timeout(): once its limit has passed, a deadlock report says it waits for the body's cleanup", () => {
  const error = assertThrows(() =>
    virtualLoop().runSync(function* main() {
      yield* timeout(5, function* stuck(): Operation<void> {
        try {
          yield* sleep(100);
        } finally {
          yield* suspend();
        }
      });
    }), DeadlockError);
  assertStringIncludes(
    error.message,
    'task "stuck" to finish its cleanup after its timeout of 5 ms passed',
  );
  assert(!error.message.includes("with a timeout of"), error.message);
});

Deno.test("race(): ties go to the body whose timer was armed first", () => {
  const loop = virtualLoop();
  const winner = loop.runSync(function* main() {
    function* after(ms: number, value: string): Operation<string> {
      yield* sleep(ms);
      return value;
    }
    return yield* race([after(10, "first armed"), after(10, "second armed")]);
  });
  assertEquals(winner, "first armed");
});

Deno.test("race([]) throws RangeError at the call", () => {
  const error = assertThrows(() => race([]), RangeError);
  assertStringIncludes(error.message, "empty");
  assertStringIncludes(error.message, "pass at least one");
});

/** gather() and race(), each in the form for a list of bodies of one type. */
const GROUPS: [string, (bodies: Iterable<TaskBody<unknown>>) => Operation<unknown>][] = [
  ["gather()", gather],
  ["race()", race],
];

Deno.test("gather() and race() given one body instead of a list: a TypeError at the call, and none of the body runs", () => {
  const log: string[] = [];
  function* worker(): Operation<number> {
    try {
      log.push("worker started");
      yield* sleep(5);
      log.push("worker went on");
      return 1;
    } finally {
      log.push("worker closed");
    }
  }
  // A body that spawns before it waits, or returns without waiting: run as
  // if it were the list, it would spawn for real, or be an empty list.
  function* eager(): Operation<number> {
    yield* spawn(function* spawned() {
      log.push("spawned ran");
    });
    return 2;
  }
  for (const [where, make] of GROUPS) {
    // The slip: `gather(worker())` for `gather([worker()])`. It type-checks,
    // since a generator is an iterable of the instructions it yields.
    const error = assertThrows(() => make(worker() as never), TypeError);
    assertEquals(
      error.message,
      `${where} expected a list of bodies, but got one task body (a generator object); put it in an array: ${
        where.replace("()", "([body])")
      }; to pass the bodies a generator yields, spread them: ${
        where.replace("()", "([...bodies()])")
      }`,
    );
    const loop = virtualLoop();
    loop.runSync(function* main() {
      assertThrows(() => make(eager() as never), TypeError, "but got one task body");
      yield* sleep(1);
    });
    // An operation given as the list, and things that are no list at all.
    assertEquals(
      assertThrows(() => make(sleep(10) as never), TypeError).message,
      `${where} expected a list of bodies, but got one task body (sleep(10)); put it in an array: ${
        where.replace("()", "([body])")
      }`,
    );
    assertEquals(
      assertThrows(() => make(worker as never), TypeError).message,
      `${where} expected a list of bodies (an array or another iterable), but got function worker; pass an array of bodies: ${
        where.replace("()", "([body, …])")
      }`,
    );
    assertThrows(() => make(undefined as never), TypeError, "but got undefined");
  }
  assertEquals(log, []);
  // A user's operation object is run until it waits, and refused then:
  // nothing else tells it from a collection of bodies.
  const operation = { [Symbol.iterator]: () => worker() };
  assertThrows(
    () => gather(operation as never),
    TypeError,
    "but got what looks like one task body (iterating it yielded sleep(5))",
  );
  assertEquals(log, ["worker started", "worker closed"]);
  // The bodies a generator yields, spread into a list.
  const loop = virtualLoop();
  const results = loop.runSync(function* main() {
    function* bodies(): Generator<Operation<number>> {
      yield worker();
      yield (function* two(): Operation<number> {
        yield* sleep(1);
        return 2;
      })();
    }
    // A collection class whose iterator is a generator method is a list.
    class Bodies implements Iterable<Operation<number>> {
      *[Symbol.iterator](): Iterator<Operation<number>> {
        yield* bodies();
      }
    }
    return [yield* gather([...bodies()]), yield* race([...bodies()]), yield* gather(new Bodies())];
  });
  assertEquals(results, [[1, 2], 2, [1, 2]]);
});

Deno.test("gather() and race() given one generator object twice: a TypeError at the call, not tasks sharing it", () => {
  function* worker(): Operation<number> {
    yield* sleep(5);
    yield* sleep(5);
    return 1;
  }
  for (const [where, make] of GROUPS) {
    // The slip: Array(n).fill(worker()) repeats one generator, which the
    // tasks then resume in turn, each with another's wake-up.
    assertEquals(
      assertThrows(() => make(Array(3).fill(worker())), TypeError).message,
      `${where} was given the same generator object or operation as bodies #0 and #1; it can run only once: give each body its own (Array(n).fill(worker()) repeats one; Array.from({ length: n }, () => worker()) does not)`,
    );
    const shared = sleep(5);
    assertThrows(() => make([sleep(1), shared, shared]), TypeError, "as bodies #1 and #2");
  }
  // A generator function may be listed twice: each task calls it anew; and
  // yieldNow() is one shared operation, which any number of tasks may run.
  const loop = virtualLoop();
  assertEquals(loop.runSync(() => gather(Array(3).fill(worker))), [1, 1, 1]);
  assertEquals(loop.runSync(() => gather([yieldNow(), yieldNow()])), [undefined, undefined]);
  assertEquals(loop.time(), 10);
});

Deno.test("gather() and race() given one generator object twice, not side by side: a TypeError at the call, not wrong results", () => {
  let started = 0;
  function* counter(): Operation<number> {
    started++;
    for (let i = 0; i < 3; i++) yield* yieldNow();
    return 3;
  }
  for (const [where, make] of GROUPS) {
    const shared = counter();
    assertEquals(
      assertThrows(() => make([shared, counter(), shared]), TypeError).message,
      `${where} was given the same generator object or operation as bodies #0 and #2; it can run only once: give each body its own (Array(n).fill(worker()) repeats one; Array.from({ length: n }, () => worker()) does not)`,
    );
  }
  assertEquals(started, 0);
  // Distinct generator objects of one function are welcome.
  assertEquals(virtualLoop().runSync(() => gather([counter(), counter(), counter()])), [3, 3, 3]);
});

Deno.test("gather() and race() given one generator object handed out by a body listed twice apart: a TypeError at the call, as side by side", () => {
  function* counter(): Operation<number> {
    for (let i = 0; i < 3; i++) yield* yieldNow();
    return 3;
  }
  function* other(): Operation<number> {
    yield* yieldNow();
    return 7;
  }
  for (const [where, make] of GROUPS) {
    const shared = counter();
    const handsOut = () => shared;
    assertThrows(
      () => make([handsOut, other, handsOut]),
      TypeError,
      `${where} was given the same generator object or operation as bodies #0 and #2`,
    );
  }
});

Deno.test("gather() and race() given an iterable that hands out one generator object each time: a TypeError at the call, and no task runs", () => {
  let started = 0;
  function* worker(): Generator<Yielded, number, unknown> {
    started++;
    yield* sleep(5);
    throw new Error("a failure nobody would see");
  }
  for (const [where, make] of GROUPS) {
    const generator = worker();
    const sameEachTime = { [Symbol.iterator]: () => generator };
    assertThrows(
      () => make([sameEachTime, sameEachTime]),
      TypeError,
      `${where} was given the same generator object or operation as bodies #0 and #1`,
    );
  }
  assertEquals(started, 0);
});

Deno.test("gather() and race() may be given twice an operation object that makes a new iterator per run, even one with a next() of its own", () => {
  // A queue that hands out items with next(), and as an operation waits a
  // little and takes one: each task runs a generator of its own.
  const items = [1, 2, 3, 4];
  const queue = {
    next: (): number => items.shift()!,
    *[Symbol.iterator](): Iterator<Yielded, number, unknown> {
      yield* sleep(1);
      return queue.next();
    },
  };
  const loop = virtualLoop();
  assertEquals(loop.runSync(() => gather([queue, queue])), [1, 2]);
  assertEquals(loop.runSync(() => race([queue, queue])), 3);
});

Deno.test('sleep() and timeout() given a delay that is no number say so, not sleep(5) for sleep("5")', () => {
  assertEquals(
    assertThrows(() => sleep("5" as never), RangeError).message,
    'Cannot sleep(the string "5"): the delay must be a number of milliseconds >= 0',
  );
  assertEquals(
    assertThrows(() => sleep(5n as never), RangeError).message,
    "Cannot sleep(bigint 5): the delay must be a number of milliseconds >= 0",
  );
  assertEquals(
    assertThrows(() => timeout("5" as never, sleep(1)), RangeError).message,
    'Cannot use timeout(the string "5", …): the limit must be a number of milliseconds >= 0',
  );
  // Numbers are shown as they are.
  assertEquals(
    assertThrows(() => timeout(-1, sleep(1)), RangeError).message,
    "Cannot use timeout(-1, …): the limit must be a number of milliseconds >= 0",
  );
});

// When main settles part way through a batch, an awaited run finishes
// that batch, as runSync does, before the run's end cancels what is left.
const WORKERS = 1_000;

function sameBatchProgram(ran: number[]) {
  return function* main(): Operation<string> {
    // main's sleep is armed first, the workers' after it: at t=10 one batch
    // holds main first, then every worker.
    yield* spawn(function* starter(): Operation<void> {
      for (let i = 0; i < WORKERS; i++) {
        yield* spawn(function* worker(): Operation<void> {
          yield* sleep(10);
          ran.push(i);
          if (i === WORKERS - 1) throw new Error("last worker failed");
        }, { detached: true });
      }
    });
    yield* sleep(10);
    return "main done";
  };
}

Deno.test("runSync and runUntilComplete run the same tasks when main settles part way through a batch (and report the same failure)", async () => {
  const syncRan: number[] = [];
  const syncError = assertThrows(() =>
    new Loop({ clock: new VirtualClock() }).runSync(sameBatchProgram(syncRan))
  );
  const asyncRan: number[] = [];
  let asyncOutcome: unknown = "resolved";
  try {
    await new Loop({ clock: new VirtualClock() }).runUntilComplete(sameBatchProgram(asyncRan));
  } catch (error) {
    asyncOutcome = error;
  }
  assertEquals(syncRan.length, WORKERS);
  assertEquals(asyncRan.length, syncRan.length, "workers that ran their last step");
  assertEquals(String(asyncOutcome), String(syncError));
});

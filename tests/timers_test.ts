// The timer queue against a plain model: whatever mix of delays, clock
// steps and cancellations, timers come out in (deadline, arming order).

import { assert, assertEquals } from "@std/assert";
import { type Timer, TimerQueue } from "../src/timers.ts";

/** A timer that records its arming number; the queue never calls fire here. */
class TestTimer implements Timer {
  deadline = 0;
  armed = false;
  order = 0;
  readonly delay: number;
  readonly id: number;

  constructor(id: number, delay: number) {
    this.id = id;
    this.delay = delay;
  }

  fire(): void {
    throw new Error("the queue itself never fires a timer");
  }
}

/** A small deterministic pseudo-random generator (xorshift32). */
function randomSource(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** The model: every armed timer, sorted by (deadline, arming number) on demand. */
function modelOrder(armed: Set<TestTimer>): TestTimer[] {
  return [...armed].sort((a, b) => a.deadline - b.deadline || a.id - b.id);
}

interface Scenario {
  seed: number;
  timers: number;
  delay: (random: () => number) => number;
  /** Clock step between arming timers; negative steps break the Clock contract. */
  step: (random: () => number) => number;
  cancelShare: number;
  /** Chance, after each timer armed, of popping what is due. */
  drainShare: number;
}

/**
 * Arms timers while the clock moves and some are cancelled, popping what is
 * due now and then; then drains. Returns the ids in popping order and the
 * ids the model says, in the same order.
 */
function runScenario(scenario: Scenario): { popped: number[]; expected: number[] } {
  const random = randomSource(scenario.seed);
  const queue = new TimerQueue();
  const armed = new Set<TestTimer>();
  const popped: number[] = [];
  const expected: number[] = [];
  let now = 0;
  const drainDue = (): void => {
    const due = modelOrder(armed).filter((timer) => timer.deadline <= now);
    for (const timer of due) {
      armed.delete(timer);
      expected.push(timer.id);
    }
    for (let timer = queue.popDue(now); timer !== undefined; timer = queue.popDue(now)) {
      popped.push((timer as TestTimer).id);
    }
  };
  for (let id = 0; id < scenario.timers; id++) {
    now += scenario.step(random);
    const timer = new TestTimer(id, scenario.delay(random));
    timer.deadline = now + timer.delay;
    queue.push(timer);
    armed.add(timer);
    if (random() < scenario.cancelShare) {
      const victims = [...armed];
      const victim = victims[Math.floor(random() * victims.length)];
      queue.remove(victim);
      armed.delete(victim);
    }
    if (random() < scenario.drainShare) drainDue();
    assertEquals(queue.size, armed.size);
  }
  // Nothing is armed from here on: the model's order is fixed.
  for (const timer of modelOrder(armed)) {
    assertEquals(queue.nextDeadline(), timer.deadline);
    now = timer.deadline;
    expected.push(timer.id);
    popped.push((queue.popDue(now) as TestTimer).id);
  }
  assertEquals(queue.nextDeadline(), Infinity);
  assertEquals(queue.size, 0);
  return { popped, expected };
}

Deno.test("TimerQueue: a few delays in use fire in deadline order, ties in arming order", () => {
  const { popped, expected } = runScenario({
    seed: 1,
    timers: 3000,
    delay: (random) => [10, 250, 1000][Math.floor(random() * 3)],
    step: (random) => (random() < 0.5 ? 0 : random() * 5),
    cancelShare: 0,
    drainShare: 0.05,
  });
  assertEquals(popped.length, 3000);
  assertEquals(popped, expected);
});

Deno.test("TimerQueue: more distinct delays than it keeps lanes for still fire in order", () => {
  const { popped, expected } = runScenario({
    seed: 2,
    timers: 8000,
    // Whole milliseconds and a clock that often stands still: many ties,
    // between lanes and among the timers that found no lane.
    delay: (random) => Math.floor(random() * 6000),
    step: (random) => (random() < 0.9 ? 0 : 1),
    cancelShare: 0,
    // All armed at once: more delays in use than MAX_LANES (4096).
    drainShare: 0,
  });
  assertEquals(popped.length, 8000);
  assertEquals(popped, expected);
});

Deno.test("TimerQueue: cancelled timers never come out, and compaction keeps the order", () => {
  const { popped, expected } = runScenario({
    seed: 3,
    timers: 4000,
    delay: (random) => (random() < 0.5 ? 100 : Math.floor(random() * 50)),
    step: () => 0.5,
    // More than half of the queue cancelled makes it compact several times.
    cancelShare: 0.6,
    drainShare: 0.05,
  });
  assertEquals(popped, expected);
});

Deno.test("TimerQueue: a clock that goes back does not break the order", () => {
  const { popped, expected } = runScenario({
    seed: 4,
    timers: 2000,
    delay: (random) => [5, 50][Math.floor(random() * 2)],
    step: (random) => random() * 4 - 2,
    cancelShare: 0.1,
    drainShare: 0.05,
  });
  assertEquals(popped, expected);
});

Deno.test("TimerQueue: nextDeadline skips cancelled timers at the front", () => {
  const queue = new TimerQueue();
  const timers = [10, 10, 20].map((delay, id) => new TestTimer(id, delay));
  for (const timer of timers) {
    timer.deadline = timer.delay;
    queue.push(timer);
  }
  queue.remove(timers[0]);
  assertEquals(queue.nextDeadline(), 10);
  queue.remove(timers[1]);
  assertEquals(queue.nextDeadline(), 20);
  assertEquals(queue.popDue(15), undefined);
  assertEquals(queue.popDue(20), timers[2]);
  assertEquals(timers[2].armed, false);
  assertEquals(queue.size, 0);
});

Deno.test("TimerQueue keeps no fired timer reachable, nor any when all are cancelled, nor a finished timeout's result", async () => {
  // Reachability needs the garbage collector on call: a process of its own.
  const script = new URL("_timer_retention.ts", import.meta.url).pathname;
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  assertEquals(JSON.parse(new TextDecoder().decode(stdout)), {
    size: 1000,
    firedAlive: 0,
    idleSize: 0,
    cancelledAlive: 0,
    timeoutResultsAlive: 0,
  });
});

Deno.test("TimerQueue: one long-lived lane gives back its spent slots and keeps the order", () => {
  const { popped, expected } = runScenario({
    seed: 5,
    timers: 6000,
    // One delay, about a thousand timers armed at any time: the lane never
    // empties, so it must shed the slots of fired timers as it goes.
    delay: () => 100,
    step: () => 0.1,
    cancelShare: 0.05,
    drainShare: 0.2,
  });
  assertEquals(popped, expected);
});

/** Arms `timers` at time `now`, pops them all, and checks the order. */
function armAndDrain(queue: TimerQueue, timers: TestTimer[], now: number): void {
  for (const timer of timers) {
    timer.deadline = now + timer.delay;
    queue.push(timer);
  }
  assertEquals(queue.size, timers.length);
  const expected = modelOrder(new Set(timers)).map((timer) => timer.id);
  const popped: number[] = [];
  for (let timer = queue.popDue(Infinity); timer !== undefined; timer = queue.popDue(Infinity)) {
    popped.push((timer as TestTimer).id);
  }
  assertEquals(popped, expected);
  assertEquals(queue.size, 0);
}

Deno.test("TimerQueue: new delays find room again once the lanes of old ones are idle", () => {
  const queue = new TimerQueue();
  // More delays than MAX_LANES (4096), twice, all different: the second
  // round opens lanes only after dropping the first round's idle ones.
  for (let round = 0; round < 2; round++) {
    const timers = Array.from(
      { length: 4500 },
      (_, i) => new TestTimer(round * 10_000 + i, round * 10_000 + (i * 7919) % 4500 + 1),
    );
    armAndDrain(queue, timers, round * 100_000);
  }
});

Deno.test("TimerQueue: cancelling every timer empties it at once, lanes included", () => {
  const queue = new TimerQueue();
  const timers = Array.from({ length: 200 }, (_, i) => new TestTimer(i, 10 * (i % 3 + 1)));
  for (const timer of timers) {
    timer.deadline = timer.delay;
    queue.push(timer);
  }
  for (const timer of timers) queue.remove(timer);
  queue.remove(timers[0]);
  assertEquals(queue.size, 0);
  assertEquals(queue.nextDeadline(), Infinity);
  // The lanes it emptied take new timers in order.
  armAndDrain(queue, Array.from({ length: 200 }, (_, i) => new TestTimer(1000 + i, 10)), 50);
});

Deno.test("TimerQueue gives back what a burst took once it has drained, while one timer stays", () => {
  const queue = new TimerQueue();
  const staying = new TestTimer(0, 1_000_000);
  staying.deadline = staying.delay;
  queue.push(staying);
  // 100k timers with distinct delays: more than the lanes can take, so most
  // go to the plain heap, whose keys grow to hold them.
  const burst = Array.from({ length: 100_000 }, (_, i) => new TestTimer(i + 1, i + 1));
  for (const timer of burst) {
    timer.deadline = timer.delay;
    queue.push(timer);
  }
  const peak = queue.footprint.heapCapacity;
  assert(peak >= 90_000, `capacity ${peak} at the peak`);
  for (let i = 0; i < burst.length; i++) assertEquals(queue.popDue(500_000), burst[i]);
  assertEquals(queue.size, 1);
  const after = queue.footprint.heapCapacity;
  assert(after <= 4 * 64, `capacity ${after} after the burst drained, ${peak} at the peak`);
  assertEquals(queue.popDue(1_000_000), staying);
});

Deno.test("TimerQueue drops cancelled timers once the fired ones leave them outnumbering the live", () => {
  const queue = new TimerQueue();
  // 100 short timers and 99 hour-long ones, of which all the long ones are
  // cancelled: too few to compact while the short ones are armed.
  const short = Array.from({ length: 100 }, (_, i) => new TestTimer(i, 10));
  const long = Array.from({ length: 99 }, (_, i) => new TestTimer(100 + i, 3_600_000));
  for (const timer of [...short, ...long]) {
    timer.deadline = timer.delay;
    queue.push(timer);
  }
  for (const timer of long) queue.remove(timer);
  for (const timer of short.slice(0, 99)) assertEquals(queue.popDue(10), timer);
  // One live timer is left: the 99 cancelled ones must be gone already, not
  // held until their deadline an hour away.
  assertEquals(queue.size, 1);
  assertEquals(queue.footprint.queued, 1);
  assertEquals(queue.popDue(10), short[99]);
  assertEquals(queue.footprint.queued, 0);
});

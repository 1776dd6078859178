// Run by tests/timers_test.ts in a process of its own, with --expose-gc:
// counts how many timers the queue keeps reachable after they fired or
// were all cancelled. Prints one JSON line.

import { call, Loop, type Operation, sleep, spawn, timeout, VirtualClock } from "../mod.ts";
import { type Timer, TimerQueue } from "../src/timers.ts";

class HeavyTimer implements Timer {
  deadline = 0;
  armed = false;
  order = 0;
  // Stands for what a fired timer may hold: a task and its result.
  payload = new Uint8Array(1024);
  readonly delay: number;

  constructor(delay: number) {
    this.delay = delay;
  }

  fire(): void {}
}

const gc = (globalThis as { gc?: () => void }).gc!;
const queue = new TimerQueue();
const fired: WeakRef<HeavyTimer>[] = [];
const cancelled: WeakRef<HeavyTimer>[] = [];

// One lane of 2000 timers, of which the first 1000 fire: the lane stays
// open with its slots, which must not hold the fired ones.
function fireHalf(): void {
  for (let i = 0; i < 2000; i++) {
    const timer = new HeavyTimer(10);
    timer.deadline = i;
    queue.push(timer);
    if (i < 1000) fired.push(new WeakRef(timer));
  }
  for (let i = 0; i < 1000; i++) queue.popDue(i);
}

// A second queue whose timers (an hour long) are all cancelled.
const idle = new TimerQueue();
function cancelAll(): void {
  const timers = Array.from({ length: 10 }, () => new HeavyTimer(3_600_000));
  for (const timer of timers) {
    timer.deadline = timer.delay;
    idle.push(timer);
    cancelled.push(new WeakRef(timer));
  }
  for (const timer of timers) idle.remove(timer);
}

/** Lets the job that made WeakRefs end, then collects garbage. */
async function collect(): Promise<void> {
  // A WeakRef's target stays alive until the job that made it ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
}

const alive = (refs: WeakRef<object>[]): number =>
  refs.filter((ref) => ref.deref() !== undefined).length;

// Ten hour-long timeouts whose bodies finished at once, while a timer due
// before them stays armed: the queue keeps their cancelled entries for a
// while (too few to compact, not at the front), but not their results. The
// sleeper is detached, so main's list of children does not keep them either.
async function timeoutResultsAlive(): Promise<number> {
  const results: WeakRef<Uint8Array>[] = [];
  function* quick(): Operation<Uint8Array> {
    yield* sleep(1);
    const result = new Uint8Array(1024);
    results.push(new WeakRef(result));
    return result;
  }
  let count = -1;
  const loop = new Loop({ clock: new VirtualClock() });
  await loop.runUntilComplete(function* main() {
    const long = yield* spawn(sleep(1_800_000), { detached: true });
    for (let i = 0; i < 10; i++) yield* timeout(3_600_000, quick);
    yield* call(collect);
    count = alive(results);
    long.cancel();
  });
  return count;
}

fireHalf();
cancelAll();
await collect();
console.log(JSON.stringify({
  size: queue.size,
  firedAlive: alive(fired),
  idleSize: idle.size,
  cancelledAlive: alive(cancelled),
  timeoutResultsAlive: await timeoutResultsAlive(),
}));

/**
 * The tutorial's "sleep and timers" section (left as WIP there), finished.
 * Several tasks sleep different times and wake in deadline order; c and d
 * ask for the same delay, and on equal deadlines the task that went to
 * sleep first wakes first. Nobody calls a blocking sleep: while one task
 * sleeps, the others run.
 *
 * The program runs twice: on the real clock (offsets since the start, read
 * from the wall clock and rounded to 10 ms, so they vary a little from run
 * to run), then on a `VirtualClock`, where it finishes at once with the
 * same order and exact `loop.time()` offsets.
 *
 * Run: deno run examples/05_sleep_timers.ts
 *
 * @module
 */

import { gather, Loop, type Operation, sleep, VirtualClock } from "../mod.ts";

/** Each task's name and how long it sleeps, in the order they start. */
const SLEEPERS: [name: string, ms: number][] = [
  ["a", 300],
  ["b", 100],
  ["c", 200],
  ["d", 200], // same deadline as c (exactly so on the virtual clock): wakes after c
];

function program(loop: Loop, round: (offset: number) => number): () => Operation<void> {
  return function* main() {
    const start = loop.time();
    function* sleeper(name: string, ms: number): Operation<void> {
      yield* sleep(ms);
      const offset = round(loop.time() - start);
      console.log(`  t+${offset}ms  task ${name} woke (asked ${ms} ms)`);
    }
    yield* gather(SLEEPERS.map(([name, ms]) => sleeper(name, ms)));
  };
}

console.log("Real clock (offsets rounded to 10 ms):");
const real = new Loop();
await real.runUntilComplete(program(real, (offset) => Math.round(offset / 10) * 10));

console.log("Virtual clock, same program (exact loop.time() offsets):");
const virtual = new Loop({ clock: new VirtualClock() });
const wallStart = performance.now();
virtual.runSync(program(virtual, (offset) => offset));
const wall = performance.now() - wallStart;
console.log(
  `  finished at loop.time() = ${virtual.time()} ms, after ${
    wall < 50 ? "under 50" : Math.round(wall)
  } ms of wall time`,
);

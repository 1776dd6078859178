/**
 * The tutorial's "sleep and timers" section (left as WIP there), finished.
 * Several tasks sleep different times and wake in deadline order (two with
 * the same deadline wake in the order they went to sleep). The same program
 * then runs on a `VirtualClock`: same order, same offsets, no waiting.
 *
 * Run: deno run examples/05_sleep_timers.ts
 *
 * @module
 */

import { gather, Loop, type Operation, sleep, VirtualClock } from "../mod.ts";

const SLEEPERS: [name: string, ms: number][] = [
  ["a", 300],
  ["b", 100],
  ["c", 200],
  ["d", 200],
];

function* sleeper(loop: Loop, name: string, ms: number): Operation<void> {
  const start = loop.time();
  yield* sleep(ms);
  const offset = Math.floor(loop.time() - start);
  console.log(`  t+${offset} ms  ${name} woke (slept ${ms} ms)`);
}

function program(loop: Loop): () => Operation<void[]> {
  return function* main() {
    return yield* gather(SLEEPERS.map(([name, ms]) => sleeper(loop, name, ms)));
  };
}

console.log("Real clock:");
const real = new Loop();
await real.runUntilComplete(program(real));

console.log("Virtual clock (same program):");
const virtual = new Loop({ clock: new VirtualClock() });
const started = performance.now();
virtual.runSync(program(virtual));
const wall = performance.now() - started;
console.log(
  `  ${virtual.time()} ms of virtual time in ${
    wall < 50 ? "under 50" : Math.round(wall)
  } ms of wall time`,
);

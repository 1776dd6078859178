/**
 * Run by shape_anchors_test.ts with V8's deoptimization trace on: warms
 * the loop's hot path (spawn+join, sleeps, groups), then forces full GCs
 * between runs, when none of the loop's objects is alive.
 */

import {
  gather,
  join,
  Loop,
  run,
  runSync,
  sleep,
  spawn,
  VirtualClock,
  type Yielded,
  yieldNow,
} from "../mod.ts";

const TASKS = 20_000;

function* child(): Generator<Yielded, number, unknown> {
  return 1;
}

function* sleeper(ms: number): Generator<Yielded, void, unknown> {
  yield* sleep(ms);
}

function* spawnJoin(): Generator<Yielded, number, unknown> {
  let sum = 0;
  for (let i = 0; i < TASKS; i++) sum += yield* join(yield* spawn(child));
  yield* gather([child(), child()]);
  return sum;
}

function* sleeps(): Generator<Yielded, void, unknown> {
  for (let i = 0; i < TASKS; i++) yield* spawn(sleeper(1 + (i % 100)));
}

function* busy(): Generator<Yielded, void, unknown> {
  for (let i = 0; i < 50; i++) yield* yieldNow();
  yield* sleep(1);
}

// On the real clock, long enough that the loop looks at the time and gives
// the host turns.
function* realTime(): Generator<Yielded, void, unknown> {
  const tasks = [];
  for (let i = 0; i < 400; i++) tasks.push(yield* spawn(busy));
  for (const task of tasks) yield* join(task);
}

async function workload(): Promise<void> {
  // A main made anew for each run, as a program calling run() in a loop
  // would: its generators' hidden class dies with it, and the code that
  // resumes tasks must not have been built for it.
  runSync(function* main() {
    return yield* spawnJoin();
  });
  new Loop({ clock: new VirtualClock() }).runSync(sleeps);
  await run(realTime);
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
for (let i = 0; i < 6; i++) {
  gc();
  await workload();
}

/**
 * Spawn + join of many short tasks: genloop against `Promise.all` over
 * async functions, and against effection 4 (a bench-only dependency; the
 * library never imports it). Each comparison runs the same pattern on both
 * sides: `gather` is genloop's `Promise.all`, and spawn-then-join one task
 * at a time is written the same way for genloop and effection.
 *
 * @module
 */

import { run as runEffection, spawn as spawnEffection } from "npm:effection@4";
import { gather, join, type Operation, runSync, spawn, type Task } from "../mod.ts";
import { type Comparison, nsPerOp } from "./_measure.ts";

const TASKS = 1_000_000;
const BATCH = 1_000;
// As many as effection does in a few seconds per run (its cost per task grows with the count).
const EFFECTION_TASKS = 30_000;

// The shortest possible task: it returns at once, so the scheduler is all
// that is measured.
function* child(): Operation<number> {
  return 1;
}

// deno-lint-ignore require-await
async function asyncChild(): Promise<number> {
  return 1;
}

// The same body written for effection (its operations are typed separately).
function* effectionChild(): Generator<never, number, unknown> {
  return 1;
}

function check(sum: number): void {
  if (sum !== TASKS) throw new Error(`lost tasks: ${sum} of ${TASKS}`);
}

/** genloop's Promise.all: gather batches of 1,000 bodies. */
function genloopGather(): void {
  runSync(function* main() {
    let sum = 0;
    const bodies: Operation<number>[] = new Array(BATCH);
    for (let done = 0; done < TASKS; done += BATCH) {
      for (let i = 0; i < BATCH; i++) bodies[i] = child();
      for (const value of yield* gather(bodies)) sum += value;
    }
    check(sum);
  });
}

async function promiseAllBatches(): Promise<void> {
  let sum = 0;
  const batch: Promise<number>[] = new Array(BATCH);
  for (let done = 0; done < TASKS; done += BATCH) {
    for (let i = 0; i < BATCH; i++) batch[i] = asyncChild();
    for (const value of await Promise.all(batch)) sum += value;
  }
  check(sum);
}

/** Spawn a batch, then join each task of it. */
function genloopSpawnBatches(): void {
  runSync(function* main() {
    let sum = 0;
    const batch: Task<number>[] = new Array(BATCH);
    for (let done = 0; done < TASKS; done += BATCH) {
      for (let i = 0; i < BATCH; i++) batch[i] = yield* spawn(child);
      for (let i = 0; i < BATCH; i++) sum += yield* join(batch[i]);
    }
    check(sum);
  });
}

/** One at a time: spawn, then join at once. */
function genloopSequential(): void {
  runSync(function* main() {
    let sum = 0;
    for (let i = 0; i < TASKS; i++) sum += yield* join(yield* spawn(child));
    check(sum);
  });
}

/** The same one-at-a-time pattern in effection, on fewer tasks (it is slow). */
async function effectionSequential(): Promise<void> {
  await runEffection(function* main() {
    let sum = 0;
    for (let i = 0; i < EFFECTION_TASKS; i++) {
      const task = yield* spawnEffection(effectionChild);
      sum += yield* task;
    }
    if (sum !== EFFECTION_TASKS) throw new Error("effection lost tasks");
  });
}

/** Measures genloop, Promise.all and effection side by side. */
export async function benchSpawnJoin(): Promise<Comparison[]> {
  const gathered = await nsPerOp(genloopGather, TASKS, 3);
  const promiseAll = await nsPerOp(promiseAllBatches, TASKS, 3);
  const batched = await nsPerOp(genloopSpawnBatches, TASKS, 3);
  const sequential = await nsPerOp(genloopSequential, TASKS, 3);
  const effection = await nsPerOp(effectionSequential, EFFECTION_TASKS, 3);
  return [
    {
      group: "spawn+join",
      name: `${TASKS.toLocaleString("en")} tasks, gather of ${BATCH}`,
      unit: "ns/task",
      genloop: gathered,
      baselineName: "Promise.all of async fns",
      baseline: promiseAll,
      target: "≤ 0.5",
    },
    {
      group: "spawn+join",
      name: `spawn ${BATCH}, then join each`,
      unit: "ns/task",
      genloop: batched,
      baselineName: "Promise.all of async fns",
      baseline: promiseAll,
      target: "(info)",
    },
    {
      group: "spawn+join",
      name: "spawn then join, one at a time",
      unit: "ns/task",
      genloop: sequential,
      baselineName: `effection 4 (${EFFECTION_TASKS.toLocaleString("en")} tasks)`,
      baseline: effection,
      target: "≤ 0.005 (200x faster)",
    },
  ];
}

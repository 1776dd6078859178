/**
 * Spawn + join of many short tasks: genloop against `Promise.all` over
 * async functions, and against effection 4 (a bench-only dependency; the
 * library never imports it).
 *
 * @module
 */

import { run as runEffection, spawn as spawnEffection } from "npm:effection@4";
import { join, type Operation, runSync, spawn, type Task } from "../mod.ts";
import { type Comparison, nsPerOp } from "./_measure.ts";

const TASKS = 1_000_000;
const BATCH = 1_000;
const EFFECTION_TASKS = 5_000;

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

/** Spawns a batch, then joins it, 1,000 at a time. */
function genloopBatches(): void {
  runSync(function* main() {
    let sum = 0;
    const batch: Task<number>[] = new Array(BATCH);
    for (let done = 0; done < TASKS; done += BATCH) {
      for (let i = 0; i < BATCH; i++) batch[i] = yield* spawn(child);
      for (let i = 0; i < BATCH; i++) sum += yield* join(batch[i]);
    }
    if (sum !== TASKS) throw new Error(`lost tasks: ${sum}`);
  });
}

/** One at a time: spawn, then join at once. */
function genloopSequential(): void {
  runSync(function* main() {
    let sum = 0;
    for (let i = 0; i < TASKS; i++) sum += yield* join(yield* spawn(child));
    if (sum !== TASKS) throw new Error(`lost tasks: ${sum}`);
  });
}

async function promiseAllBatches(): Promise<void> {
  let sum = 0;
  const batch: Promise<number>[] = new Array(BATCH);
  for (let done = 0; done < TASKS; done += BATCH) {
    for (let i = 0; i < BATCH; i++) batch[i] = asyncChild();
    for (const value of await Promise.all(batch)) sum += value;
  }
  if (sum !== TASKS) throw new Error(`lost tasks: ${sum}`);
}

async function effectionTasks(): Promise<void> {
  await runEffection(function* main() {
    for (let done = 0; done < EFFECTION_TASKS; done += 100) {
      const tasks = [];
      for (let i = 0; i < 100; i++) tasks.push(yield* spawnEffection(effectionChild));
      for (const task of tasks) yield* task;
    }
  });
}

/** Measures genloop, Promise.all and effection side by side. */
export async function benchSpawnJoin(): Promise<Comparison[]> {
  const batched = await nsPerOp(genloopBatches, TASKS, 3);
  const sequential = await nsPerOp(genloopSequential, TASKS, 3);
  const promiseAll = await nsPerOp(promiseAllBatches, TASKS, 3);
  const effection = await nsPerOp(effectionTasks, EFFECTION_TASKS, 3);
  return [
    {
      group: "spawn+join",
      name: `${TASKS.toLocaleString("en")} tasks, batches of ${BATCH}`,
      unit: "ns/task",
      genloop: batched,
      baselineName: "Promise.all",
      baseline: promiseAll,
      target: "≤ 0.5",
    },
    {
      group: "spawn+join",
      name: "one at a time",
      unit: "ns/task",
      genloop: sequential,
      baselineName: "Promise.all (batches)",
      baseline: promiseAll,
      target: "(info)",
    },
    {
      group: "spawn+join",
      name: `effection 4 (${EFFECTION_TASKS.toLocaleString("en")} tasks)`,
      unit: "ns/task",
      genloop: batched,
      baselineName: "effection 4",
      baseline: effection,
      target: "≤ 0.005 (200x faster)",
    },
  ];
}

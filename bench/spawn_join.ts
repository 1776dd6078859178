/**
 * Spawn + join of many short tasks: genloop against `Promise.all` over
 * async functions (in batches), and against effection 4 (a bench-only
 * dependency; the library never imports it). genloop runs three patterns:
 * spawn then join one task at a time, spawn a batch then join each, and
 * `gather` (its `Promise.all`). Against effection both sides run the same
 * one-at-a-time pattern on the same number of tasks: as many as effection
 * does in about a second.
 *
 * @module
 */

import {
  type Operation as EffectionOperation,
  run as runEffection,
  spawn as spawnEffection,
  suspend as suspendEffection,
} from "npm:effection@4";
import { gather, join, type Operation, runSync, spawn, type Task } from "../mod.ts";
import { type Comparison, median, nsPerOpTakingTurns, pairedRatios } from "./_measure.ts";

const TASKS = 1_000_000;
const BATCH = 1_000;
// Rounds of the five million-task runs (about a second per round).
const ROUNDS = 5;
// How many times over one genloop turn runs effection's task count.
const GENLOOP_RUNS_PER_TURN = 25;
// Turns of each against effection: its row is the noisiest (one run of
// effection takes a second and triggers many collections), so it gets more
// than the others' three.
const EFFECTION_TURNS = 5;

// The shortest possible task: it returns at once, so the scheduler is all
// that is measured.
function* child(): Operation<number> {
  return 1;
}

// deno-lint-ignore require-await
async function asyncChild(): Promise<number> {
  return 1;
}

// The same body written for effection (its operations are typed separately),
// and for the raw floor.
function* effectionChild(): Generator<never, number, unknown> {
  return 1;
}

function check(sum: number): void {
  if (sum !== TASKS) throw new Error(`lost tasks: ${sum} of ${TASKS}`);
}

// The main bodies below are declared once, as a program's task bodies are,
// not as a generator function made anew for each run (each would be a new
// hidden class for V8 to learn).

function* gatherMain(): Operation<void> {
  let sum = 0;
  const bodies: Operation<number>[] = new Array(BATCH);
  for (let done = 0; done < TASKS; done += BATCH) {
    for (let i = 0; i < BATCH; i++) bodies[i] = child();
    for (const value of yield* gather(bodies)) sum += value;
  }
  check(sum);
}

/** genloop's Promise.all: gather batches of 1,000 bodies. */
function genloopGather(): void {
  runSync(gatherMain);
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

/**
 * The floor: no scheduler, no task record. Create a batch of generators,
 * then run each to its end, as a trampoline would.
 */
function rawGenerators(): void {
  let sum = 0;
  const batch: Iterator<never, number, unknown>[] = new Array(BATCH);
  for (let done = 0; done < TASKS; done += BATCH) {
    for (let i = 0; i < BATCH; i++) batch[i] = effectionChild();
    for (let i = 0; i < BATCH; i++) {
      const step = batch[i].next();
      if (step.done) sum += step.value;
    }
  }
  check(sum);
}

function* spawnBatchesMain(): Operation<void> {
  let sum = 0;
  const batch: Task<number>[] = new Array(BATCH);
  for (let done = 0; done < TASKS; done += BATCH) {
    for (let i = 0; i < BATCH; i++) batch[i] = yield* spawn(child);
    for (let i = 0; i < BATCH; i++) sum += yield* join(batch[i]);
  }
  check(sum);
}

/** Spawn a batch, then join each task of it. */
function genloopSpawnBatches(): void {
  runSync(spawnBatchesMain);
}

function* sequentialMain(count: number): Operation<void> {
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const task = yield* spawn(child);
    sum += yield* join(task);
  }
  if (sum !== count) throw new Error(`lost tasks: ${sum} of ${count}`);
}

/** One at a time: spawn, then join at once, `count` times. */
function genloopSequential(count: number): void {
  runSync(sequentialMain(count));
}

function* effectionMain(count: number): EffectionOperation<void> {
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const task = yield* spawnEffection(effectionChild);
    sum += yield* task;
  }
  if (sum !== count) throw new Error(`effection lost tasks: ${sum} of ${count}`);
}

/** The same one-at-a-time pattern in effection. */
async function effectionSequential(count: number): Promise<void> {
  await runEffection(() => effectionMain(count));
}

/**
 * How many tasks effection runs in about `budgetMs`: a trial run of 2,000
 * sets the rate (its cost per task is roughly flat in the count).
 */
async function effectionCount(budgetMs: number): Promise<number> {
  const trial = 2_000;
  await effectionSequential(trial);
  const start = performance.now();
  await effectionSequential(trial);
  const msPerTask = (performance.now() - start) / trial;
  const count = Math.round(budgetMs / msPerTask / 1_000) * 1_000;
  return Math.min(TASKS, Math.max(trial, count));
}

/** Measures genloop, Promise.all and effection side by side. */
export async function benchSpawnJoin(): Promise<Comparison[]> {
  const [sequential, batched, gathered, promiseAll, raw] = await nsPerOpTakingTurns(
    [
      () => genloopSequential(TASKS),
      genloopSpawnBatches,
      genloopGather,
      promiseAllBatches,
      rawGenerators,
    ],
    TASKS,
    ROUNDS,
  );
  // effection gets about a second per run: as many tasks as it does in that.
  const effectionTasks = await effectionCount(1_000);
  // genloop on exactly the same count, so the ratio compares like with like,
  // taking turns with effection so that a slow spell of the machine lands on
  // both. One genloop run of that count takes only milliseconds, so each of
  // its turns runs it GENLOOP_RUNS_PER_TURN times over: a turn then spans
  // collections and noise as effection's one-second turn does.
  // Each turn ends with a full collection, timed with it: a turn of
  // effection leaves tens of MB of garbage, which genloop's turn used to
  // collect on its own time (a third of it). A long-lived effection task
  // stays suspended meanwhile, as an effection program's root would, so
  // that those collections never find effection with none of its objects
  // alive (V8 would then drop its hidden classes and its optimized code).
  const root = runEffection(() => suspendEffection());
  const [genloopTurn, effection] = await nsPerOpTakingTurns(
    [
      () => {
        for (let r = 0; r < GENLOOP_RUNS_PER_TURN; r++) genloopSequential(effectionTasks);
      },
      () => effectionSequential(effectionTasks),
    ],
    effectionTasks,
    EFFECTION_TURNS,
    { collectOwnGarbage: true },
  );
  await root.halt();
  const sameCount = genloopTurn.map((ns) => ns / GENLOOP_RUNS_PER_TURN);
  const tasks = TASKS.toLocaleString("en");
  return [
    {
      group: "spawn+join",
      name: `${tasks} tasks, spawn then join, one at a time`,
      unit: "ns/task",
      genloop: median(sequential),
      baselineName: `Promise.all of async fns (batches of ${BATCH})`,
      baseline: median(promiseAll),
      target: "≤ 0.5",
      rounds: pairedRatios(sequential, promiseAll),
    },
    {
      group: "spawn+join",
      name: `${tasks} tasks, spawn ${BATCH} then join each`,
      unit: "ns/task",
      genloop: median(batched),
      baselineName: `Promise.all of async fns (batches of ${BATCH})`,
      baseline: median(promiseAll),
      target: "≤ 0.5",
      rounds: pairedRatios(batched, promiseAll),
    },
    {
      group: "spawn+join",
      name: `${tasks} tasks, gather of ${BATCH}`,
      unit: "ns/task",
      genloop: median(gathered),
      baselineName: `Promise.all of async fns (batches of ${BATCH})`,
      baseline: median(promiseAll),
      target: "(info)",
      rounds: pairedRatios(gathered, promiseAll),
    },
    {
      group: "spawn+join",
      name: "same batched spawn+join, against the floor",
      unit: "ns/task",
      genloop: median(batched),
      baselineName: "raw generators created and run (no scheduler)",
      baseline: median(raw),
      target: "(floor)",
      rounds: pairedRatios(batched, raw),
    },
    {
      group: "spawn+join",
      name: `${effectionTasks.toLocaleString("en")} tasks, spawn then join, one at a time`,
      unit: "ns/task",
      genloop: median(sameCount),
      baselineName: "effection 4, same pattern",
      baseline: median(effection),
      target: "≤ 0.005 (200x faster)",
      rounds: pairedRatios(sameCount, effection),
    },
  ];
}

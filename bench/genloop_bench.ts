/**
 * A few of the same cases for `deno bench bench/` (per-iteration numbers
 * from Deno's own harness). The side-by-side report is `deno task bench`.
 *
 * @module
 */

import { gather, join, type Operation, runSync, spawn, type Task, yieldNow } from "../mod.ts";

const TASKS = 10_000;

function* child(): Operation<number> {
  return 1;
}

// deno-lint-ignore require-await
async function asyncChild(): Promise<number> {
  return 1;
}

function* turns(): Operation<void> {
  for (let i = 0; i < 100; i++) yield* yieldNow();
}

async function awaitTurns(): Promise<void> {
  for (let i = 0; i < 100; i++) await null;
}

Deno.bench("switch: 100 tasks x 100 yieldNow", { group: "switch", baseline: true }, () => {
  runSync(function* main() {
    const tasks: Task<void>[] = [];
    for (let i = 0; i < 100; i++) tasks.push(yield* spawn(turns));
    for (const task of tasks) yield* join(task);
  });
});

Deno.bench("switch: 100 async fns x 100 await null", { group: "switch" }, async () => {
  const all: Promise<void>[] = [];
  for (let i = 0; i < 100; i++) all.push(awaitTurns());
  await Promise.all(all);
});

Deno.bench("spawn+join: 10,000 one at a time", { group: "spawn", baseline: true }, () => {
  runSync(function* main() {
    for (let i = 0; i < TASKS; i++) yield* join(yield* spawn(child));
  });
});

Deno.bench("gather: 10,000", { group: "spawn" }, () => {
  runSync(function* main() {
    yield* gather(Array.from({ length: TASKS }, () => child()));
  });
});

Deno.bench("Promise.all: 10,000 async fns", { group: "spawn" }, async () => {
  await Promise.all(Array.from({ length: TASKS }, () => asyncChild()));
});

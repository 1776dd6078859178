/**
 * Heap bytes per suspended task: 100,000 genloop tasks blocked in
 * `suspend()`, against 100,000 suspended async functions and 100,000 bare
 * suspended generators, each measured after a full GC.
 *
 * @module
 */

import { type Operation, runSync, spawn, suspend, type Task, yieldNow } from "../mod.ts";
import { type Comparison, heapUsed } from "./_measure.ts";

const COUNT = 100_000;

function* blocked(): Operation<void> {
  yield* suspend();
}

function genloopBytes(): number {
  let bytes = 0;
  runSync(function* main() {
    const tasks: Task<void>[] = new Array(COUNT);
    const before = heapUsed();
    for (let i = 0; i < COUNT; i++) tasks[i] = yield* spawn(blocked);
    // Let every task start and block before measuring.
    yield* yieldNow();
    bytes = (heapUsed() - before) / COUNT;
    // Returning cancels the children (structured concurrency).
  });
  return bytes;
}

function asyncBytes(): number {
  const never = new Promise<void>(() => {});
  async function waiter(): Promise<void> {
    await never;
  }
  const pending: Promise<void>[] = new Array(COUNT);
  const before = heapUsed();
  for (let i = 0; i < COUNT; i++) pending[i] = waiter();
  const bytes = (heapUsed() - before) / COUNT;
  pending.length = 0;
  return bytes;
}

function* bare(): Generator<undefined, void, unknown> {
  yield;
}

function generatorBytes(): number {
  const generators: Generator<undefined, void, unknown>[] = new Array(COUNT);
  const before = heapUsed();
  for (let i = 0; i < COUNT; i++) {
    generators[i] = bare();
    generators[i].next();
  }
  const bytes = (heapUsed() - before) / COUNT;
  generators.length = 0;
  return bytes;
}

/** Measures bytes per suspended task side by side. */
export function benchMemory(): Comparison[] {
  const genloop = genloopBytes();
  const asyncFn = asyncBytes();
  const generator = generatorBytes();
  return [
    {
      group: "memory",
      name: `${COUNT.toLocaleString("en")} suspended tasks`,
      unit: "bytes/task",
      genloop,
      baselineName: "suspended async function",
      baseline: asyncFn,
      target: "≤ 0.6",
    },
    {
      group: "memory",
      name: "same, against the floor",
      unit: "bytes/task",
      genloop,
      baselineName: "bare suspended generator",
      baseline: generator,
      target: "(floor)",
    },
  ];
}

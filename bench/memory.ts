/**
 * Heap bytes per suspended task: 100,000 genloop tasks blocked in
 * `suspend()`, against 100,000 suspended async functions and 100,000 bare
 * suspended generators, each measured after a full GC. Each set is let go
 * (genloop's by returning from main, which cancels its children) before
 * the next is measured.
 *
 * @module
 */

import { type Operation, runSync, spawn, suspend, type Task, yieldNow } from "../mod.ts";
import { type Comparison, heapUsed, median, pairedRatios } from "./_measure.ts";

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
  const samples: [number[], number[], number[]] = [[], [], []];
  // Interleaved, three times each; the median of each is reported.
  for (let i = 0; i < 3; i++) {
    samples[0].push(genloopBytes());
    samples[1].push(asyncBytes());
    samples[2].push(generatorBytes());
  }
  const [genloop, asyncFn, generator] = samples.map(median);
  return [
    {
      group: "memory",
      name: `${COUNT.toLocaleString("en")} suspended tasks`,
      unit: "bytes/task",
      genloop,
      baselineName: "suspended async function",
      baseline: asyncFn,
      target: "≤ 0.6",
      rounds: pairedRatios(samples[0], samples[1]),
    },
    {
      group: "memory",
      name: "same, against the floor",
      unit: "bytes/task",
      genloop,
      baselineName: "bare suspended generator",
      baseline: generator,
      target: "(floor)",
      rounds: pairedRatios(samples[0], samples[2]),
    },
  ];
}

/**
 * Switch cost: N tasks taking turns. genloop's `yieldNow()` against async
 * functions taking turns with `await null`, and against a raw generator
 * trampoline (the floor: no scheduler at all, just `next()` in a ring).
 *
 * @module
 */

import { join, type Operation, runSync, spawn, type Task, yieldNow } from "../mod.ts";
import { type Comparison, nsPerOp } from "./_measure.ts";

const TASKS = 100;
const ROUNDS = 10_000;
const SWITCHES = TASKS * ROUNDS;

function* genloopWorker(): Operation<void> {
  for (let i = 0; i < ROUNDS; i++) yield* yieldNow();
}

function genloopSwitches(): void {
  runSync(function* main() {
    const tasks: Task<void>[] = [];
    for (let i = 0; i < TASKS; i++) tasks.push(yield* spawn(genloopWorker));
    for (const task of tasks) yield* join(task);
  });
}

async function asyncWorker(): Promise<void> {
  for (let i = 0; i < ROUNDS; i++) await null;
}

async function awaitSwitches(): Promise<void> {
  const all: Promise<void>[] = [];
  for (let i = 0; i < TASKS; i++) all.push(asyncWorker());
  await Promise.all(all);
}

function* rawWorker(): Generator<undefined, void, unknown> {
  for (let i = 0; i < ROUNDS; i++) yield;
}

/** The floor: a ring of generators resumed in turn, nothing else. */
function rawTrampoline(): void {
  const ring: Generator<undefined, void, unknown>[] = [];
  for (let i = 0; i < TASKS; i++) ring.push(rawWorker());
  let live = ring.length;
  while (live > 0) {
    live = 0;
    for (let i = 0; i < ring.length; i++) {
      if (!ring[i].next().done) live++;
    }
  }
}

/** Measures the three side by side. */
export async function benchSwitch(): Promise<Comparison[]> {
  const genloop = await nsPerOp(genloopSwitches, SWITCHES);
  const awaitNull = await nsPerOp(awaitSwitches, SWITCHES);
  const raw = await nsPerOp(rawTrampoline, SWITCHES);
  return [
    {
      group: "switch",
      name: `${TASKS} tasks x ${ROUNDS} turns`,
      unit: "ns/switch",
      genloop,
      baselineName: "await null",
      baseline: awaitNull,
      target: "≤ 1.0",
    },
    {
      group: "switch",
      name: "same, against the floor",
      unit: "ns/switch",
      genloop,
      baselineName: "raw generator trampoline",
      baseline: raw,
      target: "(floor)",
    },
  ];
}

/**
 * Switch cost: N tasks taking turns. genloop's `yieldNow()` against async
 * functions taking turns with `await null`, and against a raw generator
 * trampoline (the floor: a ring queue of generators and `next()`, nothing else).
 *
 * @module
 */

import { join, type Operation, runSync, spawn, type Task, yieldNow } from "../mod.ts";
import { type Comparison, median, nsPerOpTakingTurns, pairedRatios } from "./_measure.ts";

const TASKS = 100;
const ROUNDS = 10_000;
const SWITCHES = TASKS * ROUNDS;
// Rounds of the three (each about 60 ms): the rows near their target need many.
const REPEATS = 15;

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

/**
 * The floor: the smallest scheduler there is. A ring queue of generators;
 * take the front one, resume it, put it back at the end unless it finished.
 */
function rawTrampoline(): void {
  let capacity = 1;
  while (capacity < TASKS) capacity <<= 1;
  const ring: (Generator<undefined, void, unknown> | undefined)[] = new Array(capacity);
  const mask = capacity - 1;
  let head = 0;
  let size = 0;
  for (let i = 0; i < TASKS; i++) ring[size++] = rawWorker();
  while (size > 0) {
    const generator = ring[head]!;
    ring[head] = undefined;
    head = (head + 1) & mask;
    size--;
    if (!generator.next().done) ring[(head + size++) & mask] = generator;
  }
}

/** Measures the three side by side. */
export async function benchSwitch(): Promise<Comparison[]> {
  const [genloop, awaitNull, raw] = await nsPerOpTakingTurns(
    [genloopSwitches, awaitSwitches, rawTrampoline],
    SWITCHES,
    REPEATS,
  );
  const perSwitch = median(genloop);
  return [
    {
      group: "switch",
      name: `${TASKS} tasks x ${ROUNDS} turns`,
      unit: "ns/switch",
      genloop: perSwitch,
      baselineName: "await null",
      baseline: median(awaitNull),
      target: "≤ 1.0",
      rounds: pairedRatios(genloop, awaitNull),
    },
    {
      group: "switch",
      name: "same, against the floor",
      unit: "ns/switch",
      genloop: perSwitch,
      baselineName: "raw generator ring queue",
      baseline: median(raw),
      target: "(floor)",
      rounds: pairedRatios(genloop, raw),
    },
  ];
}

/**
 * Timers: 100,000 sleeps on the virtual clock (cost per timer, spawn
 * included), and 10,000 concurrent real-clock sleeps against 10,000
 * `setTimeout` promises (total time for the same set of delays).
 *
 * @module
 */

import { gather, Loop, type Operation, run, sleep, spawn, VirtualClock } from "../mod.ts";
import { type Comparison, median, nsPerOp } from "./_measure.ts";

const VIRTUAL_SLEEPS = 100_000;
const REAL_SLEEPS = 10_000;

function delay(i: number): number {
  return (i * 7919) % 1000 + 1;
}

function realDelay(i: number): number {
  return 10 + (i * 7919) % 41;
}

function* sleeper(ms: number): Operation<void> {
  yield* sleep(ms);
}

function virtualSleeps(): void {
  const loop = new Loop({ clock: new VirtualClock() });
  loop.runSync(function* main() {
    for (let i = 0; i < VIRTUAL_SLEEPS; i++) yield* spawn(sleeper(delay(i)));
    yield* sleep(2_000);
  });
}

/** The same delays as plain timer callbacks, settled through a counter. */
async function timeoutPromises(count: number, ms: (i: number) => number): Promise<void> {
  const all: Promise<void>[] = new Array(count);
  for (let i = 0; i < count; i++) {
    all[i] = new Promise((resolve) => setTimeout(resolve, ms(i)));
  }
  await Promise.all(all);
}

async function realSleeps(): Promise<void> {
  await run(function* main() {
    yield* gather(Array.from({ length: REAL_SLEEPS }, (_, i) => sleeper(realDelay(i))));
  });
}

async function wallMs(fn: () => Promise<void>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/** Measures both timer benchmarks. */
export async function benchSleep(): Promise<Comparison[]> {
  const virtual = await nsPerOp(virtualSleeps, VIRTUAL_SLEEPS, 5);
  const genloopReal = await wallMs(realSleeps);
  const timeoutReal = await wallMs(() => timeoutPromises(REAL_SLEEPS, realDelay));
  return [
    {
      group: "timers",
      name: `${VIRTUAL_SLEEPS.toLocaleString("en")} virtual sleeps incl. spawn`,
      unit: "ns/timer",
      genloop: virtual,
      baselineName: "300 ns budget",
      baseline: 300,
      target: "≤ 1.0",
    },
    {
      group: "timers",
      name: `${REAL_SLEEPS.toLocaleString("en")} real sleeps of 10-50 ms`,
      unit: "ms total",
      genloop: genloopReal,
      baselineName: "setTimeout promises",
      baseline: timeoutReal,
      target: "≤ 1.0",
    },
  ];
}

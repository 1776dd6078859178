/**
 * Timers: 100,000 sleeps on the virtual clock (cost per timer, spawn
 * included; also against a floor of raw generators resumed in deadline
 * order), and 10,000 concurrent real-clock sleeps of 10-50 ms against
 * 10,000 `setTimeout` promises with the same delays: total time, and how
 * late each sleeper woke (overshoot past its own deadline).
 *
 * @module
 */

import { gather, Loop, type Operation, run, sleep, spawn, VirtualClock } from "../mod.ts";
import {
  type Comparison,
  median,
  nsPerOpTakingTurns,
  pairedRatios,
  turnOrder,
} from "./_measure.ts";

const VIRTUAL_SLEEPS = 100_000;
const REAL_SLEEPS = 10_000;
const REAL_RUNS = 3;
const VIRTUAL_ROUNDS = 9;
// The target for a virtual sleep, spawn included.
const VIRTUAL_BUDGET_NS = 300;

/** Pseudo-random delays of 1-1000 ms, the same every run. */
function delay(i: number): number {
  return (i * 7919) % 1000 + 1;
}

/** Pseudo-random delays of 10-50 ms, the same every run. */
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

function* rawSleeper(ms: number): Generator<number, void, unknown> {
  yield ms;
}

/**
 * The floor: the same sleeps with no scheduler. Each generator yields its
 * delay and joins the lane of that delay; since all are armed at the same
 * instant, running the lanes in order of delay, each in arming order,
 * resumes them in deadline order (the least ordering work any timer queue
 * could do here).
 */
function rawLaneSleeps(): void {
  const lanes = new Map<number, Generator<number, void, unknown>[]>();
  for (let n = 0; n < VIRTUAL_SLEEPS; n++) {
    const sleeper = rawSleeper(delay(n));
    const ms = sleeper.next().value as number;
    const lane = lanes.get(ms);
    if (lane === undefined) lanes.set(ms, [sleeper]);
    else lane.push(sleeper);
  }
  const delays = [...lanes.keys()].sort((a, b) => a - b);
  for (const ms of delays) {
    for (const sleeper of lanes.get(ms)!) sleeper.next();
  }
}

/** One run of real sleeps: its wall time, and the overshoot of each sleeper. */
interface RealRun {
  totalMs: number;
  lateMs: Float64Array;
}

function* timedSleeper(i: number, lateMs: Float64Array): Operation<void> {
  const ms = realDelay(i);
  const start = performance.now();
  yield* sleep(ms);
  lateMs[i] = performance.now() - start - ms;
}

async function genloopRealSleeps(): Promise<RealRun> {
  const lateMs = new Float64Array(REAL_SLEEPS);
  const start = performance.now();
  await run(function* main() {
    yield* gather(Array.from({ length: REAL_SLEEPS }, (_, i) => timedSleeper(i, lateMs)));
  });
  return { totalMs: performance.now() - start, lateMs };
}

async function timeoutRealSleeps(): Promise<RealRun> {
  const lateMs = new Float64Array(REAL_SLEEPS);
  const start = performance.now();
  const all: Promise<void>[] = new Array(REAL_SLEEPS);
  for (let i = 0; i < REAL_SLEEPS; i++) {
    all[i] = new Promise((resolve) => {
      const ms = realDelay(i);
      const begun = performance.now();
      setTimeout(() => {
        lateMs[i] = performance.now() - begun - ms;
        resolve();
      }, ms);
    });
  }
  await Promise.all(all);
  return { totalMs: performance.now() - start, lateMs };
}

function mean(values: Float64Array): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

function percentile(values: Float64Array, p: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Total time, mean overshoot and 99th-percentile overshoot, run by run. */
interface RealMeasures {
  total: number[];
  mean: number[];
  p99: number[];
}

function measures(runs: RealRun[]): RealMeasures {
  return {
    total: runs.map((r) => r.totalMs),
    mean: runs.map((r) => mean(r.lateMs)),
    p99: runs.map((r) => percentile(r.lateMs, 0.99)),
  };
}

/** A row of the real sleeps: one of their measures, genloop against setTimeout. */
function realRow(
  name: string,
  unit: string,
  genloop: number[],
  timeout: number[],
  target: string,
): Comparison {
  return {
    group: "timers",
    name,
    unit,
    genloop: median(genloop),
    baselineName: "setTimeout promises",
    baseline: median(timeout),
    target,
    rounds: pairedRatios(genloop, timeout),
  };
}

/** Measures both timer benchmarks. */
export async function benchSleep(): Promise<Comparison[]> {
  const [virtual, raw] = await nsPerOpTakingTurns(
    [virtualSleeps, rawLaneSleeps],
    VIRTUAL_SLEEPS,
    VIRTUAL_ROUNDS,
  );
  // Warm up once each, then alternate the two so drift affects both alike.
  await genloopRealSleeps();
  await timeoutRealSleeps();
  const genloopRuns: RealRun[] = [];
  const timeoutRuns: RealRun[] = [];
  for (let i = 0; i < REAL_RUNS; i++) {
    for (const side of turnOrder(2, i)) {
      if (side === 0) genloopRuns.push(await genloopRealSleeps());
      else timeoutRuns.push(await timeoutRealSleeps());
    }
  }
  const genloop = measures(genloopRuns);
  const timeout = measures(timeoutRuns);
  const real = `${REAL_SLEEPS.toLocaleString("en")} real sleeps of 10-50 ms`;
  const perTimer = median(virtual);
  return [
    {
      group: "timers",
      name: `${VIRTUAL_SLEEPS.toLocaleString("en")} virtual sleeps incl. spawn`,
      unit: "ns/timer",
      genloop: perTimer,
      baselineName: "300 ns budget",
      baseline: VIRTUAL_BUDGET_NS,
      target: "≤ 1.0",
      rounds: virtual.map((ns) => ns / VIRTUAL_BUDGET_NS),
    },
    {
      group: "timers",
      name: "same virtual sleeps, against the floor",
      unit: "ns/timer",
      genloop: perTimer,
      baselineName: "raw generators in lanes by delay (no scheduler)",
      baseline: median(raw),
      target: "(floor)",
      rounds: pairedRatios(virtual, raw),
    },
    realRow(`${real}, total`, "ms total", genloop.total, timeout.total, "≤ 1.0"),
    realRow(`${real}, mean overshoot`, "ms late", genloop.mean, timeout.mean, "(info)"),
    realRow(`${real}, 99th pct overshoot`, "ms late", genloop.p99, timeout.p99, "(info)"),
  ];
}

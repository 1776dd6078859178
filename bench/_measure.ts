/**
 * Timing and memory helpers shared by the benchmarks: warm up, repeat,
 * take the median, so one slow run (a GC, the other core busy) does not
 * decide a result.
 *
 * @module
 */

/** One compared measurement: genloop and its baseline, in the same unit. */
export interface Comparison {
  /** The family, e.g. "switch". */
  group: string;
  /** What was measured. */
  name: string;
  /** The unit of both numbers, e.g. "ns/switch". */
  unit: string;
  /** genloop's number. */
  genloop: number;
  /** The baseline's name. */
  baselineName: string;
  /** The baseline's number. */
  baseline: number;
  /** The target for genloop ÷ baseline, as text, e.g. "≤ 1.0". */
  target: string;
  /** Whether a higher number is better (throughput) rather than lower (cost). */
  higherIsBetter?: boolean;
  /**
   * genloop ÷ baseline in each round of the run, where a round measured
   * both sides one right after the other: how far the ratio moved within
   * this very run (a slow spell of a shared machine lands on both sides of
   * a round alike, but not on every round).
   */
  rounds?: number[];
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * The ratio `a[i] / b[i]` of each round, for two series measured in the
 * same rounds (see `Comparison.rounds`).
 */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((value, round) => value / b[round]);
}

/**
 * The order in which round `round` runs `count` contenders: every other
 * round in reverse, so that one that leaves the heap or the caches worse
 * for the next does so to each of the others in turn.
 */
export function turnOrder(count: number, round: number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  return round % 2 === 0 ? order : order.reverse();
}

/**
 * Warms up several functions (so the JIT has optimised them), then runs
 * them `repeats` rounds, taking turns: each round runs every function once
 * (every other round in reverse order), so a slow spell of the machine
 * (the other core busy, a noisy neighbour) lands on all of them alike and
 * the ratios stay fair. Returns the
 * nanoseconds per operation (`ops` operations per run) of each function,
 * round by round: take the `median` of each, and `pairedRatios` of two.
 */
export async function nsPerOpTakingTurns(
  fns: (() => unknown)[],
  ops: number,
  repeats = 7,
  options: TurnOptions = {},
): Promise<number[][]> {
  for (const fn of fns) await warmUp(fn);
  if (options.collectOwnGarbage) collectGarbage();
  const samples: number[][] = fns.map(() => []);
  for (let i = 0; i < repeats; i++) {
    for (const f of turnOrder(fns.length, i)) {
      const start = performance.now();
      await fns[f]();
      if (options.collectOwnGarbage) collectGarbage();
      samples[f].push(((performance.now() - start) * 1e6) / ops);
    }
  }
  return samples;
}

/** Options for `nsPerOpTakingTurns`. */
export interface TurnOptions {
  /**
   * End each timed run with a full collection, timed with it: each function
   * then pays for collecting the garbage it made, and none for another's.
   * For functions that leave much garbage behind (effection's turns).
   */
  collectOwnGarbage?: boolean;
}

// V8 optimises a hot function in tiers and may re-optimise it a few times
// on the way; two runs of a 40 ms benchmark are not enough for all that.
const WARM_UP_RUNS = 3;
const WARM_UP_MS = 300;

/** Runs `fn` at least `WARM_UP_RUNS` times and for at least `WARM_UP_MS`. */
async function warmUp(fn: () => unknown): Promise<void> {
  const start = performance.now();
  for (let runs = 0; runs < WARM_UP_RUNS || performance.now() - start < WARM_UP_MS; runs++) {
    await fn();
  }
}

/** Forces a full garbage collection (needs --v8-flags=--expose-gc). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    throw new Error("Run the benchmarks with --v8-flags=--expose-gc (deno task bench)");
  }
  gc();
  gc();
}

/** Heap bytes in use after a full collection. */
export function heapUsed(): number {
  collectGarbage();
  return Deno.memoryUsage().heapUsed;
}

const notes: string[] = [];

/** Records a remark for the report (a skipped family, a scaled-down size). */
export function addNote(note: string): void {
  notes.push(note);
}

/** The remarks recorded so far. */
export function takeNotes(): string[] {
  return notes.splice(0, notes.length);
}

/**
 * Mass cancellation: 100,000 suspended tasks cancelled because their parent
 * ended (structured concurrency), against 100,000 async functions awaiting
 * one Promise that an `AbortSignal` rejects, the cheapest way to cancel
 * async/await code. Both sides run every waiter's `finally` block. An
 * information row: it has no target, and it shows what a cancellation
 * costs per task.
 *
 * @module
 */

import { type Operation, runSync, spawn, suspend, yieldNow } from "../mod.ts";
import { type Comparison, median, pairedRatios, turnOrder } from "./_measure.ts";

const COUNT = 100_000;
const RUNS = 3;

let cleanedUp = 0;

function* suspended(): Operation<void> {
  try {
    yield* suspend();
  } finally {
    cleanedUp++;
  }
}

/** ns per task from the parent's return to the run's end (all cleaned up). */
function genloopCancel(): number {
  cleanedUp = 0;
  let start = 0;
  runSync(function* main() {
    for (let i = 0; i < COUNT; i++) yield* spawn(suspended);
    // Let every task start and block.
    yield* yieldNow();
    start = performance.now();
    // Returning cancels the children and waits for their cleanup.
  });
  const ns = ((performance.now() - start) * 1e6) / COUNT;
  if (cleanedUp !== COUNT) throw new Error(`cleaned up ${cleanedUp} of ${COUNT}`);
  return ns;
}

async function waiter(aborted: Promise<never>): Promise<void> {
  try {
    await aborted;
  } finally {
    cleanedUp++;
  }
}

/**
 * One Promise that the signal rejects, awaited by every waiter: a listener
 * per waiter would measure Deno's EventTarget instead (its cost per
 * listener grows with the number of listeners).
 */
function abortedPromise(signal: AbortSignal): Promise<never> {
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  // Every waiter handles the rejection; this keeps it from counting as unhandled.
  aborted.catch(() => {});
  return aborted;
}

/** ns per task from `abort()` to every waiter having settled. */
async function abortCancel(): Promise<number> {
  cleanedUp = 0;
  const controller = new AbortController();
  const aborted = abortedPromise(controller.signal);
  const waiting: Promise<void>[] = new Array(COUNT);
  for (let i = 0; i < COUNT; i++) waiting[i] = waiter(aborted);
  // Let every waiter reach its await.
  await Promise.resolve();
  const start = performance.now();
  controller.abort();
  await Promise.allSettled(waiting);
  const ns = ((performance.now() - start) * 1e6) / COUNT;
  if (cleanedUp !== COUNT) throw new Error(`cleaned up ${cleanedUp} of ${COUNT}`);
  return ns;
}

/** Measures both, taking turns, after one warm-up run each. */
export async function benchCancel(): Promise<Comparison[]> {
  genloopCancel();
  await abortCancel();
  const genloop: number[] = [];
  const abort: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    for (const side of turnOrder(2, run)) {
      if (side === 0) genloop.push(genloopCancel());
      else abort.push(await abortCancel());
    }
  }
  return [
    {
      group: "cancel",
      name: `${COUNT.toLocaleString("en")} suspended tasks cancelled as their parent ends`,
      unit: "ns/task",
      genloop: median(genloop),
      baselineName: "AbortSignal rejecting one Promise async fns await",
      baseline: median(abort),
      target: "(info)",
      rounds: pairedRatios(genloop, abort),
    },
  ];
}

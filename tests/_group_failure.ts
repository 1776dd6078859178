// A group of two for tests of failures a gather or race holds: "failFast"
// fails at t=1, and "slowToCancel" then keeps the group waiting for its
// cleanup until t=11. And "failsFirst", whose body fails at t=1 while its
// own child keeps it from settling until t=11.

import { type Operation, sleep, spawn, suspend } from "../mod.ts";

/** Fails at t=1. */
export function* failFast(): Operation<never> {
  yield* sleep(1);
  throw new Error("backend unavailable");
}

/** Sleeps long; once cancelled, its cleanup takes 10 ms more. */
export function* slowToCancel(): Operation<void> {
  try {
    yield* sleep(1_000);
  } finally {
    yield* sleep(10);
  }
}

/**
 * Spawns a child whose cleanup takes 10 ms, then fails at t=1: the task
 * settles, failed, only at t=11.
 */
export function* failsFirst(): Operation<void> {
  yield* spawnSlowCleanup();
  throw new Error("boom");
}

/** `failsFirst`, with a body that throws undefined. */
export function* failsFirstWithUndefined(): Operation<void> {
  yield* spawnSlowCleanup();
  throw undefined;
}

/** `failsFirst` and `failsFirstWithUndefined`, each with its error as a report shows it. */
export const FAILING_FIRST: readonly (readonly [() => Operation<void>, string])[] = [
  [failsFirst, "Error: boom"],
  [failsFirstWithUndefined, "undefined"],
];

/** Spawns a child whose cleanup takes 10 ms, then sleeps until t=1. */
function* spawnSlowCleanup(): Operation<void> {
  yield* spawn(function* slowCleanup(): Operation<void> {
    try {
      yield* suspend();
    } finally {
      yield* sleep(10);
    }
  });
  yield* sleep(1);
}

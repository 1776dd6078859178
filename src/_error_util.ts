/**
 * Building the errors the loop throws into tasks.
 *
 * @module
 */

import { CancelledError, describeError } from "./errors.ts";
import type { Task } from "./task.ts";

/**
 * The error thrown into a cancelled task. Its stack would only show the
 * loop's internals, so none is captured. (That does not make it much
 * cheaper in Deno: creating any Error there costs a few microseconds,
 * about half the cost of cancelling a task; see the README's benchmarks.)
 */
export function cancelledError(task: Task<unknown>, reason: unknown): CancelledError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new CancelledError(
      `Task "${task.name}" was cancelled${reason === undefined ? "" : `: ${String(reason)}`}`,
      reason,
    );
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Combines a pending error with a new one, so neither is lost. */
export function mergeErrors(previous: unknown, next: unknown): unknown {
  if (previous === undefined || previous instanceof CancelledError) return next;
  if (previous instanceof AggregateError) {
    return new AggregateError([...previous.errors, next], previous.message);
  }
  return new AggregateError(
    [previous, next],
    `Several errors: ${describeError(previous)}; ${describeError(next)}`,
  );
}

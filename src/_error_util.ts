/**
 * Building the errors the loop throws into tasks.
 *
 * @module
 */

import { CancelledError, describeError, toText } from "./errors.ts";
import type { Task } from "./task.ts";

/**
 * The error thrown into a task cancelled on its own (`task.cancel()`,
 * `cancel()`, a timeout). Its stack would only show the loop's internals,
 * so none is captured.
 */
export function cancelledError(task: Task<unknown>, reason: unknown): CancelledError {
  return withoutStack(() =>
    new CancelledError(
      `Task "${task.name}" was cancelled${reason === undefined ? "" : `: ${toText(reason)}`}`,
      reason,
    )
  );
}

/**
 * The one error thrown into every task of a group cancelled by one cause
 * (the children of a task that ended, the rest of a gather or race, the
 * tasks left at a run's end), as the waiters on one `AbortSignal` share its
 * reason. Creating an Error in Deno costs several microseconds whatever
 * `Error.stackTraceLimit` says (it records a detailed stack for uncaught
 * exceptions): one per task made up three quarters of a mass cancellation.
 *
 * @param group Who is cancelled, for the message: "children of task \"main\"".
 */
export function groupCancelledError(group: string, reason: unknown): CancelledError {
  return withoutStack(() =>
    new CancelledError(`Cancelled together with the other ${group}: ${toText(reason)}`, reason)
  );
}

function withoutStack(make: () => CancelledError): CancelledError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * The AggregateError the loop makes so that several errors are all kept.
 * Only these are taken apart by a later merge: an AggregateError a task
 * threw itself is kept whole, one error of the list.
 */
export class MergedErrors extends AggregateError {}

/**
 * Combines a pending error with a new one, so neither is lost. A
 * CancelledError joins no other error, whichever came first: a failure
 * outweighs the cancellation of the task it ends, and a cancellation is
 * delivered alone, so that `instanceof CancelledError` recognises it.
 */
export function mergeErrors(previous: unknown, next: unknown): unknown {
  if (previous === undefined || previous instanceof CancelledError) return next;
  if (next instanceof CancelledError) return previous;
  if (previous instanceof MergedErrors) {
    return new MergedErrors([...previous.errors, next], previous.message);
  }
  return new MergedErrors(
    [previous, next],
    `Several errors: ${describeError(previous)}; ${describeError(next)}`,
  );
}

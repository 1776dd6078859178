/**
 * Building the errors the loop throws into tasks.
 *
 * @module
 */

import { CancelledError, describeError, toText } from "./errors.ts";
import type { Loop } from "./loop.ts";
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
 * Both are errors, `undefined` too: a body may `throw undefined`.
 */
export function mergeErrors(previous: unknown, next: unknown): unknown {
  return mergeList([previous, next]);
}

/**
 * Errors waiting for one task, more than one: kept in a list until they are
 * delivered (see `takePending`), since merging each into the one before
 * would copy the list every time, quadratic when thousands of children
 * fail in their cleanup at once.
 */
export class PendingErrors {
  /** The errors, in the order they came. */
  readonly errors: unknown[];

  constructor(errors: unknown[]) {
    this.errors = errors;
  }
}

/** Adds `error` to what waits for a task (`pending`; undefined for nothing). */
export function addPending(pending: unknown, error: unknown): unknown {
  return pending === undefined ? error : pendingWith(pending, error);
}

/**
 * Adds `error` to `pending`, an error (`undefined` too: a body may `throw
 * undefined`) or errors already waiting.
 */
export function pendingWith(pending: unknown, error: unknown): unknown {
  if (pending instanceof PendingErrors) {
    pending.errors.push(error);
    return pending;
  }
  return new PendingErrors([pending, error]);
}

/** What waits for a task, as the one error to deliver (see `mergeErrors`). */
export function takePending(pending: unknown): unknown {
  return pending instanceof PendingErrors ? mergeList(pending.errors) : pending;
}

/**
 * The one error for `errors` (not empty): the only failure among them, or
 * a MergedErrors of all of them, the loop's own merges taken apart; the
 * last cancellation when nothing else failed.
 */
function mergeList(errors: unknown[]): unknown {
  const failures = errors.filter((error) => !(error instanceof CancelledError));
  if (failures.length === 0) return errors[errors.length - 1];
  // One failure is delivered as it is, the very object thrown.
  if (failures.length === 1) return failures[0];
  const all = failures.flatMap((error) => error instanceof MergedErrors ? error.errors : [error]);
  return new MergedErrors(
    all,
    `Several errors: ${describeError(all[0])}; ${describeError(all[1])}`,
  );
}

/**
 * How a child's failure came to have no taker, for its report: the task
 * waiting in `where` (a gather, race or timeout) was interrupted, by the
 * program or by a failed run's unwind.
 */
export function untakenCircumstance(where: string, loop: Loop): string {
  return loop._unwindingRun
    ? `in a ${where} whose waiting task was cancelled when the run failed`
    : `in a ${where} whose waiting task was interrupted`;
}

/**
 * Error classes with stable `name`s, so callers can tell them apart with
 * `instanceof` or by `error.name` across realms and serialisation.
 *
 * @module
 */

/**
 * Thrown into a task at its current `yield*` when the task is cancelled, and
 * into whoever joins a cancelled task.
 *
 * A task cancelled on its own (`task.cancel()`, `cancel()`, a timeout) gets
 * an error of its own, whose message names it. Tasks cancelled together by
 * one cause (the children of a task that ended, the rest of a `gather` or
 * `race`, the tasks left at a run's end) share one error whose message
 * names the group and the cause, as the waiters on one `AbortSignal` share
 * its reason: creating an Error costs microseconds in Deno, so this makes
 * cancelling a large tree about four times cheaper. Treat it as read-only.
 *
 * @example Usage
 * ```ts
 * import { CancelledError, run, sleep, spawn, join } from "@genloop/genloop";
 *
 * await run(function* main() {
 *   const child = yield* spawn(function* sleeper() {
 *     yield* sleep(1_000);
 *   });
 *   child.cancel("not needed");
 *   try {
 *     yield* join(child);
 *   } catch (error) {
 *     if (!(error instanceof CancelledError)) throw error;
 *   }
 * });
 * ```
 */
export class CancelledError extends Error {
  /**
   * Why the task was cancelled, as given to `cancel(reason)` or
   * `loop.stop(reason)`; for tasks the loop cancels together (the children
   * of a task that ended, a group's losers, a timed-out body), the loop's
   * own words for that cause, such as `its parent "main" ended`.
   */
  readonly reason: unknown;

  /**
   * Creates a cancellation error.
   *
   * @param message What was cancelled.
   * @param reason Why, as given to `cancel(reason)`.
   */
  constructor(message: string, reason?: unknown) {
    super(message);
    this.name = "CancelledError";
    this.reason = reason;
  }
}

/**
 * Thrown by `timeout(ms, body)` when `body` did not finish in time. By the
 * time it reaches the caller, `body` has been cancelled and its cleanup has
 * run.
 *
 * @example Usage
 * ```ts
 * import { TimeoutError, run, sleep, timeout, VirtualClock } from "@genloop/genloop";
 *
 * await run(function* main() {
 *   try {
 *     yield* timeout(10, sleep(1_000));
 *   } catch (error) {
 *     if (!(error instanceof TimeoutError)) throw error;
 *   }
 * }, { clock: new VirtualClock() });
 * ```
 */
export class TimeoutError extends Error {
  /** The limit that was exceeded, in milliseconds. */
  readonly ms: number;

  /**
   * Creates a timeout error.
   *
   * @param message What timed out.
   * @param ms The limit that was exceeded, in milliseconds.
   */
  constructor(message: string, ms: number) {
    super(message);
    this.name = "TimeoutError";
    this.ms = ms;
  }
}

/**
 * Rejects a run when no task can make progress and nothing (no timer, no
 * stream, no pending Promise) could ever wake one; also, with
 * `LoopOptions.stallTimeoutMs`, when only Promises could and none settled
 * in time (a stall). The message lists every blocked task and what it waits
 * for.
 *
 * @example Usage
 * ```ts
 * import { DeadlockError, runSync, suspend } from "@genloop/genloop";
 *
 * let report = "";
 * try {
 *   runSync(function* main() {
 *     yield* suspend();
 *   });
 * } catch (error) {
 *   if (!(error instanceof DeadlockError)) throw error;
 *   report = error.blocked.join();
 * }
 * if (!report.includes('task "main"')) throw new Error(report);
 * ```
 */
export class DeadlockError extends Error {
  /** One line per blocked task: its name and what it waits for. */
  readonly blocked: readonly string[];

  /**
   * Creates a deadlock error.
   *
   * @param message The summary.
   * @param blocked One line per blocked task.
   */
  constructor(message: string, blocked: readonly string[]) {
    super(message);
    this.name = "DeadlockError";
    this.blocked = blocked;
  }
}

/**
 * Thrown into a task that yielded something that is not a genloop
 * instruction: a number, a Promise, or an operation yielded with `yield`
 * where `yield*` was meant. In TypeScript such a `yield` in a task body is
 * a type error already (see `Yielded`); this is what JavaScript code, or a
 * value cast to pass, gets when it runs.
 *
 * @example Usage
 * ```ts
 * import { InvalidInstructionError, runSync } from "@genloop/genloop";
 *
 * runSync(function* main() {
 *   try {
 *     yield 42 as never;
 *   } catch (error) {
 *     if (!(error instanceof InvalidInstructionError)) throw error;
 *   }
 * });
 * ```
 */
export class InvalidInstructionError extends TypeError {
  /** What the task yielded. */
  readonly yielded: unknown;

  /**
   * Creates an invalid-instruction error.
   *
   * @param message What was yielded and what to write instead.
   * @param yielded The value the task yielded.
   */
  constructor(message: string, yielded: unknown) {
    super(message);
    this.name = "InvalidInstructionError";
    this.yielded = yielded;
  }
}

/**
 * Reports a task that failed while nobody was joining it. It is thrown into
 * the task's parent (or the run's main task) at its current `yield*`, so the
 * failure is never lost; `cause` is the original error. A parent that has
 * not started yet never runs, as a cancelled one: a task given to
 * `loop.spawn()` before the run that fails at once fails the run before
 * its main task starts.
 *
 * @example Usage
 * ```ts
 * import { TaskFailedError, run, spawn, sleep, VirtualClock } from "@genloop/genloop";
 *
 * await run(function* main() {
 *   yield* spawn(function* doomed() {
 *     throw new Error("boom");
 *   });
 *   try {
 *     yield* sleep(10);
 *   } catch (error) {
 *     if (!(error instanceof TaskFailedError)) throw error;
 *   }
 * }, { clock: new VirtualClock() });
 * ```
 */
export class TaskFailedError extends Error {
  /** The name of the task that failed. */
  readonly taskName: string;

  /**
   * Creates the report of an unjoined failure.
   *
   * @param taskName The failed task's name.
   * @param cause The error the task failed with.
   * @param circumstance Why nobody else reported it; default
   * `"and nobody joined it"`.
   */
  constructor(taskName: string, cause: unknown, circumstance = "and nobody joined it") {
    super(`Task "${taskName}" failed ${circumstance}: ${describeError(cause)}`, { cause });
    this.name = "TaskFailedError";
    this.taskName = taskName;
  }
}

/** A one-line description of any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${toText(error.name)}: ${toText(error.message)}`;
  return toText(error);
}

// How much of a plain object an error message shows.
const MAX_KEYS_SHOWN = 20;
const MAX_SHOWN = 200;

/**
 * `String(value)`, for messages about values the loop did not make (a
 * thrown value, a cancel reason). What String() cannot convert (an object
 * without a prototype, a throwing `toString`) is named rather than let
 * throw: a message must not fail the loop half-way through settling a task.
 * @internal
 */
export function toText(value: unknown): string {
  try {
    const text = String(value);
    // "[object Object]" says nothing of a plain object: show what it holds,
    // if that is little enough to read in a message.
    if (text !== "[object Object]") return text;
    const keys = Object.keys(value as object).length;
    if (keys > MAX_KEYS_SHOWN) return `an object with ${keys} keys`;
    const shown = Deno.inspect(value, { compact: true, breakLength: Infinity, depth: 2 });
    return shown.length <= MAX_SHOWN ? shown : `${shown.slice(0, MAX_SHOWN)}…`;
  } catch {
    return "(a value that cannot be converted to a string)";
  }
}

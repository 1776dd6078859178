/**
 * `run` and `runSync`: a fresh loop for one program, like `asyncio.run`.
 *
 * @module
 */

import { Loop, type LoopOptions } from "./loop.ts";
import type { BodyResult, TaskBody } from "./task.ts";

/**
 * Runs `body` on a fresh `Loop` until it settles, like `asyncio.run`:
 * tasks it leaves running (detached ones included) are cancelled and
 * awaited before the Promise settles.
 *
 * @typeParam T What the body returns.
 * @param body The main task's body.
 * @param options The loop's options (clock, warnings, stall limit).
 * @returns A Promise of the body's return value; rejects with its error,
 * or with the failure of a task whose cleanup failed at the run's end;
 * with an `AggregateError` holding them all in `errors` when there are
 * several.
 *
 * @example Usage
 * ```ts
 * import { run, sleep } from "@genloop/genloop";
 *
 * const value = await run(function* main() {
 *   yield* sleep(1);
 *   return "done";
 * });
 * if (value !== "done") throw new Error("unexpected");
 * ```
 */
export function run<T>(body: TaskBody<T>, options?: LoopOptions): Promise<T>;
/**
 * Runs `body` on a fresh `Loop` until it settles (the form for a body whose
 * type is a union of bodies returning different types, such as
 * `flag ? fetchName() : fetchCount()`: the result is typed as any of theirs).
 *
 * @typeParam B The body's type.
 * @param body The main task's body.
 * @param options The loop's options (clock, warnings, stall limit).
 * @returns A Promise of the body's return value.
 */
export function run<B extends TaskBody<unknown>>(
  body: B,
  options?: LoopOptions,
): Promise<BodyResult<B>>;
export function run<T>(body: TaskBody<T>, options?: LoopOptions): Promise<T> {
  return new Loop(options).runUntilComplete(body);
}

/**
 * Runs `body` on a fresh `Loop`, synchronously. For programs that never wait
 * on the outside world (sleeping is fine with a `VirtualClock`).
 *
 * @typeParam T What the body returns.
 * @param body The main task's body.
 * @param options The loop's options.
 * @returns The body's return value.
 * @throws Its error, a `DeadlockError`, or an `Error` if it must wait for real time or I/O;
 * as with `run`, a failed cleanup of a task left at the run's end.
 *
 * @example Usage
 * ```ts
 * import { runSync } from "@genloop/genloop";
 *
 * const value = runSync(function* main() {
 *   return 6 * 7;
 * });
 * if (value !== 42) throw new Error("unexpected");
 * ```
 */
export function runSync<T>(body: TaskBody<T>, options?: LoopOptions): T;
/**
 * Runs `body` on a fresh `Loop`, synchronously (the form for a body whose type
 * is a union of bodies returning different types, such as
 * `flag ? fetchName() : fetchCount()`: the result is typed as any of theirs).
 *
 * @typeParam B The body's type.
 * @param body The main task's body.
 * @param options The loop's options.
 * @returns The body's return value.
 */
export function runSync<B extends TaskBody<unknown>>(body: B, options?: LoopOptions): BodyResult<B>;
export function runSync<T>(body: TaskBody<T>, options?: LoopOptions): T {
  return new Loop(options).runSync(body);
}

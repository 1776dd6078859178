/**
 * `call`: Promise interop. A task waits for a Promise without `async`.
 *
 * @module
 */

import { isThenable } from "./_body.ts";
import { Instruction, type Operation } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import type { Task } from "./task.ts";

class CallInstruction<T> extends Instruction<T> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  // Let go once called: a wait abandoned on a Promise that lives on (a
  // shutdown signal raced against work) leaves this instruction on that
  // Promise, and must not keep what the function captured, nor the loop.
  #fn: ((signal: AbortSignal) => T | PromiseLike<T>) | null;
  readonly #what: string | undefined;
  readonly #fnName: string;
  #waiter: Task<unknown> | null = null;
  #loop: Loop | null = null;
  readonly #abortable: boolean;
  // Made only for a call that asked for a signal: aborted when the wait is
  // given up (see undo).
  #aborter: AbortController | null = null;

  constructor(
    fn: (signal: AbortSignal) => T | PromiseLike<T>,
    abortable: boolean,
    what?: string,
  ) {
    super();
    this.#fn = fn;
    this.#abortable = abortable;
    this.#what = what;
    this.#fnName = fn.name;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const fn = this.#fn!;
    this.#fn = null;
    const produced = this.#callFn(fn);
    if (!isThenable(produced)) {
      loop._resumeNow(task, produced);
      return;
    }
    // If fn cancelled its own task, the loop undoes this wait once perform
    // returns; #settle then ignores the outcome.
    this.#waiter = task;
    this.#loop = loop;
    loop._callStarted();
    // Through Promise.resolve, as `await` does: a thenable's then() is
    // called later and may throw, call back twice or fulfil with another
    // thenable, which is followed; whatever happens becomes one outcome.
    Promise.resolve(produced).then(
      (value) => this.#settle(false, value),
      (error) => this.#settle(true, error),
    );
  }

  /**
   * Calls `fn`, with an AbortSignal only if the call asked for one: an
   * AbortController per call would cost the calls that take none, and a
   * function with a parameter of its own must not be given a signal there.
   */
  #callFn(fn: (signal: AbortSignal) => T | PromiseLike<T>): T | PromiseLike<T> {
    if (!this.#abortable) return (fn as () => T | PromiseLike<T>)();
    this.#aborter = new AbortController();
    return fn(this.#aborter.signal);
  }

  #settle(failed: boolean, outcome: unknown): void {
    this.#aborter = null;
    const waiter = this.#waiter;
    // Interrupted meanwhile: the waiter has moved on.
    if (waiter === null) return;
    this.#waiter = null;
    const loop = this.#loop!;
    this.#loop = null;
    if (failed) loop._enqueueThrow(waiter, outcome);
    else loop._enqueue(waiter, outcome);
    loop._callEnded();
  }

  override undo(task: Task<unknown>, loop: Loop): void {
    // Not waiting (interrupted inside fn, or undone already): no call to end.
    if (this.#waiter === null) return;
    this.#waiter = null;
    this.#loop = null;
    loop._callEnded();
    // The work fn started is not wanted any more: a fetch given the signal
    // stops, rather than run on for a result nobody takes.
    const aborter = this.#aborter;
    this.#aborter = null;
    aborter?.abort(
      new DOMException(
        `Task "${task.name}" stopped waiting for ${this.describe()} (it was cancelled or interrupted)`,
        "AbortError",
      ),
    );
  }

  describe(): string {
    return this.#what ?? `a Promise from call(${this.#fnName || "anonymous function"})`;
  }
}

/**
 * Options of `call`.
 *
 * @example Usage
 * ```ts
 * import { call, type CallOptions, run } from "@genloop/genloop";
 *
 * const options: CallOptions = { abortable: true };
 * const n = await run(function* main() {
 *   return yield* call((signal) => Promise.resolve(signal.aborted ? 0 : 42), options);
 * });
 * if (n !== 42) throw new Error("unexpected");
 * ```
 */
export interface CallOptions {
  /**
   * Give `fn` an `AbortSignal`, aborted (with an `AbortError` naming the
   * task) when the task stops waiting: cancelled, timed out, or a lost
   * `race`. Pass it on to the work (`fetch(url, { signal })`) so that the
   * work stops too, rather than run on for a result nobody takes.
   */
  abortable: true;
}

/**
 * Calls `fn` and suspends the task until the Promise it returns settles:
 * evaluates to the fulfilled value, or throws the rejection at the `yield*`.
 * This is how tasks use any Promise-based API (`fetch`, `Deno.readFile`, …).
 * A plain (non-Promise) return value is returned at once; an exception from
 * `fn` is thrown at the `yield*`. Any other thenable is followed as `await`
 * follows it (later, never inside the step: a thenable that calls back at
 * once still needs an awaited run). If the task is cancelled (or otherwise
 * interrupted: a `timeout`, a lost `race`) while waiting, the Promise's
 * outcome is ignored; with `{ abortable: true }`, `fn` is given an
 * `AbortSignal` that is then aborted, so that the work stops too (see the
 * second form). A Promise that outlives many abandoned waits keeps a small
 * record of each (about 200 bytes, the handlers it was given), as
 * `Promise.race` against it would.
 *
 * @typeParam T The settled value.
 * @param fn A function returning a Promise (or a plain value), called with
 * no arguments.
 * @returns An operation evaluating to the settled value.
 *
 * @example Usage
 * ```ts
 * import { call, run } from "@genloop/genloop";
 *
 * const n = await run(function* main() {
 *   const a = yield* call(() => Promise.resolve(20));
 *   return a + 22;
 * });
 * if (n !== 42) throw new Error("unexpected");
 * ```
 */
export function call<T>(fn: () => T | PromiseLike<T>): Operation<T>;
/**
 * Calls `fn` with an `AbortSignal` and suspends the task until the Promise
 * it returns settles, as the first form does. If the task stops waiting
 * (cancelled, timed out, a lost `race`), the signal is aborted with an
 * `AbortError` naming the task: `call((signal) => fetch(url, { signal }),
 * { abortable: true })` stops the request.
 *
 * @typeParam T The settled value.
 * @param fn A function taking the signal and returning a Promise.
 * @param options `{ abortable: true }`.
 * @returns An operation evaluating to the settled value.
 *
 * @example Usage
 * ```ts
 * import { call, run, timeout, TimeoutError } from "@genloop/genloop";
 *
 * let aborted = false;
 * await run(function* main() {
 *   try {
 *     // Work that would never end; the timeout aborts it through the signal.
 *     yield* timeout(
 *       10,
 *       call((signal) =>
 *         new Promise<void>((_, reject) =>
 *           signal.addEventListener("abort", () => {
 *             aborted = true;
 *             reject(signal.reason);
 *           })
 *         ), { abortable: true }),
 *     );
 *   } catch (error) {
 *     if (!(error instanceof TimeoutError)) throw error;
 *   }
 * });
 * if (!aborted) throw new Error("unexpected");
 * ```
 */
export function call<T>(
  fn: (signal: AbortSignal) => T | PromiseLike<T>,
  options: CallOptions,
): Operation<T>;
export function call<T>(
  fn: (signal: AbortSignal) => T | PromiseLike<T>,
  options?: CallOptions,
): Operation<T> {
  if (typeof fn !== "function") {
    throw new TypeError(
      `call() expected a function returning a Promise, but got ${typeof fn}; write call(() => promise)`,
    );
  }
  return new CallInstruction(fn, options?.abortable === true);
}

/**
 * `call(fn)` for the library's own waits on the host, described in reports
 * as `what` rather than as an anonymous function's Promise.
 * @internal
 */
export function callAs<T>(fn: () => PromiseLike<T>, what: string): Operation<T> {
  return new CallInstruction(fn, false, what);
}

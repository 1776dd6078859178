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
  #fn: (() => T | PromiseLike<T>) | null;
  readonly #what: string | undefined;
  readonly #fnName: string;
  #waiter: Task<unknown> | null = null;
  #loop: Loop | null = null;

  constructor(fn: () => T | PromiseLike<T>, what?: string) {
    super();
    this.#fn = fn;
    this.#what = what;
    this.#fnName = fn.name;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const fn = this.#fn!;
    this.#fn = null;
    const produced = fn();
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

  #settle(failed: boolean, outcome: unknown): void {
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

  override undo(_task: Task<unknown>, loop: Loop): void {
    // Not waiting (interrupted inside fn, or undone already): no call to end.
    if (this.#waiter === null) return;
    this.#waiter = null;
    this.#loop = null;
    loop._callEnded();
  }

  describe(): string {
    return this.#what ?? `a Promise from call(${this.#fnName || "anonymous function"})`;
  }
}

/**
 * Calls `fn` and suspends the task until the Promise it returns settles:
 * evaluates to the fulfilled value, or throws the rejection at the `yield*`.
 * This is how tasks use any Promise-based API (`fetch`, `Deno.readFile`, …).
 * A plain (non-Promise) return value is returned at once; an exception from
 * `fn` is thrown at the `yield*`. Any other thenable is followed as `await`
 * follows it (later, never inside the step: a thenable that calls back at
 * once still needs an awaited run). If the task is cancelled while waiting,
 * the Promise's outcome is ignored; a Promise that outlives many such
 * abandoned waits keeps a small record of each (about 200 bytes, the
 * handlers it was given), as `Promise.race` against it would.
 *
 * @typeParam T The settled value.
 * @param fn A function returning a Promise (or a plain value).
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
export function call<T>(fn: () => T | PromiseLike<T>): Operation<T> {
  if (typeof fn !== "function") {
    throw new TypeError(
      `call() expected a function returning a Promise, but got ${typeof fn}; write call(() => promise)`,
    );
  }
  return new CallInstruction(fn);
}

/**
 * `call(fn)` for the library's own waits on the host, described in reports
 * as `what` rather than as an anonymous function's Promise.
 * @internal
 */
export function callAs<T>(fn: () => PromiseLike<T>, what: string): Operation<T> {
  return new CallInstruction(fn, what);
}

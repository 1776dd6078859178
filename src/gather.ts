/**
 * `gather`: run bodies concurrently and collect their results in input order.
 *
 * @module
 */

import { GroupInstruction } from "./_group.ts";
import type { Operation } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import type { BodyResult, Task, TaskBody } from "./task.ts";

class GatherInstruction<T> extends GroupInstruction<T[]> {
  #results: unknown[] = [];
  // The first child that did not finish: its error is the gather's.
  #firstUnfinished: Task<unknown> | null = null;

  describe(): string {
    return `gather of ${this.countText()} (${this.remaining} still running)`;
  }

  protected childSettled(child: Task<unknown>, index: number, loop: Loop): void {
    if (child._state === "done") {
      this.#results[index] = child._slot;
    } else if (this.#firstUnfinished === null) {
      this.#firstUnfinished = child;
      this.cancelUnsettled(loop, `task "${child.name}" of the same gather failed`);
    } else if (child._state === "failed") {
      this.lateFailures.push(child);
    }
  }

  protected override undelivered(): Task<unknown>[] {
    const first = this.#firstUnfinished;
    return first?._state === "failed" ? [first, ...this.lateFailures] : this.lateFailures;
  }

  protected finish(waiter: Task<unknown>, loop: Loop): void {
    const first = this.#firstUnfinished;
    if (first !== null) loop._enqueueThrow(waiter, first._slot);
    else loop._enqueue(waiter, this.#results);
  }

  protected forget(): void {
    this.#firstUnfinished = null;
  }
}

/**
 * Runs every body as a child task, concurrently, and evaluates to their
 * results **in input order** (not finish order).
 *
 * Structured, like asyncio's `TaskGroup`: as soon as any child fails (or is
 * cancelled from elsewhere) — whichever it is, not only the first in the
 * list — gather cancels the others, waits until they have finished their
 * cleanup, and then throws that first error. A cancelled child whose
 * cleanup fails is not dropped: its `TaskFailedError` reaches the gathering
 * task after that, at its next `yield*`. If the gathering task itself is
 * cancelled (or sent another error) while it waits, the children are
 * cancelled too, and the error is thrown at its `yield*` once their
 * cleanup has run.
 *
 * @typeParam B The bodies: a list of bodies that may return different types,
 * whose results are typed in order (`[string, number]` for a body returning
 * a string and one returning a number).
 * @param bodies Generator objects, generator functions or operations.
 * @returns An operation evaluating to the results in input order.
 * @throws {TypeError} at the call when a body is not something a task can run,
 * or when `bodies` is not a list of them (one body, such as `gather(worker())`);
 * a generator object is never taken for a list (spread one that yields
 * bodies: `gather([...bodies()])`).
 *
 * @example Usage
 * ```ts
 * import { gather, runSync, yieldNow } from "@genloop/genloop";
 *
 * function* worker(n: number) {
 *   for (let i = 0; i < n; i++) yield* yieldNow();
 *   return n;
 * }
 * const results = runSync(function* main() {
 *   return yield* gather([worker(3), worker(1), worker(2)]);
 * });
 * if (results.join() !== "3,1,2") throw new Error("unexpected");
 * ```
 */
export function gather<const B extends readonly TaskBody<unknown>[]>(
  bodies: B,
): Operation<{ -readonly [K in keyof B]: BodyResult<B[K]> }>;
/**
 * Runs every body as a child task and evaluates to their results in input
 * order (the form for any iterable of bodies of one type; see above).
 *
 * @typeParam T What each body returns.
 * @param bodies Generator objects, generator functions or operations.
 * @returns An operation evaluating to the results in input order.
 */
export function gather<T>(bodies: Iterable<TaskBody<T>>): Operation<T[]>;
export function gather<T>(bodies: Iterable<TaskBody<T>>): Operation<T[]> {
  return new GatherInstruction<T>(bodies, "gather()");
}

/**
 * `race`: the first body to finish wins; the others are cancelled.
 *
 * @module
 */

import { GroupInstruction } from "./_group.ts";
import type { Operation } from "./instruction.ts";
import { resumeWithOutcome } from "./join.ts";
import type { Loop } from "./loop.ts";
import type { BodyResult, Task, TaskBody } from "./task.ts";

class RaceInstruction<T> extends GroupInstruction<T> {
  #winner: Task<unknown> | null = null;

  describe(): string {
    return `race of ${this.countText()}`;
  }

  protected childSettled(child: Task<unknown>, _index: number, loop: Loop): void {
    if (this.#winner !== null) {
      if (child._state === "failed") this.lateFailures.push(child);
      return;
    }
    this.#winner = child;
    this.cancelUnsettled(loop, `task "${child.name}" won the race`);
  }

  protected override undelivered(): Task<unknown>[] {
    const winner = this.#winner;
    return winner?._state === "failed" ? [winner, ...this.lateFailures] : this.lateFailures;
  }

  protected finish(waiter: Task<unknown>, loop: Loop): void {
    resumeWithOutcome(loop, waiter, this.#winner!);
  }

  protected forget(): void {
    this.#winner = null;
  }
}

/**
 * Runs every body as a child task; the first to settle wins. The others are
 * cancelled and their cleanup has finished before `race` evaluates to the
 * winner's result (or throws the winner's error, if it failed). A loser
 * whose cleanup fails is not dropped: its `TaskFailedError` is thrown here
 * instead of the winner's result (after a failed winner's error, at the
 * next `yield*`). If the racing task itself is cancelled (or sent another
 * error) while it waits, every body is cancelled, and the error is thrown
 * at its `yield*` once their cleanup has run.
 *
 * @typeParam B The bodies: a list of bodies that may return different types
 * (the result is typed as any of them: `string | void` for a body returning
 * a string raced against `sleep(ms)`).
 * @param bodies At least one generator object, generator function or operation.
 * @returns An operation evaluating to the winner's result.
 * @throws {RangeError} at the call when `bodies` is empty.
 * @throws {TypeError} at the call when a body is not something a task can run,
 * or when `bodies` is not a list of them (one body, such as `race(worker())`);
 * a generator object is never taken for a list (spread one that yields
 * bodies: `race([...bodies()])`).
 *
 * @example Usage
 * ```ts
 * import { race, runSync, sleep, VirtualClock, Loop } from "@genloop/genloop";
 *
 * function* after(ms: number, value: string) {
 *   yield* sleep(ms);
 *   return value;
 * }
 * const loop = new Loop({ clock: new VirtualClock() });
 * const winner = loop.runSync(function* main() {
 *   return yield* race([after(20, "slow"), after(10, "fast")]);
 * });
 * if (winner !== "fast" || loop.time() !== 10) throw new Error("unexpected");
 * ```
 */
export function race<const B extends readonly TaskBody<unknown>[]>(
  bodies: B,
): Operation<BodyResult<B[number]>>;
/**
 * Runs every body as a child task; the first to settle wins (the form for
 * any iterable of bodies of one type; see above).
 *
 * @typeParam T What the bodies return.
 * @param bodies At least one generator object, generator function or operation.
 * @returns An operation evaluating to the winner's result.
 */
export function race<T>(bodies: Iterable<TaskBody<T>>): Operation<T>;
export function race<T>(bodies: Iterable<TaskBody<T>>): Operation<T> {
  const instruction = new RaceInstruction<T>(bodies, "race()");
  if (instruction.bodyCount === 0) {
    throw new RangeError(
      "Cannot race() an empty list of bodies: it would never finish; pass at least one",
    );
  }
  return instruction;
}

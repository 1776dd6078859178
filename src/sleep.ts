/**
 * `sleep`: suspend a task until the loop's clock reaches a deadline.
 *
 * @module
 */

import { describeValue } from "./_body.ts";
import { Instruction, type Operation } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import type { Task } from "./task.ts";
import type { Timer } from "./timers.ts";
import { yieldNow } from "./yield_now.ts";

class SleepInstruction extends Instruction<void> implements Timer {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  // Until armed (see Timer.deadline).
  deadline = NaN;
  armed = false;
  order = 0;
  readonly delay: number;
  #waiter: Task<unknown> | null = null;

  constructor(ms: number) {
    super();
    this.delay = ms;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    // An infinite sleep arms no timer: only cancellation can end it, and a
    // deadlock report can name it.
    if (this.delay === Infinity) return;
    this.#waiter = task;
    this.deadline = loop.time() + this.delay;
    loop._addTimer(this);
  }

  fire(loop: Loop): void {
    const waiter = this.#waiter!;
    this.#waiter = null;
    loop._enqueue(waiter, undefined);
  }

  override undo(_task: Task<unknown>, loop: Loop): void {
    this.#waiter = null;
    loop._removeTimer(this);
  }

  describe(): string {
    // Not armed: yielded without `*` (or already fired), so it has no deadline.
    return this.armed ? `sleep(${this.delay}) until t=${this.deadline} ms` : `sleep(${this.delay})`;
  }
}

/**
 * Suspends the task for `ms` milliseconds of the loop's clock; other tasks
 * run meanwhile. It never wakes early. `sleep(0)` is `yieldNow()`;
 * `sleep(Infinity)` waits until cancelled. Cancelling a sleeping task removes
 * its timer at once.
 *
 * @param ms How long, in milliseconds; a number >= 0.
 * @returns An operation that completes after the delay.
 * @throws {RangeError} at the call when `ms` is negative or not a number.
 *
 * @example Usage
 * ```ts
 * import { Loop, sleep, VirtualClock } from "@genloop/genloop";
 *
 * const loop = new Loop({ clock: new VirtualClock() });
 * loop.runSync(function* main() {
 *   yield* sleep(250);
 * });
 * if (loop.time() !== 250) throw new Error("unexpected");
 * ```
 */
export function sleep(ms: number): Operation<void> {
  if (typeof ms !== "number" || !(ms >= 0)) {
    throw new RangeError(
      `Cannot sleep(${describeDelay(ms)}): the delay must be a number of milliseconds >= 0`,
    );
  }
  if (ms === 0) return yieldNow();
  return new SleepInstruction(ms);
}

/**
 * A bad delay as the error message shows it: a number as written, anything
 * else with its type, so that `sleep("5")` does not read as `sleep(5)`.
 * @internal
 */
export function describeDelay(ms: unknown): string {
  return typeof ms === "number" ? String(ms) : describeValue(ms);
}

/**
 * `yieldNow` and `suspend`: the two waits that need no state, so one shared
 * instruction serves every task and waiting allocates nothing.
 *
 * @module
 */

import {
  Instruction,
  type Operation,
  RESUME_SHARED,
  SharedOperation,
  type Yielded,
} from "./instruction.ts";
import type { Loop } from "./loop.ts";
import type { Task } from "./task.ts";

class YieldNowInstruction extends Instruction<void> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  // The loop's step recognises this instruction and does the same without
  // dispatching to it: yieldNow is what task switches are made of.
  perform(task: Task<unknown>, loop: Loop): void {
    loop._enqueue(task, RESUME_SHARED);
  }

  describe(): string {
    return "its turn (yieldNow)";
  }
}

class SuspendInstruction extends Instruction<never> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  perform(): void {}

  describe(): string {
    return "nothing: it is suspended until cancelled (suspend)";
  }
}

/** @internal The loop recognises this one to skip dispatch. */
export const YIELD_NOW_INSTRUCTION: Instruction = new YieldNowInstruction();
const YIELD_NOW: Operation<void> = new SharedOperation<void>(YIELD_NOW_INSTRUCTION);
/**
 * @internal What every `yield* yieldNow()` hands the loop: one object, which
 * the loop recognises by identity, before it reads any property of a step
 * (in a program with many kinds of instruction, each such read is a
 * megamorphic lookup).
 */
export const YIELD_NOW_STEP: IteratorResult<Yielded, void> = YIELD_NOW[Symbol.iterator]()
  .next();
const SUSPEND: Operation<never> = new SharedOperation<never>(new SuspendInstruction());

/**
 * Gives the turn to every other ready task, then continues (asyncio's
 * `sleep(0)`). Ready tasks run in the order they became ready.
 *
 * @returns An operation that completes on a later turn.
 *
 * @example Usage
 * ```ts
 * import { runSync, spawn, yieldNow } from "@genloop/genloop";
 *
 * const order: string[] = [];
 * runSync(function* main() {
 *   yield* spawn(function* other() {
 *     order.push("other");
 *   });
 *   yield* yieldNow();
 *   order.push("main");
 * });
 * if (order.join() !== "other,main") throw new Error("unexpected");
 * ```
 */
export function yieldNow(): Operation<void> {
  return YIELD_NOW;
}

/**
 * Waits forever: only an error thrown at it ends it, its cancellation's
 * `CancelledError` or a failure reported to the task (an unjoined child's
 * `TaskFailedError`). Useful for a task that holds a resource until told
 * to stop.
 *
 * @returns An operation that never completes normally.
 *
 * @example Usage
 * ```ts
 * import { run, spawn, suspend, yieldNow } from "@genloop/genloop";
 *
 * let cleaned = false;
 * await run(function* main() {
 *   yield* spawn(function* holder() {
 *     try {
 *       yield* suspend();
 *     } finally {
 *       cleaned = true;
 *     }
 *   });
 *   yield* yieldNow();
 * });
 * if (!cleaned) throw new Error("unexpected");
 * ```
 */
export function suspend(): Operation<never> {
  return SUSPEND;
}

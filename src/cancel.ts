/**
 * `cancel`: cancel a task and wait until its cleanup has finished.
 *
 * @module
 */

import { checkTask } from "./_invalid.ts";
import { TaskFailedError } from "./errors.ts";
import { Instruction, type Operation } from "./instruction.ts";
import { belongsTo } from "./join.ts";
import type { Loop } from "./loop.ts";
import { parentOf, type Task, type TaskObserver } from "./task.ts";
import { addObserver, removeObserver } from "./task_tree.ts";

class CancelInstruction extends Instruction<void> implements TaskObserver {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #target: Task<unknown>;
  readonly #reason: unknown;
  #waiter: Task<unknown> | null = null;
  // The target's body had failed already when the cancel reached it (it
  // waited for its children's cleanup): its failure is not one "while
  // cancelled".
  #failedBefore = false;

  constructor(target: Task<unknown>, reason: unknown) {
    super();
    this.#target = target;
    this.#reason = reason;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const target = this.#target;
    // Cancelled through this loop, a task of another one would be queued
    // (its cleanup run) here, and its settling would wake the canceller in
    // its own loop: refused, as join() refuses it.
    if (!belongsTo(target, task, loop)) {
      throw new Error(
        `Task "${task.name}" cannot cancel task "${target.name}" with yield* cancel(): that task belongs to another Loop; call task.cancel() to cancel it without waiting`,
      );
    }
    // Cancelling yourself, or a task whose cancellation reaches back to you
    // (a parent waiting on a gather you are part of), queues your own
    // CancelledError; the loop then undoes the wait registered below.
    this.#failedBefore = loop._bodyFailed(target);
    loop._cancel(target, this.#reason);
    if (target === task) {
      // Not cancelled before, the task is now queued with its error (see
      // above). Cancelled already, it is running its cleanup, which it
      // cannot wait for: the cancel is moot, as a second one always is.
      if (task._state === "waiting") loop._resumeNow(task, undefined);
      return;
    }
    // In its cleanup, a task cannot wait for an ancestor: the ancestor
    // settles only after this task, and no cancellation will come to end
    // the wait. The ancestor is cancelled; the cleanup goes on.
    if (task._state === "waiting" && loop._isCleaningUp(task) && isAncestor(target, task)) {
      loop._resumeNow(task, undefined);
      return;
    }
    if (target.settled) {
      loop._resumeNow(task, undefined);
      return;
    }
    this.#waiter = task;
    addObserver(target, this);
  }

  taskSettled(target: Task<unknown>, loop: Loop): void {
    const waiter = this.#waiter;
    if (waiter === null) return;
    this.#waiter = null;
    // As an observer this instruction keeps the failure from being reported
    // to the target's parent: dropping it here would lose it for good.
    if (target._state === "failed") {
      const circumstance = this.#failedBefore
        ? "before cancel() reached it"
        : "while cancelled by cancel()";
      loop._enqueueThrow(waiter, new TaskFailedError(target.name, target._slot, circumstance));
    } else {
      loop._enqueue(waiter, undefined);
    }
  }

  override undo(_task: Task<unknown>, _loop: Loop): void {
    this.#waiter = null;
    removeObserver(this.#target, this);
  }

  describe(): string {
    return `task "${this.#target.name}" to finish its cleanup (cancel)`;
  }
}

/**
 * Cancels `task` and waits until it has settled, cleanup included. Unlike
 * `join`, it does not throw the task's `CancelledError`: it completes
 * normally unless the task fails. If it does (its cleanup threw, or a
 * child's failure reached it), that failure is thrown here as a
 * `TaskFailedError` naming the task, with the error as its `cause`: the
 * canceller waits on the task as a joiner does, so the failure is not
 * reported to the task's parent (joiners, if any, get it too). Cancelling a
 * task that has settled already completes at once. A task cancelling itself
 * gets its `CancelledError` at this `yield*`; in its cleanup, once
 * cancelled, it cannot wait for that cleanup, and `cancel` completes at
 * once; so does cancelling its parent (or any ancestor) from there, which
 * settles only after it. `task.cancel()` is the
 * fire-and-forget form; a failure after it is reported as any unjoined
 * failure is, to the task's parent.
 *
 * @param task The task to cancel, of the same loop (`task.cancel()`
 * cancels a task of any loop, without waiting).
 * @param reason Why; kept as the `CancelledError`'s `reason`.
 * @returns An operation that completes when the task has settled.
 * @throws {TaskFailedError} when the task fails rather than ending cancelled.
 * @throws {TypeError} at the call when `task` is no Task; an `Error` at the
 * `yield*` when it is a task of another Loop.
 *
 * @example Usage
 * ```ts
 * import { cancel, run, sleep, spawn, VirtualClock } from "@genloop/genloop";
 *
 * const log: string[] = [];
 * await run(function* main() {
 *   const worker = yield* spawn(function* worker() {
 *     try {
 *       yield* sleep(1_000);
 *     } finally {
 *       yield* sleep(5); // cleanup that waits still runs to the end
 *       log.push("cleaned up");
 *     }
 *   });
 *   yield* sleep(1);
 *   yield* cancel(worker);
 *   log.push(`worker ${worker.state}`);
 * }, { clock: new VirtualClock() });
 * if (log.join() !== "cleaned up,worker cancelled") throw new Error(log.join());
 * ```
 */
export function cancel(task: Task<unknown>, reason?: unknown): Operation<void> {
  checkTask(task, "cancel()");
  return new CancelInstruction(task, reason);
}

/** Whether `ancestor` is `task`'s parent, or its parent's, and so on. */
function isAncestor(ancestor: Task<unknown>, task: Task<unknown>): boolean {
  for (let parent = parentOf(task); parent !== null; parent = parentOf(parent)) {
    if (parent === ancestor) return true;
  }
  return false;
}

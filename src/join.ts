/**
 * `join`: wait for a task to settle and take its result, or its error.
 *
 * @module
 */

import { checkTask } from "./_invalid.ts";
import { Instruction, type Operation, refuseSecondWaiter } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import { canFinishInStep, loopOf, running, type Task, type TaskObserver } from "./task.ts";
import { addObserver, removeObserver } from "./task_tree.ts";

/** Resumes `waiter` with how `settled` ended: its result, or its error thrown. */
export function resumeWithOutcome(
  loop: Loop,
  waiter: Task<unknown>,
  settled: Task<unknown>,
): void {
  if (settled._state === "done") loop._enqueue(waiter, settled._slot);
  else loop._enqueueThrow(waiter, settled._slot);
}

/**
 * Whether `target` belongs to `loop`, which runs `joiner`. Joining one's own
 * child or sibling, the common cases, needs no walk to the tree's root.
 * @internal
 */
export function belongsTo(target: Task<unknown>, joiner: Task<unknown>, loop: Loop): boolean {
  const parent = target._parent;
  return parent === joiner || parent === joiner._parent || loopOf(target) === loop;
}

class JoinInstruction<T> extends Instruction<T> implements TaskObserver {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #target: Task<T>;
  #waiter: Task<unknown> | null = null;

  constructor(target: Task<T>) {
    super();
    this.#target = target;
  }

  /**
   * Inside a task's step, joining a task that has already settled finishes
   * at once: its result is returned, or its error thrown, right here.
   */
  override next(resumeValue?: unknown): IteratorResult<Instruction, T> {
    // Written out rather than super.next() / finishNow(): the base class's
    // accesses to value and done are shared by every instruction class, so
    // megamorphic in any program using a few kinds; these here see only
    // joins. Measured, a third of the cost a varied program adds to a spawn
    // and join.
    // A second yield* (see Instruction.next).
    if (this.done) return super.next(resumeValue);
    if (this.value === this) {
      refuseSecondWaiter(this);
      this.value = resumeValue;
      this.done = true;
      this._waitedOnBy = null;
      return this as IteratorResult<Instruction, T>;
    }
    const task = canFinishInStep();
    const target = this.#target as Task<unknown>;
    if (task === null || !target.settled || !belongsTo(target, task, running.loop!)) {
      this.value = this;
      return this as IteratorResult<Instruction, T>;
    }
    this.done = true;
    if (target._state !== "done") throw target._slot;
    this.value = target._slot;
    return this as IteratorResult<Instruction, T>;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const target = this.#target as Task<unknown>;
    if (target === task) {
      throw new Error(
        `Task "${task.name}" cannot join itself: it would wait forever; join a task it spawned instead`,
      );
    }
    if (!belongsTo(target, task, loop)) {
      throw new Error(
        `Task "${task.name}" cannot join task "${target.name}": that task belongs to another Loop; join it from a task of that Loop, or hand its result over through a Promise (yield* call(() => promise))`,
      );
    }
    if (target._state === "done") {
      loop._resumeNow(task, target._slot);
    } else if (target.settled) {
      loop._throwNow(task, target._slot);
    } else {
      this.#waiter = task;
      addObserver(target, this);
    }
  }

  taskSettled(target: Task<unknown>, loop: Loop): void {
    const waiter = this.#waiter;
    if (waiter === null) return;
    this.#waiter = null;
    resumeWithOutcome(loop, waiter, target);
  }

  override undo(_task: Task<unknown>, _loop: Loop): void {
    this.#waiter = null;
    removeObserver(this.#target as Task<unknown>, this);
  }

  describe(): string {
    return `task "${this.#target.name}" to finish (join)`;
  }
}

/**
 * Waits for `task` to settle. Evaluates to its return value; if it failed,
 * its error is thrown here (catch it like any error); if it was cancelled,
 * a `CancelledError` is thrown. A cancelled task is joined only once its
 * cleanup (including waits inside `finally`) has finished.
 *
 * @typeParam T What the task returns.
 * @param task A task of the same loop; not the current task.
 * @returns An operation evaluating to the task's result.
 * @throws the task's error, at the `yield*`, when it failed or was
 * cancelled; a `TypeError` at the call when `task` is no Task; an `Error`
 * at the `yield*` when it is the current task or a task of another Loop.
 *
 * @example Usage
 * ```ts
 * import { join, runSync, spawn } from "@genloop/genloop";
 *
 * runSync(function* main() {
 *   const failing = yield* spawn(function* failing() {
 *     throw new Error("boom");
 *   });
 *   try {
 *     yield* join(failing);
 *     throw new Error("unreachable");
 *   } catch (error) {
 *     if ((error as Error).message !== "boom") throw error;
 *   }
 * });
 * ```
 */
export function join<T>(task: Task<T>): Operation<T> {
  checkTask(task, "join()");
  return new JoinInstruction(task);
}

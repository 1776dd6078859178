/**
 * The end of a run. The root tasks still alive when the run's main task
 * settles (detached and `loop.spawn` tasks) are cancelled by the loop, and
 * the run waits until each has finished its cleanup, so that nothing of
 * theirs (a socket, a timer, a failure) outlives the run or turns up in the
 * next one.
 *
 * @module
 */

import { TaskFailedError } from "./errors.ts";
import { Instruction } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import type { Task, TaskObserver } from "./task.ts";
import { addObserver, removeObserver } from "./task_tree.ts";

/**
 * Waits until every leftover task has settled, reporting each failure
 * other than its cancellation. It observes them from its construction on,
 * before any of them runs its cleanup, so that no failure is taken for an
 * unjoined one.
 */
export class LeftoversInstruction extends Instruction<void> implements TaskObserver {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #leftovers: Task<unknown>[];
  readonly #report: (error: unknown) => void;
  // The leftovers whose body had failed before the run's end cancelled them.
  readonly #failedBefore: Set<Task<unknown>>;
  #remaining: number;
  #waiter: Task<unknown> | null = null;

  /**
   * @param leftovers The tasks to wait for, none of them settled.
   * @param report Takes a leftover's failure, as an unjoined one.
   * @param failedBefore Whether a leftover's body has failed already.
   */
  constructor(
    leftovers: Task<unknown>[],
    report: (error: unknown) => void,
    failedBefore: (task: Task<unknown>) => boolean,
  ) {
    super();
    this.#leftovers = leftovers;
    this.#report = report;
    this.#failedBefore = new Set(leftovers.filter(failedBefore));
    this.#remaining = leftovers.length;
    for (const task of leftovers) addObserver(task, this);
  }

  perform(task: Task<unknown>, loop: Loop): void {
    if (this.#remaining === 0) loop._resumeNow(task, undefined);
    else this.#waiter = task;
  }

  taskSettled(task: Task<unknown>, loop: Loop): void {
    if (task._state === "failed") {
      // One that failed before the run ended is an unjoined failure like any
      // other; the others failed in the cleanup their cancellation started.
      const circumstance = this.#failedBefore.has(task)
        ? undefined
        : "while cancelled at the end of the run";
      this.#report(new TaskFailedError(task.name, task._slot, circumstance));
    }
    this.#remaining--;
    const waiter = this.#waiter;
    if (this.#remaining > 0 || waiter === null) return;
    this.#waiter = null;
    loop._enqueue(waiter, undefined);
  }

  override undo(_task: Task<unknown>, _loop: Loop): void {
    // The run is failing anyway: what is still left is reported unjoined.
    this.#waiter = null;
    for (const task of this.#leftovers) {
      if (!task.settled) removeObserver(task, this);
    }
  }

  describe(): string {
    const tasks = this.#remaining === 1 ? "task" : "tasks";
    return `${this.#remaining} ${tasks} left at the end of the run to finish their cleanup`;
  }
}

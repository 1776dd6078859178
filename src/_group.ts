/**
 * What `gather` and `race` share: spawn a group of child tasks, observe them
 * all, and resume the waiting task once every child has settled, so no
 * child outlives the operation.
 *
 * @module
 */

import { startBody, type StartedBody } from "./_body.ts";
import { Instruction } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import type { Task, TaskBody, TaskObserver } from "./task.ts";

/** A group of child tasks that one waiting task observes. */
export abstract class GroupInstruction<T> extends Instruction<T> implements TaskObserver {
  readonly #bodies: StartedBody<unknown>[];
  /** The children, in input order. */
  protected tasks: Task<unknown>[] = [];
  /** Children not settled yet. */
  protected remaining = 0;
  /** The task waiting on the group; null once resumed or interrupted. */
  protected waiter: Task<unknown> | null = null;
  #firstId = 0;

  constructor(bodies: Iterable<TaskBody<unknown>>, where: string) {
    super();
    this.#bodies = Array.from(bodies, (body) => startBody(body, where));
  }

  /** How many bodies the group was given (before it starts). */
  get bodyCount(): number {
    return this.#bodies.length;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    if (this.#bodies.length === 0) {
      this.finishEmpty(task, loop);
      return;
    }
    this.waiter = task;
    this.remaining = this.#bodies.length;
    for (const body of this.#bodies) {
      const child = loop._spawn(body.iter, body.name, task);
      if (this.tasks.length === 0) this.#firstId = child.id;
      this.tasks.push(child);
      loop._observe(child, this);
    }
    this.#bodies.length = 0;
  }

  taskSettled(child: Task<unknown>, loop: Loop): void {
    this.remaining--;
    if (this.waiter === null) return;
    // Children of one group get consecutive ids: the index is O(1).
    this.childSettled(child, child.id - this.#firstId, loop);
    if (this.remaining === 0) {
      const waiter = this.waiter;
      this.waiter = null;
      this.finish(waiter, loop);
    }
  }

  override undo(_task: Task<unknown>, loop: Loop): void {
    this.waiter = null;
    this.cancelUnsettled(loop, "the waiting task was interrupted");
  }

  /** Cancels every child that has not settled. */
  protected cancelUnsettled(loop: Loop, reason: string): void {
    for (const child of this.tasks) {
      if (!child.settled) loop._cancel(child, reason);
    }
  }

  /** Resumes the waiting task when there were no bodies at all. */
  protected abstract finishEmpty(task: Task<unknown>, loop: Loop): void;
  /** Records a settled child (index in input order). */
  protected abstract childSettled(child: Task<unknown>, index: number, loop: Loop): void;
  /** Resumes the waiting task once every child has settled. */
  protected abstract finish(waiter: Task<unknown>, loop: Loop): void;
}

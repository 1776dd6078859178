/**
 * The task tree: who spawned whom, and who is told when a task settles.
 *
 * Children form an intrusive doubly-linked list through the tasks' own
 * sibling fields, so adding and removing a child is O(1) and allocates
 * nothing; root tasks (a run's main task and detached tasks) form the same
 * kind of list here. Observers (joiners, `gather`, `race`, `timeout`) are
 * kept as one observer or an array, since most tasks have at most one.
 *
 * @module
 */

import type { Instruction } from "./instruction.ts";
import { parentOf, type Task, type TaskObserver } from "./task.ts";

/** Adds `observer` to those told when `task` settles. */
export function addObserver(task: Task<unknown>, observer: TaskObserver): void {
  const observers = task._observers;
  if (observers === null) task._observers = observer;
  else if (Array.isArray(observers)) observers.push(observer);
  else task._observers = [observers, observer];
}

/** Removes `observer` added with `addObserver`. */
export function removeObserver(task: Task<unknown>, observer: TaskObserver): void {
  const observers = task._observers;
  if (observers === observer) {
    task._observers = null;
  } else if (Array.isArray(observers)) {
    const index = observers.indexOf(observer);
    if (index >= 0) observers.splice(index, 1);
    if (observers.length === 0) task._observers = null;
  }
}

/** The live tasks of one loop, as a forest rooted at its root tasks. */
export class TaskTree {
  #firstRoot: Task<unknown> | null = null;

  /** Adds `task` to its parent's children, or to the roots. */
  link(task: Task<unknown>): void {
    const parent = parentOf(task);
    const first = parent === null ? this.#firstRoot : parent._firstChild;
    task._nextSibling = first;
    if (first !== null) first._prevSibling = task;
    if (parent === null) this.#firstRoot = task;
    else parent._firstChild = task;
  }

  /** Removes a settled `task` from its parent's children (or the roots). */
  unlink(task: Task<unknown>): void {
    const prev = task._prevSibling;
    const next = task._nextSibling;
    const parent = parentOf(task);
    if (prev !== null) prev._nextSibling = next;
    else if (parent !== null) parent._firstChild = next;
    else if (this.#firstRoot === task) this.#firstRoot = next;
    if (next !== null) next._prevSibling = prev;
    task._prevSibling = null;
    task._nextSibling = null;
  }

  /**
   * One line per waiting task: its name and what it waits for.
   *
   * @param isCancelled Whether cancel() has reached a task.
   */
  describeBlocked(isCancelled: (task: Task<unknown>) => boolean): string[] {
    const lines: string[] = [];
    const stack: Task<unknown>[] = [];
    pushSiblings(stack, this.#firstRoot);
    while (stack.length > 0) {
      const task = stack.pop()!;
      if (task.state === "waiting") {
        // A cancelled task still waiting is cleaning up, or ignoring its
        // cancellation: say so rather than hide it.
        const cancelled = isCancelled(task) ? " (cancelled, still running)" : "";
        const wait = task._slot as Instruction;
        lines.push(`task "${task.name}"${cancelled} waits for ${wait.describe()}`);
      }
      pushSiblings(stack, task._firstChild);
    }
    return lines.reverse();
  }
}

function pushSiblings(stack: Task<unknown>[], first: Task<unknown> | null): void {
  for (let task = first; task !== null; task = task._nextSibling) stack.push(task);
}

/**
 * The task tree: who spawned whom, and who is told when a task settles.
 *
 * A task's children form a circular singly-linked list in spawn order,
 * through their own `_nextSibling` fields; the parent's `TaskLinks` points
 * at the newest, whose next is the oldest. Root tasks (a run's main task
 * and detached tasks) form the same kind of list here. Spawning appends at
 * the newest end in O(1).
 *
 * Unlinking any child at once would need a back link in every task. So
 * only the oldest child is unlinked when it settles, together with any
 * settled ones right behind it: that covers the usual orders (spawn then
 * join, `gather`, batches run first-in first-out). Another settling child
 * is counted as dead, and the list sheds its dead members when they
 * outnumber the live ones. Each such pass is O(n) and is paid for by the
 * n/2 settlements before it, so adding and removing a child stay O(1)
 * amortized, and a task record has one link field, not two.
 *
 * Observers (joiners, `gather`, `race`, `timeout`) live in the same
 * `TaskLinks`, kept as one observer or an array since most tasks have at
 * most one. A task with no children and at most one observer keeps that
 * observer in its links field itself: the common leaf tasks (joined,
 * gathered, or waited for by nobody) never allocate a `TaskLinks`.
 *
 * @module
 */

import type { Instruction } from "./instruction.ts";
import { parentOf, type Task, type TaskObserver } from "./task.ts";

// Below this many dead children a pass to shed them is not worth its cost.
const MIN_DEAD_TO_SHED = 32;

/**
 * What a task has only while it has children or more than one observer:
 * its child list and who waits for it.
 * @internal
 */
export class TaskLinks {
  // Invariant: the oldest listed child (newestChild._nextSibling) has not
  // settled.
  /** The newest child still listed; its next is the oldest. */
  newestChild: Task<unknown> | null = null;
  /** Listed children that have not settled. */
  live = 0;
  /** Listed children that have settled. */
  dead = 0;
  /** Who to tell when the task settles. */
  observers: TaskObserver | TaskObserver[] | null = null;
}

/** The links of `task`, made now if it had none or only one observer. */
function linksOf(task: Task<unknown>): TaskLinks {
  const held = task._links;
  if (held instanceof TaskLinks) return held;
  const links = new TaskLinks();
  links.observers = held;
  task._links = links;
  return links;
}

/** Whether `task` has children that have not settled. */
export function hasLiveChildren(task: Task<unknown>): boolean {
  const links = task._links;
  return links !== null && links instanceof TaskLinks && links.live > 0;
}

/**
 * The children of `task` that have not settled, newest first: a copy, so
 * that the caller may change the list while it goes through them.
 */
export function liveChildren(task: Task<unknown>): Task<unknown>[] {
  const links = task._links;
  return links instanceof TaskLinks ? liveNewestFirst(links) : [];
}

// A callback made once: a closure made per call would be a new function
// each time, and optimized code that inlined it would be thrown away once
// it is garbage collected.
function isLive(task: Task<unknown>): boolean {
  return !task.settled;
}

function liveNewestFirst(links: TaskLinks): Task<unknown>[] {
  return listed(links).filter(isLive).reverse();
}

/**
 * The children still listed under `task`, settled ones included, oldest
 * first (for tests of the shedding bounds).
 * @internal
 */
export function listedChildren(task: Task<unknown>): Task<unknown>[] {
  const links = task._links;
  return links instanceof TaskLinks ? listed(links) : [];
}

/** The listed children, oldest first. */
function listed(links: TaskLinks): Task<unknown>[] {
  const tasks: Task<unknown>[] = [];
  const newest = links.newestChild;
  if (newest === null) return tasks;
  let task = newest;
  do {
    task = task._nextSibling!;
    tasks.push(task);
  } while (task !== newest);
  return tasks;
}

/** Adds `observer` to those told when `task` settles. */
export function addObserver(task: Task<unknown>, observer: TaskObserver): void {
  if (task._links === null) {
    // The common case, a leaf task with one joiner, allocates nothing.
    task._links = observer;
    return;
  }
  const links = linksOf(task);
  const observers = links.observers;
  if (observers === null) links.observers = observer;
  else if (Array.isArray(observers)) observers.push(observer);
  else links.observers = [observers, observer];
}

/** Removes `observer` added with `addObserver`. */
export function removeObserver(task: Task<unknown>, observer: TaskObserver): void {
  const links = task._links;
  if (links === observer) {
    task._links = null;
    return;
  }
  if (!(links instanceof TaskLinks)) return;
  const observers = links.observers;
  if (observers === observer) {
    links.observers = null;
  } else if (Array.isArray(observers)) {
    const index = observers.indexOf(observer);
    if (index >= 0) observers.splice(index, 1);
    if (observers.length === 0) links.observers = null;
  }
}

/**
 * Takes the observers of a settling `task`, each to be told once, and drops
 * its links: its children have all settled by now.
 */
export function takeObservers(task: Task<unknown>): TaskObserver | TaskObserver[] | null {
  const held = task._links;
  task._links = null;
  return held instanceof TaskLinks ? held.observers : held;
}

/** The live tasks of one loop, as a forest rooted at its root tasks. */
export class TaskTree {
  #roots = new TaskLinks();

  /**
   * Adds `task` to its parent's children, or to the roots.
   *
   * @throws {TypeError} when its newest sibling runs the same generator
   * object, and then changes nothing.
   */
  link(task: Task<unknown>): void {
    const parent = parentOf(task);
    const links = parent === null ? this.#roots : linksOf(parent);
    const newest = links.newestChild;
    if (newest === null) {
      task._nextSibling = task;
    } else {
      // The slip `const w = worker(); spawn(w); spawn(w)` would have two
      // tasks resume one generator, each with the other's wake-ups. Only
      // the newest sibling is compared, as gather compares neighbours: a
      // registry of every running generator would cost each spawn a
      // WeakMap entry. A settled sibling's iterator is replaced, so only a
      // task still running its generator refuses it.
      if (newest._iter === task._iter) throw spawnedTwiceError(newest);
      task._nextSibling = newest._nextSibling;
      newest._nextSibling = task;
    }
    links.newestChild = task;
    links.live++;
  }

  /**
   * Counts a settled `task` out of its parent's children (or the roots),
   * and sheds the dead from that list when they outnumber the live.
   * `parent` is `parentOf(task)`, which the loop has found already.
   * Returns whether the parent has children left that have not settled.
   */
  unlink(task: Task<unknown>, parent: Task<unknown> | null): boolean {
    const links = parent === null ? this.#roots : parent._links as TaskLinks;
    links.live--;
    if (links.newestChild!._nextSibling === task) {
      unlinkOldest(links);
    } else {
      links.dead++;
      if (links.dead >= MIN_DEAD_TO_SHED && links.dead > links.live) shedDead(links);
    }
    return links.live > 0;
  }

  /** The root tasks (main, detached and `loop.spawn` tasks) that have not settled, oldest first. */
  liveRoots(): Task<unknown>[] {
    if (this.#roots.live === 0) return [];
    return listed(this.#roots).filter(isLive);
  }

  /**
   * One line per waiting task: its name and what it waits for.
   *
   * @param isCancelled Whether cancel() has reached a task.
   */
  describeBlocked(isCancelled: (task: Task<unknown>) => boolean): string[] {
    const lines: string[] = [];
    // Popped oldest first.
    const stack = liveNewestFirst(this.#roots);
    while (stack.length > 0) {
      const task = stack.pop()!;
      if (task._state === "waiting") {
        // A cancelled task still waiting is cleaning up, or ignoring its
        // cancellation: say so rather than hide it.
        const cancelled = isCancelled(task) ? " (cancelled, still running)" : "";
        const wait = task._slot as Instruction;
        lines.push(`task "${task.name}"${cancelled} waits for ${wait.describe()}`);
      }
      // Not push(...children): a spread of 100k arguments overflows the stack.
      for (const child of liveChildren(task)) stack.push(child);
    }
    return lines.reverse();
  }
}

/** Unlinks the settled oldest child, and the settled ones right behind it. */
function unlinkOldest(links: TaskLinks): void {
  const newest = links.newestChild!;
  let oldest = newest._nextSibling!;
  for (;;) {
    const next = oldest._nextSibling!;
    oldest._nextSibling = null;
    if (oldest === newest) {
      links.newestChild = null;
      return;
    }
    oldest = next;
    if (!oldest.settled) break;
    links.dead--;
  }
  newest._nextSibling = oldest;
}

/**
 * Drops the settled tasks from a child list, clearing their links so that
 * a settled task kept by user code does not keep its siblings alive.
 */
function shedDead(links: TaskLinks): void {
  // Relinked in place, in one walk: this runs on lists of 100k children,
  // where copying them into arrays would cost more than the walk.
  const oldest = links.newestChild!._nextSibling!;
  // The oldest child has not settled, so the kept list starts with it.
  let lastKept = oldest;
  let task = oldest._nextSibling!;
  while (task !== oldest) {
    const next = task._nextSibling!;
    if (task.settled) {
      task._nextSibling = null;
    } else {
      lastKept._nextSibling = task;
      lastKept = task;
    }
    task = next;
  }
  lastKept._nextSibling = oldest;
  links.newestChild = lastKept;
  links.dead = 0;
}

function spawnedTwiceError(owner: Task<unknown>): TypeError {
  return new TypeError(
    `Cannot spawn a task for the generator object that task "${owner.name}" (#${owner.id}) runs already; a generator object can run only once: make one for each task (spawn(worker()) every time, or spawn(worker))`,
  );
}

/**
 * The timer queue: a binary min-heap keyed by (deadline, arming order), so
 * ties fire in the order they were armed.
 *
 * The heap is 4-ary and its keys live in one typed array beside the
 * entries, each node's (deadline, order) pair side by side: the four
 * children of a node share a cache line, the tree is half as deep as a
 * binary one, and sifting never touches the timer objects themselves. At
 * 100k timers cache misses, not comparisons, are what a heap costs.
 *
 * Cancelling is therefore lazy: a cancelled timer is marked and skipped
 * when it reaches the top. So that cancelled timers cannot pile up, the
 * heap is rebuilt without them whenever they outnumber the live ones; each
 * rebuild is O(n) and is paid for by the n/2 cancellations before it.
 *
 * @module
 */

import type { Loop } from "./loop.ts";

/**
 * An entry of the timer heap. Sleep and timeout instructions are their own
 * entries, so arming a timer allocates nothing extra. A timer is armed at
 * most once.
 * @internal
 */
export interface Timer {
  /** When it is due, in the loop's clock milliseconds. */
  deadline: number;
  /** Whether it is in the heap and not cancelled. */
  armed: boolean;
  /** Called once when the deadline has passed. */
  fire(loop: Loop): void;
}

const INITIAL_CAPACITY = 64;
// Below this many cancelled entries a rebuild is not worth its cost.
const MIN_DEAD_FOR_REBUILD = 64;

/** A 4-ary min-heap of timers ordered by deadline, then arming order. */
export class TimerHeap {
  // Invariant: for i < #timers.length, #keys[2i] (deadline) and #keys[2i+1]
  // (arming order) are the key of #timers[i]; every node's key sorts no
  // later than its children's (children of i: 4i+1 … 4i+4).
  #timers: Timer[] = [];
  #keys = new Float64Array(2 * INITIAL_CAPACITY);
  #nextOrder = 0;
  // Cancelled timers still in the heap.
  #dead = 0;

  /** How many timers are armed (cancelled ones are not counted). */
  get size(): number {
    return this.#timers.length - this.#dead;
  }

  /** The earliest live deadline, or `Infinity` when none. */
  nextDeadline(): number {
    this.#dropDeadTop();
    return this.#timers.length > 0 ? this.#keys[0] : Infinity;
  }

  /** Arms `timer` (its `deadline` must be set). O(log n). */
  push(timer: Timer): void {
    timer.armed = true;
    const index = this.#timers.length;
    if (2 * index === this.#keys.length) this.#grow();
    this.#timers.push(timer);
    this.#siftUp(index, timer, timer.deadline, this.#nextOrder++);
  }

  /** Disarms `timer` if armed. O(1); the heap sheds it later. */
  remove(timer: Timer): void {
    if (!timer.armed) return;
    timer.armed = false;
    this.#dead++;
    if (this.#dead === this.#timers.length) {
      // Every entry is cancelled: nothing to keep, nothing to sift.
      this.#timers.length = 0;
      this.#dead = 0;
    } else if (
      this.#dead >= MIN_DEAD_FOR_REBUILD && this.#dead > this.#timers.length - this.#dead
    ) {
      this.#rebuild();
    }
  }

  /** Removes and returns the earliest timer if due at `now`, else `undefined`. */
  popDue(now: number): Timer | undefined {
    this.#dropDeadTop();
    if (this.#timers.length === 0 || this.#keys[0] > now) return undefined;
    const first = this.#popTop();
    first.armed = false;
    return first;
  }

  #dropDeadTop(): void {
    while (this.#timers.length > 0 && !this.#timers[0].armed) {
      this.#popTop();
      this.#dead--;
    }
  }

  #popTop(): Timer {
    const timers = this.#timers;
    const first = timers[0];
    const lastIndex = timers.length - 1;
    const last = timers.pop()!;
    if (lastIndex > 0) {
      this.#siftDown(0, last, this.#keys[2 * lastIndex], this.#keys[2 * lastIndex + 1]);
    }
    return first;
  }

  /** Whether key (deadline, order) sorts before the key at heap `index`. */
  #before(deadline: number, order: number, index: number): boolean {
    const other = this.#keys[2 * index];
    return deadline < other || (deadline === other && order < this.#keys[2 * index + 1]);
  }

  #place(index: number, timer: Timer, deadline: number, order: number): void {
    this.#timers[index] = timer;
    this.#keys[2 * index] = deadline;
    this.#keys[2 * index + 1] = order;
  }

  /** Moves the node at `from` to `to`. */
  #move(from: number, to: number): void {
    this.#place(to, this.#timers[from], this.#keys[2 * from], this.#keys[2 * from + 1]);
  }

  #siftUp(index: number, timer: Timer, deadline: number, order: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 2;
      if (!this.#before(deadline, order, parent)) break;
      this.#move(parent, index);
      index = parent;
    }
    this.#place(index, timer, deadline, order);
  }

  #siftDown(index: number, timer: Timer, deadline: number, order: number): void {
    const length = this.#timers.length;
    for (;;) {
      const first = 4 * index + 1;
      if (first >= length) break;
      let best = first;
      const stop = Math.min(first + 4, length);
      for (let child = first + 1; child < stop; child++) {
        if (this.#before(this.#keys[2 * child], this.#keys[2 * child + 1], best)) best = child;
      }
      if (this.#before(deadline, order, best)) break;
      this.#move(best, index);
      index = best;
    }
    this.#place(index, timer, deadline, order);
  }

  /** Drops every cancelled entry and restores the heap property. O(n). */
  #rebuild(): void {
    let kept = 0;
    for (let i = 0; i < this.#timers.length; i++) {
      const timer = this.#timers[i];
      if (!timer.armed) continue;
      this.#move(i, kept++);
    }
    this.#timers.length = kept;
    this.#dead = 0;
    for (let i = (kept - 2) >> 2; i >= 0; i--) {
      this.#siftDown(i, this.#timers[i], this.#keys[2 * i], this.#keys[2 * i + 1]);
    }
  }

  #grow(): void {
    const keys = new Float64Array(this.#keys.length * 2);
    keys.set(this.#keys);
    this.#keys = keys;
  }
}

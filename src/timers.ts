/**
 * The timer queue: a binary min-heap keyed by (deadline, arming order), so
 * ties fire in the order they were armed. Each entry remembers its index in
 * the heap, which makes cancelling O(log n) and leaves nothing behind: a
 * cancelled sleep is removed, not flagged.
 *
 * The keys live in typed arrays beside the entries, so sifting compares
 * numbers in one contiguous block instead of chasing a pointer to every
 * timer object: with 100k timers that is the difference between cache hits
 * and misses on every level of the heap.
 *
 * @module
 */

import type { Loop } from "./loop.ts";

/**
 * An entry of the timer heap. Sleep and timeout instructions are their own
 * entries, so arming a timer allocates nothing extra.
 * @internal
 */
export interface Timer {
  /** When it is due, in the loop's clock milliseconds. */
  deadline: number;
  /** Position in the heap; -1 when not armed. */
  heapIndex: number;
  /** Called once when the deadline has passed. */
  fire(loop: Loop): void;
}

const INITIAL_CAPACITY = 64;

/** A min-heap of timers ordered by deadline, then arming order. */
export class TimerHeap {
  #timers: Timer[] = [];
  // Invariant: for i < size, #deadlines[i] and #order[i] belong to #timers[i].
  #deadlines = new Float64Array(INITIAL_CAPACITY);
  #order = new Float64Array(INITIAL_CAPACITY);
  #armed = 0;

  /** How many timers are armed. */
  get size(): number {
    return this.#timers.length;
  }

  /** The earliest deadline, or `Infinity` when empty. */
  nextDeadline(): number {
    return this.#timers.length > 0 ? this.#deadlines[0] : Infinity;
  }

  /** Arms `timer` (its `deadline` must be set). O(log n). */
  push(timer: Timer): void {
    const index = this.#timers.length;
    if (index === this.#deadlines.length) this.#grow();
    this.#timers.push(timer);
    this.#siftUp(index, timer, timer.deadline, this.#armed++);
  }

  /** Disarms `timer` if armed. O(log n). */
  remove(timer: Timer): void {
    const index = timer.heapIndex;
    if (index < 0) return;
    timer.heapIndex = -1;
    const lastIndex = this.#timers.length - 1;
    const last = this.#timers.pop()!;
    if (index === lastIndex) return;
    const deadline = this.#deadlines[lastIndex];
    const order = this.#order[lastIndex];
    if (index > 0 && this.#before(deadline, order, (index - 1) >> 1)) {
      this.#siftUp(index, last, deadline, order);
    } else {
      this.#siftDown(index, last, deadline, order);
    }
  }

  /** Removes and returns the earliest timer if due at `now`, else `undefined`. */
  popDue(now: number): Timer | undefined {
    if (this.#timers.length === 0 || this.#deadlines[0] > now) return undefined;
    const first = this.#timers[0];
    this.remove(first);
    return first;
  }

  /** Whether key (deadline, order) sorts before the key at heap `index`. */
  #before(deadline: number, order: number, index: number): boolean {
    const other = this.#deadlines[index];
    return deadline < other || (deadline === other && order < this.#order[index]);
  }

  #place(index: number, timer: Timer, deadline: number, order: number): void {
    this.#timers[index] = timer;
    this.#deadlines[index] = deadline;
    this.#order[index] = order;
    timer.heapIndex = index;
  }

  #siftUp(index: number, timer: Timer, deadline: number, order: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.#before(deadline, order, parent)) break;
      this.#place(index, this.#timers[parent], this.#deadlines[parent], this.#order[parent]);
      index = parent;
    }
    this.#place(index, timer, deadline, order);
  }

  #siftDown(index: number, timer: Timer, deadline: number, order: number): void {
    const length = this.#timers.length;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= length) break;
      const right = child + 1;
      if (right < length && this.#before(this.#deadlines[right], this.#order[right], child)) {
        child = right;
      }
      if (!this.#childBefore(child, deadline, order)) break;
      this.#place(index, this.#timers[child], this.#deadlines[child], this.#order[child]);
      index = child;
    }
    this.#place(index, timer, deadline, order);
  }

  /** Whether the key at heap `child` sorts before (deadline, order). */
  #childBefore(child: number, deadline: number, order: number): boolean {
    const other = this.#deadlines[child];
    return other < deadline || (other === deadline && this.#order[child] < order);
  }

  #grow(): void {
    const deadlines = new Float64Array(this.#deadlines.length * 2);
    deadlines.set(this.#deadlines);
    this.#deadlines = deadlines;
    const order = new Float64Array(this.#order.length * 2);
    order.set(this.#order);
    this.#order = order;
  }
}

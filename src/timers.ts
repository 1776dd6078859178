/**
 * The timer queue: a binary min-heap keyed by (deadline, sequence number),
 * so ties fire in the order they were armed. Each entry remembers its index
 * in the heap, which makes cancelling O(log n) and leaves nothing behind:
 * a cancelled sleep is removed, not flagged.
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
  /** Arming order; breaks ties between equal deadlines. */
  seq: number;
  /** Position in the heap; -1 when not armed. */
  heapIndex: number;
  /** Called once when the deadline has passed. */
  fire(loop: Loop): void;
}

/** A min-heap of timers ordered by deadline, then arming order. */
export class TimerHeap {
  #heap: Timer[] = [];
  #seq = 0;

  /** How many timers are armed. */
  get size(): number {
    return this.#heap.length;
  }

  /** The earliest deadline, or `Infinity` when empty. */
  nextDeadline(): number {
    return this.#heap.length > 0 ? this.#heap[0].deadline : Infinity;
  }

  /** Arms `timer` (its `deadline` must be set). O(log n). */
  push(timer: Timer): void {
    timer.seq = this.#seq++;
    timer.heapIndex = this.#heap.length;
    this.#heap.push(timer);
    this.#siftUp(timer.heapIndex);
  }

  /** Disarms `timer` if armed. O(log n). */
  remove(timer: Timer): void {
    const index = timer.heapIndex;
    if (index < 0) return;
    timer.heapIndex = -1;
    const last = this.#heap.pop()!;
    if (index === this.#heap.length) return;
    this.#heap[index] = last;
    last.heapIndex = index;
    this.#siftUp(index);
    this.#siftDown(last.heapIndex);
  }

  /** Removes and returns the earliest timer if due at `now`, else `undefined`. */
  popDue(now: number): Timer | undefined {
    const heap = this.#heap;
    if (heap.length === 0 || heap[0].deadline > now) return undefined;
    const first = heap[0];
    this.remove(first);
    return first;
  }

  #before(a: Timer, b: Timer): boolean {
    return a.deadline < b.deadline ||
      (a.deadline === b.deadline && a.seq < b.seq);
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const timer = heap[index];
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (!this.#before(timer, parent)) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = timer;
    timer.heapIndex = index;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const length = heap.length;
    const timer = heap[index];
    for (;;) {
      let child = 2 * index + 1;
      if (child >= length) break;
      if (child + 1 < length && this.#before(heap[child + 1], heap[child])) {
        child++;
      }
      if (!this.#before(heap[child], timer)) break;
      heap[index] = heap[child];
      heap[index].heapIndex = index;
      index = child;
    }
    heap[index] = timer;
    timer.heapIndex = index;
  }
}

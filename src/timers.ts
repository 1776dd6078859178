/**
 * The timer queue: timers fire in order of (deadline, arming order), so
 * ties fire in the order they were armed.
 *
 * Timers are kept in lanes, one per delay, the way Node.js keeps its
 * timer lists. Since the clock never goes back, timers armed with the same
 * delay are due in the order they were armed: a lane is a first-in
 * first-out queue, and arming a timer appends to it in O(1). Only the lanes
 * are ordered, in a 4-ary min-heap keyed by their first timer. Programs
 * use few distinct delays (a timeout per connection, a retry interval), so
 * that heap stays small and cache-resident; a single heap of all timers
 * would pay a cache miss at every level of each removal once it holds
 * thousands of timers. Timers that no lane can take in order (more than
 * MAX_LANES delays in use at once, or a clock that went back) go to one
 * heap of their own, as every timer did before; the earliest of the two
 * heaps' tops fires first.
 *
 * Cancelling is lazy: a cancelled timer is marked and skipped when it
 * reaches the front of its lane. So that cancelled timers cannot pile up,
 * every lane is compacted whenever they outnumber the live ones; each
 * compaction is O(n) and is paid for by the n/2 cancellations before it.
 *
 * @module
 */

import type { Loop } from "./loop.ts";

/**
 * An entry of the timer queue. Sleep and timeout instructions are their own
 * entries, so arming a timer allocates nothing extra. A timer is armed at
 * most once.
 * @internal
 */
export interface Timer {
  /** How long after arming it is due, in milliseconds: its lane. */
  readonly delay: number;
  /** When it is due, in the loop's clock milliseconds. */
  deadline: number;
  /** Whether it is in the queue and not cancelled. */
  armed: boolean;
  /** Called once when the deadline has passed. */
  fire(loop: Loop): void;
}

const INITIAL_CAPACITY = 64;
// More delays in use at once than this, and timers with a delay that has
// no lane yet go to one heap: a lane per timer would cost more than it
// saves.
const MAX_LANES = 4096;
// Below this many cancelled entries a compaction is not worth its cost.
const MIN_DEAD_FOR_COMPACTION = 64;
// A lane gives back the slots of fired timers once this many have piled up
// at its front (and they are at least half the lane).
const MIN_SPENT_FOR_SHIFT = 1024;

/**
 * The timers armed with one delay, in arming order (which is deadline
 * order), from `head` on. Fired and dropped entries before `head` are
 * released in bulk.
 */
class Lane {
  readonly delay: number;
  timers: Timer[] = [];
  /** The arming order of each timer, to break ties between lanes. */
  orders: number[] = [];
  head = 0;
  #lastDeadline = -Infinity;

  constructor(delay: number) {
    this.delay = delay;
  }

  get empty(): boolean {
    return this.head === this.timers.length;
  }

  /** The first timer, by which the lane is keyed. */
  get first(): Timer {
    return this.timers[this.head];
  }

  /** The first timer's arming order: the tie-breaker of the lane's key. */
  get firstOrder(): number {
    return this.orders[this.head];
  }

  /**
   * Appends `timer` if that keeps the lane in deadline order, which holds
   * unless the clock went back. Returns whether it did.
   */
  append(timer: Timer, order: number): boolean {
    if (timer.deadline < this.#lastDeadline) return false;
    this.#lastDeadline = timer.deadline;
    this.timers.push(timer);
    this.orders.push(order);
    return true;
  }

  /** Removes and returns the first timer. */
  shift(): Timer {
    const timer = this.timers[this.head];
    this.head++;
    if (this.empty) {
      this.timers.length = 0;
      this.orders.length = 0;
      this.head = 0;
    } else if (this.head >= MIN_SPENT_FOR_SHIFT && 2 * this.head >= this.timers.length) {
      this.timers.splice(0, this.head);
      this.orders.splice(0, this.head);
      this.head = 0;
    }
    return timer;
  }

  /** Keeps only the armed timers. Returns how many were dropped. */
  compact(): number {
    const timers = this.timers;
    const orders = this.orders;
    let kept = 0;
    for (let i = this.head; i < timers.length; i++) {
      if (!timers[i].armed) continue;
      timers[kept] = timers[i];
      orders[kept] = orders[i];
      kept++;
    }
    const dropped = timers.length - this.head - kept;
    timers.length = kept;
    orders.length = kept;
    this.head = 0;
    return dropped;
  }
}

/**
 * A 4-ary min-heap keyed by (deadline, arming order). The keys live in one
 * typed array beside the entries, each node's pair side by side, so the
 * four children of a node share a cache line and sifting never touches
 * the entries themselves.
 */
class KeyedHeap<T> {
  // Invariant: for i < entries.length, #keys[2i] and #keys[2i+1] are the
  // key of entries[i]; every node's key sorts no later than its children's
  // (children of i: 4i+1 … 4i+4).
  readonly entries: T[] = [];
  #keys = new Float64Array(2 * INITIAL_CAPACITY);

  get length(): number {
    return this.entries.length;
  }

  /** The top entry's deadline; the heap must not be empty. */
  get topDeadline(): number {
    return this.#keys[0];
  }

  /** Whether the top sorts before the top of `other`; both non-empty. */
  topBefore(other: KeyedHeap<unknown>): boolean {
    return other.#before(this.#keys[0], this.#keys[1], 0);
  }

  push(entry: T, deadline: number, order: number): void {
    const index = this.entries.length;
    if (2 * index === this.#keys.length) this.#grow();
    this.entries.push(entry);
    this.#siftUp(index, entry, deadline, order);
  }

  /** Removes the top entry. */
  pop(): void {
    const entries = this.entries;
    const lastIndex = entries.length - 1;
    const last = entries.pop()!;
    if (lastIndex > 0) {
      this.#siftDown(0, last, this.#keys[2 * lastIndex], this.#keys[2 * lastIndex + 1]);
    }
  }

  /** Gives the top entry a new key that sorts no earlier than its old one. */
  rekeyTop(deadline: number, order: number): void {
    this.#siftDown(0, this.entries[0], deadline, order);
  }

  /** Keeps only the entries `keep` accepts, with their keys. O(n). */
  filter(keep: (entry: T) => boolean): void {
    const entries = this.entries;
    let kept = 0;
    for (let i = 0; i < entries.length; i++) {
      if (keep(entries[i])) this.#move(i, kept++);
    }
    entries.length = kept;
    for (let i = (kept - 2) >> 2; i >= 0; i--) {
      this.#siftDown(i, entries[i], this.#keys[2 * i], this.#keys[2 * i + 1]);
    }
  }

  /** Whether key (deadline, order) sorts before the key at `index`. */
  #before(deadline: number, order: number, index: number): boolean {
    const other = this.#keys[2 * index];
    return deadline < other || (deadline === other && order < this.#keys[2 * index + 1]);
  }

  #place(index: number, entry: T, deadline: number, order: number): void {
    this.entries[index] = entry;
    this.#keys[2 * index] = deadline;
    this.#keys[2 * index + 1] = order;
  }

  /** Moves the node at `from` to `to`. */
  #move(from: number, to: number): void {
    this.#place(to, this.entries[from], this.#keys[2 * from], this.#keys[2 * from + 1]);
  }

  #siftUp(index: number, entry: T, deadline: number, order: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 2;
      if (!this.#before(deadline, order, parent)) break;
      this.#move(parent, index);
      index = parent;
    }
    this.#place(index, entry, deadline, order);
  }

  #siftDown(index: number, entry: T, deadline: number, order: number): void {
    const length = this.entries.length;
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
    this.#place(index, entry, deadline, order);
  }

  #grow(): void {
    const keys = new Float64Array(this.#keys.length * 2);
    keys.set(this.#keys);
    this.#keys = keys;
  }
}

/** The armed timers of one loop: lanes by delay, and a heap for the rest. */
export class TimerQueue {
  // Invariant: a lane is in #lanes and #laneHeap exactly while it holds
  // entries (armed or cancelled), keyed by its first entry. A timer whose
  // delay has no lane while MAX_LANES are open goes to #others instead.
  #lanes = new Map<number, Lane>();
  #laneHeap = new KeyedHeap<Lane>();
  #others = new KeyedHeap<Timer>();
  #nextOrder = 0;
  #entries = 0;
  // Cancelled timers still queued.
  #dead = 0;

  /** How many timers are armed (cancelled ones are not counted). */
  get size(): number {
    return this.#entries - this.#dead;
  }

  /** The earliest live deadline, or `Infinity` when none. */
  nextDeadline(): number {
    this.#dropDeadFronts();
    const lanes = this.#laneHeap;
    const others = this.#others;
    if (lanes.length === 0) return others.length === 0 ? Infinity : others.topDeadline;
    if (others.length === 0) return lanes.topDeadline;
    return Math.min(lanes.topDeadline, others.topDeadline);
  }

  /**
   * Arms `timer`, whose `deadline` must be set. O(1) when its lane has
   * timers already, else O(log n).
   */
  push(timer: Timer): void {
    timer.armed = true;
    this.#entries++;
    const order = this.#nextOrder++;
    const lane = this.#lanes.get(timer.delay);
    if (lane !== undefined && lane.append(timer, order)) return;
    if (lane === undefined && this.#lanes.size < MAX_LANES) {
      this.#openLane(timer, order);
      return;
    }
    // No lane can take it in order: too many delays are in use, or the
    // clock went back (against the Clock contract).
    this.#others.push(timer, timer.deadline, order);
  }

  /** Disarms `timer` if armed. O(1); the queue sheds it later. */
  remove(timer: Timer): void {
    if (!timer.armed) return;
    timer.armed = false;
    this.#dead++;
    if (this.#dead >= MIN_DEAD_FOR_COMPACTION && this.#dead > this.#entries - this.#dead) {
      this.#compact();
    }
  }

  /** Removes and returns the earliest timer if due at `now`, else `undefined`. */
  popDue(now: number): Timer | undefined {
    this.#dropDeadFronts();
    const timer = this.#takeEarliestIfDue(now);
    if (timer !== undefined) timer.armed = false;
    return timer;
  }

  #takeEarliestIfDue(now: number): Timer | undefined {
    const lanes = this.#laneHeap;
    const others = this.#others;
    if (lanes.length > 0 && (others.length === 0 || lanes.topBefore(others))) {
      return lanes.topDeadline > now ? undefined : this.#shiftLaneTop();
    }
    if (others.length === 0 || others.topDeadline > now) return undefined;
    return this.#popOthersTop();
  }

  /** Drops cancelled timers from the front of the lanes and the heap. */
  #dropDeadFronts(): void {
    const lanes = this.#laneHeap;
    while (lanes.length > 0 && !lanes.entries[0].first.armed) {
      this.#shiftLaneTop();
      this.#dead--;
    }
    const others = this.#others;
    while (others.length > 0 && !others.entries[0].armed) {
      this.#popOthersTop();
      this.#dead--;
    }
  }

  /** Takes the first timer of the earliest lane, and re-sorts the lanes. */
  #shiftLaneTop(): Timer {
    const lanes = this.#laneHeap;
    const lane = lanes.entries[0];
    const timer = lane.shift();
    this.#entries--;
    if (lane.empty) {
      this.#lanes.delete(lane.delay);
      lanes.pop();
    } else {
      lanes.rekeyTop(lane.first.deadline, lane.firstOrder);
    }
    return timer;
  }

  #popOthersTop(): Timer {
    const timer = this.#others.entries[0];
    this.#others.pop();
    this.#entries--;
    return timer;
  }

  #openLane(timer: Timer, order: number): void {
    const lane = new Lane(timer.delay);
    lane.append(timer, order);
    this.#lanes.set(lane.delay, lane);
    this.#laneHeap.push(lane, timer.deadline, order);
  }

  /** Drops every cancelled timer, and the lanes left empty. O(n). */
  #compact(): void {
    for (const lane of this.#laneHeap.entries) this.#entries -= lane.compact();
    this.#laneHeap.filter((lane) => !lane.empty);
    for (const [delay, lane] of this.#lanes) {
      if (lane.empty) this.#lanes.delete(delay);
    }
    // A lane's first timer may have changed: key the lanes afresh.
    const kept = this.#laneHeap.entries.splice(0);
    for (const lane of kept) this.#laneHeap.push(lane, lane.first.deadline, lane.firstOrder);
    const before = this.#others.length;
    this.#others.filter((timer) => timer.armed);
    this.#entries -= before - this.#others.length;
    this.#dead = 0;
  }
}

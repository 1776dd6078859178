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
 * thousands of timers. A small queue (up to SMALL_QUEUE timers) needs no
 * lanes, and timers that no lane can take in order (more than MAX_LANES
 * delays in use at once, or a clock that went back) cannot have one: these
 * go to a plain heap of timers. The earlier of the two heaps' tops fires
 * first.
 *
 * Cancelling is lazy: a cancelled timer is marked and skipped when it
 * reaches the front. So that cancelled timers cannot pile up, the queue is
 * compacted whenever they outnumber the live ones (after a cancellation or
 * a firing), and emptied at once when nothing live is left; each
 * compaction is O(n) and is paid for by the n/2 cancellations before it.
 *
 * @module
 */

import type { Loop } from "./loop.ts";

/**
 * An entry of the timer queue. A sleep instruction is its own entry, so
 * arming it allocates nothing extra; a timeout has a small entry of its own
 * (see timeout.ts), since a cancelled entry may stay queued a while and must
 * not hold what the instruction holds. A timer is armed at most once.
 * @internal
 */
export interface Timer {
  /** How long after arming it is due, in milliseconds: its lane. */
  readonly delay: number;
  /**
   * When it is due, in the loop's clock milliseconds; NaN until armed. Not
   * 0: a clock's time is a fraction, and a field that starts as an integer
   * changes hidden class when it gets one (see src/_shape_anchors.ts).
   */
  deadline: number;
  /** Whether it is in the queue and not cancelled. */
  armed: boolean;
  /**
   * Its arming order, set by the queue: the tie-breaker between equal
   * deadlines. Kept on the timer, which the queue reads anyway to key a
   * lane by its next timer, rather than in an array beside each lane.
   */
  order: number;
  /** Called once when the deadline has passed. */
  fire(loop: Loop): void;
}

const INITIAL_CAPACITY = 64;
// At most this many lanes are open (idle ones included); a timer whose
// delay has none then goes to the plain heap. With that many delays in
// use, most lanes would hold one timer and cost more than they save.
const MAX_LANES = 4096;
// Below this many cancelled entries a compaction is not worth its cost.
const MIN_DEAD_FOR_COMPACTION = 64;
// Up to this many queued timers, all go to the plain heap.
const SMALL_QUEUE = 64;
// A lane gives back the slots of fired timers once this many have piled up
// at its front (and they are at least half the lane).
const MIN_SPENT_FOR_SHIFT = 1024;
// An emptied lane keeps up to this many slots for the next timers of its
// delay (a periodic task re-arms as soon as it fires); a burst's slots go
// back.
const MAX_IDLE_SLOTS = 16;

/**
 * The timers armed with one delay, in arming order (which is deadline
 * order), in slots `head` to `tail`. A lane that empties stays, idle, for
 * the next timer of its delay, so that a periodic task does not open a
 * lane every time it sleeps.
 */
class Lane {
  readonly delay: number;
  // Slots outside head…tail are null: a fired timer may hold a task and
  // its result, which the queue must not keep alive.
  timers: (Timer | null)[] = [];
  head = 0;
  tail = 0;
  #lastDeadline = -Infinity;

  constructor(delay: number) {
    this.delay = delay;
  }

  get empty(): boolean {
    return this.head === this.tail;
  }

  /** The first timer, by which the lane is keyed. */
  get first(): Timer {
    return this.timers[this.head]!;
  }

  /**
   * Appends `timer` if that keeps the lane in deadline order, which holds
   * unless the clock went back. Returns whether it did.
   */
  append(timer: Timer): boolean {
    if (timer.deadline < this.#lastDeadline) return false;
    this.#lastDeadline = timer.deadline;
    const tail = this.tail++;
    if (tail === this.timers.length) this.timers.push(timer);
    else this.timers[tail] = timer;
    return true;
  }

  /** Removes and returns the first timer. */
  shift(): Timer {
    const head = this.head;
    const timer = this.timers[head]!;
    this.timers[head] = null;
    this.head = head + 1;
    if (this.empty) {
      this.#reset();
    } else if (this.head >= MIN_SPENT_FOR_SHIFT && 2 * this.head >= this.tail) {
      this.timers.splice(0, this.head);
      this.tail -= this.head;
      this.head = 0;
    }
    return timer;
  }

  /** Keeps only the armed timers. Returns how many were dropped. */
  compact(): number {
    const timers = this.timers;
    let kept = 0;
    for (let i = this.head; i < this.tail; i++) {
      const timer = timers[i]!;
      if (!timer.armed) continue;
      timers[kept] = timer;
      kept++;
    }
    const dropped = this.tail - this.head - kept;
    timers.length = kept;
    this.head = 0;
    this.tail = kept;
    this.#lastDeadline = kept > 0 ? timers[kept - 1]!.deadline : -Infinity;
    return dropped;
  }

  /** Drops every timer. */
  clear(): void {
    for (let i = this.head; i < this.tail; i++) this.timers[i] = null;
    this.#reset();
  }

  /** Starts over, empty, keeping a few slots for the next timers. */
  #reset(): void {
    this.head = 0;
    this.tail = 0;
    // An empty lane takes any deadline in order.
    this.#lastDeadline = -Infinity;
    if (this.timers.length > MAX_IDLE_SLOTS) {
      this.timers.length = 0;
    }
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
    const keys = this.#keys.length;
    if (keys > 2 * INITIAL_CAPACITY && 8 * lastIndex <= keys) this.#shrink();
  }

  /** Removes every entry. */
  clear(): void {
    const entries = this.entries;
    // Setting an array's length is a runtime call in V8, dearer than the
    // few pops that usually empty a heap cleared because all its timers
    // were cancelled (one timeout whose body finished).
    if (entries.length > 8) entries.length = 0;
    else while (entries.length > 0) entries.pop();
    this.#shrink();
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
    this.#shrink();
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

  /**
   * Gives back the keys of a burst: halves them while a quarter or less is
   * used (not half, so that a heap swinging around one size does not copy
   * its keys back and forth).
   */
  #shrink(): void {
    const used = 2 * this.entries.length;
    let size = this.#keys.length;
    while (size > 2 * INITIAL_CAPACITY && 4 * used <= size) size /= 2;
    if (size < this.#keys.length) this.#keys = this.#keys.slice(0, size);
  }

  /** How many entries the keys have room for (for tests of shrinking). */
  get capacity(): number {
    return this.#keys.length / 2;
  }
}

/** The armed timers of one loop: lanes by delay, and a heap for the rest. */
export class TimerQueue {
  // Invariant: the lanes that hold timers (armed or cancelled) are in
  // #laneHeap, keyed by their first timer; the empty ones are idle. Every lane is in #lanes, under its delay. A timer no lane can
  // take is in #others.
  #lanes = new Map<number, Lane>();
  #laneHeap = new KeyedHeap<Lane>();
  #others = new KeyedHeap<Timer>();
  // The lane last armed, found without a Map lookup when the next timer
  // has the same delay (a task sleeping in a loop).
  #lastLane: Lane | null = null;
  #nextOrder = 0;
  #entries = 0;
  // Cancelled timers still queued.
  #dead = 0;

  /** How many timers are armed (cancelled ones are not counted). */
  get size(): number {
    return this.#entries - this.#dead;
  }

  /**
   * What the queue holds on to: timers queued, cancelled ones included;
   * room in both heaps' keys; lanes open (for tests of what is let go).
   * @internal
   */
  get footprint(): { queued: number; heapCapacity: number; lanes: number } {
    return {
      queued: this.#entries,
      heapCapacity: this.#laneHeap.capacity + this.#others.capacity,
      lanes: this.#lanes.size,
    };
  }

  /** The earliest live deadline, or `Infinity` when none. */
  nextDeadline(): number {
    this.#dropDeadFronts();
    const lanes = this.#laneHeap;
    const others = this.#others;
    if (others.entries.length === 0) {
      return lanes.entries.length === 0 ? Infinity : lanes.topDeadline;
    }
    if (lanes.entries.length === 0) return others.topDeadline;
    return Math.min(lanes.topDeadline, others.topDeadline);
  }

  /**
   * Arms `timer`, whose `deadline` must be set. O(1) when its lane holds
   * timers already, else O(log n).
   */
  push(timer: Timer): void {
    timer.armed = true;
    this.#entries++;
    const order = this.#nextOrder++;
    timer.order = order;
    if (this.#entries <= SMALL_QUEUE) {
      // A few timers are cheapest in a plain heap, which stays in cache;
      // lanes pay for their bookkeeping only once many are armed.
      this.#others.push(timer, timer.deadline, order);
      return;
    }
    const lane = this.#laneFor(timer.delay);
    if (lane !== undefined) {
      const idle = lane.empty;
      if (lane.append(timer)) {
        if (idle) this.#queueLane(lane);
        return;
      }
      // The clock went back (against the Clock contract): the lane cannot
      // take this timer in order.
    } else if (this.#hasRoomForLane()) {
      const opened = new Lane(timer.delay);
      opened.append(timer);
      this.#lanes.set(opened.delay, opened);
      this.#lastLane = opened;
      this.#queueLane(opened);
      return;
    }
    this.#others.push(timer, timer.deadline, order);
  }

  /** Disarms `timer` if armed. O(1); the queue sheds it later. */
  remove(timer: Timer): void {
    if (!timer.armed) return;
    timer.armed = false;
    this.#dead++;
    // Every entry cancelled: let go of them all now, not at their deadlines
    // (a cancelled hour-long timeout holds its task). Else compact when the
    // cancelled outnumber the live.
    this.#shedDead();
  }

  /** Removes and returns the earliest timer if due at `now`, else `undefined`. */
  popDue(now: number): Timer | undefined {
    this.#dropDeadFronts();
    const lanes = this.#laneHeap;
    const others = this.#others;
    let timer: Timer;
    if (lanes.entries.length > 0 && (others.entries.length === 0 || lanes.topBefore(others))) {
      if (lanes.topDeadline > now) return undefined;
      timer = this.#shiftLaneTop();
    } else {
      if (others.entries.length === 0 || others.topDeadline > now) return undefined;
      timer = this.#popOthersTop();
    }
    timer.armed = false;
    // Firing shrinks the live count too: cancelled timers left behind
    // must not outnumber the live ones any more than after a remove.
    if (this.#dead > 0) this.#shedDead();
    return timer;
  }

  #shedDead(): void {
    if (this.#dead === this.#entries) {
      this.#clear();
    } else if (
      this.#dead >= MIN_DEAD_FOR_COMPACTION && this.#dead > this.#entries - this.#dead
    ) {
      this.#compact();
    }
  }

  /** Drops cancelled timers from the front of the lanes and the heap. */
  #dropDeadFronts(): void {
    const lanes = this.#laneHeap.entries;
    while (lanes.length > 0 && !lanes[0].first.armed) {
      this.#shiftLaneTop();
      this.#dead--;
    }
    // Most programs never fill #others: skip it then.
    if (this.#others.entries.length > 0) this.#dropDeadOthers();
  }

  #dropDeadOthers(): void {
    const others = this.#others.entries;
    while (others.length > 0 && !others[0].armed) {
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
      lanes.pop();
    } else {
      lanes.rekeyTop(lane.first.deadline, lane.first.order);
    }
    return timer;
  }

  #popOthersTop(): Timer {
    const timer = this.#others.entries[0];
    this.#others.pop();
    this.#entries--;
    return timer;
  }

  #laneFor(delay: number): Lane | undefined {
    const last = this.#lastLane;
    if (last !== null && last.delay === delay) return last;
    const lane = this.#lanes.get(delay);
    if (lane !== undefined) this.#lastLane = lane;
    return lane;
  }

  #queueLane(lane: Lane): void {
    this.#laneHeap.push(lane, lane.first.deadline, lane.first.order);
  }

  /**
   * Whether a new delay may open a lane. When MAX_LANES are open, idle
   * lanes are dropped, but only when they are at least half of them: each
   * such pass is O(MAX_LANES) and makes room for MAX_LANES / 2 new delays.
   */
  #hasRoomForLane(): boolean {
    if (this.#lanes.size < MAX_LANES) return true;
    if (this.#lanes.size - this.#laneHeap.entries.length < MAX_LANES / 2) return false;
    this.#dropIdleLanes();
    return true;
  }

  #dropIdleLanes(): void {
    this.#lastLane = null;
    for (const [delay, lane] of this.#lanes) {
      if (lane.empty) this.#lanes.delete(delay);
    }
  }

  /** Drops every cancelled timer, and the idle lanes. O(n). */
  #compact(): void {
    const lanes = this.#laneHeap;
    for (const lane of lanes.entries) this.#entries -= lane.compact();
    // A lane's first timer may have changed: key the lanes afresh.
    const kept = lanes.entries.filter((lane) => !lane.empty);
    lanes.clear();
    for (const lane of kept) lanes.push(lane, lane.first.deadline, lane.first.order);
    this.#dropIdleLanes();
    const before = this.#others.entries.length;
    this.#others.filter((timer) => timer.armed);
    this.#entries -= before - this.#others.entries.length;
    this.#dead = 0;
  }

  /** Drops every entry: all are cancelled. */
  #clear(): void {
    for (const lane of this.#laneHeap.entries) lane.clear();
    this.#laneHeap.clear();
    this.#others.clear();
    this.#entries = 0;
    this.#dead = 0;
  }
}

/**
 * The ready queue: a growable ring buffer, so that both ends are O(1).
 *
 * `Array.prototype.shift` is O(n) on large arrays; a scheduler that takes one
 * task from the front per switch cannot afford that.
 *
 * @module
 */

const INITIAL_CAPACITY = 64;
// A queue this large that has drained to a sixteenth of its capacity gives
// the memory back; smaller ones keep it, so that a loop filling and
// draining a few thousand tasks per tick does not reallocate every tick.
const MIN_CAPACITY_TO_SHRINK = 4096;
// (As a shift: a fraction would make #shrinkBelow a double, and changing a
// field from integer to double gives the class a new hidden class, which
// the anchors of _shape_anchors.ts would not hold.)
const SHRINK_WHEN_FILLED_BELOW_SHIFT = 4;

/** A first-in, first-out queue backed by a power-of-two ring buffer. */
export class RunQueue<T> {
  // Invariant: #items.length is a power of two and #mask === #items.length - 1.
  #items: (T | undefined)[] = new Array(INITIAL_CAPACITY);
  #mask = INITIAL_CAPACITY - 1;
  #head = 0;
  #size = 0;
  // Below this many items the buffer is shrunk; -1 while it is small.
  #shrinkBelow = -1;

  /** How many items are queued. */
  get size(): number {
    return this.#size;
  }

  /** How many items fit before the buffer grows. */
  get capacity(): number {
    return this.#items.length;
  }

  /** Appends `item` at the back. */
  push(item: T): void {
    if (this.#size === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#size) & this.#mask] = item;
    this.#size++;
  }

  /** Removes and returns the front item; `undefined` when empty. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    // Clear the slot so a finished task can be garbage collected.
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#size--;
    return item;
  }

  /**
   * Gives most of the buffer back if the queue has drained to a small part
   * of it. The loop calls this every thousand steps and after each batch
   * rather than on every `shift`, which is on the path of every switch.
   */
  trim(): void {
    if (this.#size < this.#shrinkBelow) this.#shrink();
  }

  /** Calls `visit` on every queued item, front to back. */
  forEach(visit: (item: T) => void): void {
    for (let i = 0; i < this.#size; i++) {
      visit(this.#items[(this.#head + i) & this.#mask] as T);
    }
  }

  /**
   * Releases most of the buffer once a burst has drained (100k tasks
   * spawned at once would otherwise leave a megabyte behind for good).
   */
  #shrink(): void {
    let capacity = INITIAL_CAPACITY;
    while (capacity < 4 * this.#size) capacity *= 2;
    this.#resize(capacity);
  }

  #grow(): void {
    this.#resize(this.#items.length * 2);
  }

  /** Moves the items, front first, into a new buffer of `capacity` slots. */
  #resize(capacity: number): void {
    const old = this.#items;
    const items: (T | undefined)[] = new Array(capacity);
    for (let i = 0; i < this.#size; i++) {
      items[i] = old[(this.#head + i) & this.#mask];
    }
    this.#items = items;
    this.#mask = capacity - 1;
    this.#head = 0;
    this.#shrinkBelow = capacity >= MIN_CAPACITY_TO_SHRINK
      ? capacity >> SHRINK_WHEN_FILLED_BELOW_SHIFT
      : -1;
  }
}

/**
 * The ready queue: a growable ring buffer, so that both ends are O(1).
 *
 * `Array.prototype.shift` is O(n) on large arrays; a scheduler that takes one
 * task from the front per switch cannot afford that.
 *
 * @module
 */

const INITIAL_CAPACITY = 64;

/** A first-in, first-out queue backed by a power-of-two ring buffer. */
export class RunQueue<T> {
  // Invariant: #items.length is a power of two and #mask === #items.length - 1.
  #items: (T | undefined)[] = new Array(INITIAL_CAPACITY);
  #mask = INITIAL_CAPACITY - 1;
  #head = 0;
  #size = 0;

  /** How many items are queued. */
  get size(): number {
    return this.#size;
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

  /** Calls `visit` on every queued item, front to back. */
  forEach(visit: (item: T) => void): void {
    for (let i = 0; i < this.#size; i++) {
      visit(this.#items[(this.#head + i) & this.#mask] as T);
    }
  }

  #grow(): void {
    const old = this.#items;
    const items: (T | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.#size; i++) {
      items[i] = old[(this.#head + i) & this.#mask];
    }
    this.#items = items;
    this.#mask = items.length - 1;
    this.#head = 0;
  }
}

/**
 * Clocks: where the loop reads the time. The real clock follows
 * `performance.now()`; the virtual clock only moves when the loop is idle,
 * jumping straight to the next timer's deadline (like trio's autojump
 * clock), so programs that sleep run instantly and deterministically.
 *
 * @module
 */

/**
 * The loop's source of time, in milliseconds. A clock with `jumpTo` is
 * virtual: when no task is ready and nothing outside the loop is pending,
 * the loop calls `jumpTo(nextDeadline)` instead of waiting.
 *
 * @example Usage
 * ```ts
 * import { type Clock, Loop, sleep } from "@genloop/genloop";
 *
 * // A clock that counts in whole seconds, moved by the loop when idle.
 * let seconds = 0;
 * const clock: Clock = {
 *   now: () => seconds * 1000,
 *   jumpTo: (time) => {
 *     seconds = Math.ceil(time / 1000);
 *   },
 * };
 * new Loop({ clock }).runSync(function* main() {
 *   yield* sleep(2_500);
 * });
 * if (seconds !== 3) throw new Error("unexpected");
 * ```
 */
export interface Clock {
  /** The current time in milliseconds; never decreases. */
  now(): number;
  /**
   * Virtual clocks only: move time forward to `time` (never backwards).
   * `now()` must then be `time` or later: a clock that stops short (one
   * rounding to the nearest nanosecond) is an error, since the loop would
   * find the timer it jumped to still not due.
   */
  jumpTo?(time: number): void;
}

/**
 * The default clock: monotonic wall time from `performance.now()`.
 *
 * @example Usage
 * ```ts
 * import { Loop, RealClock } from "@genloop/genloop";
 *
 * const loop = new Loop({ clock: new RealClock() });
 * if (!(loop.time() >= 0)) throw new Error("unexpected");
 * ```
 */
export class RealClock implements Clock {
  /** The current monotonic time in milliseconds. */
  now(): number {
    return performance.now();
  }
}

/**
 * A clock that stands still until the loop is idle, then jumps to the next
 * deadline. An hour of sleeping takes no wall time, and the same program
 * runs in the same order every time.
 *
 * While a task waits on the outside world (a socket, a Promise from
 * `call`), virtual time stands still: it jumps only when nothing but timers
 * could wake a task. Moved by hand meanwhile (`advance()` from a host
 * callback), it wakes the waiting loop, which fires what became due.
 *
 * @example Usage
 * ```ts
 * import { Loop, sleep, VirtualClock } from "@genloop/genloop";
 *
 * const loop = new Loop({ clock: new VirtualClock() });
 * loop.runSync(function* main() {
 *   yield* sleep(60 * 60 * 1000);
 * });
 * if (loop.time() !== 60 * 60 * 1000) throw new Error("unexpected");
 * ```
 */
export class VirtualClock implements Clock {
  #now: number;
  // What wakes each loop that waits on the outside world with this clock
  // (see Loop): moved meanwhile from outside its run (advance() in a host
  // callback), the clock may have made a timer due that no event would
  // otherwise get the loop to fire.
  #waiting = new Set<() => void>();

  /**
   * Creates a virtual clock.
   *
   * @param start The initial time in milliseconds. Default `0`.
   * @throws {RangeError} when `start` is not a finite number.
   */
  constructor(start = 0) {
    // Every deadline is computed from this time: NaN would fire all timers
    // at once in no order, Infinity would make every deadline Infinity (which
    // the loop takes for no timer: a DeadlockError), and a string would turn
    // deadlines into strings.
    if (!Number.isFinite(start)) {
      throw new RangeError(
        `Cannot start a VirtualClock at ${
          String(start)
        }: the start time must be a finite number of milliseconds`,
      );
    }
    this.#now = start;
  }

  /** The current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /**
   * Moves time forward to `time`; earlier times are ignored.
   *
   * @param time The time to move to, in milliseconds; a finite number.
   * @throws {RangeError} when `time` is not a finite number.
   */
  jumpTo(time: number): void {
    // As in the constructor: Infinity or a string would poison every
    // deadline computed from the time.
    if (!Number.isFinite(time)) {
      throw new RangeError(
        `Cannot jump a VirtualClock to ${
          String(time)
        }: the time must be a finite number of milliseconds`,
      );
    }
    if (time > this.#now) {
      this.#now = time;
      this.#moved();
    }
  }

  /**
   * Moves time forward by `ms` (for tests that drive the clock by hand).
   *
   * @param ms How far, in milliseconds; a finite number >= 0.
   * @throws {RangeError} when `ms` is negative, not finite or not a number.
   */
  advance(ms: number): void {
    // Not `ms >= 0` alone: "5" passes it and `+=` then makes the time the
    // string "05"; Infinity passes it and leaves every later deadline at
    // Infinity, which the loop takes for no timer at all.
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(
        `Cannot advance a VirtualClock by ${
          String(ms)
        } ms: the amount must be >= 0 (a finite number of milliseconds)`,
      );
    }
    this.#now += ms;
    if (ms > 0) this.#moved();
  }

  /**
   * @internal Calls `wake` whenever the clock moves, until the returned
   * function is called (a loop, while it waits on the outside world).
   */
  _onMove(wake: () => void): () => void {
    this.#waiting.add(wake);
    return () => this.#waiting.delete(wake);
  }

  #moved(): void {
    for (const wake of this.#waiting) wake();
  }
}

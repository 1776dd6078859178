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
 */
export interface Clock {
  /** The current time in milliseconds; never decreases. */
  now(): number;
  /** Virtual clocks only: move time forward to `time` (never backwards). */
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
 * could wake a task.
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

  /**
   * Creates a virtual clock.
   *
   * @param start The initial time in milliseconds. Default `0`.
   */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /** Moves time forward to `time`; earlier times are ignored. */
  jumpTo(time: number): void {
    if (time > this.#now) this.#now = time;
  }

  /**
   * Moves time forward by `ms` (for tests that drive the clock by hand).
   *
   * @param ms How far, in milliseconds; must be >= 0.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) {
      throw new RangeError(
        `Cannot advance a VirtualClock by ${ms} ms: the amount must be >= 0`,
      );
    }
    this.#now += ms;
  }
}

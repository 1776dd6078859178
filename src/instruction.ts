/**
 * Instructions: what a task yields to the loop, and the `Operation<T>` type
 * that lets `yield*` return typed results.
 *
 * This file holds the only raw `yield` of the library, in disguise: an
 * instruction is its own one-step iterator. `yield* instruction` calls
 * `next()` once, which hands the instruction itself to the loop (the
 * iterator result *is* the instruction, so no result object is allocated);
 * the loop later resumes the task with `next(value)`, which completes the
 * `yield*` with `value`, or with `throw(error)`, which throws at the
 * `yield*`.
 *
 * @module
 */

import type { Loop } from "./loop.ts";
import { running, type Task } from "./task.ts";

/**
 * Something that can be run with `yield*` inside a task and evaluates to a
 * `T`. Every helper of genloop (`sleep`, `join`, `read`, …) returns one, and
 * so does any generator function a user writes. Like any iterator, an
 * operation may finish without yielding: inside a task, `spawn`,
 * `currentTask` and `join` of a settled task usually do (their first
 * `next()` is `done`), so code that drives an operation by hand must check
 * `done`, as `yield*` does.
 *
 * @typeParam T The value that `yield*` evaluates to.
 *
 * @example Usage
 * ```ts
 * import { type Operation, runSync, yieldNow } from "@genloop/genloop";
 *
 * function* twice(n: number): Operation<number> {
 *   yield* yieldNow();
 *   return n * 2;
 * }
 * const result: number = runSync(function* main() {
 *   return yield* twice(21);
 * });
 * if (result !== 42) throw new Error("unexpected");
 * ```
 */
export interface Operation<T> {
  /** Starts the operation; the loop drives the iterator it returns. */
  [Symbol.iterator](): Iterator<Yielded, T, unknown>;
}

/**
 * What a task body may yield: an instruction, handed over by `yield*` on an
 * operation. A task body's type says it yields `Yielded`, so that a plain
 * `yield` (of an operation without `*`, of a value) is a type error
 * rather than an `InvalidInstructionError` when it runs.
 *
 * @example Usage
 * ```ts
 * import { type Operation, sleep } from "@genloop/genloop";
 *
 * function* nap(): Operation<void> {
 *   yield* sleep(10); // hands the loop an instruction, a Yielded
 *   // @ts-expect-error: an operation yielded without `*` is not one
 *   yield sleep(10);
 * }
 * if (typeof nap !== "function") throw new Error("unexpected");
 * ```
 */
export interface Yielded {
  /** What the waiting task waits for, for deadlock reports. */
  describe(): string;
}

/**
 * A request from a task to the loop: the unit the scheduler dispatches on.
 * Users rarely meet one directly: they call operations such as `sleep(ms)`
 * with `yield*`. Subclasses say how to start the wait (`perform`), how to
 * undo it when the task is cancelled (`undo`, or `holdsInterrupt` for one
 * that must first wait for child tasks), and how to describe it in a
 * `DeadlockError`.
 *
 * @typeParam T The value the waiting `yield*` evaluates to.
 *
 * @example Usage
 * ```ts
 * import { Instruction, yieldNow } from "@genloop/genloop";
 *
 * const step = yieldNow()[Symbol.iterator]().next();
 * if (!(step.value instanceof Instruction)) throw new Error("unexpected");
 * ```
 */
export abstract class Instruction<T = unknown>
  implements Iterator<Instruction, T, unknown>, Operation<T> {
  // Subclasses initialise `value` and `done` themselves (as
  // `override value: unknown = undefined; override done = false;`): a base
  // class without field initialisers lets V8 skip its constructor, which
  // makes creating an instruction, done for every spawn, join and sleep,
  // about twice as cheap.

  /**
   * The iterator-result view of this instruction. Before the first `next()`
   * it is `undefined`; while the task waits it is the instruction itself
   * (this is how the loop tells `yield*` from a forgotten `*`); once resumed
   * it is the value `yield*` evaluates to.
   */
  declare value: unknown;
  /** The iterator-result view: `true` once the task has been resumed. */
  declare done: boolean;
  /**
   * @internal The task waiting on the instruction, set by the loop when the
   * wait starts, to tell the loop's resume of it from another task's
   * `yield*` of the same object; null before, and once the wait is undone.
   */
  declare _waitedOnBy: Task<unknown> | null;

  /** An instruction is its own iterator: it can be used once. */
  [Symbol.iterator](): Iterator<Instruction, T, unknown> {
    return this;
  }

  /**
   * First call: hand this instruction to the loop. Second call (the loop
   * resuming the task): finish the `yield*` with `resumeValue`.
   */
  next(resumeValue?: unknown): IteratorResult<Instruction, T> {
    // Done first: an instruction thrown into (or failing) while it waited
    // still has itself as its value, and must not take a second yield* for
    // the loop's resume.
    if (this.done) {
      throw ranTwiceError(this.describe());
    }
    if (this.value === this) {
      refuseSecondWaiter(this);
      this.value = resumeValue;
      this.done = true;
      // An operation object a user keeps must not keep the task alive.
      this._waitedOnBy = null;
    } else {
      this.value = this;
    }
    return this as IteratorResult<Instruction, T>;
  }

  /**
   * Finishes the `yield*` at once with `value`, for an operation that needs
   * no wait (see `Operation`): returned from `next()` in place of the
   * instruction itself.
   * @internal
   */
  protected finishNow(value: unknown): IteratorResult<Instruction, T> {
    this.value = value;
    this.done = true;
    // Also after a wait (a read or write resumed): see next().
    this._waitedOnBy = null;
    return this as IteratorResult<Instruction, T>;
  }

  /** The loop resumes a task with an error: it is thrown at the `yield*`. */
  throw(error: unknown): IteratorResult<Instruction, T> {
    this.done = true;
    this._waitedOnBy = null;
    throw error;
  }

  /**
   * Starts the wait for `task`. Either it lets the task continue at once
   * (`loop._resumeNow` / `loop._throwNow`) or it registers something that
   * will queue it later (a timer, an observer, a selector registration).
   * @internal
   */
  abstract perform(task: Task<unknown>, loop: Loop): void;

  /**
   * Undoes the wait started by `perform` (a timer, a joiner entry, an I/O
   * registration): called when the task is cancelled or interrupted.
   * @internal
   */
  undo(_task: Task<unknown>, _loop: Loop): void {}

  /**
   * The wait ended with an error of what it waited on (a stream whose
   * `poll()` threw), not with an interrupt: the error is thrown at the
   * task's `yield*` next. An operation that would finish its work after an
   * interrupt (a write sending the rest of its bytes) need not after this.
   * @internal
   */
  _waitFailed(): void {}

  /**
   * The task waiting here is interrupted by `error` (cancelled, or sent a
   * failure). Returns whether the error is held back: an instruction that
   * started child tasks (a group, a timeout) has the loop hold it
   * (`loop._holdInterrupt`, first, before anything that may reach the task
   * again), cancels them and, once their cleanup has run, has the loop throw
   * it at the task (`loop._resumeHeld`). By default (false) the loop undoes
   * the wait and resumes the task with the error now.
   * @internal
   */
  holdsInterrupt(_task: Task<unknown>, _error: unknown, _loop: Loop): boolean {
    return false;
  }

  /**
   * Failures of child tasks this wait holds for the waiting task's outcome,
   * which it has not handed over yet (a group waiting for the cleanup of
   * its other children). A failed run reports them when the task will never
   * take them. None by default.
   * @internal
   */
  heldFailures(): unknown[] {
    return [];
  }

  /** What the waiting task waits for, for deadlock reports. */
  abstract describe(): string;
}

/**
 * An instruction that carries no state can be shared by every task, but then
 * it cannot be its own iterator; `SharedOperation` is the small
 * iterator that `yield*` walks over it. It recognises the loop's resume by a
 * private token, so one frozen instance serves every task at once.
 * @internal
 */
export class SharedOperation<T> implements Operation<T> {
  readonly #step: IteratorResult<Instruction, T>;

  constructor(instruction: Instruction) {
    // Marking the shared instruction as armed once makes it pass the
    // forgotten-`*` check for every task.
    instruction.value = instruction;
    this.#step = { value: instruction, done: false };
  }

  [Symbol.iterator](): Iterator<Instruction, T, unknown> {
    return this as unknown as Iterator<Instruction, T, unknown>;
  }

  next(resumeValue?: unknown): IteratorResult<Instruction, T> {
    // The typeof first: resumeValue is undefined or a symbol, and a strict
    // equality that has seen both is a call to a generic builtin in V8's
    // optimized code (a thirtieth of a task switch).
    if (typeof resumeValue === "symbol" && resumeValue === RESUME_SHARED) {
      return SHARED_DONE as IteratorResult<Instruction, T>;
    }
    return this.#step;
  }

  throw(error: unknown): IteratorResult<Instruction, T> {
    throw error;
  }
}

/** The value the loop resumes a task with after a shared instruction. */
export const RESUME_SHARED: unique symbol = Symbol("genloop.resumeShared");

/** The task whose step runs now, if any. @internal */
export function runningTask(): Task<unknown> | null {
  const loop = running.loop;
  if (loop === null) return null;
  return loop._runningTask ?? loop._deferringTask;
}

/**
 * The error for a second `yield*` of an operation object that ran already
 * (`what` describes the operation).
 */
export function ranTwiceError(what: string): TypeError {
  const task = runningTask();
  const where = task === null ? "" : ` in task "${task.name}"`;
  return new TypeError(
    `Cannot run an operation twice (${what})${where}; call the operation function again for each use`,
  );
}

/** The task whose step runs now, as messages name it. */
export function runningTaskName(): string {
  const task = runningTask();
  return task === null ? "a task" : `task "${task.name}"`;
}

/**
 * Throws a TypeError when a `next()` of `instruction`, armed, comes from
 * another task's `yield*` of the same operation object while a task waits
 * on it (or was woken from it and has not run yet), rather than from the
 * loop's resume of that task: an operation runs once, so the second task
 * would take the first one's wake-up (or steal its data) and leave it with
 * a TypeError. An instruction armed but never waited on (a generator
 * stepped by hand, then spawned) is not refused.
 */
export function refuseSecondWaiter(instruction: Instruction): void {
  const waiter = instruction._waitedOnBy;
  // Undefined in a user's subclass that does not initialise it: none.
  if (!waiter) return;
  const task = runningTask();
  if (task === null || task === waiter) return;
  // Not the operation reused, but the generator it was yielded from: the
  // same generator object given to two tasks.
  if (task._iter === waiter._iter) {
    throw new TypeError(
      `Cannot run task "${task.name}": it resumes the generator object that task "${waiter.name}" runs (which waits there on ${instruction.describe()}); a generator object is one task's: pass the generator function, or call it again for each task`,
    );
  }
  throw new TypeError(
    `Cannot yield* ${instruction.describe()} in ${runningTaskName()}: another task is waiting on this very operation object, and an operation runs once; call the operation function again for each task`,
  );
}
const SHARED_DONE: IteratorResult<never, undefined> = Object.freeze({
  value: undefined,
  done: true,
});

/**
 * `timeout`: run a body with a time limit.
 *
 * @module
 */

import { bodyNameSource, startBody } from "./_body.ts";
import { untakenCircumstance } from "./_error_util.ts";
import { TimeoutError } from "./errors.ts";
import { Instruction, type Operation } from "./instruction.ts";
import { resumeWithOutcome } from "./join.ts";
import type { Loop } from "./loop.ts";
import {
  type BodyResult,
  nameOf,
  type NameSource,
  type Task,
  type TaskBody,
  type TaskObserver,
} from "./task.ts";
import { describeDelay } from "./sleep.ts";
import type { Timer } from "./timers.ts";
import { addObserver } from "./task_tree.ts";

/**
 * A timeout's entry in the timer queue: an object of its own, not the
 * instruction, because the queue may keep a cancelled entry until it
 * compacts or the deadline passes (an hour, for an hour-long limit), and
 * the instruction holds the body's task and, as the value its `yield*`
 * evaluated to, the body's result. A cancelled entry lets go of it.
 */
class TimeoutTimer implements Timer {
  // Until armed (see Timer.deadline).
  deadline = NaN;
  armed = false;
  order = 0;
  readonly delay: number;
  #instruction: TimeoutInstruction<unknown> | null;

  constructor(instruction: TimeoutInstruction<unknown>, delay: number) {
    this.#instruction = instruction;
    this.delay = delay;
  }

  fire(loop: Loop): void {
    const instruction = this.#instruction!;
    this.#instruction = null;
    instruction.expire(loop);
  }

  /** Disarms the timer and lets go of the instruction. */
  cancel(loop: Loop): void {
    loop._removeTimer(this);
    this.#instruction = null;
  }
}

class TimeoutInstruction<T> extends Instruction<T> implements TaskObserver {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly delay: number;
  readonly #iter: Iterator<unknown, T, unknown>;
  readonly #name: NameSource;
  #child: Task<unknown> | null = null;
  #waiter: Task<unknown> | null = null;
  #timer: TimeoutTimer | null = null;
  #timedOut = false;
  // The body had failed already (its children's cleanup outlasted the
  // limit): its failure is not one "while cancelled by its timeout".
  #failedBefore = false;
  // Set once the waiting task was interrupted (see holdsInterrupt): how,
  // for the report of a failure nobody takes now. The loop holds its error
  // until the body has settled.
  #interruption: string | null = null;

  constructor(ms: number, iter: Iterator<unknown, T, unknown>, name: NameSource) {
    super();
    this.delay = ms;
    this.#iter = iter;
    this.#name = name;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const child = loop._spawn(this.#iter, this.#name, task) as Task<unknown>;
    this.#child = child;
    this.#waiter = task;
    addObserver(child, this);
    if (this.delay !== Infinity) {
      const timer = new TimeoutTimer(this as TimeoutInstruction<unknown>, this.delay);
      timer.deadline = loop.time() + this.delay;
      loop._addTimer(timer);
      this.#timer = timer;
    }
  }

  /** The limit has passed: cancel the body. Called by its timer. */
  expire(loop: Loop): void {
    this.#timer = null;
    this.#timedOut = true;
    this.#failedBefore = loop._bodyFailed(this.#child!);
    loop._cancel(this.#child!, `timeout of ${this.delay} ms`);
  }

  taskSettled(child: Task<unknown>, loop: Loop): void {
    this.#disarm(loop);
    const waiter = this.#waiter!;
    this.#waiter = null;
    if (this.#interruption !== null) {
      if (child._state === "failed") loop._reportUntaken(waiter, child, this.#interruption);
      loop._resumeHeld(waiter);
    } else if (this.#timedOut) {
      loop._enqueueThrow(
        waiter,
        new TimeoutError(`Task "${child.name}" did not finish within ${this.delay} ms`, this.delay),
      );
      // The body failed instead of ending cancelled (its cleanup threw):
      // reported after the TimeoutError, as an unjoined failure is.
      if (child._state === "failed") {
        const circumstance = this.#failedBefore
          ? `before its timeout of ${this.delay} ms passed`
          : `while cancelled by its timeout of ${this.delay} ms`;
        loop._reportFailure(child, circumstance);
      }
    } else {
      resumeWithOutcome(loop, waiter, child);
    }
    // A timeout object a user keeps must not keep the body's task, and
    // through it the waiting task, alive.
    this.#child = null;
  }

  override holdsInterrupt(task: Task<unknown>, error: unknown, loop: Loop): boolean {
    loop._holdInterrupt(task, error);
    this.#interruption = untakenCircumstance("timeout()", loop);
    this.#disarm(loop);
    loop._cancel(this.#child!, "the waiting task was interrupted");
    return true;
  }

  describe(): string {
    const name = this.#child?.name ?? nameOf(this.#name) ?? "a task";
    // Once the limit has passed, the wait is for the cancelled body's
    // cleanup, not for the body to beat the limit.
    if (this.#timedOut) {
      return `task "${name}" to finish its cleanup after its timeout of ${this.delay} ms passed`;
    }
    return `task "${name}" with a timeout of ${this.delay} ms`;
  }

  #disarm(loop: Loop): void {
    if (this.#timer === null) return;
    this.#timer.cancel(loop);
    this.#timer = null;
  }
}

/**
 * Runs `body` as a child task with a time limit. Evaluates to its result
 * if it finishes before the limit (one that would finish at the very
 * moment the limit falls times out: the limit's timer was armed first);
 * otherwise cancels it, waits until its cleanup
 * has run, and throws `TimeoutError`. A body whose cleanup fails is not
 * dropped: its `TaskFailedError` reaches the task after the `TimeoutError`,
 * at its next `yield*`. If the waiting task itself is cancelled (or sent
 * another error), the body is cancelled, and the error is thrown at the
 * task's `yield*` once the body's cleanup has run. The body starts on the
 * loop's next turn, as any
 * spawned task does; if the limit has passed by then (`timeout(0, …)`, or
 * a loop too busy to start it in time), it is cancelled before it starts
 * and none of it runs.
 *
 * @typeParam T What the body returns.
 * @param ms The limit in milliseconds of the loop's clock (>= 0; `Infinity`
 * for none).
 * @param body A generator object, generator function or operation. A
 * generator object runs once: to retry after a `TimeoutError`, pass the
 * generator function (or call it again), not the object the first attempt
 * ran to its end.
 * @returns An operation evaluating to the body's result.
 * @throws {RangeError} at the call when `ms` is negative or not a number.
 *
 * @example Usage
 * ```ts
 * import { Loop, sleep, timeout, TimeoutError, VirtualClock } from "@genloop/genloop";
 *
 * const loop = new Loop({ clock: new VirtualClock() });
 * const outcome = loop.runSync(function* main() {
 *   try {
 *     return yield* timeout(100, sleep(1_000));
 *   } catch (error) {
 *     if (error instanceof TimeoutError) return "timed out";
 *     throw error;
 *   }
 * });
 * if (outcome !== "timed out" || loop.time() !== 100) throw new Error("unexpected");
 * ```
 */
export function timeout<T>(ms: number, body: TaskBody<T>): Operation<T>;
/**
 * Runs `body` as a child task, cancelling it if it has not finished within `ms`
 * milliseconds (the form for a body whose type is a union of bodies returning
 * different types, such as `flag ? fetchName() : fetchCount()`: the result is
 * typed as any of theirs).
 *
 * @typeParam B The body's type.
 * @param ms The limit in milliseconds of the loop's clock.
 * @param body A generator object, generator function or operation.
 * @returns An operation evaluating to the body's result.
 */
export function timeout<B extends TaskBody<unknown>>(
  ms: number,
  body: B,
): Operation<BodyResult<B>>;
export function timeout<T>(ms: number, body: TaskBody<T>): Operation<T> {
  if (typeof ms !== "number" || !(ms >= 0)) {
    throw new RangeError(
      `Cannot use timeout(${
        describeDelay(ms)
      }, …): the limit must be a number of milliseconds >= 0`,
    );
  }
  return new TimeoutInstruction(ms, startBody(body, "timeout()"), bodyNameSource(body));
}

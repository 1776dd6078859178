/**
 * `spawn` and `currentTask`: starting tasks from inside a task, and finding
 * out which task is running.
 *
 * @module
 */

import { bodyNameSource, startBody } from "./_body.ts";
import { Instruction, type Operation } from "./instruction.ts";
import type { Loop } from "./loop.ts";
import {
  type BodyResult,
  canFinishInStep,
  nameOf,
  type NameSource,
  running,
  type SpawnOptions,
  type Task,
  type TaskBody,
} from "./task.ts";

class SpawnInstruction<T> extends Instruction<Task<T>> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #iter: Iterator<unknown, T, unknown>;
  readonly #name: NameSource;
  readonly #detached: boolean;

  constructor(iter: Iterator<unknown, T, unknown>, name: NameSource, detached: boolean) {
    super();
    this.#iter = iter;
    this.#name = name;
    this.#detached = detached;
  }

  /**
   * Inside a task's step the child is spawned right here and `yield*`
   * finishes at once: a spawn needs no wait, so it need not cost a round
   * trip through the loop (about a tenth of a spawn and join).
   */
  override next(resumeValue?: unknown): IteratorResult<Instruction, Task<T>> {
    // Written out rather than finishNow(), whose accesses to value and done
    // see every instruction class (see JoinInstruction.next).
    const task = canFinishInStep();
    if (task === null || this.value !== undefined) return super.next(resumeValue);
    const child = this.#start(task, running.loop!);
    this.value = child;
    this.done = true;
    return this as IteratorResult<Instruction, Task<T>>;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    loop._resumeNow(task, this.#start(task, loop));
  }

  #start(task: Task<unknown>, loop: Loop): Task<T> {
    return loop._spawn(this.#iter, this.#name, this.#detached ? loop : task);
  }

  describe(): string {
    return `spawn of "${nameOf(this.#name) || "a task"}"`;
  }
}

/**
 * Starts `body` as a child task and returns it at once, without giving up
 * the task's turn; the child starts on a later turn of the loop (like
 * asyncio's `create_task`). Children do not outlive their parent: when the
 * parent ends, children still running are cancelled and awaited, unless
 * spawned with `{ detached: true }`.
 *
 * @typeParam T What the body returns.
 * @param body A generator object, a zero-argument generator function (which
 * names the task), or an operation.
 * @param options The task's name; `detached` to opt out of the parent's scope.
 * @returns An operation evaluating to the new `Task`.
 * @throws {TypeError} at the call when `body` is not something a task can run;
 * at the `yield*` when `body` is the generator object of the task spawned
 * just before, still running (each task needs a generator of its own).
 *
 * @example Usage
 * ```ts
 * import { join, runSync, spawn } from "@genloop/genloop";
 *
 * const order: string[] = [];
 * runSync(function* main() {
 *   const child = yield* spawn(function* worker() {
 *     order.push("child");
 *     return 7;
 *   });
 *   order.push("parent");
 *   const n = yield* join(child);
 *   if (n !== 7) throw new Error("unexpected");
 * });
 * if (order.join() !== "parent,child") throw new Error("unexpected");
 * ```
 */
export function spawn<T>(body: TaskBody<T>, options?: SpawnOptions): Operation<Task<T>>;
/**
 * Starts `body` as a child task and returns it at once (the form for a body
 * whose type is a union of bodies returning different types, such as
 * `flag ? fetchName() : fetchCount()`: the result is typed as any of theirs).
 *
 * @typeParam B The body's type.
 * @param body A generator object, a zero-argument generator function, or an operation.
 * @param options The task's name; `detached` to opt out of the parent's scope.
 * @returns An operation evaluating to the new `Task`.
 */
export function spawn<B extends TaskBody<unknown>>(
  body: B,
  options?: SpawnOptions,
): Operation<Task<BodyResult<B>>>;
export function spawn<T>(body: TaskBody<T>, options?: SpawnOptions): Operation<Task<T>> {
  // No default `{}` for options: spawn is hot, and that would allocate per call.
  return new SpawnInstruction(
    startBody(body, "spawn()"),
    options?.name ?? bodyNameSource(body),
    options?.detached ?? false,
  );
}

class CurrentTaskInstruction extends Instruction<Task<unknown>> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  /** Inside a task's step the answer is known at once: no round trip. */
  override next(resumeValue?: unknown): IteratorResult<Instruction, Task<unknown>> {
    const task = canFinishInStep();
    if (task === null || this.value !== undefined) return super.next(resumeValue);
    return this.finishNow(task);
  }

  perform(task: Task<unknown>, loop: Loop): void {
    loop._resumeNow(task, task);
  }

  describe(): string {
    return "currentTask()";
  }
}

/**
 * Evaluates to the task running this code.
 *
 * @returns An operation evaluating to the current `Task`.
 *
 * @example Usage
 * ```ts
 * import { currentTask, runSync } from "@genloop/genloop";
 *
 * const name = runSync(function* main() {
 *   const me = yield* currentTask();
 *   return me.name;
 * });
 * if (name !== "main") throw new Error("unexpected");
 * ```
 */
export function currentTask(): Operation<Task<unknown>> {
  return new CurrentTaskInstruction();
}

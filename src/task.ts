/**
 * The task state machine. A task wraps one iterator (normally a generator
 * object) and records where it is in its life:
 *
 * ```
 * ready ──▶ running ──▶ waiting ──▶ ready …
 *                 └──▶ done | failed | cancelled
 * ```
 *
 * `waiting` also covers a task whose body has finished while children it
 * spawned are still being cancelled: it settles only when they have.
 *
 * The scheduler (`scheduler.ts`) drives the transitions; this file holds
 * the record and the public, read-only view of it.
 *
 * @module
 */

import type { Loop } from "./loop.ts";
import type { TaskLinks } from "./task_tree.ts";
import type { Yielded } from "./instruction.ts";

/**
 * Where a task is in its life.
 *
 * - `ready`: queued to run (or not started yet).
 * - `running`: its code is executing right now.
 * - `waiting`: suspended on an instruction (a timer, a join, I/O, …), from
 *   the moment the wait starts (so also while `call()` runs the function
 *   it was given), or finished but waiting for its children to be
 *   cancelled.
 * - `done`: returned a value; see `task.result`.
 * - `failed`: threw; see `task.error`.
 * - `cancelled`: ended by a `CancelledError` (see `task.error`): its own
 *   cancellation, or one it let through, such as that of a cancelled task
 *   it joined. Unlike a failure, it is not reported to the parent.
 *
 * @example Usage
 * ```ts
 * import { runSync, spawn, type TaskState, yieldNow } from "@genloop/genloop";
 *
 * const states = runSync(function* main() {
 *   const child = yield* spawn(function* child() {});
 *   const before: TaskState = child.state;
 *   yield* yieldNow();
 *   return [before, child.state];
 * });
 * if (states.join() !== "ready,done") throw new Error("unexpected");
 * ```
 */
export type TaskState =
  | "ready"
  | "running"
  | "waiting"
  | "done"
  | "failed"
  | "cancelled";

/**
 * The code a task runs: an iterator (normally the generator object returned
 * by calling a `function*`), a zero-argument generator function (which also
 * names the task), or an operation such as `sleep(10)`.
 *
 * @typeParam T What the body returns.
 *
 * @example Usage
 * ```ts
 * import { type Operation, runSync, sleep, spawn, type TaskBody } from "@genloop/genloop";
 *
 * function* worker(): Operation<number> {
 *   return 1;
 * }
 * // The three kinds of body: a generator object, a generator function, an operation.
 * const bodies: TaskBody<number | void>[] = [worker(), worker, sleep(1)];
 * const spawned = runSync(function* main() {
 *   for (const body of bodies) yield* spawn(body);
 *   return bodies.length;
 * });
 * if (spawned !== 3) throw new Error("unexpected");
 * ```
 */
export type TaskBody<T> =
  | Iterator<Yielded, T, unknown>
  | IterableBody<T>
  | (() => Iterator<Yielded, T, unknown> | IterableBody<T>);

/**
 * What a task body returns: `R` for a generator object, an operation or a
 * generator function whose body returns `R`. `gather` and `race` type
 * their results with it, so that bodies returning different types can be
 * listed together. An `any` body gives `any`, as `Promise.all` does.
 *
 * @typeParam B The body's type.
 *
 * @example Usage
 * ```ts
 * import type { BodyResult, Operation } from "@genloop/genloop";
 *
 * function* name(): Operation<string> {
 *   return "genloop";
 * }
 * const result: BodyResult<typeof name> = "a string";
 * ```
 */
// deno-lint-ignore no-explicit-any
export type BodyResult<B> = 0 extends 1 & B ? any
  : B extends () => infer Made ? Made extends Iterator<unknown, infer R, unknown> ? R
    : Made extends IterableBody<infer R> ? R
    : never
  : B extends Iterator<unknown, infer R, unknown> ? R
  : B extends IterableBody<infer R> ? R
  : never;

/**
 * Anything iterable into a task body, such as an `Operation<T>` or a
 * generator object typed as one.
 *
 * @typeParam T What the body returns.
 *
 * @example Usage
 * ```ts
 * import { type IterableBody, Loop, sleep, VirtualClock } from "@genloop/genloop";
 *
 * // Any object whose [Symbol.iterator] starts a body, such as an operation.
 * const nap: IterableBody<void> = sleep(1);
 * new Loop({ clock: new VirtualClock() }).runSync(nap);
 * ```
 */
export interface IterableBody<T> {
  /** Starts the body. */
  [Symbol.iterator](): Iterator<Yielded, T, unknown>;
}

/**
 * Options for spawning a task.
 *
 * @example Usage
 * ```ts
 * import { runSync, sleep, spawn, type SpawnOptions } from "@genloop/genloop";
 *
 * const name = runSync(function* main() {
 *   const options: SpawnOptions = { name: "ticker", detached: true };
 *   const ticker = yield* spawn(sleep(1), options);
 *   return ticker.name;
 * });
 * if (name !== "ticker") throw new Error("unexpected");
 * ```
 */
export interface SpawnOptions {
  /** The task's name in errors and deadlock reports. */
  name?: string;
  /**
   * Detach the task from the spawning task: it is not cancelled when the
   * spawner ends, and its unjoined failure is reported to the run's main
   * task instead. It still belongs to the run: if it is running when the
   * run's main task settles, it is cancelled then and the run waits for its
   * cleanup. Default `false`.
   */
  detached?: boolean;
}

/**
 * Told when a task settles. Joiners, `gather`, `race` and `timeout` observe
 * the tasks they wait for.
 * @internal
 */
export interface TaskObserver {
  /** Called once, when `task` has settled. */
  taskSettled(task: Task<unknown>, loop: Loop): void;
}

/**
 * A running piece of work: one iterator driven by a `Loop`. Create tasks with
 * `spawn(body)` inside a task or `loop.spawn(body)` outside one.
 *
 * @typeParam T What the task's body returns.
 *
 * @example Usage
 * ```ts
 * import { join, runSync, spawn } from "@genloop/genloop";
 *
 * runSync(function* main() {
 *   const child = yield* spawn(function* add() {
 *     return 1 + 2;
 *   });
 *   const before: string = child.state;
 *   const sum = yield* join(child);
 *   const after: string = child.state;
 *   if (child.name !== "add" || before !== "ready") throw new Error(before);
 *   if (sum !== 3 || after !== "done") throw new Error(after);
 * });
 * ```
 */
export class Task<T = unknown> {
  /** A number unique within the task's loop, in spawn order. */
  readonly id: number;
  /** @internal Where the task is in its life (see `state`). */
  _state: TaskState = "ready";

  // The fields below belong to the loop. They are public only so that the
  // loop, which lives in another module, can reach them without indirection
  // on its hot path; they are not part of the API. A suspended task costs
  // its generator plus this record, so the record is kept to eight fields:
  // rare facts (a delivered cancellation, a second error) live in the
  // loop's side tables, children and observers in a `TaskLinks` made only
  // for tasks that have them, and one slot serves what the task is resumed
  // with, what it waits on and how it ended, since it needs only one at a
  // time.

  /** @internal The body being driven. */
  _iter: Iterator<unknown, T, unknown>;
  /**
   * @internal What the task needs now, by state. `ready` (and `running`,
   * before a continue): the value to resume it with, or a `Thrown` error.
   * `waiting`: the `Instruction` it waits on. Settled: its result or error.
   */
  _slot: unknown = undefined;
  /**
   * @internal The spawning task; for root tasks (a run's main task,
   * detached tasks) the owning loop itself, so no task needs a loop field.
   */
  _parent: Task<unknown> | Loop;
  /**
   * @internal Its children and observers (see task_tree.ts): a lone
   * observer of a task without children is held here directly.
   */
  _links: TaskLinks | TaskObserver | null = null;
  /**
   * @internal The next newer sibling in the parent's circular child list
   * (the newest child's next is the oldest); `null` once unlinked.
   */
  _nextSibling: Task<unknown> | null = null;
  /** @internal The name given at spawn, or the body function lending its own. */
  _name: NameSource;

  /** @internal Tasks are created by `spawn` / `loop.spawn`. */
  constructor(
    id: number,
    iter: Iterator<unknown, T, unknown>,
    name: NameSource,
    parent: Task<unknown> | Loop,
  ) {
    this.id = id;
    this._iter = iter;
    this._name = name;
    this._parent = parent;
  }

  /**
   * The name given at spawn, else the name of the generator function given
   * as the body (`spawn(worker)`), else `task-<id>`: a generator object
   * (`spawn(worker())`) does not know its function's name, so give one
   * with `{ name }` where reports should say it.
   */
  get name(): string {
    return nameOf(this._name) || `task-${this.id}`;
  }

  /**
   * Where the task is in its life. Read-only: the loop moves a task from
   * state to state; to end one, cancel it.
   */
  get state(): TaskState {
    return this._state;
  }

  /** The returned value once `state` is `"done"`; `undefined` before. */
  get result(): T | undefined {
    return this._state === "done" ? this._slot as T : undefined;
  }

  /** The error once `state` is `"failed"` or `"cancelled"`; `undefined` before. */
  get error(): unknown {
    return this._state === "failed" || this._state === "cancelled" ? this._slot : undefined;
  }

  /** Whether the task has settled (`done`, `failed` or `cancelled`). */
  get settled(): boolean {
    return this._state === "done" || this._state === "failed" ||
      this._state === "cancelled";
  }

  /**
   * Cancels the task: a `CancelledError` is thrown at its current `yield*`
   * so its `finally` blocks run; whatever it waited on is unregistered. A
   * task that has not started never runs. Cancelling a settled task does
   * nothing. Returns at once; `join` the task to wait for its cleanup.
   *
   * @param reason Why; kept as the error's `reason`.
   */
  cancel(reason?: unknown): void {
    if (this.settled) return;
    loopOf(this as Task<unknown>)._cancel(this as Task<unknown>, reason);
  }

  /** A short description such as `Task "worker" (#3, waiting)`. */
  toString(): string {
    return `Task "${this.name}" (#${this.id}, ${this._state})`;
  }
}

/**
 * What names a task: the name given at spawn, or the generator function
 * whose name it takes. The function's name is read only when asked for:
 * reading it costs as much as a tenth of a spawn.
 * @internal
 */
export type NameSource = string | { readonly name: string } | undefined;

/** The name `source` gives, if any. @internal */
export function nameOf(source: NameSource): string | undefined {
  return typeof source === "string" || source === undefined ? source : source.name;
}

/**
 * An error a task is to be resumed with (thrown at its `yield*`), as held in
 * its slot; anything else there is a value to resume it with.
 * @internal
 */
export class Thrown {
  /** The error to throw into the task. */
  readonly error: unknown;

  constructor(error: unknown) {
    this.error = error;
  }
}

/**
 * The loop that is ticking now: set while a loop ticks and put back
 * afterwards, so that a loop nested in a step (a `runSync` inside a task)
 * restores the outer one. The task whose step that loop runs is its
 * `_runningTask`. An operation that needs no wait (`spawn`, `currentTask`,
 * `join` of a settled task) reads them to finish inside the task's own
 * step, without a round trip through the loop, but only while nothing is
 * due to be thrown at the task: see `canFinishInStep`.
 * @internal
 */
export const running: { loop: Loop | null } = { loop: null };

/**
 * The running task, if an operation may finish inside its step: there is
 * one, and no error waits in its slot (it cancelled itself, or another loop
 * running inside its step cancelled it), since that error must be thrown at
 * this very `yield*`. A deferred error is excluded by the loop (the running
 * task is `null` then).
 * @internal
 */
export function canFinishInStep(): Task<unknown> | null {
  const loop = running.loop;
  const task = loop === null ? null : loop._runningTask;
  return task !== null && task._slot === undefined ? task : null;
}

/** The task that spawned `task`; `null` for root tasks. @internal */
export function parentOf(task: Task<unknown>): Task<unknown> | null {
  const parent = task._parent;
  return parent instanceof Task ? parent : null;
}

/**
 * The loop that owns `task`: found at the root of its tree, since every
 * task lives in the same loop as the task that spawned it.
 * @internal
 */
export function loopOf(task: Task<unknown>): Loop {
  let owner: Task<unknown> | Loop = task._parent;
  while (owner instanceof Task) owner = owner._parent;
  return owner;
}

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
 * The loop (`loop.ts`) drives the transitions; this file holds the record and
 * the public, read-only view of it.
 *
 * @module
 */

import type { Loop } from "./loop.ts";
import { NAMED_BY_FUNCTION, type NameKind, recordedName, recordName } from "./_task_name.ts";

/**
 * Where a task is in its life.
 *
 * - `ready`: queued to run (or not started yet).
 * - `running`: its code is executing right now.
 * - `waiting`: suspended on an instruction (a timer, a join, I/O, …), or
 *   finished but waiting for its children to be cancelled.
 * - `done`: returned a value; see `task.result`.
 * - `failed`: threw; see `task.error`.
 * - `cancelled`: ended by `cancel()`; `task.error` is the `CancelledError`.
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
 */
export type TaskBody<T> =
  | Iterator<unknown, T, unknown>
  | IterableBody<T>
  | (() => Iterator<unknown, T, unknown> | IterableBody<T>);

/**
 * Anything iterable into a task body, such as an `Operation<T>` or a
 * generator object typed as one.
 *
 * @typeParam T What the body returns.
 */
export interface IterableBody<T> {
  /** Starts the body. */
  [Symbol.iterator](): Iterator<unknown, T, unknown>;
}

/** Options for spawning a task. */
export interface SpawnOptions {
  /** The task's name in errors and deadlock reports. */
  name?: string;
  /**
   * Detach the task from the spawning task: it is not cancelled when the
   * spawner ends, and its unjoined failure is reported to the run's main
   * task instead. Default `false`.
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
  // The fields below belong to the loop. They are public only so that the
  // loop, which lives in another module, can reach them without indirection
  // on its hot path; they are not part of the API. A suspended task costs
  // its generator plus this record, so the record is kept to eight fields:
  // the id, the state and how to find the name share one number; the name
  // itself is found through the body (see _task_name.ts); rare facts (a
  // delivered cancellation, a second error) live in the loop's side tables;
  // and one slot serves what the task is resumed with, what it waits on and
  // how it ended, since it needs only one at a time.

  /**
   * @internal `id × ID_UNIT + name kind × NAME_KIND_UNIT + state code`. An
   * integer, so the low bits survive even past 2³¹, where `&` still reads
   * the low 32 bits.
   */
  _bits: number;
  /**
   * @internal The body being driven. Once settled, what is left of it:
   * the generator's prototype for a task named by its generator function
   * (which names it), else `SETTLED_BODY`. Neither can be resumed.
   */
  _iter: Iterator<unknown, T, unknown>;
  /**
   * @internal What the task needs now, by state. Ready (or running, before
   * a continue): the value to resume it with, or a `Thrown` error. Waiting:
   * the `Instruction` it waits on. Settled: its result or error.
   */
  _slot: unknown = undefined;
  /**
   * @internal The spawning task; for root tasks (a run's main task,
   * detached tasks) the owning loop itself, so no task needs a loop field.
   */
  _parent: Task<unknown> | Loop;
  /** @internal Children form an intrusive doubly-linked list: O(1) add/remove. */
  _firstChild: Task<unknown> | null = null;
  /** @internal Previous sibling in the parent's child list. */
  _prevSibling: Task<unknown> | null = null;
  /** @internal Next sibling in the parent's child list. */
  _nextSibling: Task<unknown> | null = null;
  /** @internal Who to tell when the task settles. */
  _observers: TaskObserver | TaskObserver[] | null = null;

  /** @internal Tasks are created by `spawn` / `loop.spawn`. */
  constructor(
    id: number,
    iter: Iterator<unknown, T, unknown>,
    name: NameSource,
    parent: Task<unknown> | Loop,
  ) {
    this._iter = iter;
    this._parent = parent;
    this._bits = id * ID_UNIT +
      recordName(this as Task<unknown>, iter, name) * NAME_KIND_UNIT + READY;
  }

  /** A number unique within the task's loop, in spawn order. */
  get id(): number {
    return Math.floor(this._bits / ID_UNIT);
  }

  /** Where the task is in its life. */
  get state(): TaskState {
    const code = stateOf(this as Task<unknown>);
    if (code === READY && loopOf(this as Task<unknown>)._runningBits === this._bits) {
      return "running";
    }
    return STATE_NAMES[code];
  }

  /** The name given at spawn, else the generator function's name, else `task-<id>`. */
  get name(): string {
    const kind = ((this._bits & NAME_KIND_MASK) / NAME_KIND_UNIT) as NameKind;
    const body: object = this._iter;
    const bodyPrototype = this.settled ? body : Object.getPrototypeOf(body);
    return recordedName(this as Task<unknown>, kind, bodyPrototype) || `task-${this.id}`;
  }

  /** The returned value once `state` is `"done"`; `undefined` before. */
  get result(): T | undefined {
    return stateOf(this as Task<unknown>) === DONE ? this._slot as T : undefined;
  }

  /** The error once `state` is `"failed"` or `"cancelled"`; `undefined` before. */
  get error(): unknown {
    return stateOf(this as Task<unknown>) > DONE ? this._slot : undefined;
  }

  /** Whether the task has settled (`done`, `failed` or `cancelled`). */
  get settled(): boolean {
    return stateOf(this as Task<unknown>) >= DONE;
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
    return `Task "${this.name}" (#${this.id}, ${this.state})`;
  }
}

// State codes, as kept in the low bits of `Task._bits`. A running task is
// stored as ready: it is running when it is the task its loop is stepping
// (`Loop._runningBits`), so a task switch writes no state at all. The settled states come last,
// so "settled" is one comparison.
/** @internal Ready to run, or running. */
export const READY = 0;
/** @internal */
export const WAITING = 1;
/** @internal */
export const DONE = 2;
/** @internal */
export const FAILED = 3;
/** @internal */
export const CANCELLED = 4;
const STATE_MASK = 7;
const NAME_KIND_UNIT = 8;
const NAME_KIND_MASK = 3 * NAME_KIND_UNIT;
const ID_UNIT = 32;
const STATE_NAMES: readonly TaskState[] = ["ready", "waiting", "done", "failed", "cancelled"];

/** `task`'s state code (`READY` … `CANCELLED`). @internal */
export function stateOf(task: Task<unknown>): number {
  return task._bits & STATE_MASK;
}

/** Moves `task` to the state `code`. @internal */
export function setState(task: Task<unknown>, code: number): void {
  task._bits += code - (task._bits & STATE_MASK);
}

/** What a settled task keeps of a body that no function names. @internal */
export const SETTLED_BODY: Iterator<unknown, unknown, unknown> = {
  next(): IteratorResult<unknown, unknown> {
    throw new Error("Cannot resume a settled task");
  },
};

/**
 * Lets a settled task's body go (its generator may hold large locals),
 * keeping only what names the task. @internal
 */
export function releaseBody(task: Task<unknown>): void {
  const namedByFunction = (task._bits & NAME_KIND_MASK) === NAMED_BY_FUNCTION * NAME_KIND_UNIT;
  task._iter = namedByFunction ? Object.getPrototypeOf(task._iter) : SETTLED_BODY;
}

/**
 * What names a task: the name given at spawn, or the generator function
 * whose name it takes. The function's name is read only when asked for:
 * reading it costs as much as a tenth of a spawn.
 * @internal
 */
export type NameSource = string | { readonly name: string } | undefined;

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

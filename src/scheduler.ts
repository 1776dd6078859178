/**
 * The scheduler: the ready queue and the task life cycle. It resumes tasks
 * (the only place that drives an iterator), dispatches what they yield,
 * settles them, tells their observers, and delivers errors and
 * cancellations to them, so that none is lost and none arrives twice.
 *
 * The `Loop` owns one and drives it: it decides when to run the ready
 * batch and what time and I/O make ready in between. Instructions reach it
 * through the loop's `_` methods.
 *
 * @module
 */

import { CancelledError, describeError, TaskFailedError } from "./errors.ts";
import { Instruction, RESUME_SHARED } from "./instruction.ts";
import { YIELD_NOW_INSTRUCTION, YIELD_NOW_STEP } from "./yield_now.ts";
import { invalidInstructionError } from "./_invalid.ts";
import { RunQueue } from "./run_queue.ts";
import { hasLiveChildren, liveChildren, takeObservers, TaskTree } from "./task_tree.ts";
import {
  addPending,
  cancelledError,
  groupCancelledError,
  mergeErrors,
  pendingWith,
  takePending,
} from "./_error_util.ts";
import { type NameSource, parentOf, Task, Thrown } from "./task.ts";
import type { Loop } from "./loop.ts";

/**
 * What a task waits on after its body ended while children still run. It
 * holds the body's outcome until the task can settle with it.
 * @internal
 */
export class Closing extends Instruction {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  /** Whether the body threw (or a child's failure was added since). */
  threw: boolean;
  // Whether the body itself threw, for reports: a body that returned fails
  // too once a child's failure is added.
  readonly #bodyThrew: boolean;
  // The body's result or error, with the failures added since (see
  // PendingErrors).
  #outcome: unknown;

  constructor(threw: boolean, outcome: unknown) {
    super();
    this.threw = threw;
    this.#bodyThrew = threw;
    this.#outcome = outcome;
  }

  /** The body's result or error, with the failures added since merged in. */
  get outcome(): unknown {
    this.#outcome = takePending(this.#outcome);
    return this.#outcome;
  }

  /** Adds a failure to report with the outcome: the task now fails. */
  addFailure(error: unknown): void {
    // The outcome is an error once the body threw, even `undefined`.
    this.#outcome = this.threw ? pendingWith(this.#outcome, error) : error;
    this.threw = true;
  }

  perform(): void {}

  describe(): string {
    const waiting = "its children to finish their cleanup";
    // The error that started the shutdown is what a reader of a deadlock
    // report needs most.
    if (!this.threw || this.outcome instanceof CancelledError) return waiting;
    const how = this.#bodyThrew ? "its body threw" : "its body returned, but a child failed:";
    return `${waiting} (${how} ${describeError(this.outcome)})`;
  }
}

/**
 * What a settled task's iterator is replaced with, to free the generator.
 * Not a generator: resuming a settled task (a scheduler bug) is a
 * TypeError from the generator prototype's `next`, not a silent second end.
 */
const SETTLED_ITER = Object.freeze({}) as Iterator<unknown, unknown, unknown>;

// Every task's iterator is a generator object (see `drive` in _body.ts),
// resumed through these: a constant callee, where `task._iter.next` would
// be a megamorphic lookup in any program with a few generator functions.
// Found here, not imported from _body.ts (which finds `next` too): V8 does
// not fold an imported binding into a constant, and a switch then cost
// 628 machine instructions instead of 568.
const GENERATOR_PROTOTYPE = Object.getPrototypeOf(function* () {}).prototype as Generator;
const GENERATOR_NEXT = GENERATOR_PROTOTYPE.next;
const GENERATOR_THROW = GENERATOR_PROTOTYPE.throw;

// Within a batch, the ready queue is trimmed every 1024 steps.
const TRIM_EVERY_MASK = 1023;

/** What a `Scheduler` is told by its loop's options. @internal */
export interface SchedulerOptions {
  /** Receives warnings. */
  onWarning: (message: string) => void;
  /** How long a cancelled task may run on before a warning. */
  cleanupWarningMs: number;
}

/** The ready queue and the life cycle of one loop's tasks. @internal */
export class Scheduler {
  /** Who spawned whom; roots are main and detached tasks. */
  readonly tree: TaskTree = new TaskTree();
  /** The main task of the run in progress; null when not running. */
  main: Task<unknown> | null = null;
  /**
   * Whether the run failed and its tasks are being cancelled (see
   * `Loop.#unwind`); set by the loop, and cleared when the run ends.
   */
  unwindingRun = false;

  /** Failures that had nobody left to report to; the run rejects with them. */
  orphanErrors: unknown[] = [];

  readonly #loop: Loop;
  #queue = new RunQueue<Task<unknown>>();
  #nextId = 1;
  // Set by an instruction that resumes the current task at once, so the
  // step continues it without a trip through the queue.
  #continueCurrent = false;
  // A second error that reached a task already queued with one: it is
  // thrown at the task's next yield* (operations that would finish inside
  // the step yield to the loop meanwhile, see #markRunning), or joins its
  // outcome if the body ends first, so neither error is lost. Rare, so kept
  // here rather than in a field of every task.
  #deferred = new Map<Task<unknown>, unknown>();
  // The CancelledError of each live task that cancel() reached: it is
  // delivered once, and reported if the task swallows it. Kept here, not in
  // a field, for the same reason.
  #cancelled = new Map<Task<unknown>, CancelledError>();
  // Failures to report with a task's outcome once its body ends, not at a
  // yield* of it: those a group had recorded when its waiting task was
  // interrupted, whose cleanup they must not cut short.
  #held = new Map<Task<unknown>, unknown>();
  // The error that interrupted each task waiting on an instruction that
  // started child tasks, held until their cleanup has run (see
  // holdInterrupt).
  #holding = new Map<Task<unknown>, unknown>();
  // Cancellations requested while one is being delivered, as task, reason,
  // shared error (or undefined) triples (see `#cancel`).
  #cancelQueue: unknown[] = [];
  #deliveringCancels = false;
  // When cancel() reached each live task, while it is to be warned about
  // if it runs on too long (see #warnIfLingering).
  #cancelledAt = new Map<Task<unknown>, number>();
  // The write each task that its stream woke for writing is queued from,
  // until it runs: interrupted before, the write is told at once, as a
  // waiting one is (see wokenFromWrite).
  #wokenWrites = new Map<Task<unknown>, Instruction>();
  // Entries in #deferred, #cancelledAt and #wokenWrites together, recounted
  // after every change to them: a step tests this one field instead of
  // Map sizes (which cost a twelfth of a task switch), all nearly always
  // empty.
  #unusual = 0;
  readonly #cleanupWarningMs: number;
  readonly #onWarning: (message: string) => void;

  constructor(loop: Loop, options: SchedulerOptions) {
    this.#loop = loop;
    this.#onWarning = options.onWarning;
    this.#cleanupWarningMs = options.cleanupWarningMs;
  }

  /** How many tasks are ready. */
  get ready(): number {
    return this.#queue.size;
  }

  /**
   * Takes the errors still waiting for a task (deferred to its next yield*,
   * or held for its outcome) when the run fails and no task will take them.
   */
  takePendingErrors(): unknown[] {
    const errors = [
      ...this.#holding.values(),
      ...[...this.#deferred.values(), ...this.#held.values()].map(takePending),
    ];
    this.#holding.clear();
    this.#deferred.clear();
    this.#held.clear();
    this.#recount();
    return errors;
  }

  /**
   * The failures held by live tasks that will never settle with them: the
   * error a body other than main's ended with while its children's cleanup
   * blocked, and a child's failure that a group holds for a task that waits
   * on the cleanup of its other children. A failed run reports them.
   */
  closingErrors(): unknown[] {
    const roots = this.tree.liveRoots();
    const errors: unknown[] = [];
    for (const task of [...roots, ...liveDescendants(roots, spareNone)]) {
      if (task._state === "waiting" && task._slot instanceof Instruction) {
        errors.push(...task._slot.heldFailures());
      }
      if (task === this.main) continue;
      if (this.bodyFailed(task)) errors.push(this.bodyFailure(task));
    }
    return errors;
  }

  /**
   * Whether `task`'s body has ended with an error other than a
   * cancellation, also while the task still waits for its children (then
   * `bodyFailure` is that error). Asked apart from the error itself, since a
   * body may `throw undefined`.
   */
  bodyFailed(task: Task<unknown>): boolean {
    const slot = task._slot;
    if (slot instanceof Closing) return slot.threw && !(slot.outcome instanceof CancelledError);
    return task._state === "failed";
  }

  /** The error `task`'s body failed with, when `bodyFailed(task)`. */
  bodyFailure(task: Task<unknown>): unknown {
    const slot = task._slot;
    return slot instanceof Closing ? slot.outcome : slot;
  }

  /**
   * Runs the tasks that are ready now (not those they make ready), at most
   * `maxSteps` of them, the first in the queue; returns how many.
   */
  runReady(maxSteps: number): number {
    const queue = this.#queue;
    const batch = Math.min(queue.size, maxSteps);
    try {
      for (let n = batch; n > 0; n--) {
        this.#step(queue.shift()!);
        // A drained burst gives its buffer back within a thousand steps,
        // not only at the end of a batch that may hold 100k tasks.
        if ((n & TRIM_EVERY_MASK) === 0) queue.trim();
      }
      queue.trim();
    } finally {
      // Between batches no task runs.
      this.#loop._runningTask = null;
      this.#loop._deferringTask = null;
    }
    return batch;
  }

  // ---------------------------------------------------------------------
  // Stepping a task: the only place that resumes an iterator.

  /** Resumes `task` until it waits on something or its body ends. */
  #step(task: Task<unknown>): void {
    task._state = "running";
    this.#markRunning(task);
    for (;;) {
      const resume = task._slot;
      task._slot = undefined;
      let step: IteratorResult<unknown, unknown>;
      try {
        // The typeof and undefined guards are cheaper than instanceof (a
        // builtin call here), and nearly every resume fails them.
        if (typeof resume === "object" && resume instanceof Thrown) {
          // A second error may have been deferred behind this one.
          this.#markRunning(task);
          step = GENERATOR_THROW.call(task._iter as Generator, resume.error);
        } else {
          step = GENERATOR_NEXT.call(task._iter as Generator, resume);
        }
      } catch (error) {
        this.#bodyEnded(task, true, error);
        return;
      }
      // Each property read of a step is a megamorphic lookup in a program
      // with many kinds of instruction (each is a hidden class of its own),
      // so they are kept few: a task switch (yieldNow) is recognised by the
      // step's identity alone, and a waiting instruction by being its own
      // value (then it is not done).
      const switching = step === YIELD_NOW_STEP;
      const instruction = switching ? undefined : step.value;
      if (!switching && instruction !== step && step.done) {
        this.#bodyEnded(task, false, instruction);
        return;
      }
      // An error that reached the task while it ran (it cancelled itself, or
      // a second error was deferred) is thrown at this very yield*.
      if (task._slot !== undefined && task._slot instanceof Thrown) continue;
      if (this.#unusual > 0) {
        if (this.#deferred.size > 0 && this.#deliverDeferred(task)) continue;
        if (this.#cancelledAt.size > 0) this.#warnIfLingering(task);
      }
      if (switching || instruction === YIELD_NOW_INSTRUCTION) {
        // The most frequent instruction needs no dispatch: back of the queue.
        this.enqueue(task, RESUME_SHARED);
        return;
      }
      if (!isWaitingInstruction(instruction, step)) {
        task._slot = new Thrown(invalidInstructionError(task, instruction));
        continue;
      }
      task._state = "waiting";
      task._slot = instruction;
      // An instruction of its own (not a shared one): whoever else runs it
      // now is refused (see Instruction._waitedOnBy).
      if (instruction === step) instruction._waitedOnBy = task;
      this.#continueCurrent = false;
      try {
        instruction.perform(task, this.#loop);
      } catch (error) {
        this.throwNow(task, error);
      }
      if (task._state !== "waiting") {
        // perform queued the task itself (a gather of nothing), or ran code
        // that interrupted it (call()'s fn, a cancel that reaches back to
        // the canceller): then it is queued with that error, and what
        // perform registered after the interrupt's undo is undone now.
        if (task._slot instanceof Thrown) abandon(instruction, task, this.#loop);
        break;
      }
      if (!this.#continueCurrent) break;
      task._state = "running";
    }
  }

  /**
   * Records `task` as the one running, for operations that finish inside
   * its step. They must not skip an error due at the next yield*: one in
   * the task's slot they check themselves, a deferred one only the loop
   * knows, so while one waits they are told no task runs.
   */
  #markRunning(task: Task<unknown>): void {
    if (this.#unusual > 0) {
      // It runs: an interrupt now reaches its write at the next yield*.
      if (this.#wokenWrites.size > 0 && this.#wokenWrites.delete(task)) this.#recount();
      if (this.#deferred.has(task)) {
        this.#loop._runningTask = null;
        this.#loop._deferringTask = task;
        return;
      }
    }
    this.#loop._runningTask = task;
  }

  /** The body returned or threw. Settle, or first close its children. */
  #bodyEnded(task: Task<unknown>, threw: boolean, value: unknown): void {
    // The side tables are usually empty: skip the lookups then.
    const hasDeferred = this.#unusual > 0 && this.#deferred.has(task);
    const deferred = hasDeferred ? takePending(this.#deferred.get(task)) : undefined;
    if (hasDeferred) {
      this.#deferred.delete(task);
      this.#recount();
    }
    const cancelError = this.#cancelled.size > 0 ? this.#cancelled.get(task) : undefined;
    // Judged on what the body itself did, before errors waiting for it join.
    if (!threw && cancelError !== undefined) {
      // A task that cancelled itself (or stopped the loop) and returned before
      // its next yield* never saw the error: there is nothing to scold.
      if (!isUndelivered(task, cancelError) && deferred !== cancelError) {
        this.warn(
          `Task "${task.name}" caught its CancelledError and returned normally; it is reported as cancelled and its result is discarded. Re-throw CancelledError after cleanup.`,
        );
      }
      threw = true;
      value = cancelError;
    }
    if (hasDeferred) {
      value = threw ? mergeErrors(value, deferred) : deferred;
      threw = true;
    }
    if (this.#held.size > 0 && this.#held.has(task)) {
      const held = takePending(this.#held.get(task));
      this.#held.delete(task);
      value = threw ? mergeErrors(value, held) : held;
      threw = true;
    }
    if (!hasLiveChildren(task)) {
      this.#settle(task, threw, value);
      return;
    }
    // Structured concurrency: children do not outlive their parent.
    task._state = "waiting";
    task._slot = new Closing(threw, value);
    const reason = `its parent "${task.name}" ended`;
    this.cancelGroup(liveChildren(task), reason, `children of task "${task.name}"`);
  }

  /**
   * Records the final state, tells observers, detaches from the parent and,
   * when that parent was only waiting for this child, settles it too. Walks
   * up iteratively, so deep trees cannot overflow the stack.
   */
  #settle(task: Task<unknown>, threw: boolean, outcome: unknown): void {
    for (;;) {
      task._state = !threw ? "done" : outcome instanceof CancelledError ? "cancelled" : "failed";
      task._slot = outcome;
      task._iter = SETTLED_ITER;
      if (this.#cancelled.size > 0) this.#cancelled.delete(task);
      if (this.#unusual > 0 && this.#cancelledAt.delete(task)) this.#recount();
      const observed = this.#notifyObservers(task);
      if (task._state === "failed" && !observed) this.#escalate(task);
      const parent = parentOf(task);
      const siblingsLeft = this.tree.unlink(task, parent);
      if (parent === null || siblingsLeft) return;
      const closing = parent._slot;
      if (!(closing instanceof Closing)) return;
      task = parent;
      threw = closing.threw;
      outcome = closing.outcome;
    }
  }

  #notifyObservers(task: Task<unknown>): boolean {
    const observers = takeObservers(task);
    if (observers === null) return false;
    if (Array.isArray(observers)) {
      for (const observer of observers) observer.taskSettled(task, this.#loop);
    } else {
      observers.taskSettled(task, this.#loop);
    }
    return true;
  }

  /**
   * A task failed and nobody observed it: throw a `TaskFailedError` into its
   * parent (or the run's main task), so the failure is never lost.
   */
  #escalate(task: Task<unknown>, circumstance?: string): void {
    const report = new TaskFailedError(task.name, task._slot, circumstance);
    // While a failed run unwinds, main's cleanup runs beside that of the
    // other roots: their failures go to the run's error, not into it.
    const target = parentOf(task) ?? (this.unwindingRun ? null : this.main);
    if (target === null || target === task || target.settled) {
      this.orphanErrors.push(report);
      return;
    }
    const closing = target._slot;
    if (closing instanceof Closing) {
      closing.addFailure(report);
      return;
    }
    this.#interrupt(target, report);
  }

  /** Throws `error` into `task` at its current wait, undoing that wait. */
  #interrupt(task: Task<unknown>, error: unknown): void {
    switch (task._state) {
      case "ready":
      case "running":
        // Queued already, or interrupting itself (delivered after its
        // yield): change what it is resumed with. If that is an error
        // already, the new one waits for its next yield*.
        if (this.#unusual > 0 && task._state === "ready") this.#undoWokenWrite(task);
        if (!(task._slot instanceof Thrown)) {
          task._slot = new Thrown(error);
        } else {
          this.#defer(task, error);
        }
        return;
      case "waiting": {
        const wait = task._slot as Instruction;
        if (wait instanceof Closing) return;
        if (this.#holding.size > 0 && this.#holding.has(task)) {
          this.#defer(task, error);
          return;
        }
        // A wait that started child tasks (a group, a timeout) cancels them
        // and has the error thrown once their cleanup has run: none of them
        // outlives the yield*, nor runs its cleanup beside the task's own.
        if (wait.holdsInterrupt(task, error, this.#loop)) return;
        // Queued with its error first: a failure the undo reports to this
        // task (a group's child) then waits for its next yield*, instead of
        // being overwritten by the error queued here.
        this.enqueueThrow(task, error);
        abandon(wait, task, this.#loop);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Warns, once, about a task that waits again long after it was
   * cancelled: cleanup should be quick, and a task that caught its
   * CancelledError and went on would otherwise run on unreported.
   */
  #warnIfLingering(task: Task<unknown>): void {
    const since = this.#cancelledAt.get(task);
    if (since === undefined) return;
    const ms = this.#loop.time() - since;
    if (ms < this.#cleanupWarningMs) return;
    this.#cancelledAt.delete(task);
    this.#recount();
    this.warn(
      `Task "${task.name}" still runs ${
        Math.round(ms)
      } ms after it was cancelled. Cleanup should be quick; a task that catches its CancelledError must re-throw it after cleanup (see LoopOptions.cleanupWarningMs)`,
    );
  }

  /**
   * Calls the user's warning hook. A hook that throws must not leave the
   * task it warns about half-settled: its error is kept, and the run
   * rejects with it once it ends.
   */
  warn(message: string): void {
    try {
      this.#onWarning(message);
    } catch (error) {
      this.orphanErrors.push(error);
    }
  }

  /** Brings #unusual up to date after a change to #deferred or #cancelledAt. */
  #recount(): void {
    this.#unusual = this.#deferred.size + this.#cancelledAt.size + this.#wokenWrites.size;
  }

  #defer(task: Task<unknown>, error: unknown): void {
    const previous = this.#deferred.get(task);
    if (previous === undefined) {
      this.#deferred.set(task, error);
    } else if (previous instanceof CancelledError || error instanceof CancelledError) {
      // A cancellation is delivered alone, so that `instanceof
      // CancelledError` recognises it; the other error joins the outcome.
      const [cancellation, other] = previous instanceof CancelledError
        ? [previous, error]
        : [error, previous];
      this.#deferred.set(task, cancellation);
      this.#hold(task, takePending(other));
    } else {
      this.#deferred.set(task, addPending(previous, error));
    }
    this.#recount();
  }

  /** Throws a deferred error into `task` instead of its new wait, if it has one. */
  #deliverDeferred(task: Task<unknown>): boolean {
    if (!this.#deferred.has(task)) return false;
    task._slot = new Thrown(takePending(this.#deferred.get(task)));
    this.#deferred.delete(task);
    this.#recount();
    return true;
  }

  /** One line per blocked task, for deadlock reports. */
  describeBlocked(): string[] {
    return this.tree.describeBlocked((task) => this.#cancelled.has(task));
  }

  // ---------------------------------------------------------------------
  // What the loop and the instructions ask of the scheduler.

  /**
   * Creates a task and queues it.
   *
   * @throws {TypeError} when the task spawned just before for the same
   * parent runs `iter` already (see `TaskTree.link`).
   */
  spawn<T>(
    iter: Iterator<unknown, T, unknown>,
    name: NameSource,
    parent: Task<unknown> | Loop,
  ): Task<T> {
    const task = new Task<T>(this.#nextId, iter, name, parent);
    const erased = task as Task<unknown>;
    // Linking may refuse the task: only then is its id not taken.
    this.tree.link(erased);
    this.#nextId++;
    this.#queue.push(erased);
    return task;
  }

  /** Queues `task` to be resumed with `value`. */
  enqueue(task: Task<unknown>, value: unknown): void {
    this.#makeReady(task, value, false);
  }

  /**
   * Records that `task`, waiting on a write, is about to be queued because
   * its stream can take more: until it runs, an interrupt undoes that
   * write at once, so that the stream gets the rest of its bytes before
   * anything the interrupting code writes next (a write cancelled before
   * it returns goes out in full, and first).
   */
  wokenFromWrite(task: Task<unknown>): void {
    const wait = task._slot;
    if (task._state !== "waiting" || !(wait instanceof Instruction)) return;
    this.#wokenWrites.set(task, wait);
    this.#recount();
  }

  /**
   * Queues `task` to have `error` thrown at its wait, which failed (a
   * stream whose `poll()` threw): not an interrupt, so the wait is told
   * first (see `Instruction._waitFailed`).
   */
  failWait(task: Task<unknown>, error: unknown): void {
    const wait = task._slot;
    if (wait instanceof Instruction) wait._waitFailed();
    this.enqueueThrow(task, error);
  }

  /** Undoes the write `task` was woken from, if it was (see wokenFromWrite). */
  #undoWokenWrite(task: Task<unknown>): void {
    const wait = this.#wokenWrites.get(task);
    if (wait === undefined) return;
    this.#wokenWrites.delete(task);
    this.#recount();
    wait.undo(task, this.#loop);
  }

  /** Queues `task` to be resumed with `error` thrown at its `yield*`. */
  enqueueThrow(task: Task<unknown>, error: unknown): void {
    this.#makeReady(task, error, true);
  }

  #makeReady(task: Task<unknown>, value: unknown, throwing: boolean): void {
    task._state = "ready";
    task._slot = throwing ? new Thrown(value) : value;
    this.#queue.push(task);
  }

  /** From `perform`: the current task continues at once with `value`. */
  resumeNow(task: Task<unknown>, value: unknown): void {
    this.#continueWith(task, value, false);
  }

  /** From `perform`: the current task continues at once with `error`. */
  throwNow(task: Task<unknown>, error: unknown): void {
    this.#continueWith(task, error, true);
  }

  #continueWith(task: Task<unknown>, value: unknown, throwing: boolean): void {
    if (task._state !== "waiting") {
      // What the instruction ran interrupted the task (see #step): a result
      // is dropped (the task was cancelled), an error is kept for its next
      // yield*.
      if (throwing) this.#interrupt(task, value);
      return;
    }
    task._slot = throwing ? new Thrown(value) : value;
    this.#continueCurrent = true;
  }

  /** Cancels `task` (see `Task.cancel`). */
  cancel(task: Task<unknown>, reason: unknown): void {
    this.#cancel(task, reason, undefined);
  }

  /**
   * Cancels those of `tasks` that are live and not cancelled yet, all with
   * one CancelledError (see `groupCancelledError`), made only if one of
   * them needs it.
   *
   * @param group Who they are, for the error's message.
   */
  cancelGroup(tasks: readonly Task<unknown>[], reason: unknown, group: string): void {
    let shared: CancelledError | undefined;
    for (const task of tasks) {
      if (!this.#takesCancel(task)) continue;
      shared ??= groupCancelledError(group, reason);
      this.#cancel(task, reason, shared);
    }
  }

  /**
   * Cancels `root` with an error of its own, then every live task under
   * it, parents first, with one shared error. A failed run's unwind cannot
   * wait for each task's end to cancel its children: a task waiting in a
   * group first waits for the group's children, whose cleanup may wait on
   * one of its other children.
   */
  cancelTree(root: Task<unknown>, reason: unknown): void {
    this.cancel(root, reason);
    this.cancelGroup(liveDescendants([root], spareNone), reason, `tasks under "${root.name}"`);
  }

  /**
   * `cancelTree` for several roots, all with one shared error; with
   * `spareCleanups`, but for the children of a task whose cleanup is under
   * way (cancelled before, its error delivered, not held), which that
   * cleanup may still need: they are cancelled when it ends.
   */
  cancelTrees(
    roots: readonly Task<unknown>[],
    reason: unknown,
    group: string,
    spareCleanups: boolean,
  ): void {
    const spared = spareCleanups ? (task: Task<unknown>) => this.isCleaningUp(task) : spareNone;
    this.cancelGroup([...roots, ...liveDescendants(roots, spared)], reason, group);
  }

  /**
   * Whether `task` runs its cleanup after a cancellation it was given (not
   * one a group or timeout still holds back from it).
   */
  isCleaningUp(task: Task<unknown>): boolean {
    return this.#cancelled.has(task) && !this.#holding.has(task);
  }

  /** Cancels `task` with `shared`, or an error of its own when undefined. */
  #cancel(task: Task<unknown>, reason: unknown, shared: CancelledError | undefined): void {
    // Delivering a cancellation undoes the task's wait, which may cancel
    // more tasks (a gather's children, a timeout's body), and so on down a
    // tree of any depth: those are queued and delivered by this loop, not
    // by a recursion that a deep enough tree would overflow.
    if (this.#deliveringCancels) {
      this.#cancelQueue.push(task, reason, shared);
      return;
    }
    this.#deliveringCancels = true;
    const queue = this.#cancelQueue;
    try {
      this.#deliverCancel(task, reason, shared);
      for (let i = 0; i < queue.length; i += 3) {
        const error = queue[i + 2] as CancelledError | undefined;
        this.#deliverCancel(queue[i] as Task<unknown>, queue[i + 1], error);
      }
    } finally {
      queue.length = 0;
      this.#deliveringCancels = false;
    }
  }

  /**
   * Whether a cancellation would reach `task`: it is live and none reached
   * it before. Cancellation is delivered once: a second CancelledError
   * would abort the cleanup that the first one started (a parent ending
   * while its child cleans up after its own cancellation, a timeout firing
   * late).
   */
  #takesCancel(task: Task<unknown>): boolean {
    return !task.settled && !this.#cancelled.has(task);
  }

  #deliverCancel(task: Task<unknown>, reason: unknown, shared: CancelledError | undefined): void {
    if (!this.#takesCancel(task)) return;
    const error = shared ?? cancelledError(task, reason);
    this.#cancelled.set(task, error);
    if (this.#cleanupWarningMs !== Infinity) {
      this.#cancelledAt.set(task, this.#loop.time());
      this.#recount();
    }
    this.#interrupt(task, error);
  }

  /**
   * An observer could not deliver `task`'s failure (the outcome it
   * delivers was decided before): report it as if nobody observed the task.
   */
  reportFailure(task: Task<unknown>, circumstance: string): void {
    this.#escalate(task, circumstance);
  }

  /**
   * Reports the failure of `child`, whose outcome `waiter` would have
   * taken but for an interruption. A cancelled waiter gets it with its own
   * outcome, once its body ends, so that it does not cut its cleanup short;
   * another, at its next yield*.
   */
  reportUntaken(waiter: Task<unknown>, child: Task<unknown>, circumstance: string): void {
    if (this.#cancelled.has(waiter)) {
      this.#hold(waiter, new TaskFailedError(child.name, child._slot, circumstance));
    } else {
      this.#escalate(child, circumstance);
    }
  }

  /** Keeps `error` to join `task`'s outcome when its body ends. */
  #hold(task: Task<unknown>, error: unknown): void {
    const previous = this.#held.get(task);
    this.#held.set(task, addPending(previous, error));
  }

  /** Throws `error` into `task` at its current wait, undoing it. */
  interrupt(task: Task<unknown>, error: unknown): void {
    this.#interrupt(task, error);
  }

  /**
   * Holds `error` for `task`, whose wait must first see the child tasks it
   * started finish their cleanup (see Instruction.holdsInterrupt). Held
   * here, not in the instruction, so that a run failing meanwhile still
   * reports it; a second error meanwhile is deferred (see #interrupt).
   */
  holdInterrupt(task: Task<unknown>, error: unknown): void {
    this.#holding.set(task, error);
  }

  /**
   * Throws the error held for `task` at its `yield*`: the child tasks its
   * wait started have finished their cleanup.
   */
  resumeHeld(task: Task<unknown>): void {
    const error = this.#holding.get(task);
    this.#holding.delete(task);
    // Its own cleanup starts only now: a warning about a cleanup that runs
    // on too long counts from here, not from when it was cancelled.
    if (this.#unusual > 0 && this.#cancelledAt.has(task)) {
      this.#cancelledAt.set(task, this.#loop.time());
    }
    this.enqueueThrow(task, error);
  }
}

/**
 * The live tasks under `roots`, parents before their children, but for
 * those under a task that `spares` its children.
 */
function liveDescendants(
  roots: readonly Task<unknown>[],
  spares: (task: Task<unknown>) => boolean,
): Task<unknown>[] {
  const tasks: Task<unknown>[] = [];
  const addChildren = (task: Task<unknown>): void => {
    // One push each: a spread of 150k children overflows the call stack.
    if (!spares(task)) { for (const child of liveChildren(task)) tasks.push(child); }
  };
  for (const root of roots) addChildren(root);
  for (let i = 0; i < tasks.length; i++) addChildren(tasks[i]);
  return tasks;
}

function spareNone(): boolean {
  return false;
}

/**
 * Whether `instruction`, the `value` of `step`, is an instruction handed
 * over by `yield*` (not yielded bare, with a forgotten `*`): one that is its
 * own value. The step is usually that instruction itself, whose value the
 * caller has just read.
 */
function isWaitingInstruction(instruction: unknown, step: unknown): instruction is Instruction {
  if (!(instruction instanceof Instruction)) return false;
  if (instruction === step) return true;
  // A shared instruction, armed for good (see SharedOperation); not one of
  // a task's own that another task waits on (or waited on), yielded bare.
  // A user's subclass may lack _waitedOnBy: undefined counts as none.
  return instruction.value === instruction && !instruction.done && !instruction._waitedOnBy;
}

/**
 * Undoes `task`'s wait on `instruction`, which the task is to be thrown an
 * error at. Done at once, not when that error is thrown: another task's
 * `yield*` of the same object meanwhile is refused as a second run, and
 * the instruction (which a timer queue may hold a while) lets the task go.
 */
function abandon(instruction: Instruction, task: Task<unknown>, loop: Loop): void {
  instruction.undo(task, loop);
  // Not a shared instruction (suspend()), which other tasks still wait on.
  if (instruction._waitedOnBy !== task) return;
  instruction.done = true;
  instruction._waitedOnBy = null;
}

/** Whether `error` still waits in `task`'s slot, never thrown into its body. */
function isUndelivered(task: Task<unknown>, error: unknown): boolean {
  const slot = task._slot;
  return slot instanceof Thrown && slot.error === error;
}

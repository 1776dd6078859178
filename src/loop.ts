/**
 * The event loop: a ready queue of tasks, a timer queue and a selector, and
 * the run loop that drives them.
 *
 * One turn of the loop ("tick") has three phases, in this order:
 * 1. poll the selector, so tasks whose streams became ready join the queue;
 * 2. fire due timers, so sleepers whose deadline passed join the queue;
 * 3. run the tasks that were ready when the phase began (tasks made ready
 *    while it runs wait for the next tick, so I/O and timers get their turn).
 *
 * When no task is ready the loop is idle and decides, in order: poll again
 * (a simulated stream still counts down), jump a virtual clock to the next
 * deadline, wait for the outside world (a socket, a Promise, a real timer),
 * or report a deadlock. When a socket ends that wait, the tasks it woke run
 * at once, inside the host's callback, rather than a few microtasks later.
 *
 * @module
 */

import { bodyNameSource, startBody } from "./_body.ts";
import { type Clock, RealClock } from "./clock.ts";
import { CancelledError, DeadlockError, describeError, TaskFailedError } from "./errors.ts";
import { Instruction, RESUME_SHARED } from "./instruction.ts";
import { LeftoversInstruction } from "./_leftovers.ts";
import { YIELD_NOW_INSTRUCTION } from "./yield_now.ts";
import { invalidInstructionError } from "./_invalid.ts";
import { RunQueue } from "./run_queue.ts";
import {
  addObserver,
  forEachLiveChild,
  hasLiveChildren,
  removeObserver,
  takeObservers,
  TaskTree,
} from "./task_tree.ts";
import { cancelledError, mergeErrors } from "./_error_util.ts";
import { Selector, type SelectorKey } from "./selector.ts";
import {
  type NameSource,
  parentOf,
  running,
  type SpawnOptions,
  Task,
  type TaskBody,
  type TaskObserver,
  Thrown,
} from "./task.ts";
import { type Timer, TimerQueue } from "./timers.ts";

/** Options for `new Loop(options)` and `run(body, options)`. */
export interface LoopOptions {
  /** Where time comes from. Default: a `RealClock`. */
  clock?: Clock;
  /**
   * Receives warnings, such as a cancelled task that swallowed its
   * `CancelledError`. Default: `console.warn`.
   */
  onWarning?: (message: string) => void;
  /**
   * When every task waits only on Promises from `call()` and none settles
   * for this many milliseconds, reject the run with a `DeadlockError` that
   * names them. Default `Infinity` (wait as long as it takes).
   */
  stallTimeoutMs?: number;
}

/**
 * What a task waits on after its body ended while children still run. It
 * holds the body's outcome until the task can settle with it.
 */
class Closing extends Instruction {
  override value: unknown = undefined;
  override done = false;
  /** Whether the body threw (or a child's failure was added since). */
  threw: boolean;
  /** The body's result or error. */
  outcome: unknown;

  constructor(threw: boolean, outcome: unknown) {
    super();
    this.threw = threw;
    this.outcome = outcome;
  }

  perform(): void {}

  describe(): string {
    const waiting = "its children to finish their cleanup";
    // The error that started the shutdown is what a reader of a deadlock
    // report needs most.
    if (!this.threw || this.outcome instanceof CancelledError) return waiting;
    return `${waiting} (its body threw ${describeError(this.outcome)})`;
  }
}

/**
 * How many times a run's end cancels the tasks left (each round those that
 * the previous round's cleanup spawned) before it gives up.
 */
const MAX_RUN_END_ROUNDS = 100;

/** Why the tasks left when a run ends are cancelled. */
const RUN_ENDED = "the run ended (its main task settled)";
const RUN_FAILED = "the run failed";

/** `#wokenError` when there is none (`undefined` could be thrown). */
const NO_ERROR: unique symbol = Symbol("genloop.noError");

/** Marks the run's main task as observed, so its failure is not escalated. */
const RUN_OBSERVER: TaskObserver = { taskSettled(): void {} };

/** What a settled task's iterator is replaced with, to free the generator. */
const SETTLED_ITER: Iterator<unknown, unknown, unknown> = {
  next(): IteratorResult<unknown, unknown> {
    throw new Error("Cannot resume a settled task");
  },
};

// How many steps (and ticks) run between looks at the clock to see whether
// the host event loop is owed a turn: counted, so that short runs never
// read the clock at all.
const WORK_BETWEEN_HOST_CHECKS = 4096;
// Longest stretch of work before the host event loop gets a turn.
const MAX_BUSY_MS = 10;
// Within a batch, the ready queue is trimmed every 1024 steps.
const TRIM_EVERY_MASK = 1023;

/**
 * An event loop that drives generator tasks. Most programs use `run(body)`;
 * create a `Loop` to choose its clock, to drive it synchronously with
 * `runSync`, or to look at `loop.time()`.
 *
 * @example Usage
 * ```ts
 * import { gather, Loop, sleep, VirtualClock } from "@genloop/genloop";
 *
 * const loop = new Loop({ clock: new VirtualClock() });
 * const order: string[] = [];
 * function* sleeper(name: string, ms: number) {
 *   yield* sleep(ms);
 *   order.push(name);
 *   return ms;
 * }
 * const results = await loop.runUntilComplete(function* main() {
 *   return yield* gather([sleeper("slow", 20), sleeper("fast", 10)]);
 * });
 * if (results.join() !== "20,10" || order.join() !== "fast,slow") {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export class Loop {
  /** The loop's clock. */
  readonly clock: Clock;
  /** Watches the streams that tasks wait on. */
  readonly selector: Selector = new Selector();

  #queue = new RunQueue<Task<unknown>>();
  #timers = new TimerQueue();
  #nextId = 1;
  // Set by an instruction that resumes the current task at once, so the
  // step continues it without a trip through the queue.
  #continueCurrent = false;
  // The main task of the run in progress; null when not running.
  #main: Task<unknown> | null = null;
  // Who spawned whom; roots are main and detached tasks.
  #tree = new TaskTree();
  // Promises from call() that have not settled, and still have a waiter.
  #pendingCalls = 0;
  // Failures that had nobody left to report to; the run rejects with them.
  #orphanErrors: unknown[] = [];
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
  // Rounds of closing leftover tasks in the current run (see #startCloser),
  // and why this loop gave up on ending a run, if it did.
  #runEndRounds = 0;
  #lastRound = false;
  #gaveUp: Error | null = null;
  // Cancellations requested while one is being delivered, as task, reason
  // pairs (see `_cancel`).
  #cancelQueue: unknown[] = [];
  #deliveringCancels = false;
  #onWarning: (message: string) => void;
  #stallTimeoutMs: number;
  // What running woken tasks inside a host callback left for #waitOutside:
  // an error to throw, and whether it ran long enough that the host is due
  // a turn before the loop goes on.
  #wokenError: unknown = NO_ERROR;
  #wokenBusy = false;
  // Work done since the clock was last looked at, and when the current
  // stretch without a host turn was first seen busy (0: not yet).
  #workSinceCheck = 0;
  #busySince = 0;

  /**
   * Creates a loop.
   *
   * @param options The clock and reporting options.
   */
  constructor(options: LoopOptions = {}) {
    this.clock = options.clock ?? new RealClock();
    this.#onWarning = options.onWarning ?? ((message) => console.warn(message));
    this.#stallTimeoutMs = options.stallTimeoutMs ?? Infinity;
  }

  /** The loop's current time in milliseconds, from its clock. */
  time(): number {
    return this.clock.now();
  }

  /** Whether a run (`runSync` / `runUntilComplete`) is in progress. */
  get running(): boolean {
    return this.#main !== null;
  }

  /**
   * Stops the run in progress: its main task is cancelled (so its children
   * are too, and every `finally` block runs), and a loop waiting on the
   * outside world wakes up to deliver that. The run then rejects with the
   * main task's `CancelledError`, after the cleanup. Does nothing when no
   * run is in progress. Safe to call from a signal handler or a timer.
   *
   * @param reason Why; kept as the `CancelledError`'s `reason`.
   *
   * @example Usage
   * ```ts
   * import { call, CancelledError, Loop } from "@genloop/genloop";
   *
   * const loop = new Loop();
   * const running = loop.runUntilComplete(function* server() {
   *   // Waits on the outside world (here: a Promise that never settles).
   *   yield* call(() => new Promise<void>(() => {}));
   * });
   * setTimeout(() => loop.stop("shutting down"), 10);
   * try {
   *   await running;
   * } catch (error) {
   *   if (!(error instanceof CancelledError)) throw error;
   * }
   * ```
   */
  stop(reason?: unknown): void {
    const main = this.#main;
    if (main === null) return;
    this._cancel(main, reason);
    this.selector.wakeup();
  }

  /**
   * Schedules `body` as a new task from outside any task. It starts on the
   * next tick of a run and is not a child of any task; if it is still
   * running when that run's main task settles, it is cancelled and the run
   * waits for its cleanup.
   *
   * @param body A generator object, generator function or operation.
   * @param options The task's name.
   * @returns The new task.
   * @throws {TypeError} when `body` is not something a task can run.
   */
  spawn<T>(body: TaskBody<T>, options: SpawnOptions = {}): Task<T> {
    const iter = startBody(body, "loop.spawn()");
    return this._spawn(iter, options.name ?? bodyNameSource(body), this);
  }

  /**
   * Runs `body` as the main task, with everything it spawns, until it
   * settles; then cancels and awaits any children it left behind, and any
   * detached or `loop.spawn` task still running (a failure in their cleanup
   * rejects the run). Runs
   * synchronously while work is ready and awaits when every task waits on
   * the outside world or a real timer, and after every 10 ms or so of
   * work: the host's timers, sockets and signal handlers (a `stop()`) get
   * their turn even while tasks keep busy or a virtual clock jumps on.
   *
   * @param body The main task's body.
   * @returns Its return value.
   * @throws Its error; `DeadlockError` when nothing can make progress. Before
   * a run rejects for a reason of the loop's own (deadlock, stall), its main
   * task is cancelled and the cleanup that can run does. If the run was
   * already failing then (the body threw, and a cleanup hung), that error is
   * the rejection's `cause`.
   */
  async runUntilComplete<T>(body: TaskBody<T>): Promise<T> {
    const main = this.#startRun(body);
    try {
      try {
        await this.#drive(main);
        await this.#closeRoots(RUN_ENDED);
      } catch (error) {
        await this.#unwind(main);
        throw this.#withRunErrors(error, main);
      }
      return this.#outcome(main) as T;
    } finally {
      this.#main = null;
    }
  }

  /**
   * Like `runUntilComplete`, but synchronous, for programs that never wait
   * on the outside world (a `VirtualClock` makes sleeping fine).
   *
   * @param body The main task's body.
   * @returns Its return value.
   * @throws Its error; `DeadlockError`; or an `Error` naming what the
   * program waits for when it would have to wait for real time or I/O. As
   * with `runUntilComplete`, an error the run was already failing with is
   * the `cause` of the last two.
   */
  runSync<T>(body: TaskBody<T>): T {
    const main = this.#startRun(body);
    try {
      try {
        this.#driveSync(main);
        this.#closeRootsSync(RUN_ENDED);
      } catch (error) {
        this.#unwindSync(main);
        throw this.#withRunErrors(error, main);
      }
      return this.#outcome(main) as T;
    } finally {
      this.#main = null;
    }
  }

  // ---------------------------------------------------------------------
  // The run loop.

  /** Drives the loop until `main` settles, awaiting the outside world when idle. */
  async #drive(main: Task<unknown>): Promise<void> {
    this.#hostHadTurn();
    for (;;) {
      const busy = this.#runUntilIdle(main, true);
      if (main.settled) return;
      if (busy) {
        await this.#giveHostATurn();
        continue;
      }
      const waitMs = this.#idleWait();
      if (waitMs > 0) await this.#waitOutside(waitMs);
    }
  }

  /** Drives the loop until `main` settles; throws if it would have to wait. */
  #driveSync(main: Task<unknown>): void {
    for (;;) {
      this.#runUntilIdle(main, false);
      if (main.settled) return;
      if (this.#idleWait() > 0) {
        throw new Error(
          `Cannot finish with runSync(): no task is ready and the program waits for the outside world (${
            this.#describeBlocked().join("; ")
          }); use await loop.runUntilComplete() or a VirtualClock`,
        );
      }
    }
  }

  /**
   * The run failed (deadlock, stall, a wait runSync cannot do): cancel the
   * main task so that its tree's `finally` blocks release what they hold,
   * and drive that cleanup as far as it can go. A cleanup that itself blocks
   * is left suspended; the run reports the original error either way.
   */
  async #unwind(main: Task<unknown>): Promise<void> {
    this._cancel(main, RUN_FAILED);
    try {
      await this.#drive(main);
      // A loop that gave up on ending the run does not try again here.
      if (this.#gaveUp === null) await this.#closeRoots(RUN_FAILED);
    } catch {
      // The cleanup blocked too; the original error is what the caller needs.
    }
  }

  /** `#unwind` for `runSync`: only the cleanup that needs no waiting runs. */
  #unwindSync(main: Task<unknown>): void {
    this._cancel(main, RUN_FAILED);
    try {
      this.#driveSync(main);
      if (this.#gaveUp === null) this.#closeRootsSync(RUN_FAILED);
    } catch {
      // The cleanup blocked too; the original error is what the caller needs.
    }
  }

  /**
   * A run owns every task alive during it: the detached and `loop.spawn`
   * tasks still running when main settled are cancelled and awaited, so
   * their `finally` blocks run and nothing of theirs (a socket, a timer, a
   * failure) outlives the run or turns up in the next one.
   */
  async #closeRoots(reason: string): Promise<void> {
    // Again until none is left: a cleanup may spawn detached tasks too.
    let closer: Task<unknown> | null;
    while ((closer = this.#startCloser(reason)) !== null) {
      await this.#drive(closer);
      this.#throwIfGaveUp();
    }
  }

  /** `#closeRoots` for `runSync`. */
  #closeRootsSync(reason: string): void {
    let closer: Task<unknown> | null;
    while ((closer = this.#startCloser(reason)) !== null) {
      this.#driveSync(closer);
      this.#throwIfGaveUp();
    }
  }

  /**
   * Cancels the live root tasks; returns a task that settles once they
   * have, or null when there are none. A round past `MAX_RUN_END_ROUNDS`
   * in one run is the last: its cleanups still run, and if they leave tasks
   * behind the run fails (see `#throwIfGaveUp`).
   */
  #startCloser(reason: string): Task<unknown> | null {
    const leftovers = this.#tree.liveRoots();
    if (leftovers.length === 0) return null;
    if (++this.#runEndRounds > MAX_RUN_END_ROUNDS) this.#lastRound = true;
    // An instruction is an iterator: it can be a task's whole body.
    const waiting = new LeftoversInstruction(leftovers, (error) => this.#orphanErrors.push(error));
    for (const task of leftovers) this._cancel(task, reason);
    return this._spawn(waiting, "the run's end", this);
  }

  /**
   * After the last round allowed, what its cleanups spawned is left as it
   * is (perhaps started): the run fails, and the loop refuses further runs
   * rather than let those tasks run (and fail) in them.
   */
  #throwIfGaveUp(): void {
    if (!this.#lastRound) return;
    const left = this.#tree.liveRoots();
    if (left.length === 0) return;
    this.#gaveUp = new Error(
      `Cannot end the run: after ${MAX_RUN_END_ROUNDS} rounds of cancelling the tasks left at the end of a run, their cleanup still spawned detached tasks (${
        left.map((task) => `"${task.name}"`).join(", ")
      }); a cleanup should not start detached work`,
    );
    throw this.#gaveUp;
  }

  // ---------------------------------------------------------------------
  // Ticks: streams, timers, then the ready batch.

  #startRun<T>(body: TaskBody<T>): Task<T> {
    if (this.#main !== null) {
      throw new Error(
        `Cannot start a run: this loop is already running task "${this.#main.name}"; spawn the work as a task instead`,
      );
    }
    if (this.#gaveUp !== null) {
      throw new Error(
        `Cannot start a run: this loop could not end its previous one and still holds its tasks (${this.#gaveUp.message}); use a new Loop`,
      );
    }
    const main = this._spawn(startBody(body, "run()"), bodyNameSource(body), this);
    addObserver(main as Task<unknown>, RUN_OBSERVER);
    this.#main = main as Task<unknown>;
    this.#orphanErrors = [];
    this.#runEndRounds = 0;
    this.#lastRound = false;
    return main;
  }

  /**
   * Ticks until `main` settled or no task is ready. In async mode returns
   * `true` early when it has been busy long enough that sockets and Promises
   * deserve a turn of the host event loop.
   */
  #runUntilIdle(main: Task<unknown>, async: boolean): boolean {
    // While this loop ticks (a polled stream's poll, a task's step), a
    // stream reporting readiness to another loop must not run that loop's
    // tasks inside this one; and a task may run a loop of its own (runSync),
    // so the outer one is put back afterwards.
    const outerLoop = running.loop;
    running.loop = this;
    try {
      return this.#tickUntilIdle(main, async);
    } finally {
      running.loop = outerLoop;
    }
  }

  #tickUntilIdle(main: Task<unknown>, async: boolean): boolean {
    while (!main.settled) {
      const steps = this.#tick();
      // Counted across calls: a virtual clock jumping from deadline to
      // deadline runs one tick per call and never waits for the host, yet
      // a signal handler or a timer that stops the loop must get its turn.
      if (async && this.#hostIsDue(steps)) return true;
      if (this.#queue.size === 0 && !(this.selector.size > 0 && this.selector.pollable())) {
        return false;
      }
    }
    return false;
  }

  /**
   * Whether the loop has worked `MAX_BUSY_MS` since the host event loop
   * last had a turn: sockets, Promises, timers and signal handlers outside
   * the loop wait meanwhile, so an `await`ed run must not starve them.
   */
  #hostIsDue(steps: number): boolean {
    this.#workSinceCheck += steps + 1;
    if (this.#workSinceCheck < WORK_BETWEEN_HOST_CHECKS) return false;
    this.#workSinceCheck = 0;
    const now = performance.now();
    if (this.#busySince === 0) {
      this.#busySince = now;
      return false;
    }
    return now - this.#busySince > MAX_BUSY_MS;
  }

  #hostHadTurn(): void {
    this.#workSinceCheck = 0;
    this.#busySince = 0;
  }

  async #giveHostATurn(): Promise<void> {
    await yieldToHost();
    this.#hostHadTurn();
  }

  /** Runs one tick; returns how many tasks it stepped. */
  #tick(): number {
    // Phase 1: streams first, so a task woken by I/O runs in this very tick.
    if (this.selector.size > 0) this.#wakeReadyStreams(this.selector.select());
    // Phase 2: then timers whose deadline has passed.
    if (this.#timers.size > 0) this.#fireDueTimers();
    // Phase 3: run the batch of tasks that are ready now.
    return this.#runReady();
  }

  #wakeReadyStreams(ready: SelectorKey[]): void {
    for (const key of ready) this._enqueue(key.task, undefined);
  }

  #fireDueTimers(): void {
    const now = this.clock.now();
    let timer: Timer | undefined;
    while ((timer = this.#timers.popDue(now)) !== undefined) timer.fire(this);
  }

  #runReady(): number {
    const queue = this.#queue;
    const batch = queue.size;
    // Between batches no task runs; inside a nested loop's batch, the outer
    // loop's task is put back afterwards.
    const outerTask = running.task;
    try {
      for (let n = batch; n > 0; n--) {
        this.#step(queue.shift()!);
        // A drained burst gives its buffer back within a thousand steps,
        // not only at the end of a batch that may hold 100k tasks.
        if ((n & TRIM_EVERY_MASK) === 0) queue.trim();
      }
      queue.trim();
    } finally {
      running.task = outerTask;
    }
    return batch;
  }

  /**
   * Decides what to do when no task is ready. Returns 0 to tick again, or
   * how long to wait (possibly `Infinity`) for the outside world.
   * @throws {DeadlockError} when nothing could ever wake a task.
   */
  #idleWait(): number {
    if (this.#queue.size > 0 || this.selector.pollable()) return 0;
    const outside = this.#hasOutside();
    const deadline = this.#timers.nextDeadline();
    if (deadline !== Infinity) {
      // A virtual clock jumps, unless the outside world may still act first.
      if (this.clock.jumpTo !== undefined && !outside) {
        this.clock.jumpTo(deadline);
        return 0;
      }
      if (this.clock.jumpTo === undefined) {
        return Math.max(0, deadline - this.clock.now());
      }
    }
    if (outside) return Infinity;
    const blocked = this.#describeBlocked();
    throw new DeadlockError(
      `Deadlock: no task can make progress and nothing could wake one. Blocked: ${
        blocked.join("; ")
      }`,
      blocked,
    );
  }

  /** Waits for the selector, the next real timer or a settled Promise. */
  async #waitOutside(waitMs: number): Promise<void> {
    const onlyCalls = waitMs === Infinity && !this.selector.watching;
    const limit = onlyCalls ? this.#stallTimeoutMs : waitMs;
    await this.selector.wait(limit, this.#runWoken);
    this.#hostHadTurn();
    if (this.#wokenError !== NO_ERROR) {
      const error = this.#wokenError;
      this.#wokenError = NO_ERROR;
      throw error;
    }
    if (this.#wokenBusy) {
      this.#wokenBusy = false;
      await this.#giveHostATurn();
    }
    if (onlyCalls && limit !== Infinity && this.#queue.size === 0) {
      const blocked = this.#describeBlocked();
      throw new DeadlockError(
        `Stalled: for ${limit} ms every task waited on Promises that did not settle. Blocked: ${
          blocked.join("; ")
        }`,
        blocked,
      );
    }
  }

  /**
   * Runs the tasks a socket woke, inside the host callback that reported it
   * (see `Selector.wait`). `#waitOutside` then resumes as usual and finds
   * them done; it throws what this run threw, and gives the host a turn if
   * this run was busy for long. A stream that reports readiness while some
   * loop ticks (a user stream calling back synchronously from a task or a
   * poll) leaves the work to `#drive`, so loops never run inside each other.
   */
  #runWoken = (): void => {
    const main = this.#main;
    if (main === null || main.settled || running.loop !== null) return;
    // Inside a host callback: the host has just had its turn.
    this.#hostHadTurn();
    try {
      this.#wokenBusy = this.#runUntilIdle(main, true);
    } catch (error) {
      this.#wokenError = error;
    }
  };

  /** Whether something outside the loop (a socket, a Promise) may wake a task. */
  #hasOutside(): boolean {
    return this.#pendingCalls > 0 || this.selector.watching;
  }

  /**
   * The run failed for a reason of the loop's own (deadlock, stall, a wait
   * runSync cannot do), maybe while it was already failing: main's body had
   * thrown, or unjoined root tasks had failed. Those errors caused the
   * situation; they become the loop error's `cause` rather than vanish.
   */
  #withRunErrors(error: unknown, main: Task<unknown>): unknown {
    const errors = this.#orphanErrors;
    this.#orphanErrors = [];
    // Given up on ending the run while unwinding it: say why the loop is spent.
    if (this.#gaveUp !== null && this.#gaveUp !== error) errors.push(this.#gaveUp);
    // Errors still waiting for a task that will never take them now.
    for (const pending of [...this.#deferred.values(), ...this.#held.values()]) {
      if (!(pending instanceof CancelledError)) errors.push(pending);
    }
    this.#deferred.clear();
    this.#held.clear();
    const own = main._slot instanceof Closing
      ? (main._slot.threw ? main._slot.outcome : undefined)
      : (main.state === "failed" ? main._slot : undefined);
    if (own !== undefined && !(own instanceof CancelledError)) errors.unshift(own);
    if (errors.length === 0) return error;
    const cause = errors.length === 1 ? errors[0] : new AggregateError(
      errors,
      `The run was already failing with ${errors.length} errors: ${
        errors.map(describeError).join("; ")
      }`,
    );
    if (error instanceof Error && error.cause === undefined) {
      error.cause = cause;
      return error;
    }
    return new AggregateError([error, ...errors], `The run failed: ${describeError(error)}`);
  }

  #outcome(main: Task<unknown>): unknown {
    removeObserver(main, RUN_OBSERVER);
    const orphans = this.#orphanErrors;
    this.#orphanErrors = [];
    if (main.state === "done" && orphans.length === 0) return main._slot;
    const errors = main.state === "done" ? orphans : [main._slot, ...orphans];
    if (errors.length === 1) throw errors[0];
    throw new AggregateError(
      errors,
      `The run ended with ${errors.length} errors: ${errors.map(describeError).join("; ")}`,
    );
  }

  // ---------------------------------------------------------------------
  // Stepping a task: the only place that resumes an iterator.

  /** Resumes `task` until it waits on something or its body ends. */
  #step(task: Task<unknown>): void {
    task.state = "running";
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
          step = throwInto(task, resume.error);
        } else {
          step = task._iter.next(resume);
        }
      } catch (error) {
        this.#bodyEnded(task, true, error);
        return;
      }
      if (step.done) {
        this.#bodyEnded(task, false, step.value);
        return;
      }
      // An error that reached the task while it ran (it cancelled itself, or
      // a second error was deferred) is thrown at this very yield*.
      if (task._slot !== undefined && task._slot instanceof Thrown) continue;
      if (this.#deferred.size > 0 && this.#deliverDeferred(task)) continue;
      const instruction = step.value;
      if (instruction === YIELD_NOW_INSTRUCTION) {
        // The most frequent instruction needs no dispatch: back of the queue.
        this._enqueue(task, RESUME_SHARED);
        return;
      }
      if (!(instruction instanceof Instruction) || instruction.value !== instruction) {
        task._slot = new Thrown(invalidInstructionError(task, instruction));
        continue;
      }
      task.state = "waiting";
      task._slot = instruction;
      this.#continueCurrent = false;
      try {
        instruction.perform(task, this);
      } catch (error) {
        this._throwNow(task, error);
      }
      if (task.state !== "waiting") {
        // perform queued the task itself (a gather of nothing), or ran code
        // that interrupted it (call()'s fn, a cancel that reaches back to
        // the canceller): then it is queued with that error, and what
        // perform registered after the interrupt's undo is undone now.
        if (task._slot instanceof Thrown) instruction.undo(task, this);
        break;
      }
      if (!this.#continueCurrent) break;
      task.state = "running";
    }
  }

  /**
   * Records `task` as the one running, for operations that finish inside
   * its step. They must not skip an error due at the next yield*: one in
   * the task's slot they check themselves, a deferred one only the loop
   * knows, so while one waits they are told no task runs.
   */
  #markRunning(task: Task<unknown>): void {
    running.task = this.#deferred.size > 0 && this.#deferred.has(task) ? null : task;
  }

  /** The body returned or threw. Settle, or first close its children. */
  #bodyEnded(task: Task<unknown>, threw: boolean, value: unknown): void {
    // The side tables are usually empty: skip the lookups then.
    const hasDeferred = this.#deferred.size > 0 && this.#deferred.has(task);
    const deferred = hasDeferred ? this.#deferred.get(task) : undefined;
    if (hasDeferred) this.#deferred.delete(task);
    const cancelError = this.#cancelled.size > 0 ? this.#cancelled.get(task) : undefined;
    // Judged on what the body itself did, before errors waiting for it join.
    if (!threw && cancelError !== undefined) {
      // A task that cancelled itself (or stopped the loop) and returned before
      // its next yield* never saw the error: there is nothing to scold.
      if (!isUndelivered(task, cancelError) && deferred !== cancelError) {
        this.#warn(
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
      const held = this.#held.get(task);
      this.#held.delete(task);
      value = threw ? mergeErrors(value, held) : held;
      threw = true;
    }
    if (!hasLiveChildren(task)) {
      this.#settle(task, threw, value);
      return;
    }
    // Structured concurrency: children do not outlive their parent.
    task.state = "waiting";
    task._slot = new Closing(threw, value);
    const reason = `its parent "${task.name}" ended`;
    forEachLiveChild(task, (child) => this._cancel(child, reason));
  }

  /**
   * Records the final state, tells observers, detaches from the parent and,
   * when that parent was only waiting for this child, settles it too. Walks
   * up iteratively, so deep trees cannot overflow the stack.
   */
  #settle(task: Task<unknown>, threw: boolean, outcome: unknown): void {
    for (;;) {
      task.state = !threw ? "done" : outcome instanceof CancelledError ? "cancelled" : "failed";
      task._slot = outcome;
      task._iter = SETTLED_ITER;
      if (this.#cancelled.size > 0) this.#cancelled.delete(task);
      const observed = this.#notifyObservers(task);
      if (task.state === "failed" && !observed) this.#escalate(task);
      const parent = parentOf(task);
      const siblingsLeft = this.#tree.unlink(task, parent);
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
      for (const observer of observers) observer.taskSettled(task, this);
    } else {
      observers.taskSettled(task, this);
    }
    return true;
  }

  /**
   * A task failed and nobody observed it: throw a `TaskFailedError` into its
   * parent (or the run's main task), so the failure is never lost.
   */
  #escalate(task: Task<unknown>, circumstance?: string): void {
    const report = new TaskFailedError(task.name, task._slot, circumstance);
    const target = parentOf(task) ?? this.#main;
    if (target === null || target === task || target.settled) {
      this.#orphanErrors.push(report);
      return;
    }
    const closing = target._slot;
    if (closing instanceof Closing) {
      closing.outcome = mergeErrors(closing.threw ? closing.outcome : undefined, report);
      closing.threw = true;
      return;
    }
    this.#interrupt(target, report);
  }

  /** Throws `error` into `task` at its current wait, undoing that wait. */
  #interrupt(task: Task<unknown>, error: unknown): void {
    switch (task.state) {
      case "ready":
      case "running":
        // Queued already, or interrupting itself (delivered after its
        // yield): change what it is resumed with. If that is an error
        // already, the new one waits for its next yield*.
        if (!(task._slot instanceof Thrown)) {
          task._slot = new Thrown(error);
        } else {
          this.#defer(task, error);
        }
        return;
      case "waiting": {
        const wait = task._slot as Instruction;
        if (wait instanceof Closing) return;
        // Queued with its error first: a failure the undo reports to this
        // task (a group's child) then waits for its next yield*, instead of
        // being overwritten by the error queued here.
        this._enqueueThrow(task, error);
        wait.undo(task, this);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Calls the user's warning hook. A hook that throws must not leave the
   * task it warns about half-settled: its error is kept, and the run
   * rejects with it once it ends.
   */
  #warn(message: string): void {
    try {
      this.#onWarning(message);
    } catch (error) {
      this.#orphanErrors.push(error);
    }
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
      this.#hold(task, other);
    } else {
      this.#deferred.set(task, mergeErrors(previous, error));
    }
  }

  /** Throws a deferred error into `task` instead of its new wait, if it has one. */
  #deliverDeferred(task: Task<unknown>): boolean {
    if (!this.#deferred.has(task)) return false;
    task._slot = new Thrown(this.#deferred.get(task));
    this.#deferred.delete(task);
    return true;
  }

  #describeBlocked(): string[] {
    return this.#tree.describeBlocked((task) => this.#cancelled.has(task));
  }

  // ---------------------------------------------------------------------
  // The loop's side of the instructions. Not part of the public API.

  /** @internal Creates a task and queues it. */
  _spawn<T>(
    iter: Iterator<unknown, T, unknown>,
    name: NameSource,
    parent: Task<unknown> | Loop,
  ): Task<T> {
    const task = new Task<T>(this.#nextId++, iter, name, parent);
    const erased = task as Task<unknown>;
    this.#tree.link(erased);
    this.#queue.push(erased);
    return task;
  }

  /** @internal Queues `task` to be resumed with `value`. */
  _enqueue(task: Task<unknown>, value: unknown): void {
    this.#makeReady(task, value, false);
  }

  /** @internal Queues `task` to be resumed with `error` thrown at its `yield*`. */
  _enqueueThrow(task: Task<unknown>, error: unknown): void {
    this.#makeReady(task, error, true);
  }

  #makeReady(task: Task<unknown>, value: unknown, throwing: boolean): void {
    task.state = "ready";
    task._slot = throwing ? new Thrown(value) : value;
    this.#queue.push(task);
  }

  /** @internal From `perform`: the current task continues at once with `value`. */
  _resumeNow(task: Task<unknown>, value: unknown): void {
    this.#continueWith(task, value, false);
  }

  /** @internal From `perform`: the current task continues at once with `error`. */
  _throwNow(task: Task<unknown>, error: unknown): void {
    this.#continueWith(task, error, true);
  }

  #continueWith(task: Task<unknown>, value: unknown, throwing: boolean): void {
    if (task.state !== "waiting") {
      // What the instruction ran interrupted the task (see #step): a result
      // is dropped (the task was cancelled), an error is kept for its next
      // yield*.
      if (throwing) this.#interrupt(task, value);
      return;
    }
    task._slot = throwing ? new Thrown(value) : value;
    this.#continueCurrent = true;
  }

  /** @internal Cancels `task` (see `Task.cancel`). */
  _cancel(task: Task<unknown>, reason: unknown): void {
    // Delivering a cancellation undoes the task's wait, which may cancel
    // more tasks (a gather's children, a timeout's body), and so on down a
    // tree of any depth: those are queued and delivered by this loop, not
    // by a recursion that a deep enough tree would overflow.
    if (this.#deliveringCancels) {
      this.#cancelQueue.push(task, reason);
      return;
    }
    this.#deliveringCancels = true;
    const queue = this.#cancelQueue;
    try {
      this.#deliverCancel(task, reason);
      for (let i = 0; i < queue.length; i += 2) {
        this.#deliverCancel(queue[i] as Task<unknown>, queue[i + 1]);
      }
    } finally {
      queue.length = 0;
      this.#deliveringCancels = false;
    }
  }

  #deliverCancel(task: Task<unknown>, reason: unknown): void {
    // Cancellation is delivered once: a second CancelledError would abort
    // the cleanup that the first one started (a parent ending while its
    // child cleans up after its own cancellation, a timeout firing late).
    if (task.settled || this.#cancelled.has(task)) return;
    const error = cancelledError(task, reason);
    this.#cancelled.set(task, error);
    this.#interrupt(task, error);
  }

  /** @internal Arms a timer. */
  _addTimer(timer: Timer): void {
    this.#timers.push(timer);
  }

  /** @internal Disarms a timer. */
  _removeTimer(timer: Timer): void {
    this.#timers.remove(timer);
  }

  /** @internal How many timers are armed (for tests and benchmarks). */
  get _timerCount(): number {
    return this.#timers.size;
  }

  /** @internal A Promise from `call()` is now pending. */
  _callStarted(): void {
    this.#pendingCalls++;
  }

  /** @internal A pending Promise settled or lost its waiter. */
  _callEnded(): void {
    this.#pendingCalls--;
    this.selector.wakeup();
  }

  /**
   * @internal An observer could not deliver `task`'s failure (the outcome it
   * delivers was decided before): report it as if nobody observed the task.
   */
  _reportFailure(task: Task<unknown>, circumstance: string): void {
    this.#escalate(task, circumstance);
  }

  /** @internal Whether cancel() has reached `task`. */
  _isCancelled(task: Task<unknown>): boolean {
    return this.#cancelled.has(task);
  }

  /**
   * @internal Reports the failure of `child` with the outcome of `holder`
   * once its body ends, rather than at its next yield*.
   */
  _reportWithOutcome(holder: Task<unknown>, child: Task<unknown>, circumstance: string): void {
    this.#hold(holder, new TaskFailedError(child.name, child._slot, circumstance));
  }

  /** Keeps `error` to join `task`'s outcome when its body ends. */
  #hold(task: Task<unknown>, error: unknown): void {
    const previous = this.#held.get(task);
    this.#held.set(task, previous === undefined ? error : mergeErrors(previous, error));
  }

  /** @internal Throws `error` into `task` at its current wait, undoing it. */
  _interrupt(task: Task<unknown>, error: unknown): void {
    this.#interrupt(task, error);
  }
}

/** Whether `error` still waits in `task`'s slot, never thrown into its body. */
function isUndelivered(task: Task<unknown>, error: unknown): boolean {
  const slot = task._slot;
  return slot instanceof Thrown && slot.error === error;
}

/** Resumes `task` with `error` thrown at its `yield*`. */

function throwInto(
  task: Task<unknown>,
  error: unknown,
): IteratorResult<unknown, unknown> {
  return task._iter.throw!(error);
}

/**
 * Lets the host event loop run (sockets, timers, Promises) once.
 * `setImmediate` takes about 15 µs here; a `setTimeout(0)` called from a
 * timer's callback is clamped to 4 ms once nested, which cost a busy loop
 * a quarter of its time. Deno before 2.4 has no global `setImmediate`.
 */
function yieldToHost(): Promise<void> {
  return new Promise((resolve) => HOST_TURN(resolve));
}

const HOST_TURN: (callback: () => void) => void = typeof setImmediate === "function"
  ? setImmediate
  : (callback) => setTimeout(callback, 0);

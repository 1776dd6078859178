/**
 * The event loop: a scheduler of tasks (its ready queue and their life
 * cycle, in scheduler.ts), a timer queue and a selector, and the run loop
 * that drives them.
 *
 * One turn of the loop ("tick") has three phases, in this order:
 * 1. poll the selector, so tasks whose streams became ready join the queue;
 * 2. fire due timers, so sleepers whose deadline passed join the queue;
 * 3. run the tasks that were ready when the phase began (tasks made ready
 *    while it runs wait for the next tick, so I/O and timers get their turn).
 *    An awaited run may give the host a turn part way through a batch; the
 *    next tick then finishes that batch before phases 1 and 2, so tasks run
 *    in the same order as in one go.
 *
 * When no task is ready the loop is idle and decides, in order: poll again
 * (a simulated stream still counts down), jump a virtual clock to the next
 * deadline, wait for the outside world (a socket, a Promise, a real timer),
 * or report a deadlock. When a socket ends that wait, the tasks it woke run
 * at once, inside the host's callback, rather than a few microtasks later.
 *
 * @module
 */

import { bodyNameSource, drive, startBody } from "./_body.ts";
import { type Clock, RealClock, VirtualClock } from "./clock.ts";
import { CancelledError, DeadlockError, describeError, TaskFailedError } from "./errors.ts";
import { LeftoversInstruction } from "./_leftovers.ts";
import { addObserver, removeObserver } from "./task_tree.ts";
import { Scheduler } from "./scheduler.ts";
import { EVENT_WRITE, Selector, type SelectorKey } from "./selector.ts";
import {
  type BodyResult,
  type NameSource,
  running,
  type SpawnOptions,
  type Task,
  type TaskBody,
  type TaskObserver,
} from "./task.ts";
import { type Timer, TimerQueue } from "./timers.ts";

/**
 * Options for `new Loop(options)`, `run(body, options)` and `runSync(body, options)`.
 *
 * @example Usage
 * ```ts
 * import { Loop, type LoopOptions, VirtualClock } from "@genloop/genloop";
 *
 * const warnings: string[] = [];
 * const options: LoopOptions = {
 *   clock: new VirtualClock(),
 *   onWarning: (message) => warnings.push(message),
 *   stallTimeoutMs: 5_000,
 * };
 * const loop = new Loop(options);
 * if (loop.time() !== 0) throw new Error("unexpected");
 * ```
 */
export interface LoopOptions {
  /** Where time comes from. Default: a `RealClock`. */
  clock?: Clock;
  /**
   * Receives warnings, such as a cancelled task that swallowed its
   * `CancelledError`. Default: `console.warn`.
   */
  onWarning?: (message: string) => void;
  /**
   * When every task waits only on Promises from `call()` (or sleeps on a
   * `VirtualClock`, which stands still while a Promise is pending) and none
   * settles for this many milliseconds, reject the run with a
   * `DeadlockError` that names them. A pending real-clock timer or socket
   * counts as progress to come, so the limit does not apply meanwhile; so
   * does a `VirtualClock` moved by hand (`advance()` from a host callback)
   * while a timer is armed. Default `Infinity` (wait as long as it takes).
   */
  stallTimeoutMs?: number;
  /**
   * Warn (through `onWarning`, once per task) about a cancelled task still
   * running this many milliseconds of loop time after it was cancelled:
   * cleanup should be quick, and a task that caught its `CancelledError`
   * and went on would otherwise run on unreported. Checked when the task
   * waits again. Default 10,000; `Infinity` turns it off.
   */
  cleanupWarningMs?: number;
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

// How long a cancelled task may run on before a warning, by default.
const DEFAULT_CLEANUP_WARNING_MS = 10_000;
// Longest stretch of work before the host event loop gets a turn.
const MAX_BUSY_MS = 10;
// How often the loop aims to look at the clock while it works, to see
// whether the host is owed a turn. It counts steps (and ticks) between
// looks, so that short runs never read the clock at all, and adapts the
// count to what a step costs: from 50 ns (a switch) to whatever a task
// computes between two yields.
const CHECK_EVERY_MS = 1;
const MIN_WORK_BETWEEN_CHECKS = 1;
// A step that suddenly costs more than those before it (a task starts to
// compute between yields) delays the host's turn by up to this many such
// steps; cheap switches pay a clock read per this many, a few per mille.
const MAX_WORK_BETWEEN_CHECKS = 256;
// No limit on a tick's steps (runSync), as a small integer: Infinity would
// make the step counts doubles, and the run loop slower.
const UNLIMITED_STEPS = 0x3fff_ffff;
// "Not yet" for the times the host-turn fields record. Not 0: a field first
// holding an integer, then a clock's fraction, would change the loop's
// hidden class, which src/_shape_anchors.ts could then not keep.
const NEVER = -Infinity;

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
  /**
   * @internal The task whose step this loop runs now, if operations may
   * finish inside that step (see `canFinishInStep`); null between steps.
   * Kept here, not in the module-wide `running` record, which soon lives in
   * V8's old generation: storing a new task there at every step took the
   * write barrier's slow path (a seventh of a task switch, measured with a
   * loop made for the run).
   */
  _runningTask: Task<unknown> | null = null;
  /**
   * @internal The task whose step runs now while `_runningTask` is null
   * because an error waits for its next `yield*`; possibly stale when
   * `_runningTask` is not null (read it only then).
   */
  _deferringTask: Task<unknown> | null = null;

  readonly #tasks: Scheduler;
  #timers = new TimerQueue();
  // Promises from call() that have not settled, and still have a waiter.
  #pendingCalls = 0;
  // Rounds of closing leftover tasks in the current run (see #startCloser),
  // and why this loop gave up on ending a run, if it did.
  #runEndRounds = 0;
  #lastRound = false;
  #gaveUp: Error | null = null;
  // What a failed run's cleanup blocked on, if it did: the loop is spent.
  #blockedCleanup: string | null = null;
  #stallTimeoutMs: number;
  // Host operations that a cancelled task left settling (a connect it
  // aborted): an awaited run ends only once they have settled, so that none
  // outlives it.
  #hostOpsLeft = new Set<Promise<void>>();
  // Tasks of the current batch not run yet: an awaited run cuts a batch
  // short when the host is due a turn (see #tick).
  #batchLeft = 0;
  // The task of the run's end that waits for the leftover root tasks (see
  // #startCloser); null until a run ends, and once it has.
  #closer: Task<unknown> | null = null;
  // When the loop began to wait with only Promises to wait for, no task
  // having run since (NEVER: it is not so waiting), by performance.now(): a
  // wake-up after which no task runs (a stop() or cancel() of a task
  // cancelled already) must not restart the stall limit, or a repeated one
  // would hide a stall for ever.
  #stalledSince = NEVER;
  // What running woken tasks inside a host callback left for #waitOutside:
  // an error to throw, and whether it ran long enough that the host is due
  // a turn before the loop goes on.
  #wokenError: unknown = NO_ERROR;
  #wokenBusy = false;
  // Whether a call()'s Promise settled during the current wait on the
  // outside world: a Promise settled already, or by other microtasks, ends
  // the wait before the host's timers and callbacks had a turn.
  #callEndedInWait = false;
  // Work done since the clock was last looked at (in this stretch without
  // a host turn), and how much work is to pass between looks (adapted at
  // each); when the clock was last looked at, and when the current stretch
  // was first seen busy (NEVER: not yet).
  #workSinceCheck = 0;
  #workBetweenChecks = MIN_WORK_BETWEEN_CHECKS;
  #lastCheck = NEVER;
  #busySince = NEVER;

  /**
   * Creates a loop.
   *
   * @param options The clock and reporting options.
   */
  constructor(options: LoopOptions = {}) {
    checkOptions(options);
    this.clock = options.clock ?? new RealClock();
    this.#tasks = new Scheduler(this, {
      onWarning: options.onWarning ?? ((message) => console.warn(message)),
      cleanupWarningMs: options.cleanupWarningMs ?? DEFAULT_CLEANUP_WARNING_MS,
    });
    this.#stallTimeoutMs = options.stallTimeoutMs ?? Infinity;
  }

  /** The loop's current time in milliseconds, from its clock. */
  time(): number {
    return this.clock.now();
  }

  /** Whether a run (`runSync` / `runUntilComplete`) is in progress. */
  get running(): boolean {
    return this.#tasks.main !== null;
  }

  /**
   * Stops the run in progress: its main task is cancelled (so its children
   * are too, and every `finally` block runs), and so, at the same time, is
   * every other task of the run that belongs to no task (detached and
   * `loop.spawn` tasks), so that main's cleanup may wait for them. A loop
   * waiting on the outside world wakes up to deliver that. The run then
   * rejects with the main task's `CancelledError`, after the cleanup; if the
   * main task's body had ended already (its children still cleaning up),
   * the run ends as that body did. Does nothing when no run is in progress.
   * Safe to call from a signal handler or a timer.
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
    const main = this.#tasks.main;
    if (main === null) return;
    this.#tasks.cancel(main, reason);
    // Not only once main has settled, as at a run's normal end: main's
    // cleanup may wait for a detached task (join it) that only a
    // cancellation ends. The run's end has a task of its own, a root too,
    // which waits for the others: not one of the run's tasks to stop.
    for (const root of this.#tasks.tree.liveRoots()) {
      if (root !== main && root !== this.#closer) this.#tasks.cancel(root, reason);
    }
    this.selector.wakeup();
  }

  /**
   * Schedules `body` as a new task from outside any task. It starts on the
   * next tick of a run and is not a child of any task; if it is still
   * running when that run's main task settles, it is cancelled and the run
   * waits for its cleanup.
   *
   * @param body A generator object, generator function or operation.
   * @param options The task's name (`detached` changes nothing here: a
   * task spawned from outside every task belongs to no task already).
   * @returns The new task.
   * @throws {TypeError} when `body` is not something a task can run, or is
   * the generator object of the root task spawned just before, still running.
   */
  spawn<T>(body: TaskBody<T>, options?: SpawnOptions): Task<T>;
  /**
   * Schedules `body` as a new task from outside any task (the form for a body
   * whose type is a union of bodies returning different types, such as
   * `flag ? fetchName() : fetchCount()`: the result is typed as any of theirs).
   *
   * @typeParam B The body's type.
   * @param body A generator object, generator function or operation.
   * @param options The task's name (`detached` changes nothing here: a
   * task spawned from outside every task belongs to no task already).
   * @returns The new task.
   */
  spawn<B extends TaskBody<unknown>>(body: B, options?: SpawnOptions): Task<BodyResult<B>>;
  spawn<T>(body: TaskBody<T>, options: SpawnOptions = {}): Task<T> {
    const iter = startBody(body, "loop.spawn()");
    const task = this._spawn(iter, options.name ?? bodyNameSource(body), this);
    // Called from a host callback while the run waits on the outside
    // world (a socket, a real timer), the task must not wait for that.
    this.selector.wakeup();
    return task;
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
   * the rejection's `cause`. If that cleanup blocks, its tasks stay
   * suspended and the loop refuses further runs: use a new `Loop`.
   */
  runUntilComplete<T>(body: TaskBody<T>): Promise<T>;
  /**
   * Runs `body` as the main task until it settles (the form for a body whose
   * type is a union of bodies returning different types, such as
   * `flag ? fetchName() : fetchCount()`: the result is typed as any of theirs).
   *
   * @typeParam B The body's type.
   * @param body The main task's body.
   * @returns Its return value.
   */
  runUntilComplete<B extends TaskBody<unknown>>(body: B): Promise<BodyResult<B>>;
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
      if (this.#hostOpsLeft.size > 0) await this.#settleHostOps();
      this.#endRun();
    }
  }

  /** The run is over: the loop holds none of its tasks. */
  #endRun(): void {
    this.#tasks.main = null;
    this.#tasks.unwindingRun = false;
    this.#closer = null;
  }

  /** Waits until the host operations the run's tasks left behind have settled. */
  async #settleHostOps(): Promise<void> {
    while (this.#hostOpsLeft.size > 0) await Promise.all(this.#hostOpsLeft);
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
  runSync<T>(body: TaskBody<T>): T;
  /**
   * Like `runUntilComplete`, but synchronous (the form for a body whose type is
   * a union of bodies returning different types, such as
   * `flag ? fetchName() : fetchCount()`: the result is typed as any of theirs).
   *
   * @typeParam B The body's type.
   * @param body The main task's body.
   * @returns Its return value.
   */
  runSync<B extends TaskBody<unknown>>(body: B): BodyResult<B>;
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
      this.#endRun();
    }
  }

  // ---------------------------------------------------------------------
  // The run loop.

  /**
   * Whether the loop is done with `main`: it has settled, and the batch it
   * settled in has run to its end. An awaited run cuts batches short (see
   * #tick); stopping there would leave the rest to be cancelled at the
   * run's end, where runSync would have run them.
   */
  #isDone(main: Task<unknown>): boolean {
    return main.settled && this.#batchLeft === 0;
  }

  /** Drives the loop until `main` settles, awaiting the outside world when idle. */
  async #drive(main: Task<unknown>): Promise<void> {
    this.#hostHadTurn();
    this.#stalledSince = NEVER;
    for (;;) {
      const busy = this.#runUntilIdle(main, true);
      if (this.#isDone(main)) return;
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
      if (this.#isDone(main)) return;
      if (this.#idleWait() > 0) {
        // Only time a VirtualClock can stand in for: a Promise or a socket
        // needs the host's event loop whatever the clock.
        const timeOnly = !(this.clock instanceof VirtualClock) && !this.#hasOutside();
        const orClock = timeOnly ? ", or give the loop a VirtualClock" : "";
        throw new Error(
          `Cannot finish with runSync(): no task is ready and the program waits for the outside world (${
            this.#tasks.describeBlocked().join("; ")
          }); run it with await run(body) (await loop.runUntilComplete(body) on a Loop)${orClock}`,
        );
      }
    }
  }

  /**
   * The run failed (deadlock, stall, a wait runSync cannot do): cancel
   * every task of the run so that their `finally` blocks release what they
   * hold, and drive that cleanup as far as it can go. A cleanup
   * that itself blocks is left suspended; the run reports the original
   * error either way.
   */
  async #unwind(main: Task<unknown>): Promise<void> {
    this.#cancelEveryTask(main);
    try {
      await this.#drive(main);
      // A loop that gave up on ending the run does not try again here.
      if (this.#gaveUp === null) await this.#closeRoots(RUN_FAILED);
    } catch {
      // The cleanup blocked too; the original error is what the caller needs.
      this.#noteBlockedCleanup();
    }
  }

  /** `#unwind` for `runSync`: only the cleanup that needs no waiting runs. */
  #unwindSync(main: Task<unknown>): void {
    this.#cancelEveryTask(main);
    try {
      this.#driveSync(main);
      if (this.#gaveUp === null) this.#closeRootsSync(RUN_FAILED);
    } catch {
      // The cleanup blocked too; the original error is what the caller needs.
      this.#noteBlockedCleanup();
    }
  }

  /**
   * Cancels the main task's tree, then every other live task of the run
   * (detached and `loop.spawn` ones, with their trees) at once: were they
   * left for after main's cleanup, a cleanup of main that blocks would keep
   * theirs from ever running.
   */
  #cancelEveryTask(main: Task<unknown>): void {
    this.#tasks.unwindingRun = true;
    this.#tasks.cancelTree(main, RUN_FAILED);
    const others = this.#tasks.tree.liveRoots().filter((root) => root !== main);
    this.#tasks.cancelTrees(others, RUN_FAILED, "tasks of a failed run", false);
  }

  /**
   * The tasks whose cleanup blocked stay suspended in this loop. Run again,
   * they would keep the next run from ending and fail it with their own
   * deadlock, so the loop refuses further runs instead (see #startRun).
   */
  #noteBlockedCleanup(): void {
    if (this.#blockedCleanup !== null || this.#tasks.tree.liveRoots().length === 0) return;
    this.#blockedCleanup = this.#tasks.describeBlocked().join("; ");
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
    const leftovers = this.#tasks.tree.liveRoots();
    if (leftovers.length === 0) return null;
    if (++this.#runEndRounds > MAX_RUN_END_ROUNDS) this.#lastRound = true;
    // An instruction is an iterator: it can be a task's whole body.
    const waiting = new LeftoversInstruction(
      leftovers,
      (error) => this.#tasks.orphanErrors.push(error),
      (task) => this.#tasks.bodyFailed(task),
    );
    // Their whole trees at once, as asyncio.run() cancels every task left:
    // a leftover waiting in a gather waits for the gather's children, whose
    // cleanup may wait on one of its other children. At a run's normal end,
    // a cleanup under way keeps the children it may need; a failed run's
    // unwind spares nothing (see #unwind).
    const spareCleanups = reason !== RUN_FAILED;
    this.#tasks.cancelTrees(leftovers, reason, "tasks left at the run's end", spareCleanups);
    this.#closer = this._spawn(drive(waiting), "the run's end", this);
    return this.#closer;
  }

  /**
   * After the last round allowed, what its cleanups spawned is left as it
   * is (perhaps started): the run fails, and the loop refuses further runs
   * rather than let those tasks run (and fail) in them.
   */
  #throwIfGaveUp(): void {
    if (!this.#lastRound) return;
    const left = this.#tasks.tree.liveRoots();
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
    if (this.#tasks.main !== null) {
      throw new Error(
        `Cannot start a run: this loop is already running task "${this.#tasks.main.name}"; spawn the work as a task instead`,
      );
    }
    if (this.#gaveUp !== null) {
      throw new Error(
        `Cannot start a run: this loop could not end its previous one and still holds its tasks (${this.#gaveUp.message}); use a new Loop`,
      );
    }
    if (this.#blockedCleanup !== null) {
      throw new Error(
        `Cannot start a run: this loop's previous run failed and the cleanup of its tasks blocked (${this.#blockedCleanup}); they would keep this run from ending; use a new Loop`,
      );
    }
    this.#batchLeft = 0;
    const main = this._spawn(startBody(body, "run()"), bodyNameSource(body), this);
    addObserver(main as Task<unknown>, RUN_OBSERVER);
    this.#tasks.main = main as Task<unknown>;
    this.#tasks.orphanErrors = [];
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
    while (!this.#isDone(main)) {
      // Awaited, a tick runs no more steps than are due before the next
      // look at the clock: a batch of many tasks that each compute a while
      // would keep the host waiting far past MAX_BUSY_MS.
      const steps = this.#tick(
        async ? this.#workBetweenChecks - this.#workSinceCheck : UNLIMITED_STEPS,
      );
      if (async) {
        // A step is progress: the stall limit (see #stallLimit) starts anew.
        // Only an awaited run can stall, so only it pays for the check.
        if (steps > 0 && this.#stalledSince !== NEVER) this.#stalledSince = NEVER;
        // Counted across calls: a virtual clock jumping from deadline to
        // deadline runs one tick per call and never waits for the host, yet
        // a signal handler or a timer that stops the loop must get its turn.
        if (this.#hostIsDue(steps)) return true;
      }
      if (this.#tasks.ready === 0 && !(this.selector.size > 0 && this.selector.pollable())) {
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
    if (this.#workSinceCheck < this.#workBetweenChecks) return false;
    const now = performance.now();
    // The first look after a host turn measures the turn too: it can only
    // make the next look come sooner.
    if (this.#lastCheck !== NEVER) this.#adaptWorkBetweenChecks(now - this.#lastCheck);
    if (this.#busySince === NEVER) this.#busySince = now;
    this.#workSinceCheck = 0;
    this.#lastCheck = now;
    return now - this.#busySince > MAX_BUSY_MS;
  }

  /**
   * Sets the work between looks at the clock so that the next look comes
   * about `CHECK_EVERY_MS` after this one, had the work cost what it did
   * since the last look. Kept across host turns: a program's steps tend to
   * cost alike.
   */
  #adaptWorkBetweenChecks(elapsedMs: number): void {
    const work = elapsedMs > 0
      ? Math.round(this.#workSinceCheck * CHECK_EVERY_MS / elapsedMs)
      : MAX_WORK_BETWEEN_CHECKS;
    this.#workBetweenChecks = Math.min(
      MAX_WORK_BETWEEN_CHECKS,
      Math.max(MIN_WORK_BETWEEN_CHECKS, work),
    );
  }

  #hostHadTurn(): void {
    this.#workSinceCheck = 0;
    this.#busySince = NEVER;
    // The first look of a stretch comes after its first step, whatever
    // the last stretch's steps cost: a task that computes for long between
    // yields from now on must not hold the host for a count of steps
    // adapted to cheap ones. Cheap steps then take the count back up at
    // once (a few clock reads per host turn).
    this.#workBetweenChecks = MIN_WORK_BETWEEN_CHECKS;
  }

  async #giveHostATurn(): Promise<void> {
    await yieldToHost();
    this.#hostHadTurn();
  }

  /** Runs one tick of at most `maxSteps` steps; returns how many it ran. */
  #tick(maxSteps: number): number {
    // The rest of a batch cut short comes first, before anything that
    // became ready meanwhile, so that the order does not depend on where
    // the host's turn fell.
    if (this.#batchLeft === 0) {
      // Phase 1: streams first, so a task woken by I/O runs in this very tick.
      if (this.selector.size > 0) this.#wakeReadyStreams(this.selector.select());
      // Phase 2: then timers whose deadline has passed.
      if (this.#timers.size > 0) this.#fireDueTimers();
      this.#batchLeft = this.#tasks.ready;
    }
    // Phase 3: run the batch of tasks that were ready (or what is left of it).
    const steps = this.#tasks.runReady(Math.min(this.#batchLeft, maxSteps));
    this.#batchLeft -= steps;
    return steps;
  }

  #wakeReadyStreams(ready: SelectorKey[]): void {
    for (const key of ready) {
      if (key.pollFailure !== undefined) {
        this.#tasks.failWait(key.task, key.pollFailure.error);
        continue;
      }
      if (key.event === EVENT_WRITE) this.#tasks.wokenFromWrite(key.task);
      this.#tasks.enqueue(key.task, undefined);
    }
  }

  #fireDueTimers(): void {
    const now = this.clock.now();
    let timer: Timer | undefined;
    while ((timer = this.#timers.popDue(now)) !== undefined) timer.fire(this);
  }

  /**
   * Decides what to do when no task is ready. Returns 0 to tick again, or
   * how long to wait (possibly `Infinity`) for the outside world.
   * @throws {DeadlockError} when nothing could ever wake a task.
   */
  #idleWait(): number {
    if (this.#tasks.ready > 0 || this.selector.pollable()) return 0;
    const outside = this.#hasOutside();
    const deadline = this.#timers.nextDeadline();
    if (deadline !== Infinity) {
      // Due already (a task moved a virtual clock by hand): fire it now,
      // whatever else the loop could wait for.
      if (deadline <= this.clock.now()) return 0;
      // A virtual clock jumps, unless the outside world may still act first.
      if (this.clock.jumpTo !== undefined && !outside) {
        this.#jumpTo(deadline);
        return 0;
      }
      if (this.clock.jumpTo === undefined) {
        return Math.max(0, deadline - this.clock.now());
      }
    }
    if (outside) return Infinity;
    const blocked = this.#tasks.describeBlocked();
    throw new DeadlockError(
      `Deadlock: no task can make progress and nothing could wake one. Blocked: ${
        blocked.join("; ")
      }`,
      blocked,
    );
  }

  /**
   * Moves a virtual clock to `deadline`. One that stops short of it (a
   * clock of whole nanoseconds rounding to the nearest) would have the loop
   * jump to the same deadline for ever, finding nothing due.
   */
  #jumpTo(deadline: number): void {
    this.clock.jumpTo!(deadline);
    const now = this.clock.now();
    if (!(now >= deadline)) {
      throw new Error(
        `Cannot go on: clock.jumpTo(${deadline}) left clock.now() at ${now}, before that deadline; a clock's jumpTo must reach the time it is given (round up, not to the nearest)`,
      );
    }
  }

  /** Waits for the selector, the next real timer or a settled Promise. */
  async #waitOutside(waitMs: number): Promise<void> {
    const onlyCalls = waitMs === Infinity && !this.selector.watching;
    const limit = onlyCalls ? this.#stallLimit() : waitMs;
    const clock = this.clock;
    // A virtual clock moved by hand meanwhile wakes the loop to fire what
    // became due.
    const stopWatching = clock instanceof VirtualClock
      ? clock._onMove(this.#clockMoved)
      : undefined;
    let timedOut: boolean;
    this.#callEndedInWait = false;
    try {
      timedOut = await this.selector.wait(limit, this.#runWoken);
    } finally {
      stopWatching?.();
    }
    // A wait that a call() ended may not have reached the host's event loop
    // at all: the busy stretch goes on, and #drive gives the host its turn
    // when it is due (at worst one extra turn after a call that took long).
    // Any other wake-up came from the host: a timer, a socket, a callback.
    if (!this.#callEndedInWait) this.#hostHadTurn();
    if (!onlyCalls) this.#stalledSince = NEVER;
    if (this.#wokenError !== NO_ERROR) {
      const error = this.#wokenError;
      this.#wokenError = NO_ERROR;
      throw error;
    }
    if (this.#wokenBusy) {
      this.#wokenBusy = false;
      await this.#giveHostATurn();
    }
    // A wake-up that queued nothing (a stop() or cancel() that found its
    // task cancelled already) is no stall: the next wait goes on to the
    // same limit.
    if (onlyCalls && timedOut && this.#tasks.ready === 0) {
      this.#stalledSince = NEVER;
      const blocked = this.#tasks.describeBlocked();
      throw new DeadlockError(
        `Stalled: for ${this.#stallTimeoutMs} ms no Promise that a task waits on settled, and nothing else could wake one (a virtual clock stands still meanwhile). Blocked: ${
          blocked.join("; ")
        }`,
        blocked,
      );
    }
  }

  /** How much longer the loop may wait on Promises alone before it stalls. */
  #stallLimit(): number {
    if (this.#stallTimeoutMs === Infinity) return Infinity;
    const now = performance.now();
    if (this.#stalledSince === NEVER) this.#stalledSince = now;
    return Math.max(0, this.#stalledSince + this.#stallTimeoutMs - now);
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
    const main = this.#tasks.main;
    if (main === null || main.settled || running.loop !== null) return;
    // Inside a host callback: the host has just had its turn.
    this.#hostHadTurn();
    try {
      this.#wokenBusy = this.#runUntilIdle(main, true);
    } catch (error) {
      this.#wokenError = error;
    }
  };

  /**
   * A virtual clock moved by hand during a wait: it fires what became due.
   * With a timer armed, the clock moving is progress towards it, as a real
   * clock's is: no stall, however long the Promises take.
   */
  #clockMoved = (): void => {
    if (this.#timers.size > 0) this.#stalledSince = NEVER;
    this.selector.wakeup();
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
    const errors = this.#tasks.orphanErrors;
    this.#tasks.orphanErrors = [];
    // Given up on ending the run while unwinding it: say why the loop is spent.
    if (this.#gaveUp !== null && this.#gaveUp !== error) errors.push(this.#gaveUp);
    // Errors still waiting for a task that will never take them now, or
    // held by one that will never settle with them.
    for (const pending of this.#tasks.takePendingErrors()) {
      if (!(pending instanceof CancelledError)) errors.push(pending);
    }
    errors.push(...this.#tasks.closingErrors());
    if (this.#tasks.bodyFailed(main)) errors.unshift(this.#tasks.bodyFailure(main));
    dropReportsOfListed(errors);
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
    const orphans = this.#tasks.orphanErrors;
    this.#tasks.orphanErrors = [];
    if (main._state === "done" && orphans.length === 0) return main._slot;
    const errors = main._state === "done" ? orphans : [main._slot, ...orphans];
    if (errors.length === 1) throw errors[0];
    throw new AggregateError(
      errors,
      `The run ended with ${errors.length} errors: ${errors.map(describeError).join("; ")}`,
    );
  }

  // ---------------------------------------------------------------------
  // The loop's side of the instructions. Not part of the public API: the
  // task life cycle is the scheduler's (see scheduler.ts).

  /** @internal Creates a task and queues it. */
  _spawn<T>(
    iter: Iterator<unknown, T, unknown>,
    name: NameSource,
    parent: Task<unknown> | Loop,
  ): Task<T> {
    return this.#tasks.spawn(iter, name, parent);
  }

  /** @internal Queues `task` to be resumed with `value`. */
  _enqueue(task: Task<unknown>, value: unknown): void {
    this.#tasks.enqueue(task, value);
  }

  /** @internal Queues `task` to be resumed with `error` thrown at its `yield*`. */
  _enqueueThrow(task: Task<unknown>, error: unknown): void {
    this.#tasks.enqueueThrow(task, error);
  }

  /** @internal From `perform`: the current task continues at once with `value`. */
  _resumeNow(task: Task<unknown>, value: unknown): void {
    this.#tasks.resumeNow(task, value);
  }

  /** @internal From `perform`: the current task continues at once with `error`. */
  _throwNow(task: Task<unknown>, error: unknown): void {
    this.#tasks.throwNow(task, error);
  }

  /**
   * @internal Keeps `op`, a host operation that never rejects, from
   * outliving an awaited run: the run ends once it has settled.
   */
  _outlive(op: Promise<void>): void {
    this.#hostOpsLeft.add(op);
    op.then(() => this.#hostOpsLeft.delete(op));
  }

  /**
   * @internal Whether `task` runs its cleanup after a cancellation it was
   * given: nothing will interrupt its waits with one again.
   */
  _isCleaningUp(task: Task<unknown>): boolean {
    return this.#tasks.isCleaningUp(task);
  }

  /**
   * @internal Whether `task`'s body has ended with an error other than a
   * cancellation (it may still wait for its children's cleanup).
   */
  _bodyFailed(task: Task<unknown>): boolean {
    return this.#tasks.bodyFailed(task);
  }

  /** @internal Whether a failed run's tasks are being cancelled. */
  get _unwindingRun(): boolean {
    return this.#tasks.unwindingRun;
  }

  /** @internal Calls the warning hook (see `LoopOptions.onWarning`). */
  _warn(message: string): void {
    this.#tasks.warn(message);
  }

  /** @internal Cancels `task` (see `Task.cancel`). */
  _cancel(task: Task<unknown>, reason: unknown): void {
    this.#tasks.cancel(task, reason);
    // As in spawn(): a cancel from a host callback takes effect at once.
    this.selector.wakeup();
  }

  /**
   * @internal Cancels those of `tasks` still live and not cancelled, all
   * with one CancelledError whose message names them as `group`.
   */
  _cancelGroup(tasks: readonly Task<unknown>[], reason: unknown, group: string): void {
    this.#tasks.cancelGroup(tasks, reason, group);
  }

  /** @internal Throws `error` into `task` at its current wait, undoing it. */
  _interrupt(task: Task<unknown>, error: unknown): void {
    this.#tasks.interrupt(task, error);
  }

  /**
   * @internal Holds `error` for `task` until the child tasks its wait
   * started have settled (see `Instruction.holdsInterrupt`).
   */
  _holdInterrupt(task: Task<unknown>, error: unknown): void {
    this.#tasks.holdInterrupt(task, error);
  }

  /**
   * @internal Throws the error held for `task` at its `yield*`, once the
   * child tasks its wait started have settled (see
   * `Instruction.holdsInterrupt`).
   */
  _resumeHeld(task: Task<unknown>): void {
    this.#tasks.resumeHeld(task);
  }

  /**
   * @internal An observer could not deliver `task`'s failure (the outcome it
   * delivers was decided before): report it as if nobody observed the task.
   */
  _reportFailure(task: Task<unknown>, circumstance: string): void {
    this.#tasks.reportFailure(task, circumstance);
  }

  /**
   * @internal Reports the failure of `child`, whose outcome `waiter` would
   * have taken but for an interruption: with a cancelled waiter's outcome,
   * otherwise at its next `yield*`.
   */
  _reportUntaken(waiter: Task<unknown>, child: Task<unknown>, circumstance: string): void {
    this.#tasks.reportUntaken(waiter, child, circumstance);
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
    this.#callEndedInWait = true;
    this.selector.wakeup();
  }
}

/**
 * Rejects options that would fail later, far from the mistake: a clock
 * whose `now()` is missing, cannot be called or gives no number, a warning
 * hook that is no function, a time limit that is no number of milliseconds
 * (NaN would end every wait at once).
 */
function checkOptions(options: LoopOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Cannot create a Loop: options must be an object, got ${typeof options}`);
  }
  const { clock, onWarning } = options;
  if (clock !== undefined) checkClock(clock);
  if (onWarning !== undefined && typeof onWarning !== "function") {
    throw new TypeError(
      `Cannot create a Loop: onWarning must be a function taking the message, got ${typeof onWarning}`,
    );
  }
  checkMs(options.stallTimeoutMs, "stallTimeoutMs");
  checkMs(options.cleanupWarningMs, "cleanupWarningMs");
}

/**
 * A clock's `now()` is called once: one that cannot be called as a method
 * (`{ now: performance.now }`: "Illegal invocation") or gives no number
 * would otherwise fail at the first sleep of a run, inside a task.
 */
function checkClock(clock: Clock): void {
  if (typeof clock?.now !== "function") {
    throw new TypeError(
      "Cannot create a Loop: clock must have a now() method (use new RealClock() or new VirtualClock())",
    );
  }
  if (clock.jumpTo !== undefined && typeof clock.jumpTo !== "function") {
    throw new TypeError(
      `Cannot create a Loop: clock.jumpTo must be a function if given, got ${typeof clock.jumpTo}`,
    );
  }
  let now: unknown;
  try {
    now = clock.now();
  } catch (error) {
    throw new TypeError(
      `Cannot create a Loop: clock.now() threw ${
        describeError(error)
      } (a method taken off its object, such as performance.now, needs binding: { now: () => performance.now() })`,
      { cause: error },
    );
  }
  if (typeof now !== "number" || Number.isNaN(now)) {
    throw new TypeError(
      `Cannot create a Loop: clock.now() must return a number of milliseconds, got ${
        typeof now === "number" ? now : typeof now
      }`,
    );
  }
}

function checkMs(ms: unknown, name: string): void {
  if (ms === undefined || (typeof ms === "number" && ms >= 0)) return;
  throw new RangeError(
    `Cannot create a Loop: ${name} must be a number of milliseconds >= 0 (Infinity for no limit), got ${
      typeof ms === "number" ? ms : typeof ms
    }`,
  );
}

/**
 * Drops, in place, each report of an unjoined failure whose error is listed
 * itself: a task joined after its failure was reported (main's cleanup
 * joining a detached task while a failed run unwinds) fails with that very
 * error, which the run's error must not hold twice.
 */
function dropReportsOfListed(errors: unknown[]): void {
  const listed = new Set(errors);
  let kept = 0;
  for (const error of errors) {
    if (error instanceof TaskFailedError && listed.has(error.cause)) continue;
    errors[kept++] = error;
  }
  errors.length = kept;
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

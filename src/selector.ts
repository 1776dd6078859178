/**
 * The selector: the tutorial's `MySelect`, generalised. It watches streams
 * for the tasks that wait on them and reports which are ready.
 *
 * Two kinds of stream meet here:
 * - *polled* streams (the simulated `SimulatedStream`) answer "are you ready?"
 *   each time `select()` asks, exactly like the tutorial's `MyStream.ready()`;
 * - *push* streams (`ConnStream` over a real socket) start the host operation
 *   when watched and call back when it completes. Deno offers completion,
 *   not readiness; the callback turns one into the other. Their readiness
 *   costs O(ready): nothing scans idle sockets.
 *
 * Registrations are one-shot: `select()` removes what it returns.
 *
 * @module
 */

import type { Task } from "./task.ts";

/**
 * Wait until a stream can be read from.
 *
 * @example Usage
 * ```ts
 * import { EVENT_READ, Loop, Selector, SimulatedStream } from "@genloop/genloop";
 *
 * const task = new Loop().spawn(function* reader() {});
 * const selector = new Selector();
 * selector.register(new SimulatedStream("in", { data: "x", waitCycles: 1 }), EVENT_READ, task);
 * if (selector.select()[0].event !== EVENT_READ) throw new Error("unexpected");
 * ```
 */
export const EVENT_READ = "EVENT_READ";
/**
 * Wait until a stream can be written to.
 *
 * @example Usage
 * ```ts
 * import { EVENT_WRITE, Loop, Selector, SimulatedStream } from "@genloop/genloop";
 *
 * const task = new Loop().spawn(function* writer() {});
 * const selector = new Selector();
 * selector.register(new SimulatedStream("out", { waitCycles: 1 }), EVENT_WRITE, task);
 * if (selector.select()[0].event !== EVENT_WRITE) throw new Error("unexpected");
 * ```
 */
export const EVENT_WRITE = "EVENT_WRITE";
/**
 * The two events a task can wait for on a stream.
 *
 * @example Usage
 * ```ts
 * import { EVENT_READ, EVENT_WRITE, type SelectorEvent } from "@genloop/genloop";
 *
 * const events: SelectorEvent[] = [EVENT_READ, EVENT_WRITE];
 * if (events.join() !== "EVENT_READ,EVENT_WRITE") throw new Error("unexpected");
 * ```
 */
export type SelectorEvent = typeof EVENT_READ | typeof EVENT_WRITE;

/**
 * What the selector needs from a stream. Implement `poll` (and `stalled`)
 * for a stream whose readiness is checked on demand, or `watch` for one
 * that reports readiness itself; a stream with neither cannot be waited on
 * (a `TypeError` naming it). An error thrown by `poll` or `stalled` goes
 * to the task waiting on that event, at its `yield*`.
 *
 * @example Usage
 * ```ts
 * import { EVENT_READ, type SelectableStream } from "@genloop/genloop";
 *
 * // A polled stream that is always ready.
 * const alwaysReady: SelectableStream = { name: "ready", poll: () => true };
 * if (alwaysReady.poll?.(EVENT_READ, false) !== true) throw new Error("unexpected");
 * ```
 */
export interface SelectableStream {
  /** Shown in deadlock reports and error messages. */
  readonly name: string;
  /**
   * Polled streams: asked once per `select()` for each event a task waits
   * for. When tasks wait for both events, the stream is asked about
   * `EVENT_READ` first and then about `EVENT_WRITE` with `again` set, so a
   * stream that counts selects (as `SimulatedStream` counts `waitCycles`)
   * counts that select once.
   */
  poll?(event: SelectorEvent, again: boolean): boolean;
  /**
   * Polled streams: `true` when more polling alone can never make the stream
   * ready (it waits for another task to write or close), so the loop may
   * report a deadlock instead of polling forever.
   */
  stalled?(event: SelectorEvent): boolean;
  /**
   * Push streams: start whatever makes the stream ready for `event` and
   * call `notify()` once when it is (possibly at once).
   */
  watch?(event: SelectorEvent, notify: () => void): void;
}

/**
 * One task waiting for one event on one stream, as `select()` returns it.
 *
 * @example Usage
 * ```ts
 * import { EVENT_READ, Loop, Selector, type SelectorKey, SimulatedStream } from "@genloop/genloop";
 *
 * const task = new Loop().spawn(function* reader() {});
 * const selector = new Selector();
 * selector.register(new SimulatedStream("in", { data: "x", waitCycles: 1 }), EVENT_READ, task);
 * const ready: SelectorKey[] = selector.select();
 * if (ready[0].task !== task || ready[0].event !== EVENT_READ) throw new Error("unexpected");
 * ```
 */
export interface SelectorKey {
  /** The stream waited on. */
  readonly stream: SelectableStream;
  /** The event waited for. */
  readonly event: SelectorEvent;
  /** The waiting task. */
  readonly task: Task<unknown>;
  /**
   * Set when the stream's `poll()` threw instead of answering: the error,
   * for the waiting task (the loop throws it at its `yield*`).
   */
  readonly pollFailure?: { readonly error: unknown };
}

/** Who waits on one stream, by event. */
interface Holders {
  read: Registration | null;
  write: Registration | null;
}

interface Registration extends SelectorKey {
  pollFailure: { readonly error: unknown } | undefined;
  active: boolean;
  /** Whether its stream reported readiness (once is enough). */
  notified: boolean;
  /** The selector it is registered with. */
  readonly selector: Selector;
  /** Its stream's holders, where it is listed. */
  readonly holders: Holders;
  // This selector's active push registrations, for `describe()`.
  previous: Registration | null;
  next: Registration | null;
}

/**
 * Who waits on each stream, across the selectors of every Loop: a push
 * stream keeps one callback per event, so a second waiter, even in another
 * Loop, would silently take the first one's wake-up (and its bytes). Kept
 * per stream for its lifetime, so that a wait on a socket neither adds to
 * nor removes from a hash table: with a hundred connections each waiting
 * and waking twice per message, that churn of a Map cost an eighth of the
 * instructions of an echo round trip.
 */
const holdersOf = new WeakMap<SelectableStream, Holders>();

/**
 * Asks a polled stream whether `registration`'s event is ready. A `poll()`
 * that throws makes it ready too, with the error kept for its task: it
 * concerns that wait, not every task of the run.
 */
function polledReady(registration: Registration, readWaits: boolean): boolean {
  // Its stalled() threw already (see pollable).
  if (registration.pollFailure !== undefined) return true;
  try {
    return registration.stream.poll!(registration.event, readWaits);
  } catch (error) {
    registration.pollFailure = { error };
    return true;
  }
}

/**
 * Whether polling `registration` again could make it ready. A `stalled()`
 * that throws counts as a `poll()` that throws: its task gets the error
 * at the next select.
 */
function mayBecomeReady(registration: Registration): boolean {
  const stream = registration.stream;
  if (stream.stalled === undefined || registration.pollFailure !== undefined) return true;
  try {
    return !stream.stalled(registration.event);
  } catch (error) {
    registration.pollFailure = { error };
    return true;
  }
}

/** A polled stream's registrations with one selector. */
interface StreamEntry {
  readonly stream: SelectableStream;
  read: Registration | null;
  write: Registration | null;
}

/**
 * Tracks which task waits for which stream event, and reports readiness.
 * Every `Loop` owns one (`loop.selector`); simulated streams and real sockets
 * share it.
 *
 * @example Usage
 * ```ts
 * import { EVENT_READ, Loop, Selector, SimulatedStream } from "@genloop/genloop";
 *
 * const loop = new Loop();
 * const task = loop.spawn(function* idle() {});
 * const selector = new Selector();
 * const stream = new SimulatedStream("A", { waitCycles: 2, data: "hi" });
 * selector.register(stream, EVENT_READ, task);
 * if (selector.select().length !== 0) throw new Error("ready too soon");
 * if (selector.select().length !== 1) throw new Error("not ready");
 * ```
 */
export class Selector {
  // Polled streams with a registration; select() asks each once, as the
  // tutorial's MySelect does.
  #polled = new Map<SelectableStream, StreamEntry>();
  #polledRegistrations = 0;
  // The active push registrations, newest first (for `describe`).
  #firstPush: Registration | null = null;
  // Push registrations whose stream reported readiness; O(ready). One
  // dropped meanwhile (its task was cancelled) stays until taken, inactive.
  #pushed: Registration[] = [];
  // How many of #pushed are still active: only they end a wait early.
  #pushedActive = 0;
  // Push registrations still waiting for their stream's callback.
  #watching = 0;
  #wake: ((timedOut?: boolean) => void) | null = null;
  #onReady: (() => void) | null = null;

  /** How many registrations are active. */
  get size(): number {
    return this.#polledRegistrations + this.#watching;
  }

  /** Whether a push stream (a socket) is being watched: the outside world can wake a task. */
  get watching(): boolean {
    return this.#watching > 0;
  }

  /**
   * Registers `task` as waiting for `event` on `stream`.
   *
   * @throws {Error} when another task, of this Loop or another, already waits
   *   for the same event on it.
   */
  register(
    stream: SelectableStream,
    event: SelectorEvent,
    task: Task<unknown>,
  ): void {
    // Both are optional in the type, each alone: without either, nothing
    // could ever say the stream is ready.
    if (stream.watch === undefined && typeof stream.poll !== "function") {
      throw new TypeError(
        `Cannot wait for ${event} on stream "${stream.name}" in task "${task.name}": the stream has neither poll() nor watch(), so nothing can say when it is ready; give it one of them`,
      );
    }
    let holders = holdersOf.get(stream);
    if (holders === undefined) {
      holders = { read: null, write: null };
      holdersOf.set(stream, holders);
    }
    const reading = event === EVENT_READ;
    const holder = reading ? holders.read : holders.write;
    if (holder !== null) {
      const where = holder.selector === this ? "" : " in another Loop";
      throw new Deno.errors.Busy(
        `Cannot wait for ${event} on stream "${stream.name}" in task "${task.name}": task "${holder.task.name}"${where} already waits for it; use one reader and one writer per stream (for several writers, one writer task that the others hand their data to)`,
      );
    }
    const registration: Registration = {
      stream,
      event,
      task,
      pollFailure: undefined,
      active: true,
      notified: false,
      selector: this,
      holders,
      previous: null,
      next: null,
    };
    if (reading) holders.read = registration;
    else holders.write = registration;
    if (stream.watch !== undefined) {
      this.#watching++;
      this.#link(registration);
      try {
        stream.watch(event, () => this.#notify(registration));
      } catch (error) {
        // The task gets the error instead of a wait: leave no registration
        // behind to refuse its next wait or to wake it later.
        this.#drop(registration);
        throw error;
      }
    } else {
      this.#polledRegistrations++;
      let entry = this.#polled.get(stream);
      if (entry === undefined) {
        entry = { stream, read: null, write: null };
        this.#polled.set(stream, entry);
      }
      if (reading) entry.read = registration;
      else entry.write = registration;
    }
  }

  /**
   * Removes the registrations of `stream` (for one `event`, or both), only
   * `task`'s if a task is given: a task whose registration was taken when
   * its stream woke it must not remove the one another task made since.
   */
  unregister(stream: SelectableStream, event?: SelectorEvent, task?: Task<unknown>): void {
    const holders = holdersOf.get(stream);
    if (holders === undefined) return;
    const { read, write } = holders;
    if (event !== EVENT_WRITE && read !== null && this.#owns(read, task)) this.#drop(read);
    if (event !== EVENT_READ && write !== null && this.#owns(write, task)) this.#drop(write);
  }

  /** Whether `registration` is this selector's, and `task`'s if given. */
  #owns(registration: Registration, task: Task<unknown> | undefined): boolean {
    return registration.selector === this && (task === undefined || registration.task === task);
  }

  /** The tasks waiting on `stream`, if any. */
  waiters(stream: SelectableStream): Task<unknown>[] {
    const holders = holdersOf.get(stream);
    const tasks: Task<unknown>[] = [];
    if (holders === undefined) return tasks;
    const { read, write } = holders;
    if (read !== null && read.selector === this) tasks.push(read.task);
    if (write !== null && write.selector === this) tasks.push(write.task);
    return tasks;
  }

  /**
   * Returns the registrations that are ready now and removes them (they
   * are one-shot). Polled streams are asked once each, which is what counts
   * down a simulated stream's `waitCycles`.
   */
  select(): SelectorKey[];
  /**
   * Waits up to `timeoutMs` for something to become ready, then returns
   * what is ready (possibly nothing) and removes it. Rejects while another
   * wait is pending on this selector (see `wait`).
   */
  select(timeoutMs: number): Promise<SelectorKey[]>;
  select(timeoutMs?: number): SelectorKey[] | Promise<SelectorKey[]> {
    if (timeoutMs === undefined) return this.#selectNow();
    const ready = this.#selectNow();
    if (ready.length > 0 || timeoutMs <= 0) return Promise.resolve(ready);
    return this.wait(timeoutMs).then(() => this.#selectNow());
  }

  /** Whether polling again could make a polled registration ready. */
  pollable(): boolean {
    for (const { read, write } of this.#polled.values()) {
      if (read !== null && mayBecomeReady(read)) return true;
      if (write !== null && mayBecomeReady(write)) return true;
    }
    return false;
  }

  /**
   * Resolves when a push stream becomes ready, when `wakeup()` is called, or
   * after `timeoutMs` (use `Infinity` for no limit). The host timer is always
   * cleared, so nothing leaks.
   *
   * @param timeoutMs The longest wait, in milliseconds.
   * @param onReady Called synchronously, inside the host callback that
   * made a push stream ready during this wait (after the Promise is
   * resolved). A loop uses it to run the woken task at once rather than a
   * few microtasks later, when the host may already have moved on to other
   * callbacks (in the echo benchmark that cost about 3% of the round trips).
   * @returns Whether the wait ended because `timeoutMs` passed. Rejects
   * when another wait is pending on this selector.
   */
  wait(timeoutMs: number, onReady?: () => void): Promise<boolean> {
    // One wake-up function serves one wait: a second would take it over,
    // and the first wait's timer would then end the second early.
    if (this.#wake !== null) {
      return Promise.reject(
        new Error(
          "Cannot wait on a Selector that a wait (or select(timeoutMs)) is pending on: it serves one wait at a time; await the first, or end it with wakeup()",
        ),
      );
    }
    if (this.#pushedActive > 0) return Promise.resolve(false);
    // Only readiness whose task has gone: the loop has nothing to take, so
    // no select() would ever clear it.
    this.#pushed.length = 0;
    return new Promise<boolean>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.#onReady = onReady ?? null;
      // One closure per wait (this is on every socket round trip): the host
      // timer calls it with `true`, everything else with no argument.
      this.#wake = (timedOut?: boolean) => {
        this.#wake = null;
        this.#onReady = null;
        if (timer !== undefined) clearTimeout(timer);
        resolve(timedOut === true);
      };
      if (timeoutMs !== Infinity) {
        timer = setTimeout(this.#wake, hostDelay(timeoutMs), true);
      }
    });
  }

  /** Ends a pending `wait()` early (a Promise settled, a stop was asked). */
  wakeup(): void {
    if (this.#wake !== null) this.#wake();
  }

  /** One line per registration, for deadlock reports. */
  describe(): string[] {
    const lines: string[] = [];
    const describe = (registration: Registration | null): void => {
      if (registration !== null) {
        lines.push(`${registration.event} on stream "${registration.stream.name}"`);
      }
    };
    for (const { read, write } of this.#polled.values()) {
      describe(read);
      describe(write);
    }
    for (let push = this.#firstPush; push !== null; push = push.next) describe(push);
    return lines;
  }

  #selectNow(): SelectorKey[] {
    // A server's selector holds sockets only: it has no polled stream to
    // ask, and the ready ones are what they pushed, taken whole.
    if (this.#polled.size === 0) return this.#takePushed();
    const ready: Registration[] = [];
    for (const { read, write } of this.#polled.values()) {
      if (read !== null && polledReady(read, false)) ready.push(read);
      if (write !== null && polledReady(write, read !== null)) ready.push(write);
    }
    for (const registration of ready) this.#drop(registration);
    // Dropped as they are taken.
    for (const registration of this.#takePushed()) ready.push(registration);
    return ready;
  }

  /** Takes the push registrations that reported readiness, and drops them. */
  #takePushed(): Registration[] {
    const pushed = this.#pushed;
    if (pushed.length === 0) return [];
    this.#pushed = [];
    // Notified once each (see #notify); one cancelled meanwhile is left out.
    let kept = 0;
    for (const registration of pushed) {
      if (!registration.active) continue;
      this.#drop(registration);
      pushed[kept++] = registration;
    }
    pushed.length = kept;
    return pushed;
  }

  #notify(registration: Registration): void {
    // A stream that reports readiness twice must not wake its task twice.
    if (!registration.active || registration.notified) return;
    registration.notified = true;
    this.#pushed.push(registration);
    this.#pushedActive++;
    const onReady = this.#onReady;
    this.wakeup();
    if (onReady !== null) onReady();
  }

  #drop(registration: Registration): void {
    if (!registration.active) return;
    registration.active = false;
    if (registration.notified) this.#pushedActive--;
    const reading = registration.event === EVENT_READ;
    if (reading) registration.holders.read = null;
    else registration.holders.write = null;
    if (registration.stream.watch !== undefined) {
      this.#watching--;
      this.#unlink(registration);
      return;
    }
    this.#polledRegistrations--;
    const entry = this.#polled.get(registration.stream)!;
    if (reading) entry.read = null;
    else entry.write = null;
    if (entry.read === null && entry.write === null) this.#polled.delete(registration.stream);
  }

  /** Lists an active push registration (see `describe`). */
  #link(registration: Registration): void {
    const first = this.#firstPush;
    registration.next = first;
    if (first !== null) first.previous = registration;
    this.#firstPush = registration;
  }

  #unlink(registration: Registration): void {
    const { previous, next } = registration;
    if (previous !== null) previous.next = next;
    else this.#firstPush = next;
    if (next !== null) next.previous = previous;
    registration.previous = null;
    registration.next = null;
  }
}

// The longest delay a host timer takes: setTimeout fires a longer one after
// 1 ms (with a warning), which would wake a loop sleeping for weeks every
// millisecond. Waking once after 24.8 days is harmless: the loop works out
// how much longer to wait.
const MAX_HOST_DELAY_MS = 2 ** 31 - 1;

function hostDelay(timeoutMs: number): number {
  return Math.min(MAX_HOST_DELAY_MS, Math.max(0, Math.ceil(timeoutMs)));
}

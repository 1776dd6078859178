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

/** Wait until a stream can be read from. */
export const EVENT_READ = "EVENT_READ";
/** Wait until a stream can be written to. */
export const EVENT_WRITE = "EVENT_WRITE";
/** The two events a task can wait for on a stream. */
export type SelectorEvent = typeof EVENT_READ | typeof EVENT_WRITE;

/**
 * What the selector needs from a stream. Implement `poll` (and `stalled`)
 * for a stream whose readiness is checked on demand, or `watch` for one
 * that reports readiness itself.
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

/** One task waiting for one event on one stream, as `select()` returns it. */
export interface SelectorKey {
  /** The stream waited on. */
  readonly stream: SelectableStream;
  /** The event waited for. */
  readonly event: SelectorEvent;
  /** The waiting task. */
  readonly task: Task<unknown>;
}

interface Registration extends SelectorKey {
  active: boolean;
}

/**
 * Who waits on each stream, across the selectors of every Loop: a push
 * stream keeps one callback per event, so a second waiter, even in another
 * Loop, would silently take the first one's wake-up (and its bytes). Kept
 * per stream for its lifetime, so registering allocates nothing here.
 */
const holdersOf = new WeakMap<
  SelectableStream,
  { read: Registration | null; write: Registration | null }
>();

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
  #entries = new Map<SelectableStream, StreamEntry>();
  // Polled streams with a registration; select() asks each once, as the
  // tutorial's MySelect does.
  #polled = new Set<StreamEntry>();
  #polledRegistrations = 0;
  // Push registrations whose stream reported readiness; O(ready).
  #pushed: Registration[] = [];
  // Push registrations still waiting for their stream's callback.
  #watching = 0;
  #wake: (() => void) | null = null;
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
    const slot = event === EVENT_READ ? "read" : "write";
    let holders = holdersOf.get(stream);
    if (holders === undefined) {
      holders = { read: null, write: null };
      holdersOf.set(stream, holders);
    }
    let entry = this.#entries.get(stream);
    const holder = holders[slot];
    if (holder !== null) {
      const where = entry?.[slot] === holder ? "" : " in another Loop";
      throw new Error(
        `Cannot wait for ${event} on stream "${stream.name}" in task "${task.name}": task "${holder.task.name}"${where} already waits for it; use one reader and one writer per stream`,
      );
    }
    if (entry === undefined) {
      entry = { stream, read: null, write: null };
      this.#entries.set(stream, entry);
    }
    const registration: Registration = { stream, event, task, active: true };
    entry[slot] = registration;
    holders[slot] = registration;
    if (stream.watch !== undefined) {
      this.#watching++;
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
      this.#polled.add(entry);
    }
  }

  /** Removes the registrations of `stream` (for one `event`, or both). */
  unregister(stream: SelectableStream, event?: SelectorEvent): void {
    const entry = this.#entries.get(stream);
    if (entry === undefined) return;
    if (event !== EVENT_WRITE && entry.read) this.#drop(entry.read);
    if (event !== EVENT_READ && entry.write) this.#drop(entry.write);
  }

  /** The tasks waiting on `stream`, if any. */
  waiters(stream: SelectableStream): Task<unknown>[] {
    const entry = this.#entries.get(stream);
    if (entry === undefined) return [];
    const tasks: Task<unknown>[] = [];
    if (entry.read) tasks.push(entry.read.task);
    if (entry.write) tasks.push(entry.write.task);
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
   * what is ready (possibly nothing) and removes it.
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
    for (const { stream, read, write } of this.#polled) {
      if (stream.stalled === undefined) return true;
      if (read !== null && !stream.stalled(EVENT_READ)) return true;
      if (write !== null && !stream.stalled(EVENT_WRITE)) return true;
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
   */
  wait(timeoutMs: number, onReady?: () => void): Promise<void> {
    if (this.#pushed.length > 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.#onReady = onReady ?? null;
      this.#wake = () => {
        this.#wake = null;
        this.#onReady = null;
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      if (timeoutMs !== Infinity) {
        timer = setTimeout(this.#wake, hostDelay(timeoutMs));
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
    for (const [stream, entry] of this.#entries) {
      for (const registration of [entry.read, entry.write]) {
        if (registration) {
          lines.push(`${registration.event} on stream "${stream.name}"`);
        }
      }
    }
    return lines;
  }

  #selectNow(): SelectorKey[] {
    const ready: Registration[] = [];
    for (const { stream, read, write } of this.#polled) {
      if (read !== null && stream.poll!(EVENT_READ, false)) ready.push(read);
      if (write !== null && stream.poll!(EVENT_WRITE, read !== null)) ready.push(write);
    }
    if (this.#pushed.length > 0) {
      for (const registration of this.#pushed) {
        if (registration.active) ready.push(registration);
      }
      this.#pushed = [];
    }
    for (const registration of ready) this.#drop(registration);
    return ready;
  }

  #notify(registration: Registration): void {
    if (!registration.active) return;
    this.#pushed.push(registration);
    const onReady = this.#onReady;
    this.wakeup();
    if (onReady !== null) onReady();
  }

  #drop(registration: Registration): void {
    if (!registration.active) return;
    registration.active = false;
    const entry = this.#entries.get(registration.stream)!;
    const holders = holdersOf.get(registration.stream)!;
    if (registration.event === EVENT_READ) entry.read = holders.read = null;
    else entry.write = holders.write = null;
    const unused = entry.read === null && entry.write === null;
    if (unused) this.#entries.delete(registration.stream);
    if (registration.stream.watch !== undefined) {
      this.#watching--;
    } else {
      this.#polledRegistrations--;
      if (unused) this.#polled.delete(entry);
    }
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

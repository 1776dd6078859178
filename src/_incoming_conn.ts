/**
 * `IncomingConn`: a `Deno.Conn` the host is still producing (from
 * `listener.accept()` or `Deno.connect()`), as a push stream of the
 * selector. A task waits for it as it waits for a socket to be readable, so
 * waiting for a client is I/O to the loop (its stall check leaves it alone)
 * and a deadlock report names it ("accept on 127.0.0.1:8000").
 *
 * The host operation belongs to this object, not to the waiting task: if
 * the task is cancelled, the operation stays in flight, and what it brings
 * waits here for the next `take()`. That is what keeps a listener usable
 * after a cancelled `accept()` (Deno allows one `accept()` at a time per
 * listener, so a new one would fail with `Busy` while the old one pends).
 *
 * @module
 */

import type { SelectableStream, SelectorEvent } from "./selector.ts";
import { WOULD_BLOCK } from "./stream.ts";
import type { Task } from "./task.ts";

/** `#error` when there is none (`undefined` could be thrown). */
const NO_ERROR: unique symbol = Symbol("genloop.noError");

/** A connection being accepted or opened, watched through the selector. */
export class IncomingConn implements SelectableStream {
  /** What is awaited, e.g. "accept on 127.0.0.1:8000"; used in messages. */
  readonly name: string;
  readonly #open: () => Promise<Deno.Conn>;
  #opening: Promise<void> | null = null;
  #conn: Deno.Conn | null = null;
  #error: unknown = NO_ERROR;
  #notify: (() => void) | null = null;
  #discarded = false;

  /**
   * @param name What is awaited, for messages.
   * @param open Starts the host operation; called again after each `take()`.
   */
  constructor(name: string, open: () => Promise<Deno.Conn>) {
    this.name = name;
    this.#open = open;
  }

  /**
   * The task waiting to take the connection, of whichever loop: one at a
   * time, since the host allows one accept at a time per listener.
   */
  waiter: Task<unknown> | null = null;

  /** Starts the host operation unless one is in flight; `notify` when it settles. */
  watch(_event: SelectorEvent, notify: () => void): void {
    // Discarded: no new host operation; the waiter's take() says why.
    if (this.#conn !== null || this.#error !== NO_ERROR || this.#discarded) {
      notify();
      return;
    }
    this.#notify = notify;
    if (this.#opening === null) {
      // A synchronous throw of open() becomes a rejection, so the selector
      // registering this watch is never left half done.
      this.#opening = new Promise<Deno.Conn>((resolve) => resolve(this.#open()))
        .then(this.#onConn, this.#onError);
    }
  }

  /** The connection that arrived, or `WOULD_BLOCK`; throws the host's error once. */
  take(): Deno.Conn | typeof WOULD_BLOCK {
    const conn = this.#conn;
    if (conn !== null) {
      this.#conn = null;
      return conn;
    }
    if (this.#error !== NO_ERROR) {
      const error = this.#error;
      this.#error = NO_ERROR;
      // Deno's message ("Connection refused (os error 111)") says neither
      // where nor what: the class stays, the message says both.
      if (error instanceof Error) error.message = `Cannot ${this.name}: ${error.message}`;
      throw error;
    }
    if (this.#discarded) {
      // Closed while a task was woken for a connection (which the close
      // closed): it must not wait again on what will never bring one.
      throw new Deno.errors.BadResource(`Cannot ${this.name}: it was closed`);
    }
    return WOULD_BLOCK;
  }

  /**
   * Nobody will take a connection from here any more: closes the one that
   * waits, and the one the host operation in flight may still bring.
   * Returns that operation's Promise, if any, so a caller can wait until no
   * op is pending.
   */
  discard(): Promise<void> | undefined {
    this.#discarded = true;
    if (this.#conn !== null) closeQuietly(this.#conn);
    this.#conn = null;
    this.#error = NO_ERROR;
    // A waiter of another Loop (the closing one interrupts its own) wakes
    // to find it closed, rather than wait for ever.
    this.#settled();
    return this.#opening ?? undefined;
  }

  #onConn = (conn: Deno.Conn): void => {
    this.#opening = null;
    if (this.#discarded) closeQuietly(conn);
    else this.#conn = conn;
    this.#settled();
  };

  #onError = (error: unknown): void => {
    this.#opening = null;
    if (!this.#discarded) this.#error = error;
    this.#settled();
  };

  #settled(): void {
    const notify = this.#notify;
    this.#notify = null;
    if (notify !== null) notify();
  }
}

/** Closes `conn`, which may have been closed already. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed: nothing to release.
  }
}

/**
 * The stream protocol that `read`, `write` and `close` work with, shared by
 * simulated streams and real sockets. A stream answers at once: it either
 * moves bytes now or says `WOULD_BLOCK`, and then the task waits on the
 * selector for readiness and tries again (the tutorial's "wait for
 * EVENT_READ, then read").
 *
 * @module
 */

import type { SelectableStream } from "./selector.ts";

/**
 * Returned by `tryRead` / `tryWrite` when the stream is not ready.
 *
 * @example Usage
 * ```ts
 * import { SimulatedStream, WOULD_BLOCK } from "@genloop/genloop";
 *
 * // Not ready until a select has polled it: the stream says WOULD_BLOCK.
 * const stream = new SimulatedStream("slow", { data: "x", waitCycles: 1 });
 * if (stream.tryRead(1) !== WOULD_BLOCK) throw new Error("unexpected");
 * ```
 */
export const WOULD_BLOCK: unique symbol = Symbol("genloop.wouldBlock");

/**
 * A byte stream the loop can wait on. Implement it to plug a new kind of
 * stream into genloop; `SimulatedStream` and `ConnStream` are the built-in
 * ones.
 *
 * @example Usage
 * ```ts
 * import { read, runSync, type Stream, WOULD_BLOCK } from "@genloop/genloop";
 *
 * // A stream that gives one chunk, then ends; it is always ready (poll).
 * let sent = false;
 * const once: Stream = {
 *   name: "once",
 *   closed: false,
 *   poll: () => true,
 *   tryRead: () => {
 *     if (sent) return null;
 *     sent = true;
 *     return new TextEncoder().encode("hi");
 *   },
 *   tryReadInto: () => WOULD_BLOCK,
 *   tryWrite: () => WOULD_BLOCK,
 *   flushed: () => true,
 *   close: () => undefined,
 * };
 * const chunks = runSync(function* main() {
 *   return [yield* read(once), yield* read(once)];
 * });
 * if (chunks[0]?.length !== 2 || chunks[1] !== null) throw new Error("unexpected");
 * ```
 */
export interface Stream extends SelectableStream {
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /**
   * Takes 1 to `max` buffered bytes, `null` at end of stream, or
   * `WOULD_BLOCK` (never an empty array: `read()` would hand it on as if
   * bytes had come; anything else is a `TypeError` naming the stream at
   * the reader's `yield*`). Throws the stream's error (closed, reset, …). The bytes
   * are the caller's to keep: a new array, not a view of a buffer the
   * stream reuses (lending its buffer is what `tryReadView` is for), since
   * `read()` gives them to the task as they are.
   */
  tryRead(max: number): Uint8Array | null | typeof WOULD_BLOCK;
  /**
   * Copies buffered bytes into `buffer` and returns how many (1 to
   * `buffer.length`), `null` at end of stream, or `WOULD_BLOCK`. Lets a
   * reader reuse one buffer instead of allocating per read.
   */
  tryReadInto(buffer: Uint8Array): number | null | typeof WOULD_BLOCK;
  /**
   * Optional: like `tryRead`, but may return a view of the stream's own
   * buffer instead of a copy, valid until the next read from the stream.
   * `readView` falls back to `tryRead` for streams without it.
   */
  tryReadView?(max: number): Uint8Array | null | typeof WOULD_BLOCK;
  /**
   * Accepts some bytes of `data` and returns how many (1 to
   * `data.length`), or `WOULD_BLOCK` when it has no room (not 0: `write()`
   * would ask again at once, for ever; a count out of range is a
   * `TypeError` naming the stream at the writer's `yield*`). The stream
   * may keep a reference to `data` until `flushed()` is true, or until
   * `abandonWrite()`.
   */
  tryWrite(data: Uint8Array): number | typeof WOULD_BLOCK;
  /**
   * Optional: the writer stopped waiting (it was cancelled or timed out)
   * before `flushed()`, or, with `rest`, while `tryWrite` said
   * `WOULD_BLOCK` for those last bytes of its data. Its buffer is the
   * caller's again: the stream should copy what it still has to send, and
   * `rest`, to send after what it accepted before, rather than read that
   * buffer later. Without it, a cancelled write may be cut short. If what
   * the stream still has to send of these bytes fails to go out later (not
   * because the stream was closed), it calls `onFailure` with the error,
   * once: the writer is gone, and the stream's next writer, if any, may
   * come too late or never.
   */
  abandonWrite?(rest?: Uint8Array, onFailure?: (error: unknown) => void): void;
  /** Whether every accepted byte has been written; throws a write error. */
  flushed(): boolean;
  /**
   * Closes the stream; never throws. Returns a Promise when host operations
   * are still in flight, settling once they have (so nothing leaks).
   */
  close(): Promise<void> | undefined;
}

/** Whether `value` implements the `Stream` protocol. */
export function isStream(value: unknown): value is Stream {
  return typeof value === "object" && value !== null &&
    typeof (value as Stream).tryRead === "function" &&
    typeof (value as Stream).tryReadInto === "function" &&
    typeof (value as Stream).tryWrite === "function" &&
    typeof (value as Stream).close === "function";
}

/** The error a task gets for using, or waiting on, a closed stream. */
export function closedError(stream: Stream, detail: string): Error {
  return new Deno.errors.BadResource(`Stream "${stream.name}" is closed: ${detail}`);
}

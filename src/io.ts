/**
 * Stream operations: `read`, `write` and `close` for any `Stream`, and
 * `connect` / `accept` for real sockets. The tutorial's
 * `yield (EVENT_READ, stream); return stream.read()`, done for real: try the
 * stream first, and wait on the selector only when it would block.
 *
 * @module
 */

import { callAs } from "./call.ts";
import { ConnStream, describeAddr } from "./conn_stream.ts";
import { IncomingConn } from "./_incoming_conn.ts";
import { describeError } from "./errors.ts";
import {
  Instruction,
  type Operation,
  refuseSecondWaiter,
  runningTask,
  runningTaskName,
  type Yielded,
} from "./instruction.ts";
import type { Loop } from "./loop.ts";
import { EVENT_READ, EVENT_WRITE } from "./selector.ts";
import { bytesHint, toBytes } from "./simulated_stream.ts";
import { closedError, isStream, type Stream, WOULD_BLOCK } from "./stream.ts";
import { running, type Task } from "./task.ts";
import { RunsOnce } from "./_runs_once.ts";
import { describeValue } from "./_body.ts";
import { describeDelay } from "./sleep.ts";

const DEFAULT_READ_MAX = 64 * 1024;

/** Closes a stream and throws into every task waiting on it. */
class CloseStreamInstruction extends Instruction<Promise<void> | undefined> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #stream: Stream;

  constructor(stream: Stream) {
    super();
    this.#stream = stream;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const stream = this.#stream;
    for (const waiter of loop.selector.waiters(stream)) {
      loop._interrupt(
        waiter,
        closedError(
          stream,
          `task "${task.name}" closed it while task "${waiter.name}" waited on it`,
        ),
      );
    }
    const inFlight = stream.close();
    // Deno's operations settle; a Stream of the user's may not, and an
    // awaited run must not wait for it for ever.
    if (stream instanceof ConnStream) handOverInFlight(task, loop, inFlight);
    else loop._resumeNow(task, inFlight);
  }

  describe(): string {
    return `close of stream "${this.#stream.name}"`;
  }
}

/** Closes a listener, and what a cancelled `accept()` left on it. */
class CloseListenerInstruction extends Instruction<Promise<void> | undefined> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #listener: Deno.Listener;

  constructor(listener: Deno.Listener) {
    super();
    this.#listener = listener;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const listener = this.#listener;
    const incoming = incomingByListener.get(listener);
    if (incoming === undefined) {
      closeListenerQuietly(listener);
      loop._resumeNow(task, undefined);
      return;
    }
    incomingByListener.delete(listener);
    for (const waiter of loop.selector.waiters(incoming)) {
      loop._interrupt(
        waiter,
        new Deno.errors.BadResource(
          `Listener ${
            describeAddr(listener.addr)
          } is closed: task "${task.name}" closed it while task "${waiter.name}" waited in accept() on it`,
        ),
      );
    }
    closeListenerQuietly(listener);
    handOverInFlight(task, loop, incoming.discard());
  }

  describe(): string {
    return `close of the listener on ${describeAddr(this.#listener.addr)}`;
  }
}

/**
 * Waits for the connection `incoming` brings: a wait on the selector, as a
 * read's, but described as what it waits for ("accept on …"), and a second
 * task accepting on the same listener gets `Busy`, as from Deno itself.
 */
class WaitConnInstruction extends Instruction<void> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #incoming: IncomingConn;
  #waiter: Task<unknown> | null = null;

  constructor(incoming: IncomingConn) {
    super();
    this.#incoming = incoming;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const incoming = this.#incoming;
    // Checked on the listener's side, not in this loop's selector: a task of
    // another Loop may be the one waiting.
    const holder = incoming.waiter;
    if (holder !== null && !holder.settled) {
      throw new Deno.errors.Busy(
        `Cannot ${incoming.name} in task "${task.name}": task "${holder.name}" already waits there; accept in one task and spawn a task per connection`,
      );
    }
    incoming.waiter = task;
    this.#waiter = task;
    loop.selector.register(incoming, EVENT_READ, task);
  }

  override next(resumeValue?: unknown): IteratorResult<Instruction, void> {
    if (this.value === this) this.#release(); // resumed: the wait is over
    return super.next(resumeValue);
  }

  override throw(error: unknown): IteratorResult<Instruction, void> {
    // Resumed with an error, woken or not: the wait is over either way.
    this.#release();
    return super.throw(error);
  }

  override undo(task: Task<unknown>, loop: Loop): void {
    // The host operation stays in flight: its connection is for the next taker.
    this.#release();
    loop.selector.unregister(this.#incoming, EVENT_READ, task);
  }

  /** Gives up the listener's waiter place, if this wait still holds it. */
  #release(): void {
    if (this.#waiter !== null && this.#incoming.waiter === this.#waiter) {
      this.#incoming.waiter = null;
    }
    this.#waiter = null;
  }

  describe(): string {
    return this.#incoming.name;
  }
}

function checkStream(stream: unknown, where: string): asserts stream is Stream {
  if (!isStream(stream)) {
    throw new TypeError(
      `${where} expected a genloop Stream (SimulatedStream, ConnStream, …), but got ${
        describeValue(stream)
      }; wrap a Deno.Conn with new ConnStream(conn)`,
    );
  }
}

function checkMax(stream: Stream, max: number, operation: string): void {
  if (!Number.isInteger(max) || max <= 0) {
    // As sleep() shows a bad delay: read(s, "5") must not read as read(s, 5).
    throw new RangeError(
      `Cannot ${operation}(${stream.name}, ${describeDelay(max)}): max must be a positive integer`,
    );
  }
}

/**
 * Reads up to `max` bytes from `stream`, waiting until some are available.
 * Evaluates to the bytes (a new array each time, over an `ArrayBuffer` that
 * no later read writes to, never a `SharedArrayBuffer`, so `Blob`,
 * `Response` and `crypto.subtle` take it as it is; to
 * stream without allocating, use `readInto` with one reused buffer), or `null` at the end
 * of the stream. A socket's read error (a `Deno.errors` error) is thrown
 * here, and `Deno.errors.BadResource` if the stream is closed while
 * waiting; Deno reports a connection reset by the peer to a reader as the
 * end of the stream (`null`), not as an error.
 *
 * @param stream The stream to read from.
 * @param max The most bytes to return (default 64 KiB).
 * @returns An operation evaluating to the bytes read, or `null` at EOF.
 * @throws {TypeError} at the call when `stream` is no Stream.
 * @throws {RangeError} at the call when `max` is not a positive integer.
 *
 * @example Usage
 * ```ts
 * import { read, runSync, SimulatedStream } from "@genloop/genloop";
 *
 * const stream = new SimulatedStream("A", { data: "abc", ended: true });
 * const chunks = runSync(function* main() {
 *   const first = yield* read(stream, 2);
 *   const rest = yield* read(stream);
 *   const end = yield* read(stream);
 *   return [first?.length, rest?.length, end];
 * });
 * if (chunks.join() !== "2,1,") throw new Error("unexpected");
 * ```
 */
export function read(
  stream: Stream,
  max: number = DEFAULT_READ_MAX,
): Operation<Uint8Array<ArrayBuffer> | null> {
  checkStream(stream, "read()");
  checkMax(stream, max, "read");
  return new ReadInstruction(stream, READ_COPY, max, null);
}

/** Which of the stream's read methods a `ReadInstruction` tries. */
type ReadKind = typeof READ_COPY | typeof READ_INTO | typeof READ_VIEW;
const READ_COPY = 0;
const READ_INTO = 1;
const READ_VIEW = 2;

/**
 * A read: tries the stream at once, and waits for EVENT_READ between tries
 * until it does not block. One object per read, its own iterator: a
 * generator, a closure and a wait instruction per read and write were 30%
 * of the instructions of an echo round trip over a connection stub.
 */
class ReadInstruction<T> extends Instruction<T> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #stream: Stream;
  readonly #kind: ReadKind;
  readonly #max: number;
  readonly #buffer: Uint8Array | null;

  constructor(stream: Stream, kind: ReadKind, max: number, buffer: Uint8Array | null) {
    super();
    this.#stream = stream;
    this.#kind = kind;
    this.#max = max;
    this.#buffer = buffer;
  }

  /**
   * First call, and each resume after a wait: try the stream; evaluate to
   * what it gave, or hand this instruction to the loop to wait again.
   */
  override next(): IteratorResult<Instruction, T> {
    // A second yield*, also after a throw: Instruction.next's TypeError.
    if (this.done) return super.next();
    // Waited on by another task: trying the stream here would take its data.
    if (this.value === this) refuseSecondWaiter(this);
    let result: unknown;
    try {
      result = this.#attempt();
    } catch (error) {
      // Spent, as when the loop throws an error at the wait.
      return this.throw(error);
    }
    if (result === WOULD_BLOCK) {
      this.value = this;
      return this as IteratorResult<Instruction, T>;
    }
    return this.finishNow(result);
  }

  perform(task: Task<unknown>, loop: Loop): void {
    loop.selector.register(this.#stream, EVENT_READ, task);
  }

  override undo(task: Task<unknown>, loop: Loop): void {
    loop.selector.unregister(this.#stream, EVENT_READ, task);
  }

  describe(): string {
    return `${EVENT_READ} on stream "${this.#stream.name}"`;
  }

  #attempt(): unknown {
    const stream = this.#stream;
    if (stream.closed) throw usedAfterClose(stream, "read from");
    switch (this.#kind) {
      case READ_COPY:
        return ownedBytes(checkedChunk(stream, "tryRead", stream.tryRead(this.#max), this.#max));
      case READ_INTO:
        return checkedCount(stream, stream.tryReadInto(this.#buffer!), this.#buffer!.length);
      default:
        return checkedChunk(stream, "tryReadView", stream.tryReadView!(this.#max), this.#max);
    }
  }
}

/**
 * What a stream's `tryRead` or `tryReadView` gave, if it keeps the Stream
 * contract. A user's stream that gives anything else would hand the task
 * bytes that are not there, or an empty chunk `read` promises never to
 * give: a TypeError says which stream broke the contract, and how.
 */
function checkedChunk<T>(stream: Stream, method: string, result: T, max: number): T {
  if (result === null || result === WOULD_BLOCK) return result;
  if (result instanceof Uint8Array && result.length > 0 && result.length <= max) return result;
  const got = result instanceof Uint8Array
    ? `a Uint8Array of ${result.length} bytes`
    : describeValue(result);
  throw new TypeError(
    `Stream "${stream.name}": ${method}(${max}) returned ${got}; it must return a Uint8Array of 1 to ${max} bytes, null at the end of the stream, or WOULD_BLOCK when no bytes are buffered`,
  );
}

/** What a stream's `tryReadInto` gave, if it keeps the Stream contract. */
function checkedCount<T>(stream: Stream, result: T, room: number): T {
  if (result === null || result === WOULD_BLOCK) return result;
  if (isCount(result, room)) return result;
  throw new TypeError(
    `Stream "${stream.name}": tryReadInto(a buffer of ${room} bytes) returned ${
      describeValue(result)
    }; it must return how many bytes it put there (1 to ${room}), null at the end of the stream, or WOULD_BLOCK when no bytes are buffered`,
  );
}

/** Whether `value` counts some of `room` bytes: 1 to `room` (0 only if room is 0). */
function isCount(value: unknown, room: number): boolean {
  return Number.isInteger(value) && (value as number) <= room &&
    ((value as number) > 0 || room === 0);
}

/**
 * What a stream's `tryRead` gave, as `read()` promises it: bytes over an
 * `ArrayBuffer`, which `Blob`, `Response` and `crypto.subtle` take. A
 * stream whose bytes live in a `SharedArrayBuffer` (one a Worker writes
 * into) has them copied.
 */
function ownedBytes(
  result: Uint8Array | null | typeof WOULD_BLOCK,
): Uint8Array<ArrayBuffer> | null | typeof WOULD_BLOCK {
  if (result === null || result === WOULD_BLOCK) return result;
  if (result.buffer instanceof ArrayBuffer) return result as Uint8Array<ArrayBuffer>;
  // Not result.slice(): a subclass may make that a view (Node's Buffer).
  return new Uint8Array(result);
}

/**
 * Reads into `buffer`, waiting until some bytes are available, and
 * evaluates to how many were read, or `null` at the end of the stream. Like
 * `read`, but the caller's buffer is reused instead of a new one being
 * allocated for every read: the fast path for streaming.
 *
 * @param stream The stream to read from.
 * @param buffer Where to put the bytes; at most `buffer.length` are read.
 * @returns An operation evaluating to the byte count, or `null` at EOF.
 * @throws {TypeError} at the call, when `buffer` is not a `Uint8Array`.
 * @throws {RangeError} at the call, when `buffer` is empty.
 *
 * @example Usage
 * ```ts
 * import { readInto, runSync, SimulatedStream } from "@genloop/genloop";
 *
 * const stream = new SimulatedStream("A", { data: "hello", ended: true });
 * const buffer = new Uint8Array(3);
 * const counts = runSync(function* main() {
 *   return [yield* readInto(stream, buffer), yield* readInto(stream, buffer)];
 * });
 * if (counts.join() !== "3,2") throw new Error("unexpected");
 * ```
 */
export function readInto(stream: Stream, buffer: Uint8Array): Operation<number | null> {
  checkStream(stream, "readInto()");
  if (!(buffer instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot readInto(${stream.name}, …): buffer must be a Uint8Array, but got ${
        describeValue(buffer)
      }; ${intoHint(buffer)}`,
    );
  }
  if (buffer.length === 0) {
    throw new RangeError(
      `Cannot readInto(${stream.name}, …): buffer must not be empty; allocate one as new Uint8Array(size)`,
    );
  }
  return new ReadInstruction(stream, READ_INTO, 0, buffer);
}

/** How to get a Uint8Array to read into from `buffer`. */
function intoHint(buffer: unknown): string {
  if (buffer instanceof ArrayBuffer || buffer instanceof SharedArrayBuffer) {
    return "read into its bytes as new Uint8Array(buffer)";
  }
  if (ArrayBuffer.isView(buffer)) {
    return "read into its bytes as new Uint8Array(view.buffer, view.byteOffset, view.byteLength)";
  }
  return "allocate one as new Uint8Array(size)";
}

/**
 * Reads up to `max` bytes without copying them, waiting until some are
 * available: evaluates to a view of the stream's own read buffer, valid
 * until the next read from the same stream (by any task), or `null` at the
 * end of the stream. Use the bytes (write them on, parse them) before
 * reading again, or copy them with `slice()`. The fastest way to move bulk
 * data: `read` allocates and `readInto` copies each chunk, while `readView`
 * does neither. Streams that cannot lend their buffer give a copy instead.
 * A view written with a `write` that was cancelled is safe too: while the
 * host still sends from it (see `write`), a `ConnStream` reads into a new
 * buffer rather than refill that one.
 *
 * @param stream The stream to read from.
 * @param max The most bytes to return (default 64 KiB).
 * @returns An operation evaluating to a view of the bytes read, or `null` at EOF.
 * @throws {TypeError} at the call when `stream` is no Stream.
 * @throws {RangeError} at the call when `max` is not a positive integer.
 *
 * @example Usage
 * ```ts
 * import { readView, runSync, SimulatedStream, write } from "@genloop/genloop";
 *
 * const source = new SimulatedStream("in", { data: "hello", ended: true });
 * const sink = new SimulatedStream("out");
 * const moved = runSync(function* main() {
 *   let total = 0;
 *   for (;;) {
 *     const chunk = yield* readView(source, 2);
 *     if (chunk === null) return total;
 *     // Used before the next read: written on, as an echo server would.
 *     total += yield* write(sink, chunk);
 *   }
 * });
 * if (moved !== 5 || sink.buffered !== 5) throw new Error("unexpected");
 * ```
 */
export function readView(
  stream: Stream,
  max: number = DEFAULT_READ_MAX,
): Operation<Uint8Array | null> {
  checkStream(stream, "readView()");
  checkMax(stream, max, "readView");
  const kind = stream.tryReadView === undefined ? READ_COPY : READ_VIEW;
  return new ReadInstruction(stream, kind, max, null);
}

/**
 * Writes all of `data` to `stream`, waiting while it is not writable, and
 * evaluates to the number of bytes written (all of them). Strings are
 * UTF-8 encoded. Do not change `data` until the write has returned. On a
 * closed stream it throws `Deno.errors.BadResource`, even for empty `data`.
 *
 * A write that is cancelled (by `timeout`, `race`, `cancel`) before it
 * returns still goes out in full (unless the stream is closed first:
 * `close` does not wait for it; `yield* write(stream, "")` does), before
 * any later write on the stream,
 * also when it was still waiting for an earlier cancelled write to go out
 * (on streams with `abandonWrite`, as both built-in ones have). A write
 * cancelled before it began sends nothing: one whose task never ran, such
 * as the body of a `timeout` whose limit passed before the body started.
 * One that a task already cancelled goes on to make (it cancelled itself,
 * or writes in its cleanup) hands its bytes over before the error is
 * thrown at its `yield*`, and they go out like any cancelled write's.
 * On a `ConnStream`, the bytes not yet handed to the host are copied at the
 * cancellation, but the one host write in flight then cannot be recalled:
 * it may read any of `data` from where the write had got to, until it
 * completes. So after a cancelled write, `data` is free to change only once
 * a later `write` on the same stream has returned (it waits for the
 * earlier one; `write(stream, "")` does just that) or the stream has been
 * closed with `close`; a change made before may reach the peer. Bytes of
 * cancelled writes wait in the stream until the peer reads them: a server
 * that times out writes to a slow client should close that stream rather
 * than keep writing to it, or those bytes pile up. If they fail to go out
 * (the peer went away), the stream's next write throws that error, and the
 * loop's `onWarning` hook is told at once, since there may be no next
 * write (on streams whose `abandonWrite` takes `onFailure`, as
 * `ConnStream`'s does).
 *
 * A write refused because another task already waits to write on the
 * stream (one writer per stream) throws and sends nothing more: only bytes
 * the stream took before the refusal, if it had room for any, go out.
 *
 * @param stream The stream to write to.
 * @param data The bytes or text to write.
 * @returns An operation evaluating to the byte count.
 * @throws {TypeError} at the call, when `data` is neither a `Uint8Array`
 * nor a string (wrap an `ArrayBuffer` as `new Uint8Array(buffer)`).
 *
 * @example Usage
 * ```ts
 * import { runSync, SimulatedStream, write } from "@genloop/genloop";
 *
 * const stream = new SimulatedStream("B", { waitCycles: 1 });
 * const n = runSync(function* main() {
 *   return yield* write(stream, "Hello World!");
 * });
 * if (n !== 12 || stream.buffered !== 12) throw new Error("unexpected");
 * ```
 */
export function write(stream: Stream, data: Uint8Array | string): Operation<number> {
  checkStream(stream, "write()");
  if (typeof data !== "string" && !(data instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot write(${stream.name}, …): data must be a Uint8Array or a string, but got ${
        describeValue(data)
      }; ${bytesHint(data)}`,
    );
  }
  return new WriteInstruction(stream, toBytes(data));
}

/**
 * A write: hands `bytes` to the stream, waiting for EVENT_WRITE while it
 * takes no more, then waits until they are out. One object per write, its
 * own iterator, as `ReadInstruction` is.
 */
class WriteInstruction extends Instruction<number> {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #stream: Stream;
  readonly #bytes: Uint8Array;
  #written = 0;
  // Waiting to hand over the rest (the stream took no more for now).
  #handingOver = false;
  // The stream was told the writer stopped waiting (see #abandon).
  #abandoned = false;

  constructor(stream: Stream, bytes: Uint8Array) {
    super();
    this.#stream = stream;
    this.#bytes = bytes;
  }

  /** First call, and each resume after a wait: go on writing. */
  override next(): IteratorResult<Instruction, number> {
    // A second yield* (see ReadInstruction.next).
    if (this.done) return super.next();
    if (this.value === this) refuseSecondWaiter(this);
    let finished: boolean;
    try {
      finished = this.#advance();
    } catch (error) {
      // Spent, and the stream told, as when the loop throws at the wait.
      return this.throw(error);
    }
    if (!finished) {
      this.value = this;
      return this as IteratorResult<Instruction, number>;
    }
    return this.finishNow(this.#written);
  }

  /** Cancelled (or failed) while waiting. */
  override throw(error: unknown): IteratorResult<Instruction, number> {
    // Not undone first when the error was due before the write waited (its
    // task cancelled itself, a deferred second error): the bytes it handed
    // over still go out, and their failure must still be reported.
    this.#abandon(runningTask(), running.loop);
    return super.throw(error);
  }

  perform(task: Task<unknown>, loop: Loop): void {
    try {
      loop.selector.register(this.#stream, EVENT_WRITE, task);
    } catch (error) {
      // Refused (another task writes to the stream, or the stream could
      // not be watched): this write never waited, so what it had not
      // handed over is not sent (see #abandon); the error says why.
      this.#handingOver = false;
      throw error;
    }
  }

  /** The stream failed the wait: the task is told the write failed, so none of the rest is sent. */
  override _waitFailed(): void {
    this.#handingOver = false;
  }

  override undo(task: Task<unknown>, loop: Loop): void {
    loop.selector.unregister(this.#stream, EVENT_WRITE, task);
    // At the cancellation, not when the task next runs: a task.cancel()
    // returns at once, and what its caller does next (refill a readView
    // buffer, change the data) must find the stream told already.
    this.#abandon(task, loop);
  }

  describe(): string {
    return `${EVENT_WRITE} on stream "${this.#stream.name}"`;
  }

  /** Writes on; returns whether every byte is handed over and out. */
  #advance(): boolean {
    const stream = this.#stream;
    const bytes = this.#bytes;
    this.#handingOver = false;
    // Closed once bytes were handed over: the stream's own error says so.
    if (this.#written === 0 && stream.closed) throw usedAfterClose(stream, "write to");
    while (this.#written < bytes.length) {
      const written = this.#written;
      const accepted = stream.tryWrite(written === 0 ? bytes : bytes.subarray(written));
      if (accepted === WOULD_BLOCK) {
        this.#handingOver = true;
        return false;
      }
      // A count of 0 (or less) would have this loop ask again for ever,
      // and a wrong one would misreport what was written.
      if (!isCount(accepted, bytes.length - written)) {
        throw badWriteCount(stream, bytes.length - written, accepted);
      }
      this.#written += accepted;
    }
    return stream.flushed();
  }

  /**
   * Interrupted with bytes handed over but maybe not out: the caller gets
   * its buffer back, so the stream must stop reading it (but for a host
   * write in flight, which cannot be recalled: see ConnStream).
   * Interrupted while waiting to hand over the rest (behind an earlier
   * cancelled write still going out): the rest goes out too, as promised,
   * rather than silently not at all.
   */
  #abandon(task: Task<unknown> | null, loop: Loop | null): void {
    // Once: a cancelled wait is undone, then thrown into.
    if (this.#abandoned) return;
    this.#abandoned = true;
    const stream = this.#stream;
    const rest = this.#handingOver ? this.#bytes.subarray(this.#written) : undefined;
    if ((this.#written > 0 || rest !== undefined) && stream.abandonWrite !== undefined) {
      const onFailure = task === null || loop === null
        ? undefined
        : (error: unknown) => loop._warn(abandonedWriteFailed(stream, task, error));
      stream.abandonWrite(rest, onFailure);
    }
  }
}

/** The error for a stream's `tryWrite` that broke the Stream contract. */
function badWriteCount(stream: Stream, offered: number, accepted: unknown): TypeError {
  return new TypeError(
    `Stream "${stream.name}": tryWrite(${offered} bytes) returned ${
      describeValue(accepted)
    }; it must return how many of them it took (1 to ${offered}), or WOULD_BLOCK when it has no room`,
  );
}

/** The warning for bytes of a cancelled write that failed to go out. */
function abandonedWriteFailed(stream: Stream, task: Task<unknown>, error: unknown): string {
  return `A write to stream "${stream.name}" that task "${task.name}" stopped waiting for (it was cancelled) failed afterwards, before all of it was sent: ${
    describeError(error)
  }. The stream's next write throws this error too; close a stream whose writes were cancelled rather than write to it again`;
}

/**
 * Closes `stream`. Every task waiting on it is woken with
 * `Deno.errors.BadResource`; then `close` waits until the stream's
 * in-flight host operations have settled, so no op is left pending.
 * Closing twice is harmless.
 *
 * Also closes a `Deno.Listener`: a task waiting in `accept()` on it is
 * woken with `Deno.errors.BadResource`, a connection that arrived for an
 * `accept()` that was cancelled (and was kept for the next one) is closed,
 * and `close` waits until the host's pending accept has settled. Prefer it
 * to `listener.close()` once `accept()` was cancelled on that listener.
 *
 * @param stream The stream (or listener) to close.
 * @returns An operation that completes when it is fully closed.
 *
 * @example Usage
 * ```ts
 * import { close, runSync, SimulatedStream } from "@genloop/genloop";
 *
 * const stream = new SimulatedStream("C");
 * runSync(function* main() {
 *   yield* close(stream);
 * });
 * if (!stream.closed) throw new Error("unexpected");
 * ```
 */
export function close(stream: Stream | Deno.Listener): Operation<void> {
  if (isListener(stream)) {
    const what = `close of listener ${describeAddr(stream.addr)}`;
    return new RunsOnce(settleAfter(new CloseListenerInstruction(stream), what), what);
  }
  checkStream(stream, "close()");
  const what = `close of stream "${stream.name}"`;
  return new RunsOnce(settleAfter(new CloseStreamInstruction(stream), what), what);
}

/** The error for a read or write of a stream closed before it started. */
function usedAfterClose(stream: Stream, what: string): Error {
  return closedError(
    stream,
    `${runningTaskName()} cannot ${what} it; close a stream only once no task reads or writes it any more`,
  );
}

function* settleAfter(
  closing: Instruction<Promise<void> | undefined>,
  what: string,
): Generator<Yielded, void> {
  const inFlight = yield* closing;
  if (inFlight !== undefined) {
    yield* callAs(() => inFlight, `${what} (its host operations to settle)`);
  }
}

/**
 * Resumes the closing `task` with Deno's operations still in flight, which
 * an awaited run outlives should the task stop waiting for them
 * (cancelled), so that none is left pending after it.
 */
function handOverInFlight(
  task: Task<unknown>,
  loop: Loop,
  inFlight: Promise<void> | undefined,
): void {
  if (inFlight !== undefined) loop._outlive(inFlight.then(ignore, ignore));
  loop._resumeNow(task, inFlight);
}

function ignore(): void {}

/**
 * Opens a TCP connection (options as `Deno.connect`'s) and evaluates to a
 * `ConnStream`. Waiting for the connection is I/O, like waiting in `read`:
 * `stallTimeoutMs` does not apply to it, and a report of what tasks wait
 * for says "connect to host:port". If the task is cancelled while
 * connecting, the host's connect is aborted (a connection that arrives
 * all the same is closed), and an awaited run that ends meanwhile returns
 * only once it has settled, leaving no operation behind.
 *
 * @param options Where to connect, as for `Deno.connect`.
 * @returns An operation evaluating to the connected stream.
 * @throws {TypeError} at the call, when `options` is no object or its
 * `port` is no number.
 * @throws {RangeError} at the call, when `port` is out of range.
 *
 * @example Usage
 * ```ts
 * import { close, connect, run } from "@genloop/genloop";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * await run(function* main() {
 *   const stream = yield* connect({ hostname: "127.0.0.1", port: listener.addr.port });
 *   yield* close(stream);
 * });
 * listener.close();
 * ```
 */
export function connect(options: Deno.ConnectOptions): Operation<ConnStream> {
  // Checked here: Deno.connect() would throw only at the yield*, or (for
  // no options at all) fail on a property of undefined.
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `connect() expected options such as { hostname: "127.0.0.1", port: 8080 }, but got ${
        describeValue(options)
      }`,
    );
  }
  const port: unknown = options.port;
  if ((options.transport ?? "tcp") === "tcp" && !isPort(port)) {
    throw new (typeof port === "number" ? RangeError : TypeError)(
      `Cannot connect to ${options.hostname ?? "127.0.0.1"}:${
        describeDelay(port)
      }: port must be an integer from 0 to 65535`,
    );
  }
  const what = `connect to ${options.hostname ?? "127.0.0.1"}:${options.port}`;
  // Aborted when the task stops waiting (see connectWith), and by the
  // caller's own signal, if it gave one.
  const aborter = new AbortController();
  const signal = options.signal === undefined
    ? aborter.signal
    : AbortSignal.any([options.signal, aborter.signal]);
  const incoming = new IncomingConn(what, () => Deno.connect({ ...options, signal }));
  return new RunsOnce(connectWith(incoming, aborter), what);
}

function* connectWith(
  incoming: IncomingConn,
  aborter: AbortController,
): Generator<Yielded, ConnStream> {
  try {
    return yield* whenArrived(incoming);
  } finally {
    // Cancelled, or done: a connection nobody took is closed, now or on
    // arrival. A connect still in flight is aborted; it settles soon after,
    // and the run's end waits for that, so that no host operation outlives
    // an awaited run.
    const opening = incoming.discard();
    if (opening !== undefined) {
      aborter.abort();
      running.loop?._outlive(opening);
    }
  }
}

/**
 * Waits for the next connection on `listener` and evaluates to a
 * `ConnStream` for it. Waiting for a client is I/O, like waiting in `read`:
 * `stallTimeoutMs` does not apply to it. One task at a time may accept on a
 * listener (a second one gets `Deno.errors.Busy`); spawn a task per
 * connection.
 *
 * Cancelling `accept()` (by `timeout`, `race`, `cancel`) leaves the
 * listener usable: the host's accept stays in flight, and the connection it
 * brings is kept for the next `accept()` on the listener, so no client is
 * dropped. Until then its client waits, as it would on any listener that
 * nobody accepts on. If no `accept()` comes, `yield* close(listener)`
 * closes that connection too; plain `listener.close()` cannot see it, and
 * leaves it open.
 *
 * @param listener A listener from `Deno.listen`.
 * @returns An operation evaluating to the accepted stream.
 *
 * @example Usage
 * ```ts
 * import { accept, close, connect, run, spawn, join } from "@genloop/genloop";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * await run(function* main() {
 *   const server = yield* spawn(function* once() {
 *     yield* close(yield* accept(listener));
 *   });
 *   yield* close(yield* connect({ hostname: "127.0.0.1", port: listener.addr.port }));
 *   yield* join(server);
 *   yield* close(listener);
 * });
 * ```
 */
export function accept(listener: Deno.Listener): Operation<ConnStream> {
  if (!isListener(listener)) {
    throw new TypeError(
      `accept() expected a Deno.Listener (from Deno.listen), but got ${describeValue(listener)}`,
    );
  }
  const incoming = incomingOf(listener);
  return new RunsOnce(whenArrived(incoming), incoming.name);
}

/**
 * Each listener's pending accept, kept across `accept()` calls; a WeakMap,
 * so a listener dropped by its program takes it along.
 */
const incomingByListener = new WeakMap<Deno.Listener, IncomingConn>();

function incomingOf(listener: Deno.Listener): IncomingConn {
  let incoming = incomingByListener.get(listener);
  if (incoming === undefined) {
    incoming = new IncomingConn(
      `accept on ${describeAddr(listener.addr)}`,
      () => listener.accept(),
    );
    incomingByListener.set(listener, incoming);
  }
  return incoming;
}

function* whenArrived(incoming: IncomingConn): Generator<Yielded, ConnStream> {
  for (;;) {
    const conn = incoming.take();
    if (conn !== WOULD_BLOCK) return new ConnStream(conn);
    yield* new WaitConnInstruction(incoming);
  }
}

function isPort(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
}

function isListener(value: unknown): value is Deno.Listener {
  return typeof value === "object" && value !== null &&
    typeof (value as Deno.Listener).accept === "function" &&
    typeof (value as Deno.Listener).close === "function" &&
    "addr" in value;
}

function closeListenerQuietly(listener: Deno.Listener): void {
  try {
    listener.close();
  } catch {
    // Already closed: nothing to release.
  }
}

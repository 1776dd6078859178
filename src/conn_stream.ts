/**
 * `ConnStream`: a real `Deno.Conn` as a genloop stream, registered with the
 * same selector as simulated streams.
 *
 * Deno offers completion (a Promise from `conn.read`), not readiness. The
 * adapter turns one into the other: when a task waits to read and nothing
 * is buffered, it starts one `conn.read` into its own buffer; when that
 * completes, the stream is ready and the selector wakes the task, whose
 * `read` then takes the bytes. A write starts `conn.write` calls until every
 * byte is out (partial writes are continued) and the writer waits until
 * then. At most one host read and one host write are in flight per stream.
 *
 * @module
 */

import { EVENT_READ, type SelectorEvent } from "./selector.ts";
import { closedError, type Stream, WOULD_BLOCK } from "./stream.ts";
import { describeValue } from "./_body.ts";

const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Options for `new ConnStream(conn, options)`.
 *
 * @example Usage
 * ```ts
 * import type { ConnStreamOptions } from "@genloop/genloop";
 *
 * // For new ConnStream(conn, options).
 * const options: ConnStreamOptions = { name: "upstream", bufferSize: 16 * 1024 };
 * if (options.bufferSize !== 16384) throw new Error("unexpected");
 * ```
 */
export interface ConnStreamOptions {
  /** The stream's name in messages. Default: the peer address. */
  name?: string;
  /** Size of the read buffer, in bytes: a positive integer. Default 64 KiB. */
  bufferSize?: number;
}

/**
 * The buffers that host writes of cancelled writers still read from, with
 * how many such writes read each. `Deno.Conn.write` reads its buffer until
 * it completes and cannot be recalled; the writer's caller got its buffer
 * back, but a ConnStream's own read buffer (lent by readView) must not be
 * refilled under such a write: the stream reads into a new one instead.
 */
const heldByHost = new Map<ArrayBufferLike, number>();

function hold(buffer: ArrayBufferLike): void {
  heldByHost.set(buffer, (heldByHost.get(buffer) ?? 0) + 1);
}

function release(buffer: ArrayBufferLike): void {
  const holders = heldByHost.get(buffer)!;
  if (holders === 1) heldByHost.delete(buffer);
  else heldByHost.set(buffer, holders - 1);
}

/**
 * A stream over a real connection (`Deno.TcpConn`, `Deno.UnixConn`,
 * `Deno.TlsConn`, …). Use it with `read`, `write` and `close`; get one from
 * `connect(options)` or `accept(listener)`, or wrap a connection yourself.
 *
 * End of stream is `null` from `read`. A failed socket throws its
 * `Deno.errors` error into the waiting task; note that Deno reports a
 * connection reset by the peer to a *reader* as end of stream (`null`), and
 * to a *writer* as `Deno.errors.BrokenPipe` or `ConnectionReset`. `close` wakes
 * waiters with `Deno.errors.BadResource` and waits for in-flight host
 * operations, so no op is left pending. A read that was in flight when its
 * reader was cancelled is kept: its bytes go to the next `read`. A write
 * whose writer was cancelled is finished, before the next write starts:
 * from a copy made at the cancellation, except for the one host write in
 * flight then, which still reads the writer's buffer until it completes
 * (see `write` for when that buffer may change again).
 *
 * @example Usage
 * ```ts
 * import { accept, close, connect, ConnStream, read, run, spawn, write, join } from "@genloop/genloop";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const reply = await run(function* main() {
 *   const server = yield* spawn(function* echoOnce() {
 *     const conn: ConnStream = yield* accept(listener);
 *     const data = yield* read(conn);
 *     yield* write(conn, data!);
 *     yield* close(conn);
 *   });
 *   const client = yield* connect({ hostname: "127.0.0.1", port: listener.addr.port });
 *   yield* write(client, "ping");
 *   const answer = yield* read(client);
 *   yield* close(client);
 *   yield* join(server);
 *   return new TextDecoder().decode(answer!);
 * });
 * listener.close();
 * if (reply !== "ping") throw new Error("unexpected");
 * ```
 */
export class ConnStream implements Stream {
  /** The stream's name in messages. */
  readonly name: string;
  /** The wrapped connection. */
  readonly conn: Deno.Conn;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;
  #readError: unknown = null;
  #reading: Promise<void> | null = null;
  #readNotify: (() => void) | null = null;
  #writing: Promise<void> | null = null;
  #writeError: unknown = null;
  #writeNotify: (() => void) | null = null;
  // The write in flight and how far it got, and whether #pending is the
  // stream's own copy (its writer was cancelled) rather than the caller's.
  #pending: Uint8Array | null = null;
  #pendingOffset = 0;
  #pendingOwned = false;
  // The caller's buffer that the host write in flight reads, once its
  // writer was cancelled (see heldByHost).
  #heldBuffer: ArrayBufferLike | null = null;
  // What cancelled writes left to send after the write in flight (copied).
  #queued: Uint8Array | null = null;
  // Who to tell if bytes of cancelled writes fail to go out (see
  // abandonWrite); null while there are none.
  #abandonedFailure: { until: number; onFailure: (error: unknown) => void }[] | null = null;
  // Bytes the host has taken since the stream was made: what an abandoned
  // writer's last byte is counted against.
  #sent = 0;
  #closed = false;
  // What the first close() returned while its host operations settle.
  #closing: Promise<void> | undefined = undefined;

  /**
   * Wraps `conn`.
   *
   * @param conn Any `Deno.Conn`.
   * @param options The name and read buffer size.
   * @throws {TypeError} when `conn` is not a connection.
   * @throws {RangeError} when `bufferSize` is not a positive integer.
   */
  constructor(conn: Deno.Conn, options: ConnStreamOptions = {}) {
    if (!isConn(conn)) {
      // Else a TypeError from deep inside ("reading 'transport'"), or later.
      throw new TypeError(
        `new ConnStream() expected a Deno.Conn (from Deno.connect() or listener.accept()), but got ${
          describeValue(conn)
        }${connHint(conn)}`,
      );
    }
    this.conn = conn;
    this.name = options.name ?? describeAddr(conn.remoteAddr);
    const bufferSize = options.bufferSize ?? READ_BUFFER_BYTES;
    // A read into an empty buffer completes with 0 bytes at once, forever:
    // the stream would spin instead of ever reaching the data or its end.
    if (!Number.isInteger(bufferSize) || bufferSize <= 0) {
      throw new RangeError(
        `Cannot create ConnStream "${this.name}": bufferSize must be a positive integer (bytes), got ${bufferSize}`,
      );
    }
    this.#buffer = new Uint8Array(bufferSize);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Starts what makes the stream ready for `event`; calls `notify` when it is. */
  watch(event: SelectorEvent, notify: () => void): void {
    if (event === EVENT_READ) {
      if (this.#readable()) notify();
      else {
        this.#readNotify = notify;
        this.#startRead();
      }
    } else if (this.#writing === null) {
      notify();
    } else {
      this.#writeNotify = notify;
    }
  }

  /** Takes buffered bytes; `null` at end of stream; `WOULD_BLOCK` otherwise. */
  tryRead(max: number): Uint8Array | null | typeof WOULD_BLOCK {
    const view = this.tryReadView(max);
    return view instanceof Uint8Array ? view.slice() : view;
  }

  /**
   * Lends up to `max` buffered bytes as a view of the read buffer, valid
   * until the next read from this stream (which refills that buffer);
   * `null` at end of stream; `WOULD_BLOCK` otherwise. No copy is made: for
   * bulk data, copying every chunk once more costs as much as the socket.
   */
  tryReadView(max: number): Uint8Array | null | typeof WOULD_BLOCK {
    if (this.#closed) throw closedError(this, "cannot read");
    if (this.#end > this.#start) {
      const stop = Math.min(this.#end, this.#start + max);
      const view = this.#buffer.subarray(this.#start, stop);
      this.#start = stop;
      return view;
    }
    if (this.#readError !== null) throw this.#readError;
    return this.#eof ? null : WOULD_BLOCK;
  }

  /** Copies buffered bytes into `buffer`; `null` at end of stream; `WOULD_BLOCK` otherwise. */
  tryReadInto(buffer: Uint8Array): number | null | typeof WOULD_BLOCK {
    const view = this.tryReadView(buffer.length);
    if (!(view instanceof Uint8Array)) return view;
    buffer.set(view);
    return view.length;
  }

  /** Starts writing all of `data` (kept by reference until flushed or abandoned). */
  tryWrite(data: Uint8Array): number | typeof WOULD_BLOCK {
    if (this.#closed) throw closedError(this, "cannot write");
    if (this.#writeError !== null) throw this.#writeError;
    if (this.#writing !== null) return WOULD_BLOCK;
    this.#pendingOwned = false;
    this.#writing = this.#writeFrom(data, 0);
    return data.length;
  }

  /**
   * The writer stopped waiting (cancelled): copies the rest of its data, so
   * that what follows the host write in flight is sent from the copy, not
   * from the caller's buffer. That host write itself cannot be recalled.
   */
  abandonWrite(rest?: Uint8Array, onFailure?: (error: unknown) => void): void {
    if (this.#closed) return;
    if (this.#pending !== null && !this.#pendingOwned) {
      this.#heldBuffer = this.#pending.buffer;
      hold(this.#heldBuffer);
      // From where the write in flight starts: #onWritten counts from there.
      this.#pending = this.#pending.slice(this.#pendingOffset);
      this.#pendingOffset = 0;
      this.#pendingOwned = true;
    }
    const unsent = rest !== undefined && rest.length > 0;
    if (unsent && this.#writeError === null) {
      if (this.#writing === null) {
        // What it waited behind is out: send the rest now.
        this.#pendingOwned = true;
        this.#writing = this.#writeFrom(rest.slice(), 0);
      } else {
        // Sent once the write in flight is out, before any later write.
        const queued = this.#queued;
        this.#queued = queued === null ? rest.slice() : concat(queued, rest);
      }
    }
    if (onFailure !== undefined) this.#tellOnFailure(onFailure);
  }

  /**
   * Keeps `onFailure` until the last byte of the cancelled writer's data
   * (the end of what is now to be sent) is out. If the stream has failed
   * already, before the writer could take the error (the failure woke it,
   * then it was cancelled), its bytes are what failed, or its rest never
   * will be sent: told now.
   */
  #tellOnFailure(onFailure: (error: unknown) => void): void {
    if (this.#writeError !== null) {
      onFailure(this.#writeError);
      return;
    }
    if (this.#writing === null) return;
    const inFlight = this.#pending === null ? 0 : this.#pending.length - this.#pendingOffset;
    const until = this.#sent + inFlight + (this.#queued?.length ?? 0);
    (this.#abandonedFailure ??= []).push({ until, onFailure });
  }

  /** Whether no write is in flight; throws the last write's error. */
  flushed(): boolean {
    if (this.#writeError !== null) {
      const error = this.#writeError;
      this.#writeError = null;
      throw error;
    }
    return this.#writing === null;
  }

  /**
   * Closes the connection; resolves once in-flight host operations settled.
   * Closed already, it returns what the first close returned: a second
   * `close()` waits for the same operations.
   */
  close(): Promise<void> | undefined {
    if (this.#closed) return this.#closing;
    this.#closed = true;
    try {
      this.conn.close();
    } catch (error) {
      // Already closed by the peer or the host: nothing left to release.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
    const inFlight = [this.#reading, this.#writing].filter((p) => p !== null);
    if (inFlight.length === 0) return undefined;
    this.#closing = Promise.all(inFlight).then(() => {
      this.#closing = undefined;
    });
    return this.#closing;
  }

  #readable(): boolean {
    return this.#end > this.#start || this.#eof || this.#readError !== null ||
      this.#closed;
  }

  #startRead(): void {
    if (this.#reading !== null || this.#closed) return;
    if (heldByHost.size > 0 && heldByHost.has(this.#buffer.buffer)) {
      // A view of it is still being sent by a cancelled write's host write.
      this.#buffer = new Uint8Array(this.#buffer.length);
    }
    this.#start = 0;
    this.#end = 0;
    // One reaction per outcome, no .finally(): each extra Promise in the
    // chain is one more microtask hop on every read.
    this.#reading = this.conn.read(this.#buffer).then(this.#onRead, this.#onReadError);
  }

  #onRead = (n: number | null): void => {
    if (n === null) this.#eof = true;
    else this.#end = n;
    this.#readSettled();
  };

  #onReadError = (error: unknown): void => {
    if (!this.#closed) this.#readError = error;
    this.#readSettled();
  };

  #readSettled(): void {
    this.#reading = null;
    const notify = this.#readNotify;
    this.#readNotify = null;
    if (notify !== null) notify();
  }

  /** Writes `data` from `offset` on, continuing after partial writes. */
  #writeFrom(data: Uint8Array, offset: number): Promise<void> {
    this.#pending = data;
    this.#pendingOffset = offset;
    const rest = offset === 0 ? data : data.subarray(offset);
    // Handlers bound once per stream, not two closures per write.
    return this.conn.write(rest).then(this.#onWritten, this.#onWriteError);
  }

  #onWritten = (n: number): Promise<void> | void => {
    this.#releaseHeld();
    this.#sent += n;
    if (this.#abandonedFailure !== null) this.#forgetSentAbandoned();
    const data = this.#pending!;
    const offset = this.#pendingOffset + n;
    if (offset < data.length) return this.#writeFrom(data, offset);
    const queued = this.#queued;
    if (queued !== null) {
      this.#queued = null;
      this.#pendingOwned = true;
      return this.#writeFrom(queued, 0);
    }
    this.#pending = null;
    this.#writeSettled(null);
  };

  #onWriteError = (error: unknown): void => {
    this.#releaseHeld();
    this.#pending = null;
    this.#queued = null;
    this.#writeSettled(error);
  };

  /** The host write that read a cancelled writer's buffer is over. */
  #releaseHeld(): void {
    if (this.#heldBuffer === null) return;
    release(this.#heldBuffer);
    this.#heldBuffer = null;
  }

  #writeSettled(error: unknown): void {
    // A write cut short by close() failed too: its writer (one of another
    // Loop, or one woken by a close() made without the close operation)
    // must not be told that every byte went out.
    if (error !== null) {
      this.#writeError = this.#closed
        ? closedError(this, "it was closed while a write was in flight, before all of it was sent")
        : error;
    }
    this.#writing = null;
    this.#tellAbandoned(error);
    const notify = this.#writeNotify;
    this.#writeNotify = null;
    if (notify !== null) notify();
  }

  /**
   * Every byte of the cancelled writes went out, or some failed to: then
   * their writers' `onFailure` is told, unless the failure was a close()
   * (the program's own doing).
   */
  #tellAbandoned(error: unknown): void {
    const told = this.#abandonedFailure;
    if (told === null) return;
    this.#abandonedFailure = null;
    if (error === null || this.#closed) return;
    for (const { onFailure } of told) onFailure(error);
  }

  /** Cancelled writers whose last byte is out have nothing left to fail. */
  #forgetSentAbandoned(): void {
    const left = this.#abandonedFailure!.filter(({ until }) => until > this.#sent);
    this.#abandonedFailure = left.length > 0 ? left : null;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/** Loosely: a stand-in used only for reading (or writing) may lack the other. */
function isConn(value: unknown): value is Deno.Conn {
  return typeof value === "object" && value !== null &&
    typeof (value as Deno.Conn).close === "function" &&
    (typeof (value as Deno.Conn).read === "function" ||
      typeof (value as Deno.Conn).write === "function");
}

/** What to pass instead of `value` to `new ConnStream()`. */
function connHint(value: unknown): string {
  if (value instanceof ConnStream) return "; it is a ConnStream already: use it as it is";
  if (typeof value === "object" && value !== null && "accept" in value) {
    return "; to take a connection from a listener, use yield* accept(listener)";
  }
  return "; open one with yield* connect({ hostname, port })";
}

/** "host:port" or the socket path, for names and messages. */
export function describeAddr(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return `${addr.hostname}:${addr.port}`;
  }
  return "path" in addr ? addr.path : addr.transport;
}

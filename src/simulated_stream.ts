/**
 * `SimulatedStream`: the tutorial's `MyStream`, with real bytes. It becomes
 * ready only after `waitCycles` selects that poll it (the tutorial's
 * `wait_cycles`), and it is a loopback pipe: bytes written to it can be read
 * from it, so deterministic tests of network code need no network.
 *
 * @module
 */

import { EVENT_READ, type SelectorEvent } from "./selector.ts";
import { closedError, type Stream, WOULD_BLOCK } from "./stream.ts";
import { describeValue } from "./_body.ts";

/**
 * Options for `new SimulatedStream(name, options)`.
 *
 * @example Usage
 * ```ts
 * import { read, runSync, SimulatedStream, type SimulatedStreamOptions } from "@genloop/genloop";
 *
 * const options: SimulatedStreamOptions = { data: "hello", ended: true, waitCycles: 2 };
 * const stream = new SimulatedStream("file", options);
 * const bytes = runSync(function* main() {
 *   return [yield* read(stream), yield* read(stream)];
 * });
 * if (bytes[0]?.length !== 5 || bytes[1] !== null) throw new Error("unexpected");
 * ```
 */
export interface SimulatedStreamOptions {
  /** Selects (that poll the stream) before the stream is ready at all. Default `1`. */
  waitCycles?: number;
  /** Bytes (or UTF-8 text) already waiting to be read. */
  data?: Uint8Array | string;
  /** End the stream after `data`: reads then return `null`. Default `false`. */
  ended?: boolean;
}

/**
 * An in-memory byte stream that a `Selector` polls, as in the tutorial.
 * Writes append to its buffer; reads take from it; `end()` marks the end of
 * the data, after which reads return `null` once the buffer is drained.
 *
 * Being polled, it is seen only by a loop that is ticking: use it within
 * one Loop. A loop waiting on the outside world (a socket, a Promise) does
 * not notice what another loop, or a host callback, does to the stream
 * meanwhile (writes, `end()`, `close()`) until something else wakes it.
 *
 * @example Usage
 * ```ts
 * import { read, runSync, SimulatedStream, write } from "@genloop/genloop";
 *
 * const stream = new SimulatedStream("pipe", { waitCycles: 3 });
 * const text = runSync(function* main() {
 *   yield* write(stream, "hello");
 *   stream.end();
 *   const chunk = yield* read(stream);
 *   return new TextDecoder().decode(chunk!);
 * });
 * if (text !== "hello") throw new Error("unexpected");
 * ```
 */
export class SimulatedStream implements Stream {
  /** The stream's name, as in the tutorial's `MyStream(name)`. */
  readonly name: string;
  #waitCycles: number;
  // Buffered chunks from #head on; slots before it were read (null, so that
  // the stream holds no bytes a reader took). A head index, not shift(),
  // which copies the array once it is long: draining many small chunks
  // was quadratic.
  #chunks: (Uint8Array | null)[] = [];
  #head = 0;
  #buffered = 0;
  #ended: boolean;
  #closed = false;

  /**
   * Creates a simulated stream.
   *
   * @param name Shown in messages and deadlock reports.
   * @param options Wait cycles, initial data and whether it has ended.
   * @throws {TypeError} when `data` is neither a Uint8Array nor a string.
   * @throws {RangeError} when `waitCycles` is not an integer >= 0.
   */
  constructor(name: string, options: SimulatedStreamOptions = {}) {
    const where = `Cannot create SimulatedStream "${name}"`;
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `${where}: options must be an object such as { data: "text", waitCycles: 2 }, but got ${
          describeValue(options)
        }`,
      );
    }
    const waitCycles = options.waitCycles ?? 1;
    if (!Number.isInteger(waitCycles) || waitCycles < 0) {
      throw new RangeError(
        `${where}: waitCycles must be an integer >= 0, got ${
          typeof waitCycles === "number" ? waitCycles : describeValue(waitCycles)
        }`,
      );
    }
    // Anything else (an ArrayBuffer, an array, a Uint16Array) used to be
    // kept as it was: reads then returned it as it was, or nothing at all.
    const data: unknown = options.data;
    if (data !== undefined && typeof data !== "string" && !(data instanceof Uint8Array)) {
      throw new TypeError(
        `${where}: data must be a Uint8Array or a string, but got ${describeValue(data)}; ${
          bytesHint(data)
        }`,
      );
    }
    this.name = name;
    this.#waitCycles = waitCycles;
    // Copied, as writes are: the caller keeps its array, and every read
    // returns an array of its own.
    if (data !== undefined) this.#append(typeof data === "string" ? toBytes(data) : data.slice());
    this.#ended = options.ended ?? false;
  }

  /** Selects still needed before the stream is ready. */
  get waitCycles(): number {
    return Math.max(0, this.#waitCycles);
  }

  /** How many bytes are waiting to be read. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Marks the end of the data: once drained, reads return `null`. */
  end(): void {
    this.#ended = true;
  }

  /**
   * Counts down one wait cycle per select, like the tutorial's `ready()`
   * (not again when the same select asks about the other event).
   */
  poll(event: SelectorEvent, again = false): boolean {
    if (!again) this.#waitCycles--;
    return this.#waitCycles <= 0 && this.#isReady(event);
  }

  /** Ready for good once its cycles are spent, but blocked on data: needs a writer. */
  stalled(event: SelectorEvent): boolean {
    return this.#waitCycles <= 0 && !this.#isReady(event);
  }

  /** Takes up to `max` bytes; `null` at the end; `WOULD_BLOCK` if not ready. */
  tryRead(max: number): Uint8Array | null | typeof WOULD_BLOCK {
    if (this.#closed) throw closedError(this, "cannot read");
    if (this.#waitCycles > 0) return WOULD_BLOCK;
    if (this.#buffered > 0) return this.#take(max);
    return this.#ended ? null : WOULD_BLOCK;
  }

  /** Copies up to `buffer.length` bytes into `buffer`; like `tryRead`. */
  tryReadInto(buffer: Uint8Array): number | null | typeof WOULD_BLOCK {
    const chunk = this.tryRead(buffer.length);
    if (chunk === null || chunk === WOULD_BLOCK) return chunk;
    buffer.set(chunk);
    return chunk.length;
  }

  /** Appends a copy of `data`; `WOULD_BLOCK` while cycles remain. */
  tryWrite(data: Uint8Array): number | typeof WOULD_BLOCK {
    if (this.#closed) throw closedError(this, "cannot write");
    if (this.#ended) {
      throw new Deno.errors.BrokenPipe(`Stream "${this.name}" has ended: cannot write`);
    }
    if (this.#waitCycles > 0) return WOULD_BLOCK;
    this.#append(data.slice());
    return data.length;
  }

  /**
   * A writer waiting for the wait cycles to pass was cancelled: its bytes
   * are appended anyway, as a cancelled write still goes out in full.
   */
  abandonWrite(rest?: Uint8Array): void {
    if (rest !== undefined && !this.#closed && !this.#ended) this.#append(rest.slice());
  }

  /** Writes complete at once. */
  flushed(): boolean {
    return true;
  }

  /** Closes the stream; its buffered bytes are dropped. */
  close(): undefined {
    this.#closed = true;
    this.#chunks = [];
    this.#head = 0;
    this.#buffered = 0;
    return undefined;
  }

  #isReady(event: SelectorEvent): boolean {
    if (this.#closed || event !== EVENT_READ) return true;
    return this.#buffered > 0 || this.#ended;
  }

  #append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#buffered += bytes.length;
  }

  #take(max: number): Uint8Array {
    const chunks = this.#chunks;
    const first = chunks[this.#head]!;
    if (first.length <= max) {
      this.#dropFirst();
      this.#buffered -= first.length;
      return first;
    }
    // A copy: a view would let the reader reach (and change) the bytes the
    // next read returns through its .buffer.
    const taken = first.slice(0, max);
    chunks[this.#head] = first.subarray(max);
    this.#buffered -= max;
    return taken;
  }

  /** Removes the first chunk; gives back the slots of read ones now and then. */
  #dropFirst(): void {
    const chunks = this.#chunks;
    chunks[this.#head] = null;
    this.#head++;
    if (this.#head === chunks.length) {
      chunks.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && 2 * this.#head >= chunks.length) {
      chunks.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

/** How to turn `data`, which is neither a Uint8Array nor a string, into one. */
export function bytesHint(data: unknown): string {
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) {
    return "wrap it as new Uint8Array(buffer)";
  }
  if (ArrayBuffer.isView(data)) {
    return "write its bytes as new Uint8Array(view.buffer, view.byteOffset, view.byteLength)";
  }
  return "encode it first, e.g. with new TextEncoder().encode(text) or JSON.stringify";
}

/** UTF-8 encodes strings; passes bytes through. */
export function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

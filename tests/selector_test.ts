// The selector and how the loop waits on it: readiness that a stream
// reported for a task that is then cancelled must not end the loop's waits
// (it spun on microtasks, starving the host, for ever).
import { assertEquals } from "@std/assert";
import {
  accept,
  call,
  cancel,
  close,
  connect,
  type ConnStream,
  join,
  Loop,
  type Operation,
  read,
  type SelectorEvent,
  sleep,
  spawn,
  type Stream,
  WOULD_BLOCK,
  write,
  yieldNow,
} from "../mod.ts";

const HOST = "127.0.0.1";

/**
 * A real clock that throws once `limitMs` passed since it was made: a loop
 * spinning on microtasks starves every host timer (a guard's setTimeout
 * included), but it still reads its clock, so this turns a hang into a
 * failure.
 */
function watchdogClock(limitMs: number): { now(): number } {
  const start = performance.now();
  return {
    now(): number {
      const now = performance.now();
      if (now - start > limitMs) {
        throw new Error(
          `watchdog: the loop still ran after ${limitMs} ms without the host getting a turn`,
        );
      }
      return now;
    },
  };
}

/** A push stream (as ConnStream is) whose data a task feeds; it notifies at once. */
class FedStream implements Stream {
  readonly name = "fed";
  closed = false;
  #data: Uint8Array | null = null;
  #notify: (() => void) | null = null;
  watch(_event: SelectorEvent, notify: () => void): void {
    if (this.#data !== null) notify();
    else this.#notify = notify;
  }
  feed(text: string): void {
    this.#data = new TextEncoder().encode(text);
    const notify = this.#notify;
    this.#notify = null;
    notify?.();
  }
  tryRead(): Uint8Array | typeof WOULD_BLOCK {
    const data = this.#data;
    this.#data = null;
    return data ?? WOULD_BLOCK;
  }
  tryReadInto(): typeof WOULD_BLOCK {
    return WOULD_BLOCK;
  }
  tryWrite(data: Uint8Array): number {
    return data.length;
  }
  flushed(): boolean {
    return true;
  }
  close(): undefined {
    this.closed = true;
  }
}

Deno.test("selector: a push stream ready for a task that is cancelled before the next select does not make the loop spin", async () => {
  const stream = new FedStream();
  const loop = new Loop({ clock: watchdogClock(1_500) });
  const outcome = await loop.runUntilComplete(function* main() {
    const reader = yield* spawn(function* reader() {
      yield* read(stream);
    });
    yield* yieldNow(); // the reader waits on the stream
    // In one step: the stream becomes ready for the reader, then the reader
    // is cancelled, before any select took the readiness.
    stream.feed("x");
    reader.cancel("not needed");
    // Keeps a timer armed, so that the loop reads its clock while it idles.
    const sleeper = yield* spawn(() => sleep(60_000));
    // Something only the host can bring: the loop must give it a turn.
    yield* call(() => new Promise((resolve) => setTimeout(resolve, 10)));
    sleeper.cancel();
    return reader.state;
  });
  assertEquals(outcome, "cancelled");
});

/** Busy for `ms` without yielding (a task that computes). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* compute */ }
}

/** A connected pair over `listener`: the client end and the accepted server end. */
function* connectPair(listener: Deno.TcpListener): Operation<[ConnStream, ConnStream]> {
  const client = yield* connect({ hostname: HOST, port: listener.addr.port });
  const server = yield* accept(listener);
  return [client, server];
}

Deno.test("ConnStream: a reader whose bytes arrive while the loop is busy, cancelled before the next select, does not make the loop spin", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const loop = new Loop({ clock: watchdogClock(1_500) });
  try {
    const outcome = await loop.runUntilComplete(function* main() {
      const [client, server] = yield* connectPair(listener);
      try {
        yield* write(client, "x");
        yield* sleep(20); // the byte waits in the server's socket
        // Slow steps: the loop learns to look at its clock after every step
        // or two, and so gives the host a turn every 10 ms of work even
        // within one batch of tasks.
        for (let i = 0; i < 300; i++) {
          spin(1);
          yield* yieldNow();
        }
        // One batch: the reader starts its host read; busy tasks get the
        // host turns (the read completes in one of them); the last task
        // cancels the reader, before the loop selects again.
        const reader = yield* spawn(function* reader() {
          yield* read(server);
        });
        for (let i = 0; i < 30; i++) {
          yield* spawn(function* busy() {
            spin(2);
          });
        }
        yield* join(
          yield* spawn(function* canceller() {
            reader.cancel("no longer needed");
          }),
        );
        yield* cancel(reader);
        // Now wait for the host: a 10 ms host timer (a sleeper keeps a loop
        // timer armed, so that the loop reads its clock while it waits).
        const sleeper = yield* spawn(() => sleep(60_000));
        yield* call(() => new Promise((resolve) => setTimeout(resolve, 10)));
        sleeper.cancel();
        return reader.state;
      } finally {
        yield* close(client);
        yield* close(server);
      }
    });
    assertEquals(outcome, "cancelled");
  } finally {
    listener.close();
  }
});

// A write cancelled (or interrupted) before it returns goes out in full, and
// first: also when it is interrupted before its first wait, or after its
// stream woke it but before its task ran; and undoing it never touches
// another task's wait on the same stream.
import { assertEquals } from "@std/assert";
import {
  join,
  Loop,
  sleep,
  spawn,
  type Stream,
  type Task,
  VirtualClock,
  WOULD_BLOCK,
  write,
  yieldNow,
} from "../mod.ts";

const decoder = new TextDecoder();

/** A user stream that takes `takeFirst` bytes of the first write, then blocks until `room`. */
function loggingStream(log: string[], options: { takeFirst?: number } = {}) {
  const state = { room: false, took: 0 };
  const stream: Stream = {
    name: "u",
    closed: false,
    poll: () => state.room,
    tryRead: () => WOULD_BLOCK,
    tryReadInto: () => WOULD_BLOCK,
    tryWrite: (data) => {
      if (options.takeFirst !== undefined && state.took === 0) {
        state.took = options.takeFirst;
        log.push(decoder.decode(data.subarray(0, options.takeFirst)));
        return options.takeFirst;
      }
      if (!state.room) return WOULD_BLOCK;
      log.push(decoder.decode(data));
      return data.length;
    },
    flushed: () => true,
    close: () => undefined,
    abandonWrite: (rest) => {
      log.push(`abandon(${rest === undefined ? "" : decoder.decode(rest)})`);
    },
  };
  return { stream, state };
}

Deno.test("write(): undoing a write its stream had woken, at an interrupt before it runs, does not drop another task's write registration on that stream", () => {
  const log: string[] = [];
  const { stream, state } = loggingStream(log);
  const outcome = new Loop({ clock: new VirtualClock() }).runSync(function* main() {
    const a = yield* spawn(function* writeA() {
      yield* write(stream, "AAAA");
    });
    yield* yieldNow();
    const b = yield* spawn(function* writeB() {
      // Runs after the select that woke writeA, before writeA runs.
      yield* yieldNow();
      state.room = false;
      yield* write(stream, "BBBB");
      log.push("B done");
    });
    yield* spawn(function* canceller() {
      state.room = true;
      yield* yieldNow();
      // writeA is queued (woken for write); writeB waits on the stream.
      a.cancel();
      state.room = true;
    });
    // Now: DeadlockError, writeB "waits for EVENT_WRITE" but its
    // registration was dropped by writeA's late undo.
    yield* join(b);
    return log;
  });
  assertEquals(outcome, ["abandon(AAAA)", "BBBB", "B done"]);
});

Deno.test("write(): a write cancelled before its first wait (its task cancelled itself) still hands the stream the rest, not half of it", () => {
  const log: string[] = [];
  const { stream } = loggingStream(log, { takeFirst: 2 });
  new Loop({ clock: new VirtualClock() }).runSync(function* main() {
    let me: Task<void> | undefined = undefined;
    me = yield* spawn(function* writer() {
      yield* yieldNow();
      me!.cancel();
      // Takes 2 bytes, then the cancellation is thrown at this yield*.
      yield* write(stream, "ABCDEF");
    });
    try {
      yield* join(me);
    } catch (error) {
      log.push((error as Error).name);
    }
  });
  // Before: "abandon()" — "CDEF" silently never sent, half a message out.
  assertEquals(log, ["AB", "abandon(CDEF)", "CancelledError"]);
});

Deno.test("write(): a goodbye written in a finally, hit by a deferred second error, still goes out in full", () => {
  const log: string[] = [];
  const { stream } = loggingStream(log, { takeFirst: 2 });
  let runError: unknown;
  try {
    new Loop({ clock: new VirtualClock() }).runSync(function* main() {
      const t = yield* spawn(function* T() {
        yield* spawn(function* C() {
          throw new Error("child failed");
        });
        try {
          yield* sleep(10);
        } finally {
          // The deferred TaskFailedError (C) is thrown at this yield*.
          yield* write(stream, "BYE!!!");
        }
      });
      yield* yieldNow();
      t.cancel();
      yield* join(t);
    });
  } catch (error) {
    runError = error;
  }
  assertEquals((runError as Error).name, "TaskFailedError");
  assertEquals(log, ["BY", "abandon(E!!!)"]);
});

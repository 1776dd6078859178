/**
 * genloop: an event loop for plain, async-free generator tasks, built the
 * way the "simple event loop" tutorial explains it, and then further:
 * structured cancellation, timers on a real or virtual clock, and one
 * selector for simulated streams and real sockets.
 *
 * Tasks are `function*` generators. They yield instructions to the loop
 * through helper operations used with `yield*`, so results are typed.
 *
 * @example Usage
 * ```ts
 * import { gather, run, sleep } from "@genloop/genloop";
 *
 * function* worker(name: string, ms: number) {
 *   yield* sleep(ms);
 *   return `${name} slept ${ms} ms`;
 * }
 * const results = await run(function* main() {
 *   return yield* gather([worker("a", 20), worker("b", 10)]);
 * });
 * if (results[0] !== "a slept 20 ms") throw new Error("unexpected");
 * ```
 *
 * @module
 */

export { call, type CallOptions } from "./src/call.ts";
export { cancel } from "./src/cancel.ts";
export { type Clock, RealClock, VirtualClock } from "./src/clock.ts";
export {
  CancelledError,
  DeadlockError,
  InvalidInstructionError,
  TaskFailedError,
  TimeoutError,
} from "./src/errors.ts";
export { gather } from "./src/gather.ts";
export { Instruction, type Operation, type Yielded } from "./src/instruction.ts";
export { join } from "./src/join.ts";
export { Loop, type LoopOptions } from "./src/loop.ts";
export { race } from "./src/race.ts";
export { run, runSync } from "./src/run.ts";
export {
  EVENT_READ,
  EVENT_WRITE,
  type SelectableStream,
  Selector,
  type SelectorEvent,
  type SelectorKey,
} from "./src/selector.ts";
export { sleep } from "./src/sleep.ts";
export { currentTask, spawn } from "./src/spawn.ts";
export {
  type BodyResult,
  type IterableBody,
  type SpawnOptions,
  Task,
  type TaskBody,
  type TaskObserver,
  type TaskState,
} from "./src/task.ts";
export { timeout } from "./src/timeout.ts";
export { suspend, yieldNow } from "./src/yield_now.ts";
export { ConnStream, type ConnStreamOptions } from "./src/conn_stream.ts";
export { accept, close, connect, read, readInto, readView, write } from "./src/io.ts";
export { SimulatedStream, type SimulatedStreamOptions } from "./src/simulated_stream.ts";
export { type Stream, WOULD_BLOCK } from "./src/stream.ts";

// Keeps the hidden classes of the loop's objects alive across full GCs, so
// that one does not throw the loop's optimized code away (see the module).
import "./src/_shape_anchors.ts";

/**
 * The tutorial's "Event Loop" section, second half: two tasks gathered, one
 * reading stream A (ready after 20 wait cycles), one writing stream B (ready
 * after 1). Task A does not block task B, so B finishes first:
 *
 *     Stream B writing Hello World!...
 *     Stream A is reading...
 *
 * Run: deno run examples/06_streams.ts
 *
 * @module
 */

import {
  gather,
  type Operation,
  read,
  runSync,
  SimulatedStream,
  WOULD_BLOCK,
  write,
} from "../mod.ts";

/** The tutorial's MyStream: a SimulatedStream that prints what it does. */
class MyStream extends SimulatedStream {
  override tryRead(max: number): Uint8Array | null | typeof WOULD_BLOCK {
    const chunk = super.tryRead(max);
    if (chunk !== WOULD_BLOCK) console.log(`Stream ${this.name} is reading...`);
    return chunk;
  }

  override tryWrite(data: Uint8Array): number | typeof WOULD_BLOCK {
    const accepted = super.tryWrite(data);
    if (accepted !== WOULD_BLOCK) {
      console.log(`Stream ${this.name} writing ${new TextDecoder().decode(data)}...`);
    }
    return accepted;
  }
}

function* helloWorldRead(): Operation<void> {
  const stream = new MyStream("A", { waitCycles: 20, data: "Hello reader!" });
  yield* read(stream);
}

function* helloWorldWrite(): Operation<void> {
  const stream = new MyStream("B", { waitCycles: 1 });
  yield* write(stream, "Hello World!");
}

runSync(function* helloWorld() {
  yield* gather([helloWorldRead(), helloWorldWrite()]);
});

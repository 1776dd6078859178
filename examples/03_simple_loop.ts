/**
 * The tutorial's "Event Loop" section, first part: a coroutine that
 * suspends several times needs a loop that resumes it until it finishes.
 * First that bare loop, then the tutorial's minimal `MyLoop`, then the
 * same program on genloop's `Loop`; the last two print the same block.
 *
 * Run: deno run examples/03_simple_loop.ts
 *
 * @module
 */

import { Loop, type Operation, yieldNow } from "../mod.ts";

// --- The tutorial's MyLoop: call next() until the coroutine is done. ---

function* sayHelloPlain(): Generator<undefined, void, unknown> {
  console.log("hey, hello world!");
  yield; // suspend, as `await say_hello()` may
}

function* helloWorldPlain(): Generator<undefined, void, unknown> {
  console.log("Resume coroutine.");
  for (let i = 0; i < 3; i++) yield* sayHelloPlain();
  console.log("Finished coroutine.");
}

// We may not know how many times a coroutine suspends: we need a loop.
const coro = helloWorldPlain();
while (!coro.next().done) {
  // resume until it ends (Python's StopIteration)
}
console.log("Exit the Loop..");

// "It's basically loop.run_until_complete":

class MyLoop {
  runUntilComplete(task: Iterator<unknown>): void {
    while (!task.next().done) {
      // keep resuming until StopIteration
    }
  }
}

new MyLoop().runUntilComplete(helloWorldPlain());

// --- The same program as genloop tasks. ---

function* sayHello(): Operation<void> {
  console.log("hey, hello world!");
  yield* yieldNow();
}

function* helloWorld(): Operation<void> {
  console.log("Resume coroutine.");
  for (let i = 0; i < 3; i++) yield* sayHello();
  console.log("Finished coroutine.");
}

new Loop().runSync(helloWorld);

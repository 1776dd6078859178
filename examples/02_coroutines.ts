/**
 * The tutorial's "Generators and Coroutines" section, second part, and its
 * "asyncio task" section. A coroutine also consumes values: the first
 * `next()` runs it to its first `yield`; each `next(value)` (Python's
 * `send`) resumes it with `value`. A task is such a coroutine: creating one
 * runs nothing; `next()` runs it until it suspends or ends (`done`, where
 * Python raises `StopIteration`), and an error it throws comes out of that
 * `next()`. This is exactly how genloop's loop resumes a task with a result.
 *
 * Run: deno run examples/02_coroutines.ts
 *
 * @module
 */

function* compareNumbers(n: number): Generator<void, never, number> {
  console.log(`Does input number less than ${n} ?`);
  for (;;) {
    const i = yield;
    console.log(i < n ? "yes!" : "no!");
  }
}

const c = compareNumbers(5); // nothing printed yet
c.next(); // starts it: prints the question
c.next(3); // send(3)
c.next(10); // send(10)

// --- The "asyncio task" section: what a task is, and how it runs. ---

function* helloWorld(): Generator<never, void, unknown> {
  console.log("hey, hello world!");
}

// Creating the coroutine runs none of its statements.
const coro = helloWorld();
// Resuming it runs it to its end: done, Python's StopIteration.
if (coro.next().done) console.log("StopIteration");

// Resumed and checked for the end, as a loop does (a fresh coroutine: a
// finished one would print nothing).
helloWorld().next();

function* helloWorldFails(): Generator<never, void, unknown> {
  throw new Error("hey, hello world!");
}

// An error the task throws comes out of the next() that resumed it.
try {
  helloWorldFails().next();
} catch (error) {
  console.log(`Catch coroutine's exception ${(error as Error).message}`);
}

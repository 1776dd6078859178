/**
 * The tutorial's "Generators and Coroutines" section, second part: a
 * coroutine also consumes values. The first `next()` runs it to its first
 * `yield`; each `next(value)` (Python's `send`) resumes it with `value`.
 * This is exactly how genloop's loop resumes a task with a result.
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

/**
 * The tutorial's "Generators and Coroutines" section, first part: a
 * generator produces values one at a time, only when asked with `next()`,
 * and signals the end (Python's `StopIteration`) with `done: true`.
 *
 * Run: deno run examples/01_generators.ts
 *
 * @module
 */

function* generateNumbers(n: number): Generator<number, void, unknown> {
  console.log("starting generating numbers...");
  for (let i = 0; i < n; i++) yield i;
}

// Calling the generator function runs nothing yet: no line is printed here.
const g = generateNumbers(3);
for (;;) {
  const step = g.next();
  if (step.done) {
    console.log("StopIteration");
    break;
  }
  console.log(step.value);
}

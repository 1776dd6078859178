// The ready queue: first-in, first-out through growth and wrap-around, and
// giving memory back after a burst.

import { assert, assertEquals } from "@std/assert";
import { RunQueue } from "../src/run_queue.ts";

Deno.test("RunQueue keeps first-in, first-out order while it wraps around and grows", () => {
  const queue = new RunQueue<number>();
  const out: number[] = [];
  let next = 0;
  // Interleave pushes and shifts so the ring wraps before it has to grow.
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 3; i++) queue.push(next++);
    out.push(queue.shift()!);
  }
  while (queue.size > 0) out.push(queue.shift()!);
  assertEquals(out, Array.from({ length: next }, (_, i) => i));
  assertEquals(queue.shift(), undefined);
});

Deno.test("RunQueue.trim() gives a drained burst's buffer back, and keeps what is queued", () => {
  const queue = new RunQueue<number>();
  for (let i = 0; i < 100_000; i++) queue.push(i);
  const burst = queue.capacity;
  assert(burst >= 100_000);
  for (let i = 0; i < 99_000; i++) queue.shift();
  assertEquals(queue.capacity, burst, "shift() alone never reallocates");
  queue.trim();
  assert(queue.capacity <= 4096, `capacity ${queue.capacity} after trim`);
  const rest: number[] = [];
  while (queue.size > 0) rest.push(queue.shift()!);
  assertEquals(rest, Array.from({ length: 1_000 }, (_, i) => 99_000 + i));
});

Deno.test("RunQueue.trim() leaves a small or still busy queue alone", () => {
  const queue = new RunQueue<number>();
  for (let i = 0; i < 10; i++) queue.push(i);
  const small = queue.capacity;
  queue.trim();
  assertEquals(queue.capacity, small);
  for (let i = 0; i < 10_000; i++) queue.push(i);
  const big = queue.capacity;
  queue.trim();
  assertEquals(queue.capacity, big, "a full queue keeps its buffer");
});

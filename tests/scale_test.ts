import { assertEquals } from "@std/assert";
import { join, type Operation, runSync, spawn } from "../mod.ts";

function* chain(depth: number): Operation<number> {
  if (depth === 0) return 0;
  const next = yield* spawn(chain(depth - 1));
  return 1 + (yield* join(next));
}

Deno.test("join(): a chain of 100,000 tasks each joining the next does not overflow the stack", () => {
  assertEquals(runSync(chain(100_000)), 100_000);
});

function* one(): Operation<number> {
  return 1;
}

Deno.test("spawn() + join(): 1,000,000 tasks spawned and joined one after another", () => {
  const total = runSync(function* main() {
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) {
      const task = yield* spawn(one);
      sum += yield* join(task);
    }
    return sum;
  });
  assertEquals(total, 1_000_000);
});

Deno.test("spawn(): 100,000 tasks alive at once, then all joined", () => {
  const total = runSync(function* main() {
    const tasks = [];
    for (let i = 0; i < 100_000; i++) tasks.push(yield* spawn(one));
    let sum = 0;
    for (const task of tasks) sum += yield* join(task);
    return sum;
  });
  assertEquals(total, 100_000);
});

/**
 * The tutorial's "Event Loop" section, second half: its `spawn`, `join`
 * and `gather` control-flow functions, on genloop. A spawning task goes on
 * at once (the child starts on a later turn, as with asyncio's
 * `create_task`); the tutorial's loop instead queues the child before its
 * parent, so there the child runs first and the lines below come in
 * another order (genloop follows asyncio here, as its issue 3 decided:
 * a parent keeps its turn). The counters give up their turn at each `yieldNow()`, so
 * their output interleaves, while `gather` returns the results in input
 * order, not finish order.
 *
 * Run: deno run examples/04_gather.ts
 *
 * @module
 */

import { gather, join, type Operation, runSync, spawn, yieldNow } from "../mod.ts";

function* countdown(name: string, from: number): Operation<string> {
  for (let i = from; i > 0; i--) {
    console.log(`${name}: ${i}`);
    yield* yieldNow();
  }
  console.log(`${name}: done`);
  return `${name} counted ${from}`;
}

const results = runSync(function* main() {
  const solo = yield* spawn(countdown("solo", 1));
  console.log("main spawned solo and goes on at once");
  console.log(`joined: ${yield* join(solo)}`);
  return yield* gather([countdown("A", 3), countdown("B", 1), countdown("C", 2)]);
});
console.log(results);

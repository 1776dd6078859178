// The task tree's bookkeeping: a parent's child list sheds settled
// children, settled tasks keep no links to their siblings, and observers
// reach a task's waiters however they are held. These tests look at the
// internal fields on purpose: the memory bounds are what they check.

import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import {
  currentTask,
  join,
  Loop,
  type Operation,
  sleep,
  spawn,
  suspend,
  type Task,
  VirtualClock,
  yieldNow,
} from "../mod.ts";
import { listedChildren } from "../src/task_tree.ts";

function virtualLoop(): Loop {
  return new Loop({ clock: new VirtualClock() });
}

/** How many tasks `parent`'s child list holds, settled ones included. */
function listed(parent: Task<unknown>): { live: number; settled: number } {
  const children = listedChildren(parent);
  const settled = children.filter((child) => child.settled).length;
  return { live: children.length - settled, settled };
}

function* quick(): Operation<number> {
  return 1;
}

function* holder(released: { count: number }): Operation<void> {
  try {
    yield* suspend();
  } finally {
    released.count++;
  }
}

Deno.test("a parent that spawns and joins 10,000 children one at a time keeps no settled one listed", () => {
  const most = { settled: 0 };
  let sum = 0;
  virtualLoop().runSync(function* main() {
    const self = yield* currentTask();
    for (let i = 0; i < 10_000; i++) {
      sum += yield* join(yield* spawn(quick));
      most.settled = Math.max(most.settled, listed(self).settled);
    }
  });
  assertEquals(sum, 10_000);
  assertEquals(most.settled, 0);
});

Deno.test("settled children are shed once they outnumber the live ones; the live are still cancelled at the end", () => {
  const released = { count: 0 };
  const quickTasks: Task<number>[] = [];
  const peak = { settled: 0, live: 0 };
  virtualLoop().runSync(function* main() {
    const self = yield* currentTask();
    for (let i = 0; i < 40; i++) yield* spawn(holder(released));
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 50; i++) quickTasks.push(yield* spawn(quick));
      yield* yieldNow();
      const counts = listed(self);
      peak.settled = Math.max(peak.settled, counts.settled);
      peak.live = Math.max(peak.live, counts.live);
    }
    // Returning cancels the 40 holders, which are still listed.
  });
  assertEquals(peak.live, 40);
  // 500 children settled while 40 were live: the list never held more
  // settled ones than the shedding threshold allows.
  assert(peak.settled <= 40, `${peak.settled} settled children were still listed`);
  assertEquals(released.count, 40);
  assertEquals(quickTasks.filter((task) => task.result === 1).length, 500);
});

Deno.test("a settled task kept by user code keeps no link to its siblings", () => {
  const kept: Task<unknown>[] = [];
  virtualLoop().runSync(function* main() {
    for (let i = 0; i < 100; i++) kept.push(yield* spawn(quick));
    yield* spawn(function* slow() {
      yield* sleep(10);
    });
    // Joined while it runs: its joiner was held in its links until it settled.
    assertEquals(yield* join(kept[0]), 1);
    yield* sleep(20);
  });
  for (const task of kept) {
    assertEquals(task.state, "done");
    assertStrictEquals(task._nextSibling, null);
    assertStrictEquals(task._links, null);
  }
});

Deno.test("every joiner gets the result: one joiner, two, one of two cancelled, and a joined task that spawns", () => {
  const loop = virtualLoop();
  const results = loop.runSync(function* main() {
    function* worker(): Operation<string> {
      yield* sleep(5);
      return "w";
    }
    // A lone joiner, held without a TaskLinks.
    const one = yield* spawn(worker);
    const oneResult = yield* join(one);

    // Two joiners, one of them cancelled before the task ends.
    const two = yield* spawn(worker);
    const first = yield* spawn(function* joinerA() {
      return yield* join(two);
    });
    const second = yield* spawn(function* joinerB() {
      return yield* join(two);
    });
    yield* yieldNow();
    first.cancel();
    const secondResult = yield* join(second);

    // A task joined while it has no children, which then spawns one: its
    // joiner moves into the links made for the child, and is still told.
    const parent = yield* spawn(function* parentOfOne() {
      yield* yieldNow();
      const child = yield* spawn(worker);
      return (yield* join(child)) + "p";
    });
    const parentResult = yield* join(parent);
    return [oneResult, secondResult, first.state, parentResult];
  });
  assertEquals(results, ["w", "w", "cancelled", "wp"]);
});

/**
 * Hidden-class anchors: one live instance of each class on the loop's hot
 * path, so that a full garbage collection does not throw away the loop's
 * optimized code.
 *
 * V8 gives the objects of a class a hidden class (a "map") built by adding
 * their fields one at a time. The finished map is reachable from the class
 * only through weak links, so once no instance is alive, a full GC drops
 * it, and with it every piece of optimized code specialised to it ("embedded
 * weak objects cleared"): the scheduler, the instructions and the timers
 * fall back to the interpreter and warm up again. Between two runs, or in a
 * program whose tasks and instructions are short-lived, no instance may be
 * alive when a full GC comes. Measured with cachegrind (single-threaded),
 * 100k spawn+joins cost 2,970 instructions per task, and 9,730 when a full
 * GC came before each run; with these anchors, 3,770.
 *
 * The instances are only constructed (and a few timers armed on a loop that
 * never runs), the way the loop builds them, so that they have the maps
 * later instances get. That takes a few milliseconds at load, most of it
 * compiling code that a program's first run would compile anyway (a
 * process's start-up measured the same, 48 ms, with and without it).
 * Nothing is run: a run here would teach the hot path's inline caches
 * about bodies and streams the program may never use. No host resource is
 * touched.
 *
 * An anchor holds the hidden class its instance was built with. A field
 * that later changes representation (an integer field given a fraction)
 * makes a new hidden class that no anchor holds: keep hot fields to one
 * representation from construction on (see RunQueue's shrink threshold).
 *
 * @module
 */

import { cancel } from "./cancel.ts";
import { RealClock, VirtualClock } from "./clock.ts";
import { gather } from "./gather.ts";
import { read, readInto, readView, write } from "./io.ts";
import { join } from "./join.ts";
import { Loop } from "./loop.ts";
import { race } from "./race.ts";
import { SimulatedStream } from "./simulated_stream.ts";
import { sleep } from "./sleep.ts";
import { currentTask, spawn } from "./spawn.ts";
import { Closing } from "./scheduler.ts";
import { Thrown } from "./task.ts";
import { timeout } from "./timeout.ts";
import { cancelledError } from "./_error_util.ts";
import type { Instruction, Operation } from "./instruction.ts";

// More timers than the timer queue keeps in its small heap, so that it
// opens lanes too.
const LANE_TIMERS = 80;

/** What is kept alive for the life of the program. */
const anchors: object[] = [];

function* anchorBody(): Operation<void> {}

function anchorShapes(): void {
  const loop = new Loop({ clock: new RealClock() });
  const task = loop.spawn(anchorBody);
  // Armed on a loop that never runs: they never fire.
  for (let i = 0; i < LANE_TIMERS; i++) {
    (sleep(1) as unknown as Instruction).perform(task, loop);
  }
  const stream = new SimulatedStream("anchor");
  anchors.push(
    loop,
    task,
    new VirtualClock(),
    stream,
    spawn(anchorBody()),
    join(task),
    currentTask(),
    cancel(task),
    gather([anchorBody()]),
    race([anchorBody()]),
    timeout(1, anchorBody()),
    read(stream),
    readInto(stream, new Uint8Array(1)),
    readView(stream),
    write(stream, "x"),
    new Thrown(undefined),
    new Closing(false, undefined),
    cancelledError(task, undefined),
  );
}

anchorShapes();

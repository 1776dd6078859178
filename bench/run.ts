/**
 * `deno task bench`: every benchmark in one process, side by side, then the
 * table on the console, in `bench/results.md` and as `bench/results.svg`.
 *
 * Nothing here is a test: the targets are reported as met or missed, never
 * asserted.
 *
 * @module
 */

import { addNote, collectGarbage, type Comparison, takeNotes } from "./_measure.ts";
import {
  describeMachine,
  readCpuTicks,
  stealShare,
  toConsole,
  toMarkdown,
  toSvg,
} from "./_report.ts";
import { benchCancel } from "./cancel.ts";
import { benchEcho } from "./echo.ts";
import { benchMemory } from "./memory.ts";
import { benchSleep } from "./sleep.ts";
import { benchSpawnJoin } from "./spawn_join.ts";
import { benchSwitch } from "./switch.ts";

const families: [string, () => Comparison[] | Promise<Comparison[]>][] = [
  ["switch", benchSwitch],
  ["spawn+join", benchSpawnJoin],
  ["memory", benchMemory],
  ["timers", benchSleep],
  ["cancel", benchCancel],
  ["echo", benchEcho],
];

const machine = describeMachine();
console.log(`genloop benchmarks: ${machine.host}; ${machine.runtime}; ${machine.date}\n`);
const started = performance.now();
const ticksBefore = readCpuTicks();
const rows: Comparison[] = [];
for (const [name, bench] of families) {
  // Each family starts from a collected heap: none pays for collecting
  // the garbage an earlier one left (effection's turns leave tens of MB).
  collectGarbage();
  const familyStart = performance.now();
  const results = await bench();
  rows.push(...results);
  if (results.length > 0) console.log(toConsole(results));
  console.log(`  (${name}: ${((performance.now() - familyStart) / 1000).toFixed(1)} s)`);
}
const seconds = (performance.now() - started) / 1000;
noteCpuSteal();
const notes = takeNotes();
const here = new URL("./", import.meta.url);
await Deno.writeTextFile(
  new URL("results.md", here),
  toMarkdown(rows, machine, { notes, seconds }),
);
await Deno.writeTextFile(new URL("results.svg", here), toSvg(rows, machine, { notes, seconds }));
console.log(`\nAll results (ratio = genloop ÷ baseline):\n${toConsole(rows)}`);
for (const note of notes) console.log(`note: ${note}`);
console.log(`\nWrote bench/results.md and bench/results.svg; the run took ${seconds.toFixed(1)} s`);

/**
 * Says so when the host took a noticeable share of the CPU time from this
 * machine during the run: both sides of every ratio were measured on a
 * machine that kept pausing, so the ratios move more than usual.
 */
function noteCpuSteal(): void {
  const ticksAfter = readCpuTicks();
  if (ticksBefore === undefined || ticksAfter === undefined) return;
  const share = stealShare(ticksBefore, ticksAfter);
  if (share < 0.02) return;
  addNote(
    `the host took ${
      (share * 100).toFixed(0)
    }% of the CPU time this run wanted (CPU steal on a shared virtual machine): ratios move more than usual`,
  );
}

/**
 * `deno task bench`: every benchmark in one process, side by side, then the
 * table on the console, in `bench/results.md` and as `bench/results.svg`.
 *
 * Nothing here is a test: the targets are reported as met or missed, never
 * asserted.
 *
 * @module
 */

import { type Comparison, takeNotes } from "./_measure.ts";
import { describeMachine, toConsole, toMarkdown, toSvg } from "./_report.ts";
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
  ["echo", benchEcho],
];

const machine = describeMachine();
console.log(`genloop benchmarks: ${machine.host}; ${machine.runtime}; ${machine.date}\n`);
const started = performance.now();
const rows: Comparison[] = [];
for (const [name, bench] of families) {
  const familyStart = performance.now();
  const results = await bench();
  rows.push(...results);
  if (results.length > 0) console.log(toConsole(results));
  console.log(`  (${name}: ${((performance.now() - familyStart) / 1000).toFixed(1)} s)`);
}
const seconds = (performance.now() - started) / 1000;
const notes = takeNotes();
const here = new URL("./", import.meta.url);
await Deno.writeTextFile(
  new URL("results.md", here),
  toMarkdown(rows, machine, { notes, seconds }),
);
await Deno.writeTextFile(new URL("results.svg", here), toSvg(rows, machine));
console.log(`\nAll results (ratio = genloop ÷ baseline):\n${toConsole(rows)}`);
for (const note of notes) console.log(`note: ${note}`);
console.log(`\nWrote bench/results.md and bench/results.svg; the run took ${seconds.toFixed(1)} s`);

/**
 * `deno task bench`: every benchmark in one process, side by side, then the
 * table on the console, in `bench/results.md` and as `bench/results.svg`.
 *
 * @module
 */

import type { Comparison } from "./_measure.ts";
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

const started = performance.now();
const rows: Comparison[] = [];
for (const [name, bench] of families) {
  const familyStart = performance.now();
  const results = await bench();
  rows.push(...results);
  console.log(toConsole(results));
  console.log(`  (${name}: ${((performance.now() - familyStart) / 1000).toFixed(1)} s)`);
}
const machine = describeMachine();
const here = new URL("./", import.meta.url);
await Deno.writeTextFile(new URL("results.md", here), toMarkdown(rows, machine));
await Deno.writeTextFile(new URL("results.svg", here), toSvg(rows, machine));
console.log(
  `\nWrote bench/results.md and bench/results.svg in ${
    ((performance.now() - started) / 1000).toFixed(1)
  } s`,
);

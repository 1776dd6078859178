// The benchmark report: the ratio of a run, and how far its rounds moved
// around it, so that a target met in some rounds only does not read as met
// (or missed) for good; and the rounds themselves.

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { type Comparison, pairedRatios, turnOrder } from "../bench/_measure.ts";
import { metText, roundRange, roundsMeeting, toConsole, toMarkdown } from "../bench/_report.ts";

function row(fields: Partial<Comparison>): Comparison {
  return {
    group: "switch",
    name: "100 tasks",
    unit: "ns/switch",
    genloop: 62,
    baselineName: "await null",
    baseline: 58,
    target: "≤ 1.0",
    ...fields,
  };
}

Deno.test("a row whose rounds disagree with its ratio says in how many rounds the target was met", () => {
  const missed = row({ rounds: [0.98, 1.07, 1.15] });
  assertEquals(roundsMeeting(missed), { met: 1, of: 3 });
  assertEquals(metText(missed), "no (met in 1 of 3 rounds)");
  assertEquals(roundRange(missed), "0.980–1.15");

  const met = row({ genloop: 0.91, baseline: 1, target: "≥ 0.9", rounds: [0.95, 0.85, 0.91] });
  assertEquals(metText(met), "yes (met in 2 of 3 rounds)");
});

Deno.test("a row whose rounds all agree, or that has none, says yes or no alone", () => {
  assertEquals(metText(row({ rounds: [1.05, 1.1] })), "no");
  assertEquals(metText(row({ genloop: 50, rounds: [0.8, 0.9] })), "yes");
  assertEquals(metText(row({})), "no");
  assertEquals(roundRange(row({})), "");
  assertEquals(roundsMeeting(row({})), undefined);
  // A reference row has no target to meet, in any round.
  assertEquals(metText(row({ target: "(floor)", rounds: [2, 2.1] })), "");
  assertEquals(roundsMeeting(row({ target: "(floor)", rounds: [2, 2.1] })), undefined);
});

Deno.test("the table and the console show each row's range of rounds", () => {
  const rows = [row({ rounds: [0.98, 1.07, 1.15] })];
  const machine = { host: "test host", runtime: "deno", date: "2026-11-27" };
  const markdown = toMarkdown(rows, machine);
  assertStringIncludes(markdown, "| ratio | rounds | target | met |");
  assertStringIncludes(markdown, "| 1.07 | 0.980–1.15 | ≤ 1.0 | no (met in 1 of 3 rounds) |");
  const line = toConsole(rows);
  assertStringIncludes(line, "(rounds 0.980–1.15)");
  assertStringIncludes(line, "MISSED (met in 1 of 3 rounds)");
  assert(!toConsole([row({})]).includes("rounds"));
});

Deno.test("rounds pair each side's number with the other's, and take turns going first", () => {
  assertEquals(pairedRatios([2, 6], [4, 3]), [0.5, 2]);
  assertEquals(turnOrder(3, 0), [0, 1, 2]);
  assertEquals(turnOrder(3, 1), [2, 1, 0]);
  assertEquals(turnOrder(2, 4), [0, 1]);
});

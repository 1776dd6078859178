/**
 * Turns the comparisons into a console table, `bench/results.md` and a
 * hand-made SVG bar chart `bench/results.svg`.
 *
 * @module
 */

import type { Comparison } from "./_measure.ts";

/** Where and when the numbers were measured. */
export interface Machine {
  /** e.g. "linux x86_64, 2 cores". */
  host: string;
  /** e.g. "deno 2.9.6 (v8 ...)". */
  runtime: string;
  /** ISO date. */
  date: string;
}

/** Describes this machine and runtime. */
export function describeMachine(): Machine {
  return {
    host:
      `${Deno.build.os} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, ${Deno.osRelease()}`,
    runtime: `deno ${Deno.version.deno} (v8 ${Deno.version.v8})`,
    date: new Date().toISOString().slice(0, 10),
  };
}

/** CPU time counters of this machine, in ticks (Linux `/proc/stat`). */
export interface CpuTicks {
  /** Time spent running code (user, nice, system, irq, softirq). */
  busy: number;
  /** Time this virtual machine was ready to run but its host ran others. */
  steal: number;
}

/** Reads the machine's CPU counters; `undefined` where there is no `/proc/stat`. */
export function readCpuTicks(): CpuTicks | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/stat");
  } catch {
    return undefined;
  }
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  const fields = text.slice(0, text.indexOf("\n")).trim().split(/\s+/).map(Number);
  const [, user, nice, system, , , irq, softirq, steal] = fields;
  if (!Number.isFinite(steal)) return undefined;
  return { busy: user + nice + system + irq + softirq, steal };
}

/**
 * The share of the CPU time wanted between two readings that the host gave
 * to someone else: on a shared virtual machine, what makes ratios noisy.
 */
export function stealShare(before: CpuTicks, after: CpuTicks): number {
  const steal = after.steal - before.steal;
  const wanted = steal + after.busy - before.busy;
  return wanted > 0 ? steal / wanted : 0;
}

/** genloop ÷ baseline. */
export function ratio(row: Comparison): number {
  return row.genloop / row.baseline;
}

function format(value: number): string {
  if (value >= 100_000) return Math.round(value).toLocaleString("en");
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(1);
  return value.toPrecision(2);
}

function formatRatio(value: number): string {
  // Three significant digits, so a ratio just short of its target does not
  // print as if it met it (0.897 against ≥ 0.9, 0.00504 against ≤ 0.005).
  if (value < 0.01) return value.toExponential(2);
  return value < 10 ? value.toPrecision(3) : value.toFixed(1);
}

/** A numeric target: at most or at least `limit`. */
interface Target {
  atMost: boolean;
  limit: number;
}

/** The row's numeric target, if it has one ("≤ 1.0", "≥ 0.9"). */
function targetOf(row: Comparison): Target | undefined {
  const match = row.target.match(/^([≤≥]) ([\d.]+)/);
  if (match === null) return undefined;
  return { atMost: match[1] === "≤", limit: Number(match[2]) };
}

function meets(value: number, target: Target): boolean {
  return target.atMost ? value <= target.limit : value >= target.limit;
}

/** Whether the row meets its numeric target (undefined when it has none). */
export function meetsTarget(row: Comparison): boolean | undefined {
  const target = targetOf(row);
  return target === undefined ? undefined : meets(ratio(row), target);
}

/** How many of the row's rounds met its target, when it has a target and rounds. */
export function roundsMeeting(row: Comparison): { met: number; of: number } | undefined {
  const target = targetOf(row);
  if (target === undefined || row.rounds === undefined || row.rounds.length === 0) {
    return undefined;
  }
  const met = row.rounds.filter((value) => meets(value, target)).length;
  return { met, of: row.rounds.length };
}

/**
 * Met or missed, as the table says it: when the rounds disagree with the
 * run's ratio, how many of them met the target, so that a ratio near its
 * target reads as the coin toss it is on this machine.
 */
export function metText(row: Comparison): string {
  const met = meetsTarget(row);
  if (met === undefined) return "";
  const verdict = met ? "yes" : "no";
  const disagreeing = disagreeingRounds(row, met);
  return disagreeing === "" ? verdict : `${verdict} (${disagreeing})`;
}

/**
 * "met in k of n rounds" when the rounds disagree with the ratio, which
 * `met` says of the row's target (undefined: it has none); else empty.
 */
function disagreeingRounds(row: Comparison, met: boolean | undefined): string {
  const rounds = roundsMeeting(row);
  if (met === undefined || rounds === undefined || rounds.met === (met ? rounds.of : 0)) return "";
  return `met in ${rounds.met} of ${rounds.of} rounds`;
}

/** The lowest and highest ratio of the row's rounds; undefined without rounds. */
function roundBounds(row: Comparison): [number, number] | undefined {
  if (row.rounds === undefined || row.rounds.length === 0) return undefined;
  return [Math.min(...row.rounds), Math.max(...row.rounds)];
}

/** The lowest and highest ratio of the row's rounds, as text; empty without rounds. */
export function roundRange(row: Comparison): string {
  const bounds = roundBounds(row);
  return bounds === undefined ? "" : `${formatRatio(bounds[0])}–${formatRatio(bounds[1])}`;
}

/** Extra lines for the report: notes and how long the run took. */
export interface RunInfo {
  /** Remarks such as a skipped family or a scaled-down size. */
  notes: string[];
  /** Wall time of the whole run, in seconds. */
  seconds: number;
}

/** The results as a Markdown table with a header naming the machine. */
export function toMarkdown(rows: Comparison[], machine: Machine, info?: RunInfo): string {
  const lines = [
    "# genloop benchmarks",
    "",
    `Measured side by side in one run of \`deno task bench\` on ${machine.date}: ${machine.host}; ${machine.runtime}.`,
    "Ratio = genloop ÷ baseline, each the median of several runs. For costs lower is better;",
    "for throughput (round trips/s, MiB/s) higher is better. Each round of a run measured",
    "genloop and its baseline one right after the other; *rounds* is the lowest and highest",
    "genloop ÷ baseline of a round, and *met* says in how many rounds the target was met when",
    "they disagree with the ratio.",
    "",
    "| group | measurement | unit | genloop | baseline | baseline value | ratio | rounds | target | met |",
    "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.group} | ${row.name} | ${row.unit} | ${
        format(row.genloop)
      } | ${row.baselineName} | ${format(row.baseline)} | ${formatRatio(ratio(row))} | ${
        roundRange(row)
      } | ${row.target} | ${metText(row)} |`,
    );
  }
  if (info !== undefined) {
    lines.push("", `The whole run took ${info.seconds.toFixed(1)} s.`);
    for (const note of info.notes) lines.push("", `Note: ${note}.`);
  }
  return lines.join("\n") + "\n";
}

/** The results as aligned console lines. */
export function toConsole(rows: Comparison[]): string {
  const label = (row: Comparison): string => `${row.group}: ${row.name}`;
  const width = Math.max(0, ...rows.map((row) => label(row).length));
  return rows.map((row) => {
    const met = meetsTarget(row);
    const range = roundRange(row);
    const disagreeing = disagreeingRounds(row, met);
    return `${label(row).padEnd(width)} ${format(row.genloop).padStart(9)} vs ${
      format(row.baseline).padStart(9)
    } ${row.unit.padEnd(14)} ratio ${formatRatio(ratio(row)).padStart(7)}${
      range === "" ? "" : ` (rounds ${range})`
    }  target ${row.target}${met === undefined ? "" : met ? "  ok" : "  MISSED"}${
      disagreeing === "" ? "" : ` (${disagreeing})`
    }`;
  }).join("\n");
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * A horizontal bar chart of the ratios on a log scale, with the parity line
 * (1.0) marked: bars left of it mean genloop costs less than the baseline.
 */
export function toSvg(rows: Comparison[], machine: Machine, info?: RunInfo): string {
  const label = (row: Comparison): string =>
    `${row.group}: ${row.name} vs ${row.baselineName}${
      row.higherIsBetter ? " (higher is better)" : ""
    }`;
  const rowHeight = 28;
  // About 6.6 px per character of 12 px sans-serif.
  const labelWidth = Math.max(300, Math.ceil(Math.max(...rows.map((r) => label(r).length)) * 6.6));
  const plotWidth = 420;
  const top = 74;
  // The notes (CPU steal, a scaled-down size) go under the axis: they say
  // how far the bars can be trusted.
  const notes = info?.notes ?? [];
  const plotBottom = top + rows.length * rowHeight + 40;
  const height = plotBottom + notes.length * 18 + (notes.length > 0 ? 8 : 0);
  const width = labelWidth + plotWidth + 90;
  const minLog = -3;
  // Up to 100: ratios of 10-20 occur (cancel, virtual sleeps on a busy day),
  // and a bar cut off at 10 would read as smaller than its number says.
  const maxLog = 2;
  const x = (value: number): number => {
    // A ratio that is not positive (an overshoot below zero) sits at the left edge.
    const log = value > 0 ? Math.log10(value) : minLog;
    const clamped = Math.min(maxLog, Math.max(minLog, log));
    return labelWidth + ((clamped - minLog) / (maxLog - minLog)) * plotWidth;
  };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">genloop ÷ baseline, log scale: for costs left of 1 is better, for throughput right of 1</text>`,
    `<text x="10" y="38" fill="#555">${
      escapeXml(`${machine.date} · ${machine.host} · ${machine.runtime}`)
    }</text>`,
    `<text x="10" y="56" fill="#555">bars: <tspan fill="#2a9d4b">green</tspan> target met, <tspan fill="#d1495b">red</tspan> target missed, <tspan fill="#8899aa">grey</tspan> no target (reference); black line: lowest to highest ratio of a round</text>`,
  ];
  for (const tick of [0.001, 0.01, 0.1, 1, 10, 100]) {
    parts.push(
      `<line x1="${x(tick)}" y1="${top - 6}" x2="${x(tick)}" y2="${plotBottom - 34}" stroke="${
        tick === 1 ? "#000" : "#ddd"
      }"/>`,
      `<text x="${x(tick)}" y="${plotBottom - 20}" text-anchor="middle" fill="#555">${tick}</text>`,
    );
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    const value = ratio(row);
    const met = meetsTarget(row);
    const color = met === undefined ? "#8899aa" : met ? "#2a9d4b" : "#d1495b";
    const start = x(Math.min(1, value));
    const end = x(Math.max(1, value));
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${escapeXml(label(row))}</text>`,
      `<rect x="${start}" y="${y + 4}" width="${Math.max(1, end - start)}" height="${
        rowHeight - 10
      }" fill="${color}"/>`,
    );
    let textX = end + 4;
    const bounds = roundBounds(row);
    if (bounds !== undefined) {
      const low = x(bounds[0]);
      const high = x(bounds[1]);
      const middle = y + rowHeight / 2 - 1;
      parts.push(
        `<line x1="${low}" y1="${middle}" x2="${high}" y2="${middle}" stroke="#222" stroke-width="1.5"/>`,
        `<line x1="${low}" y1="${middle - 4}" x2="${low}" y2="${middle + 4}" stroke="#222"/>`,
        `<line x1="${high}" y1="${middle - 4}" x2="${high}" y2="${middle + 4}" stroke="#222"/>`,
      );
      textX = Math.max(textX, high + 4);
    }
    parts.push(`<text x="${textX}" y="${y + 16}">${formatRatio(value)}</text>`);
  });
  notes.forEach((note, i) => {
    parts.push(
      `<text x="10" y="${plotBottom + 4 + i * 18}" fill="#555">${
        escapeXml(`Note: ${note}.`)
      }</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

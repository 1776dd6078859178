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

/** Whether the row meets its numeric target (undefined when it has none). */
export function meetsTarget(row: Comparison): boolean | undefined {
  const match = row.target.match(/^([≤≥]) ([\d.]+)/);
  if (match === null) return undefined;
  const limit = Number(match[2]);
  return match[1] === "≤" ? ratio(row) <= limit : ratio(row) >= limit;
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
    "for throughput (round trips/s, MiB/s) higher is better.",
    "",
    "| group | measurement | unit | genloop | baseline | baseline value | ratio | target | met |",
    "| --- | --- | --- | ---: | --- | ---: | ---: | --- | --- |",
  ];
  for (const row of rows) {
    const met = meetsTarget(row);
    lines.push(
      `| ${row.group} | ${row.name} | ${row.unit} | ${
        format(row.genloop)
      } | ${row.baselineName} | ${format(row.baseline)} | ${
        formatRatio(ratio(row))
      } | ${row.target} | ${met === undefined ? "" : met ? "yes" : "no"} |`,
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
    return `${label(row).padEnd(width)} ${format(row.genloop).padStart(9)} vs ${
      format(row.baseline).padStart(9)
    } ${row.unit.padEnd(14)} ratio ${formatRatio(ratio(row)).padStart(7)}  target ${row.target}${
      met === undefined ? "" : met ? "  ok" : "  MISSED"
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
    `<text x="10" y="56" fill="#555">bars: <tspan fill="#2a9d4b">green</tspan> target met, <tspan fill="#d1495b">red</tspan> target missed, <tspan fill="#8899aa">grey</tspan> no target (reference)</text>`,
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
      `<text x="${end + 4}" y="${y + 16}">${formatRatio(value)}</text>`,
    );
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

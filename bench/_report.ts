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
  return value < 0.01 ? value.toExponential(1) : value.toFixed(2);
}

/** Whether the row meets its numeric target (undefined when it has none). */
export function meetsTarget(row: Comparison): boolean | undefined {
  const match = row.target.match(/^([≤≥]) ([\d.]+)/);
  if (match === null) return undefined;
  const limit = Number(match[2]);
  return match[1] === "≤" ? ratio(row) <= limit : ratio(row) >= limit;
}

/** The results as a Markdown table with a header naming the machine. */
export function toMarkdown(rows: Comparison[], machine: Machine): string {
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
  return lines.join("\n") + "\n";
}

/** The results as aligned console lines. */
export function toConsole(rows: Comparison[]): string {
  return rows.map((row) => {
    const met = meetsTarget(row);
    return `${(row.group + ": " + row.name).padEnd(58)} ${format(row.genloop).padStart(10)} vs ${
      format(row.baseline).padStart(10)
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
export function toSvg(rows: Comparison[], machine: Machine): string {
  const rowHeight = 28;
  const labelWidth = 540;
  const plotWidth = 420;
  const top = 56;
  const height = top + rows.length * rowHeight + 40;
  const width = labelWidth + plotWidth + 90;
  const minLog = -3;
  const maxLog = 1;
  const x = (value: number): number => {
    const clamped = Math.min(maxLog, Math.max(minLog, Math.log10(value)));
    return labelWidth + ((clamped - minLog) / (maxLog - minLog)) * plotWidth;
  };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">genloop ÷ baseline, log scale: for costs left of 1 is better, for throughput right of 1</text>`,
    `<text x="10" y="38" fill="#555">${
      escapeXml(`${machine.date} · ${machine.host} · ${machine.runtime}`)
    }</text>`,
  ];
  for (const tick of [0.001, 0.01, 0.1, 1, 10]) {
    parts.push(
      `<line x1="${x(tick)}" y1="${top - 6}" x2="${x(tick)}" y2="${height - 34}" stroke="${
        tick === 1 ? "#000" : "#ddd"
      }"/>`,
      `<text x="${x(tick)}" y="${height - 20}" text-anchor="middle" fill="#555">${tick}</text>`,
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
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${
        escapeXml(
          `${row.group}: ${row.name} vs ${row.baselineName}${
            row.higherIsBetter ? " (higher is better)" : ""
          }`,
        )
      }</text>`,
      `<rect x="${start}" y="${y + 4}" width="${Math.max(1, end - start)}" height="${
        rowHeight - 10
      }" fill="${color}"/>`,
      `<text x="${end + 4}" y="${y + 16}">${formatRatio(value)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

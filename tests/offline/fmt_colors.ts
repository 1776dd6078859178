/**
 * Offline stand-in for the parts of `jsr:@std/fmt/colors` that genloop's
 * examples use, written from that module's documented API: each function
 * wraps a string in an ANSI SGR code, and none does when `NO_COLOR` is set
 * (`Deno.noColor`) or after `setColorEnabled(false)`.
 *
 * @module
 */

let enabled = !Deno.noColor;

/** Turns colouring on or off for every function of this module. */
export function setColorEnabled(value: boolean): void {
  enabled = value;
}

/** Whether colouring is on. */
export function getColorEnabled(): boolean {
  return enabled;
}

function sgr(open: number, close: number): (text: string) => string {
  return (text) => enabled ? `\x1b[${open}m${text}\x1b[${close}m` : text;
}

/** Bold text. */
export const bold: (text: string) => string = sgr(1, 22);
/** Dim text. */
export const dim: (text: string) => string = sgr(2, 22);
/** Red text. */
export const red: (text: string) => string = sgr(31, 39);
/** Green text. */
export const green: (text: string) => string = sgr(32, 39);
/** Yellow text. */
export const yellow: (text: string) => string = sgr(33, 39);
/** Blue text. */
export const blue: (text: string) => string = sgr(34, 39);
/** Magenta text. */
export const magenta: (text: string) => string = sgr(35, 39);
/** Cyan text. */
export const cyan: (text: string) => string = sgr(36, 39);
/** Gray text. */
export const gray: (text: string) => string = sgr(90, 39);

/** Removes ANSI escape codes from `text`. */
export function stripAnsiCode(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

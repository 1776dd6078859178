/**
 * Task names, kept off the task record. A suspended task costs its record
 * plus its generator, and most tasks are named by their generator function,
 * which the generator object already leads to: its prototype is that
 * function's `prototype` object. So a table from prototype to function,
 * filled once per function, names every such task; only names given at
 * spawn (and other name sources) need an entry per task.
 *
 * @module
 */

import type { NameSource, Task } from "./task.ts";

/** How a task finds its name (kept in two bits of its record). */
export type NameKind = typeof UNNAMED | typeof NAMED_BY_FUNCTION | typeof NAMED_AT_SPAWN;
/** No name: the task is called `task-<id>`. */
export const UNNAMED = 0;
/** Named by the generator function that made its generator object. */
export const NAMED_BY_FUNCTION = 1;
/** Named by what was given at spawn, held in `GIVEN_NAMES`. */
export const NAMED_AT_SPAWN = 2;

const FUNCTION_BY_PROTOTYPE = new WeakMap<object, { readonly name: string }>();
const GIVEN_NAMES = new WeakMap<Task<unknown>, NameSource>();
// Spawning the same function over and over is the common case: it is
// registered once, then recognised with one comparison.
let lastRegistered: unknown = undefined;

/**
 * Records what names `task`, whose body `iter` came from `source` (a name
 * given at spawn, the body function, or nothing), and says how to find it.
 */
export function recordName(
  task: Task<unknown>,
  iter: object,
  source: NameSource,
): NameKind {
  if (source === undefined) return UNNAMED;
  if (source === lastRegistered) return NAMED_BY_FUNCTION;
  if (typeof source === "function" && madeBy(iter, source)) {
    FUNCTION_BY_PROTOTYPE.set(Object.getPrototypeOf(iter), source);
    lastRegistered = source;
    return NAMED_BY_FUNCTION;
  }
  GIVEN_NAMES.set(task, source);
  return NAMED_AT_SPAWN;
}

/** Whether `fn` made `iter` (a generator function and its generator object). */
function madeBy(iter: object, fn: { prototype?: unknown }): boolean {
  const prototype = fn.prototype;
  return typeof prototype === "object" && prototype !== null &&
    Object.getPrototypeOf(iter) === prototype;
}

/**
 * The name recorded for `task`, if any.
 *
 * @param bodyPrototype The prototype of the task's generator object (a
 * settled task keeps only that of it), needed for `NAMED_BY_FUNCTION`.
 */
export function recordedName(
  task: Task<unknown>,
  kind: NameKind,
  bodyPrototype: object | null,
): string | undefined {
  if (kind === NAMED_BY_FUNCTION) {
    return bodyPrototype === null ? undefined : FUNCTION_BY_PROTOTYPE.get(bodyPrototype)?.name;
  }
  if (kind === NAMED_AT_SPAWN) return nameOf(GIVEN_NAMES.get(task));
  return undefined;
}

/** The name `source` gives, if any. */
export function nameOf(source: NameSource): string | undefined {
  return typeof source === "string" || source === undefined ? source : source.name;
}

/**
 * Turning what users pass as a task body into an iterator, with clear
 * errors for everything else. Checked at the call (`spawn(x)`), so a mistake
 * points at the line that made it.
 *
 * @module
 */

import { type NameSource, Task, type TaskBody } from "./task.ts";

/**
 * Validates `body` and returns its iterator, always a generator object (see
 * `drive`). A function is called: it must be a zero-argument generator
 * function.
 *
 * @throws {TypeError} when `body` is not an iterator with `next` and `throw`.
 */
export function startBody<T>(body: TaskBody<T>, where: string): Generator<unknown, T, unknown> {
  // The common cases, a generator function or a generator object, are
  // recognised by their prototype: spawn is hot, and the checks below cost
  // about a fifth of it.
  if (isGeneratorFunction(body)) return body() as Generator<unknown, T, unknown>;
  if (typeof body === "function") {
    // Calling an async function would run its body (and leave a Promise that
    // may reject unhandled) just to find out it is not a task body.
    if (isAsyncFunction(body)) throw asyncFunctionError(body, where);
    const produced: unknown = body();
    const iter = taskIterator<T>(produced);
    if (iter !== undefined) return iter;
    // The TypeError reports the mistake; the abandoned Promise must not
    // crash the process later with an unhandled rejection as well.
    if (isThenable(produced)) produced.then(undefined, () => {});
    throw new TypeError(
      `${where} expected a generator function, but ${
        body.name ? `"${body.name}"` : "the function"
      } returned ${describeValue(produced)}; declare it with function* ${
        isThenable(produced) ? "(not async) and wait for Promises with yield* call(...)" : ""
      }`.trimEnd(),
    );
  }
  const iter = taskIterator<T>(body);
  if (iter !== undefined) return iter;
  throw new TypeError(
    `${where} expected a generator object, a generator function or an operation, but got ${
      describeValue(body)
    }${
      isThenable(body)
        ? "; to wait for a Promise use yield* call(() => promise)"
        : isAsyncGenerator(body)
        ? "; declare it with function* (not async function*)"
        : body instanceof Task
        ? `; task "${body.name}" is a task, not a body: to wait for it, pass join(task) instead of the task`
        : "; a task body needs next(value) and throw(error)"
    }`,
  );
}

/**
 * The generator a task drives for `value`: the generator object itself,
 * an iterator with `next` and `throw` (such as `sleep(5)`) wrapped by
 * `drive`, or the same for the iterator an iterable makes; `undefined` for
 * anything else.
 */
function taskIterator<T>(value: unknown): Generator<unknown, T, unknown> | undefined {
  if (isGeneratorObject(value)) return value as Generator<unknown, T, unknown>;
  if (isDrivable(value)) return drive(value as Iterator<unknown, T, unknown>);
  if (!isIterable(value)) return undefined;
  const iter: unknown = value[Symbol.iterator]();
  if (isGeneratorObject(iter)) return iter as Generator<unknown, T, unknown>;
  if (isDrivable(iter)) return drive(iter as Iterator<unknown, T, unknown>);
  return undefined;
}

/**
 * Whether `startBody` runs `body` itself (a generator object, or an iterator
 * with `next` and `throw` such as `sleep(5)`), which can run only once,
 * rather than an iterator that `body` makes anew for each task.
 */
export function runsItself(body: unknown): boolean {
  return isGeneratorObject(body) || isDrivable(body);
}

/**
 * Whether the iterator `startBody` makes of `body` may be one that another
 * body hands out too: not for a generator function, which makes a new
 * generator each call, nor for an operation, which is wrapped anew (see
 * `drive`; one listed twice is refused when its second task runs it).
 */
export function mayShareIterator(body: unknown): boolean {
  return isGeneratorObject(body) || !(isGeneratorFunction(body) || isDrivable(body));
}

/**
 * A generator that runs `iter` (an operation such as `sleep(10)`, or any
 * iterator with `next` and `throw`) as its own body. The scheduler resumes
 * every task through the generator prototype's own `next` and `throw`,
 * which only take generator objects: read off each task's iterator
 * instead, `next` is found through a megamorphic lookup as soon as a
 * program has more than four generator functions, which cost a tenth of a
 * task switch.
 */
export function* drive<T>(iter: Iterator<unknown, T, unknown>): Generator<unknown, T, unknown> {
  return yield* { [Symbol.iterator]: () => iter };
}

// What every `function*` inherits `constructor` from. Reading that property
// costs a few nanoseconds; `Object.getPrototypeOf` on a function or a
// generator costs about 25 ns in V8, a twentieth of a whole spawn and join.
const GENERATOR_FUNCTION: unknown = Object.getPrototypeOf(function* () {}).constructor;

/** Whether `value` is a `function*` (calling it makes a generator object). */
function isGeneratorFunction(value: unknown): value is () => Iterator<unknown> {
  return typeof value === "function" && value.constructor === GENERATOR_FUNCTION;
}

// What every generator object made by a `function*` inherits `next` from.
const GENERATOR_NEXT: unknown = Object.getPrototypeOf(function* () {}).prototype.next;

/**
 * Whether `value` is a generator object made by a `function*`, driven by
 * the generator prototype's own `next`, as the scheduler resumes it. Not
 * its tag: an iterator tagged "Generator" without being one (a transpiled
 * generator) or a generator given a `next` of its own is run through
 * `drive`, by its own `next`.
 */
export function isGeneratorObject(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    (value as Iterator<unknown>).next === GENERATOR_NEXT;
}

/** Whether `fn` is an `async function` or an `async function*`. */
function isAsyncFunction(fn: unknown): boolean {
  const tag = Object.prototype.toString.call(fn);
  return tag === "[object AsyncFunction]" || tag === "[object AsyncGeneratorFunction]";
}

function asyncFunctionError(fn: { name: string }, where: string): TypeError {
  return new TypeError(
    `${where} expected a generator function, but ${
      fn.name ? `"${fn.name}"` : "the function"
    } is async; declare it with function* (not async) and wait for Promises with yield* call(...)`,
  );
}

/** What a body lends its task as a name: a generator function (its name). */
export function bodyNameSource(body: TaskBody<unknown>): NameSource {
  return typeof body === "function" ? body : undefined;
}

/**
 * Whether `value` has the iterator protocol's `next` and `throw`, answering
 * synchronously: an async generator has both, but returns Promises that the
 * loop would take for ever-new bad instructions.
 */
function isDrivable(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    typeof (value as Iterator<unknown>).next === "function" &&
    typeof (value as Iterator<unknown>).throw === "function" &&
    !isAsyncGenerator(value);
}

function isAsyncGenerator(value: unknown): boolean {
  return Object.prototype.toString.call(value) === "[object AsyncGenerator]";
}

function isIterable(value: unknown): value is Iterable<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as Iterable<unknown>)[Symbol.iterator] === "function";
}

/** Whether `value` looks like a Promise. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

/** A short, safe description of any value for error messages. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return `${typeof value} ${String(value)}`;
  }
  if (typeof value === "symbol") return `symbol ${value.description ?? ""}`.trimEnd();
  if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
  if (isThenable(value)) return "a Promise";
  if (isAsyncGenerator(value)) return "an async generator object";
  const constructorName = (value as { constructor?: { name?: string } }).constructor?.name;
  if (Array.isArray(value)) return "an array";
  return constructorName ? `an object of class ${constructorName}` : "an object";
}

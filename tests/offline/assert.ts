/**
 * Offline stand-in for the parts of `jsr:@std/assert` that genloop's tests
 * use, written here from that package's documented API (same names, same
 * signatures, same meaning) on top of `node:util`. Used only when JSR cannot
 * be reached; see `tests/offline/import_map.json`.
 *
 * @module
 */

import { inspect, isDeepStrictEqual } from "node:util";

/** Thrown when an assertion fails. */
export class AssertionError extends Error {
  /** Creates an assertion error. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

// deno-lint-ignore no-explicit-any
type AnyConstructor = new (...args: any[]) => any;
// deno-lint-ignore no-explicit-any
type AnyErrorClass = abstract new (...args: any[]) => any;

function show(value: unknown): string {
  return inspect(value, { depth: 6, colors: false });
}

function suffix(msg?: string): string {
  return msg ? `: ${msg}` : "";
}

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg = ""): asserts expr {
  if (!expr) throw new AssertionError(msg || "Expected expression to be truthy");
}

/** Asserts that `actual` and `expected` are deeply equal. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  throw new AssertionError(
    `Values are not equal${suffix(msg)}\n  actual:   ${show(actual)}\n  expected: ${
      show(expected)
    }`,
  );
}

/** Asserts that `actual` and `expected` are not deeply equal. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!isDeepStrictEqual(actual, expected)) return;
  throw new AssertionError(`Expected actual to differ from ${show(expected)}${suffix(msg)}`);
}

/** Asserts that `actual` and `expected` are the same value (`Object.is`). */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (Object.is(actual, expected)) return;
  throw new AssertionError(
    `Values are not strictly equal${suffix(msg)}\n  actual:   ${show(actual)}\n  expected: ${
      show(expected)
    }`,
  );
}

/** Asserts that `actual` is neither `null` nor `undefined`. */
export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === null || actual === undefined) {
    throw new AssertionError(`Expected actual to not be null or undefined${suffix(msg)}`);
  }
}

/** Asserts that `actual` is an instance of `expectedType`. */
export function assertInstanceOf<T extends AnyConstructor>(
  actual: unknown,
  expectedType: T,
  msg?: string,
): asserts actual is InstanceType<T> {
  if (actual instanceof expectedType) return;
  throw new AssertionError(
    `Expected object to be an instance of "${expectedType.name}" but was ${show(actual)}${
      suffix(msg)
    }`,
  );
}

/** Asserts that `actual` matches the regular expression `expected`. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (expected.test(actual)) return;
  throw new AssertionError(`Expected actual: "${actual}" to match: "${expected}"${suffix(msg)}`);
}

/** Asserts that `actual` includes `expected`. */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (actual.includes(expected)) return;
  throw new AssertionError(`Expected actual: "${actual}" to contain: "${expected}"${suffix(msg)}`);
}

/** Asserts that `actual` is greater than `expected`. */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (actual > expected) return;
  throw new AssertionError(`Expect ${show(actual)} > ${show(expected)}${suffix(msg)}`);
}

/** Asserts that `actual` is greater than or equal to `expected`. */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (actual >= expected) return;
  throw new AssertionError(`Expect ${show(actual)} >= ${show(expected)}${suffix(msg)}`);
}

/** Asserts that `actual` is less than `expected`. */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (actual < expected) return;
  throw new AssertionError(`Expect ${show(actual)} < ${show(expected)}${suffix(msg)}`);
}

/** Asserts that `actual` is less than or equal to `expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (actual <= expected) return;
  throw new AssertionError(`Expect ${show(actual)} <= ${show(expected)}${suffix(msg)}`);
}

/** Fails unconditionally. */
export function fail(msg?: string): never {
  throw new AssertionError(`Failed assertion${suffix(msg)}`);
}

function checkError(
  error: unknown,
  ErrorClass?: AnyErrorClass,
  msgIncludes?: string,
): void {
  if (ErrorClass && !(error instanceof ErrorClass)) {
    throw new AssertionError(
      `Expected error to be instance of "${ErrorClass.name}", but was ${show(error)}`,
    );
  }
  if (msgIncludes !== undefined) {
    const message = error instanceof Error ? error.message : String(error);
    if (!message.includes(msgIncludes)) {
      throw new AssertionError(
        `Expected error message to include ${JSON.stringify(msgIncludes)}, but got ${
          JSON.stringify(message)
        }`,
      );
    }
  }
}

/** Asserts that `fn` throws; returns the error. */
export function assertThrows(fn: () => unknown, msg?: string): unknown;
/** Asserts that `fn` throws an instance of `ErrorClass`; returns it. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass: abstract new (...args: any[]) => E,
  msgIncludes?: string,
  msg?: string,
): E;
export function assertThrows(
  fn: () => unknown,
  classOrMsg?: AnyErrorClass | string,
  msgIncludes?: string,
): unknown {
  try {
    fn();
  } catch (error) {
    if (typeof classOrMsg === "function") checkError(error, classOrMsg, msgIncludes);
    return error;
  }
  throw new AssertionError(
    `Expected function to throw${typeof classOrMsg === "string" ? `: ${classOrMsg}` : "."}`,
  );
}

/** Asserts that `fn` returns a Promise that rejects; resolves to the error. */
export function assertRejects(fn: () => PromiseLike<unknown>, msg?: string): Promise<unknown>;
/** Asserts that `fn`'s Promise rejects with an instance of `ErrorClass`. */
export function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass: abstract new (...args: any[]) => E,
  msgIncludes?: string,
  msg?: string,
): Promise<E>;
export async function assertRejects(
  fn: () => PromiseLike<unknown>,
  classOrMsg?: AnyErrorClass | string,
  msgIncludes?: string,
): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    if (typeof classOrMsg === "function") checkError(error, classOrMsg, msgIncludes);
    return error;
  }
  throw new AssertionError(
    `Expected function to reject${typeof classOrMsg === "string" ? `: ${classOrMsg}` : "."}`,
  );
}

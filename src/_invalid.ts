/**
 * The message for a task that yielded something the loop cannot run. It
 * names the task, says what was yielded, and suggests the likely fix.
 *
 * @module
 */

import { describeValue, isThenable } from "./_body.ts";
import { InvalidInstructionError } from "./errors.ts";
import { Instruction } from "./instruction.ts";
import { RunsOnce } from "./_runs_once.ts";
import { Task } from "./task.ts";

/** Builds the error thrown into `task` for yielding `yielded`. */
export function invalidInstructionError(
  task: Task<unknown>,
  yielded: unknown,
): InvalidInstructionError {
  const where = `Task "${task.name}" yielded`;
  const what = describeOperation(yielded);
  if (what !== null) {
    return new InvalidInstructionError(
      `${where} an operation (${what}) with \`yield\`; write \`yield*\` to run it, e.g. \`yield* sleep(10)\``,
      yielded,
    );
  }
  if (isThenable(yielded)) {
    return new InvalidInstructionError(
      `${where} a Promise; genloop tasks do not await: write \`yield* call(() => promise)\` to wait for it`,
      yielded,
    );
  }
  if (isGenerator(yielded)) {
    return new InvalidInstructionError(
      `${where} a generator object with \`yield\`; write \`yield*\` to run it inline, or \`yield* spawn(...)\` to run it as a task`,
      yielded,
    );
  }
  return new InvalidInstructionError(
    `${where} ${
      describeValue(yielded)
    }, which is not a genloop instruction; yield only with \`yield*\` on an operation such as \`yield* sleep(ms)\`, \`yield* join(task)\` or \`yield* yieldNow()\``,
    yielded,
  );
}

/**
 * What `value` is, if it is an operation (one of genloop's or a user's, an
 * object that is its own iterator); null if not.
 */
function describeOperation(value: unknown): string | null {
  if (value instanceof Instruction) return value.describe();
  // accept(), connect() and close(), which are not their own iterators.
  if (value instanceof RunsOnce) return value.what;
  return isOperation(value) ? "an operation" : null;
}

function isOperation(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    typeof (value as Iterable<unknown>)[Symbol.iterator] === "function" &&
    typeof (value as Iterator<unknown>).next === "function" &&
    !isGenerator(value);
}

function isGenerator(value: unknown): boolean {
  return Object.prototype.toString.call(value) === "[object Generator]";
}

/**
 * Throws a TypeError unless `value` is a Task. `join(op)` and `cancel(op)`
 * on anything else would otherwise fail far from the slip, or wait forever.
 */
export function checkTask(value: unknown, where: string): asserts value is Task<unknown> {
  if (value instanceof Task) return;
  const hint = describeOperation(value) !== null
    ? "; did you forget `yield*` before `spawn(...)`? `yield* spawn(body)` evaluates to the Task"
    : "; pass the Task that `yield* spawn(body)` returned";
  throw new TypeError(`${where} expected a Task, but got ${describeValue(value)}${hint}`);
}

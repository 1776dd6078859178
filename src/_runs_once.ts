/**
 * `RunsOnce`: an operation written as a generator, made to run once like
 * genloop's instructions.
 *
 * @module
 */

import { type Operation, ranTwiceError, type Yielded } from "./instruction.ts";

/**
 * An operation written as a generator, refused a second run as genloop's
 * instructions are: a second `yield*` of a finished generator would
 * evaluate to `undefined`, whatever its type says (a second connection
 * from one `accept()`). `gather` and `race` recognise one given as their
 * list by its class, without iterating it.
 * @internal
 */
export class RunsOnce<T> implements Operation<T> {
  #generator: Generator<Yielded, T> | null;
  /** What the operation does, for messages ("close of stream …"). */
  readonly what: string;

  constructor(generator: Generator<Yielded, T>, what: string) {
    this.#generator = generator;
    this.what = what;
  }

  [Symbol.iterator](): Iterator<Yielded, T, unknown> {
    const generator = this.#generator;
    if (generator === null) {
      throw ranTwiceError(this.what);
    }
    this.#generator = null;
    return generator;
  }
}

/**
 * What `gather` and `race` share: spawn a group of child tasks, observe them
 * all, and resume the waiting task once every child has settled, so no
 * child outlives the operation: not even when the waiting task is
 * cancelled or interrupted, which cancels the children and waits for them.
 *
 * @module
 */

import {
  bodyNameSource,
  describeValue,
  isGeneratorObject,
  mayShareIterator,
  runsItself,
  startBody,
} from "./_body.ts";
import { untakenCircumstance } from "./_error_util.ts";
import { TaskFailedError } from "./errors.ts";
import { Instruction, SharedOperation } from "./instruction.ts";
import { RunsOnce } from "./_runs_once.ts";
import type { Loop } from "./loop.ts";
import type { NameSource, Task, TaskBody, TaskObserver } from "./task.ts";
import { addObserver } from "./task_tree.ts";

/** A group of child tasks that one waiting task observes. */
export abstract class GroupInstruction<T> extends Instruction<T> implements TaskObserver {
  override value: unknown = undefined;
  override done = false;
  override _waitedOnBy: Task<unknown> | null = null;
  readonly #iters: Iterator<unknown, unknown, unknown>[] = [];
  readonly #names: NameSource[] = [];
  /** The children, in input order. */
  protected tasks: Task<unknown>[] = [];
  /** Children not settled yet. */
  protected remaining = 0;
  /** The task waiting on the group; null before perform and once resumed. */
  protected waiter: Task<unknown> | null = null;
  /**
   * Children that failed after the group's outcome was decided (a loser or
   * a sibling whose cleanup threw once cancelled). The outcome stays what
   * it was; these are reported after it, as unjoined failures are.
   */
  protected lateFailures: Task<unknown>[] = [];
  #firstId = 0;
  readonly #where: string;
  // Set once the waiting task was interrupted (see holdsInterrupt): how,
  // for reports of failures nobody takes now. The loop holds its error
  // until every child has settled.
  #interruption: string | null = null;

  constructor(bodies: Iterable<TaskBody<unknown>>, where: string) {
    super();
    this.#where = where;
    if (!isIterable(bodies)) throw notAListError(bodies, where);
    // The slip `gather(worker())` type-checks (a generator is an iterable of
    // what it yields). Iterating it to find out would run the worker's code
    // at the call (its spawns, or all of it, dropping its result), so a
    // generator object or one of genloop's operations (an instruction, or
    // accept(listener)) is never iterated. A collection whose iterator is a
    // generator method is a list like any other.
    if (isGeneratorObject(bodies) || bodies instanceof Instruction || bodies instanceof RunsOnce) {
      throw oneBodyError(bodies, where);
    }
    // A generator object or operation listed twice (the slip
    // `Array(n).fill(worker())`) would be resumed by two tasks in turn, each
    // with the other's wake-up, and return wrong results. Neighbours are
    // compared; a generator listed again further apart (or handed out again
    // by a function or an iterable) is found among the earlier ones (see
    // SeenGenerators). A generator function makes a new generator each time,
    // and an operation listed twice apart is refused when the second task
    // runs it. A shared operation (yieldNow()) serves any number of tasks.
    let previous: unknown = undefined;
    let previousIter: unknown = undefined;
    let seen: SeenGenerators | null = null;
    for (const body of bodies) {
      if (isWaiting(body)) throw yieldedInstructionError(body, where);
      const iter = startBody(body, where);
      const index = this.#iters.length;
      // The same operation (its iterators are made anew, see drive), or the
      // same generator, which an iterable may also hand out each time:
      // compared here, it cannot make a spawn in perform fail.
      const sameOperation = body === previous && !(body instanceof SharedOperation);
      if (sameOperation || iter === previousIter) throw listedTwiceError(index - 1, index, where);
      if (mayShareIterator(body)) {
        const earlier = (seen ??= new SeenGenerators()).add(iter, index);
        if (earlier >= 0) throw listedTwiceError(earlier, index, where);
      }
      // Only a body that is its own iterator (a generator object, an
      // operation such as sleep(5)) can run just once; an iterable makes a
      // new iterator for each task, even if it has a next() of its own.
      previous = runsItself(body) ? body : undefined;
      previousIter = iter;
      this.#iters.push(iter);
      this.#names.push(bodyNameSource(body));
    }
  }

  /** How many bodies the group was given (before it starts). */
  get bodyCount(): number {
    return this.#iters.length;
  }

  perform(task: Task<unknown>, loop: Loop): void {
    const iters = this.#iters;
    if (iters.length === 0) {
      this.finish(task, loop);
      return;
    }
    // Only the first spawn can be refused (a generator object that the
    // waiting task's newest child runs), before any child exists, so there
    // is nothing to undo: each iterator after it was compared with its
    // neighbour at the call.
    for (let i = 0; i < iters.length; i++) {
      const child = loop._spawn(iters[i], this.#names[i], task);
      if (this.tasks.length === 0) this.#firstId = child.id;
      this.tasks.push(child);
      addObserver(child, this);
    }
    this.waiter = task;
    this.remaining = iters.length;
    // The children own the iterators now; the group keeps only the tasks.
    iters.length = 0;
    this.#names.length = 0;
  }

  taskSettled(child: Task<unknown>, loop: Loop): void {
    this.remaining--;
    if (this.#interruption !== null) {
      // Nobody takes the group's outcome: a failure is reported at once.
      if (child._state === "failed") this.#reportUntaken(child, loop);
    } else {
      // Children of one group get consecutive ids: the index is O(1).
      this.childSettled(child, child.id - this.#firstId, loop);
    }
    if (this.remaining > 0) return;
    const waiter = this.waiter!;
    this.waiter = null;
    if (this.#interruption !== null) {
      loop._resumeHeld(waiter);
    } else {
      this.finish(waiter, loop);
      for (const failed of this.lateFailures) {
        loop._reportFailure(failed, `while cancelled, after its ${this.#where} had decided`);
      }
    }
    // An operation object a user keeps must not keep the children, and
    // through them the waiting task, alive.
    this.tasks = [];
    this.lateFailures = [];
    this.forget();
  }

  /** How many tasks the group has, for its description: "1 task", "3 tasks". */
  protected countText(): string {
    const count = this.tasks.length;
    return count === 1 ? "1 task" : `${count} tasks`;
  }

  /** Lets go of the children the subclass recorded, once the group is over. */
  protected abstract forget(): void;

  override holdsInterrupt(task: Task<unknown>, error: unknown, loop: Loop): boolean {
    loop._holdInterrupt(task, error);
    this.#interruption = untakenCircumstance(this.#where, loop);
    this.cancelUnsettled(loop, "the waiting task was interrupted");
    // Failures the group recorded for the outcome it will not deliver now.
    for (const failed of this.undelivered()) this.#reportUntaken(failed, loop);
    return true;
  }

  override heldFailures(): unknown[] {
    // Once interrupted, the group reported them (see holdsInterrupt).
    if (this.#interruption !== null || this.waiter === null) return [];
    return this.undelivered().map((failed) =>
      new TaskFailedError(
        failed.name,
        failed._slot,
        `in a ${this.#where} still waiting for its other children when the run failed`,
      )
    );
  }

  #reportUntaken(failed: Task<unknown>, loop: Loop): void {
    loop._reportUntaken(this.waiter!, failed, this.#interruption!);
  }

  /** Cancels every child that has not settled, all with one error. */
  protected cancelUnsettled(loop: Loop, reason: string): void {
    loop._cancelGroup(this.tasks, reason, `tasks of a ${this.#where}`);
  }

  /**
   * Children that failed and whose error the group holds for its outcome
   * (or reports after it): the waiting task does not see them if it was
   * interrupted.
   */
  protected undelivered(): Task<unknown>[] {
    return this.lateFailures;
  }

  /** Records a settled child (index in input order). */
  protected abstract childSettled(child: Task<unknown>, index: number, loop: Loop): void;
  /** Resumes the waiting task once every child has settled (at once if there were none). */
  protected abstract finish(waiter: Task<unknown>, loop: Loop): void;
}

function isIterable(value: unknown): value is Iterable<TaskBody<unknown>> {
  return value !== null && value !== undefined &&
    typeof (value as Iterable<unknown>)[Symbol.iterator] === "function";
}

/**
 * Whether `body` is an instruction that a `yield*` is waiting on: not a body
 * someone listed, but what an operation object (one whose iterator is a
 * task body) yields when it is iterated as if it were the list. A listed
 * operation is not started yet.
 */
function isWaiting(body: unknown): body is Instruction {
  return body instanceof Instruction && body.value === body;
}

function notAListError(bodies: unknown, where: string): TypeError {
  return new TypeError(
    `${where} expected a list of bodies (an array or another iterable), but got ${
      describeValue(bodies)
    }; pass an array of bodies: ${where.replace("()", "([body, …])")}`,
  );
}

function oneBodyError(body: Iterable<unknown>, where: string): TypeError {
  const what = body instanceof Instruction
    ? body.describe()
    : isGeneratorObject(body)
    ? "a generator object"
    : "an operation";
  return new TypeError(
    `${where} expected a list of bodies, but got one task body (${what}); put it in an array: ${
      where.replace("()", "([body])")
    }${
      body instanceof Instruction
        ? ""
        : `; to pass the bodies a generator yields, spread them: ${
          where.replace("()", "([...bodies()])")
        }`
    }`,
  );
}

function yieldedInstructionError(yielded: Instruction, where: string): TypeError {
  return new TypeError(
    `${where} expected a list of bodies, but got what looks like one task body (iterating it yielded ${yielded.describe()}); put it in an array: ${
      where.replace("()", "([body])")
    }`,
  );
}

// Up to this many, earlier generators are found by a scan: cheaper than a
// Map for the few bodies most groups have.
const SCAN_LIMIT = 16;

/**
 * The generators of a group's bodies that another body may hand out again,
 * with their places in the list. A scan while they are few; a Map, made
 * once, beyond.
 */
class SeenGenerators {
  #iters: unknown[] = [];
  #indexes: number[] = [];
  #map: Map<unknown, number> | null = null;

  /** Records `iter` at `index`; returns the place it had already, or -1. */
  add(iter: unknown, index: number): number {
    const map = this.#map;
    if (map !== null) {
      const earlier = map.get(iter);
      if (earlier !== undefined) return earlier;
      map.set(iter, index);
      return -1;
    }
    const iters = this.#iters;
    const at = iters.indexOf(iter);
    if (at >= 0) return this.#indexes[at];
    iters.push(iter);
    this.#indexes.push(index);
    if (iters.length === SCAN_LIMIT) {
      this.#map = new Map(iters.map((seen, i) => [seen, this.#indexes[i]]));
    }
    return -1;
  }
}

function listedTwiceError(first: number, second: number, where: string): TypeError {
  return new TypeError(
    `${where} was given the same generator object or operation as bodies #${first} and #${second}; it can run only once: give each body its own (Array(n).fill(worker()) repeats one; Array.from({ length: n }, () => worker()) does not)`,
  );
}

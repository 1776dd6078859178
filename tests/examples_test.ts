import { assert, assertEquals, assertGreaterOrEqual, assertMatch } from "@std/assert";

const ROOT = new URL("../", import.meta.url);

/**
 * Run examples through the same import map as this test run: the offline
 * stand-in when `@std/assert` resolves into tests/offline, else deno.json's.
 */
function importMapArgs(): string[] {
  const resolved = import.meta.resolve("@std/assert");
  if (!resolved.includes("/tests/offline/")) return [];
  return [`--import-map=${new URL("tests/offline/import_map.json", ROOT).pathname}`];
}

async function runExample(
  name: string,
  options: { flags?: string[]; args?: string[] } = {},
): Promise<string> {
  const path = new URL(`examples/${name}`, ROOT).pathname;
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", ...importMapArgs(), ...(options.flags ?? []), path, ...(options.args ?? [])],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const errors = new TextDecoder().decode(stderr);
  assertEquals(code, 0, `examples/${name} failed:\n${errors}`);
  return new TextDecoder().decode(stdout);
}

const lines = (text: string): string[] => text.trimEnd().split("\n");

Deno.test("examples/01_generators.ts prints the tutorial's generate_numbers session", async () => {
  assertEquals(lines(await runExample("01_generators.ts")), [
    "starting generating numbers...",
    "0",
    "1",
    "2",
    "StopIteration",
  ]);
});

Deno.test("examples/02_coroutines.ts prints the tutorial's compare_numbers session", async () => {
  assertEquals(lines(await runExample("02_coroutines.ts")), [
    "Does input number less than 5 ?",
    "yes!",
    "no!",
  ]);
});

Deno.test("examples/03_simple_loop.ts prints the tutorial's console log: two identical blocks", async () => {
  const block = [
    "Resume coroutine.",
    "hey, hello world!",
    "hey, hello world!",
    "hey, hello world!",
    "Finished coroutine.",
  ];
  assertEquals(lines(await runExample("03_simple_loop.ts")), [...block, ...block]);
});

Deno.test("examples/04_gather.ts interleaves tasks and returns results in input order", async () => {
  assertEquals(lines(await runExample("04_gather.ts")), [
    "main spawned solo and goes on at once",
    "solo: 1",
    "solo: done",
    "joined: solo counted 1",
    "A: 3",
    "B: 1",
    "C: 2",
    "A: 2",
    "B: done",
    "C: 1",
    "A: 1",
    "C: done",
    "A: done",
    '[ "A counted 3", "B counted 1", "C counted 2" ]',
  ]);
});

Deno.test("examples/05_sleep_timers.ts wakes in deadline order, identically on both clocks", async () => {
  const output = lines(await runExample("05_sleep_timers.ts"));
  assertEquals(output[0], "Real clock:");
  assertEquals(output[5], "Virtual clock (same program):");
  const wake = /^ {2}t\+(\d+) ms {2}(\w) woke \(slept (\d+) ms\)$/;
  const parse = (line: string) => {
    const match = line.match(wake);
    assert(match, `unexpected line: ${line}`);
    return { offset: Number(match[1]), name: match[2], asked: Number(match[3]) };
  };
  const real = output.slice(1, 5).map(parse);
  const virtual = output.slice(6, 10).map(parse);
  assertEquals(real.map((r) => r.name), ["b", "c", "d", "a"]);
  assertEquals(virtual.map((v) => v.name), ["b", "c", "d", "a"]);
  assertEquals(virtual.map((v) => v.offset), [100, 200, 200, 300]);
  for (const r of real) assertGreaterOrEqual(r.offset, r.asked, `${r.name} woke early`);
  assertMatch(output[10], /^ {2}300 ms of virtual time in /);
});

Deno.test("examples/06_streams.ts prints the tutorial's stream log: B before A", async () => {
  assertEquals(lines(await runExample("06_streams.ts")), [
    "Stream B writing Hello World!...",
    "Stream A is reading...",
  ]);
});

Deno.test("examples/08_echo_client.ts --with-server: the demo verifies every byte and exits", async () => {
  const output = await runExample("08_echo_client.ts", {
    flags: ["--allow-net=127.0.0.1"],
    args: ["--with-server"],
  });
  assertMatch(output, /genloop echo demo/);
  assertMatch(output, /connections {6}50\n/);
  assertMatch(output, /messages {9}10000 \(every byte checked\)/);
  assertMatch(output, /round trips\/s {4}[\d,]+/);
});

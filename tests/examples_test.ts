import { assert, assertEquals, assertGreaterOrEqual, assertMatch } from "@std/assert";

const ROOT = new URL("../", import.meta.url);

const OFFLINE_DIR = new URL("tests/offline/", ROOT);

/**
 * Run examples through the same import map as this test run: the offline
 * stand-in when `@std/assert` resolves to a file inside tests/offline (this
 * run used tests/offline/import_map.json), else deno.json's own imports.
 */
function importMapArgs(): string[] {
  const resolved = import.meta.resolve("@std/assert");
  if (!resolved.startsWith(OFFLINE_DIR.href)) return [];
  return [`--import-map=${new URL("import_map.json", OFFLINE_DIR).pathname}`];
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

Deno.test("examples/02_coroutines.ts prints the tutorial's compare_numbers and asyncio task sessions", async () => {
  assertEquals(lines(await runExample("02_coroutines.ts")), [
    "Does input number less than 5 ?",
    "yes!",
    "no!",
    "hey, hello world!",
    "StopIteration",
    "hey, hello world!",
    "Catch coroutine's exception hey, hello world!",
  ]);
});

Deno.test("examples/03_simple_loop.ts prints the tutorial's console log", async () => {
  const block = [
    "Resume coroutine.",
    "hey, hello world!",
    "hey, hello world!",
    "hey, hello world!",
    "Finished coroutine.",
  ];
  assertEquals(lines(await runExample("03_simple_loop.ts")), [
    ...block,
    "Exit the Loop..",
    ...block,
    ...block,
  ]);
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
  assertEquals(output.length, 11, output.join("\n"));
  assertEquals(output[0], "Real clock (offsets rounded to 10 ms):");
  assertEquals(output[5], "Virtual clock, same program (exact loop.time() offsets):");
  // Virtual time is exact: these lines never vary.
  assertEquals(output.slice(6, 10), [
    "  t+100ms  task b woke (asked 100 ms)",
    "  t+200ms  task c woke (asked 200 ms)",
    "  t+200ms  task d woke (asked 200 ms)",
    "  t+300ms  task a woke (asked 300 ms)",
  ]);
  // Real offsets vary from run to run: only the order is fixed, and no task
  // may wake before its delay has passed.
  const wake = /^ {2}t\+(\d+)ms {2}task (\w) woke \(asked (\d+) ms\)$/;
  const real = output.slice(1, 5).map((line) => {
    const match = line.match(wake);
    assert(match, `unexpected line: ${line}`);
    return { offset: Number(match[1]), name: match[2], asked: Number(match[3]) };
  });
  assertEquals(real.map((r) => r.name), ["b", "c", "d", "a"]);
  for (const r of real) assertGreaterOrEqual(r.offset, r.asked, `task ${r.name} woke early`);
  assertMatch(
    output[10],
    /^ {2}finished at loop\.time\(\) = 300 ms, after (under 50|\d+) ms of wall time$/,
  );
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

Deno.test("examples/07_echo_server.ts: a client that resets its connection ends only that connection", async () => {
  const { echoServer } = await import("../examples/07_echo_server.ts");
  const { CancelledError, Loop } = await import("../mod.ts");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const stats = { connections: 0, bytes: 0, lost: 0 };
  const loop = new Loop();
  let ended = false;
  const serving = loop.runUntilComplete(echoServer(listener, stats))
    .catch((error) => error)
    .finally(() => ended = true);
  let polite: Deno.Conn | undefined;
  try {
    // Sends more than it ever reads, then closes with the echo unread: the
    // kernel answers the server's further writes with a reset.
    const rude = await Deno.connect({ hostname: "127.0.0.1", port });
    for (let i = 0; i < 4; i++) await rude.write(new Uint8Array(256 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 1));
    rude.close();
    while (!ended && stats.lost === 0 && stats.bytes < 1024 * 1024) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    polite = await Deno.connect({ hostname: "127.0.0.1", port });
    await polite.write(new TextEncoder().encode("still serving"));
    const reply = new Uint8Array(64);
    // A server that failed would leave this client unanswered: race them.
    const n = await Promise.race([polite.read(reply), serving.then(() => -1)]);
    assertEquals(new TextDecoder().decode(reply.subarray(0, n ?? 0)), "still serving");
  } finally {
    polite?.close();
    loop.stop("test over");
    assert((await serving) instanceof CancelledError, "the server ended only when stopped");
    listener.close();
  }
  assertEquals(stats.connections, 2);
  assertEquals(stats.lost, 1, "the reset connection was counted as lost");
});

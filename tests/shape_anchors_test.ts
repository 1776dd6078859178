import { assertEquals, assertStringIncludes } from "@std/assert";

// A full GC drops the hidden class of a class none of whose instances is
// alive, and V8 then throws away the optimized code built for it. The
// anchors in src/_shape_anchors.ts keep one instance of each alive; this
// test reads V8's trace of what it throws away to check that a full GC
// between runs no longer costs the loop its optimized code.
Deno.test("a full GC between runs does not throw away the loop's optimized code", async () => {
  const probe = new URL("_gc_probe.ts", import.meta.url).pathname;
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc,--trace-deopt", probe],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  const trace = new TextDecoder().decode(stdout);
  // The trace is on: a probe that printed nothing would prove nothing.
  assertStringIncludes(trace, "[bailout");
  const thrownAway = trace.split("\n").filter((line) =>
    line.includes("embedded weak objects cleared")
  );
  assertEquals(thrownAway, []);
});

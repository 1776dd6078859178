/**
 * The echo benchmark's client, run in a Worker: plain async/await, the same
 * code for both servers. On a thread of its own, its cost is not added to
 * the server's, which would pull every ratio towards 1.
 *
 * It answers each request message with one number: round trips per second
 * or MiB per second.
 *
 * @module
 */

/** What the client is asked to measure. */
export type EchoRequest =
  | { kind: "roundTrips"; port: number; connections: number; messages: number; bytes: number }
  | { kind: "streaming"; port: number; total: number; chunk: number };

const HOST = "127.0.0.1";
const MiB = 1024 * 1024;

async function readExactly(conn: Deno.Conn, buffer: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const n = await conn.read(buffer.subarray(offset));
    if (n === null) throw new Error("echo ended early");
    offset += n;
  }
}

/** Round trips per second: many connections, small messages, in lockstep. */
async function roundTrips(
  port: number,
  connections: number,
  messages: number,
  bytes: number,
): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: connections }, async (_, id) => {
    const conn = await Deno.connect({ hostname: HOST, port });
    const message = new Uint8Array(bytes).fill(id & 0xff);
    const reply = new Uint8Array(bytes);
    try {
      for (let i = 0; i < messages; i++) {
        await conn.write(message);
        await readExactly(conn, reply);
        if (reply[bytes - 1] !== (id & 0xff)) throw new Error("wrong echo");
      }
    } finally {
      conn.close();
    }
  }));
  return (connections * messages) / ((performance.now() - start) / 1000);
}

/** MiB/s over one connection: stream `total` bytes in while reading the echo out. */
async function streaming(port: number, total: number, chunkBytes: number): Promise<number> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const chunk = new Uint8Array(chunkBytes).fill(7);
  const start = performance.now();
  const sending = (async () => {
    for (let sent = 0; sent < total; sent += chunkBytes) {
      let offset = 0;
      while (offset < chunk.length) offset += await conn.write(chunk.subarray(offset));
    }
  })();
  const buffer = new Uint8Array(chunkBytes);
  let received = 0;
  try {
    while (received < total) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("stream ended early");
      received += n;
    }
    await sending;
  } finally {
    conn.close();
  }
  return total / MiB / ((performance.now() - start) / 1000);
}

function measure(request: EchoRequest): Promise<number> {
  return request.kind === "roundTrips"
    ? roundTrips(request.port, request.connections, request.messages, request.bytes)
    : streaming(request.port, request.total, request.chunk);
}

// In the Worker: answer each request with its number, or with the error.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<EchoRequest>) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (event) => {
  measure(event.data).then(
    (value) => scope.postMessage({ value }),
    (error) => scope.postMessage({ error: String(error) }),
  );
};

// Fault tests of RedisStore and WebdisStore against real servers this file starts and pauses itself
// (`CLIENT PAUSE`), so no other test file's server is ever paused. Each test is bounded to a few seconds.
//
// - A pause under concurrent reads of many sessions: Webdis hands the replies of requests it gave up on to
//   other clients (see `withOwnWebdis`). No read may ever see another session's record.
// - A write answered 503 while writes are paused must not be applied when the pause ends.
import { after, test } from "node:test";
import { request as httpRequest } from "node:http";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import assert from "node:assert/strict";
import { RedisStore } from "./redis.ts";
import { WebdisStore } from "./webdis.ts";
import { ServerClock } from "./_redis_scripts.ts";
import { faultServer, redisCommand, reportUnavailable, startRedis, startWebdis } from "./_test_servers.ts";
import type { TestServer } from "./_test_servers.ts";
import { SessionManager } from "../core.ts";
import { SessionStoreError } from "../errors.ts";
import type { Store } from "../store.ts";
import { createWrite, updateWrite } from "../testing/store_suite.ts";
import { generateId } from "../_crypto.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the readers saw. */
interface PauseCounts {
  reads: number;
  own: number;
  foreign: number;
  missing: number;
  failed: number;
  /** Failures that were mismatched replies the store caught. */
  caught: number;
  /** Reads of the right record after the pause ended. */
  ownAfter: number;
}

/** One read of one user's own data: what it found. */
type Probe = () => Promise<"own" | "foreign" | "missing">;

/** Probes that each read one user's session (`get`), after writing it. */
async function readProbes(store: Store, users: number): Promise<Probe[]> {
  const keys = Array.from({ length: users }, () => `s1_${generateId()}`);
  for (const [owner, key] of keys.entries()) {
    assert.equal(await store.set(key, createWrite({ owner })), "written");
  }
  return keys.map((key, owner) => async () => {
    const record = await store.get(key);
    return record === undefined ? "missing" : record.data.owner === owner ? "own" : "foreign";
  });
}

/** Probes that each list one user's two sessions (`listByUser`), after writing them. */
async function listProbes(store: Store, users: number): Promise<Probe[]> {
  const run = generateId().slice(0, 8);
  const probes: Probe[] = [];
  for (let owner = 0; owner < users; owner++) {
    const userId = `user-${owner}-${run}`;
    const keys = [`s1_${generateId()}`, `s1_${generateId()}`];
    for (const key of keys) {
      const write = createWrite({ owner });
      write.record.meta.userId = userId;
      assert.equal(await store.set(key, write), "written");
    }
    const own = [...keys].sort().join();
    probes.push(async () => {
      const entries = await store.listByUser!(userId);
      if (entries.some((entry) => entry.meta.userId !== userId)) return "foreign";
      const listed = entries.map((entry) => entry.key).sort().join();
      return listed === own ? "own" : entries.length < 2 ? "missing" : "foreign";
    });
  }
  return probes;
}

/**
 * One loop per probe, probing over and over; `CLIENT PAUSE pauseMs ALL`
 * once, 300 ms in; the loops run on until `afterMs` after the pause ends.
 */
async function pauseUnder(
  probes: Probe[],
  redis: TestServer,
  options: { pauseMs: number; afterMs: number },
): Promise<PauseCounts> {
  const counts: PauseCounts = { reads: 0, own: 0, foreign: 0, missing: 0, failed: 0, caught: 0, ownAfter: 0 };
  let pauseEnds = Number.POSITIVE_INFINITY;
  let stop = false;
  const readers = probes.map(async (probe) => {
    while (!stop) {
      counts.reads++;
      try {
        const found = await probe();
        counts[found]++;
        if (found === "own" && Date.now() > pauseEnds) counts.ownAfter++;
      } catch (error) {
        counts.failed++;
        if (isForeignReply(error)) counts.caught++;
      }
    }
  });
  await sleep(300);
  assert.equal(await redisCommand(redis, `CLIENT PAUSE ${options.pauseMs} ALL`), "+OK");
  pauseEnds = Date.now() + options.pauseMs;
  await sleep(options.pauseMs + options.afterMs);
  stop = true;
  await Promise.all(readers);
  return counts;
}

/** Whether `error` is the store refusing a reply that belongs to another request (as a store call throws it). */
function isForeignReply(error: unknown): boolean {
  return error instanceof Error && /belongs to another request/.test(error.message);
}

/**
 * Runs `body` with a Webdis process of its own, in front of the shared Redis, and stops it after.
 *
 * Every test here that abandons requests (a store timeout under `CLIENT PAUSE`) sends them through its own
 * Webdis. Webdis 0.1.9 (Debian's package) writes the late reply of a request whose client has gone away to
 * the socket number that client had, and the kernel has by then given that number to the next connection
 * Webdis accepted: the reply reaches another client (fixed in Webdis 0.1.20, commit d28dd3e). So a
 * Webdis that abandoned requests may answer any later request on it with another request's reply. That is
 * what the pause tests provoke; no other test's requests, and no step before or after the fault, may meet it.
 */
async function withOwnWebdis<R>(redis: TestServer, body: (url: string) => Promise<R>): Promise<R> {
  const webdis = await startWebdis(redis);
  try {
    return await body(webdis.url);
  } finally {
    await webdis.stop();
  }
}

/**
 * A write times out under `CLIENT PAUSE WRITE`; the session is loaded and written again once the pause is
 * over. `store` carries only the write under the pause (and a read during it), with the short deadline;
 * `calm` carries everything before and after, with a long one, so that a loaded machine (CI runs every
 * suite at once) cannot turn a slow answer into a failure, and (for Webdis) through another Webdis than
 * the write it abandoned (see `withOwnWebdis`).
 */
async function lateWrite(redis: TestServer, store: Store, storeTimeout: number, calm: Store): Promise<void> {
  const manager = new SessionManager({ store, storeTimeout });
  const patient = new SessionManager({ store: calm, storeTimeout: 10 });
  const first = await patient.load({ cookie: null, https: false });
  first.set("n", 1);
  const cookie = (await patient.commit(first))!.split(";")[0];

  const session = await manager.load({ cookie, https: false });
  session.set("n", 2);
  assert.equal(await redisCommand(redis, "CLIENT PAUSE 1200 WRITE"), "+OK");
  // Reads go on while writes are paused: the read script is flagged no-writes.
  const started = Date.now();
  assert.equal((await manager.load({ cookie, https: false })).get("n"), 1, "a read during the pause");
  assert.ok(Date.now() - started < 250, `the read took ${Date.now() - started} ms`);
  const error = await manager.commit(session).then(
    () => assert.fail("the write must time out"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof SessionStoreError, String(error));
  assert.match(error.message, /not applied later/, error.message);

  // A write command waits out the pause, and Redis runs the clients the pause held in the order they
  // came: once this one is answered, the timed-out write has had its turn.
  assert.equal(await redisCommand(redis, `DEL late_pause_probe`, 10_000), ":0");
  const after = await patient.load({ cookie, https: false });
  assert.equal(after.get("n"), 1, "the write answered 503 was refused by Redis when the pause ended");
  after.set("n", 3);
  await patient.commit(after);
  assert.equal((await patient.load({ cookie, https: false })).get("n"), 3, "writes work again");
}

/** One HTTP answer, as Webdis gave it. */
interface Answer {
  status: number;
  body: Buffer;
}

/** Sends one request on to `target` (a fresh connection, closed after) and resolves to Webdis's answer. */
function forward(target: URL, request: IncomingMessage, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": request.headers["content-type"] ?? "text/plain" };
    const out = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: request.url,
        headers,
        agent: false,
      },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", () => resolve({ status: answer.statusCode ?? 502, body: Buffer.concat(chunks) }));
        answer.on("error", reject);
      },
    );
    out.on("error", reject);
    out.end(body);
  });
}

/**
 * A proxy in front of Webdis whose first client connection is out of step, as a connection that Webdis 0.1.9
 * wrote another request's late reply to is (see `withOwnWebdis`): it answers that connection's first request
 * with `stale` (a Webdis JSON body) and each later request with the reply to the one before.
 * A request that asks for `Connection: close` gets the same, and the connection is closed after it. Every
 * other connection is passed through in step. The fault is injected here rather than provoked, because
 * whether the real one lasts depends on how a runtime's fetch reads the extra reply (on Deno it lasted).
 */
async function outOfStepProxy(
  webdisUrl: string,
  stale: unknown,
): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(webdisUrl);
  let outOfStep: Socket | undefined;
  let owed: Answer = { status: 200, body: Buffer.from(JSON.stringify(stale)) };
  return await faultServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", async () => {
      outOfStep ??= request.socket;
      let answer: Answer;
      try {
        answer = await forward(target, request, Buffer.concat(chunks));
      } catch {
        answer = { status: 502, body: Buffer.from("Webdis did not answer the proxy") };
      }
      let sent = answer;
      if (request.socket === outOfStep) [sent, owed] = [owed, answer];
      response.writeHead(sent.status, { "content-type": "application/json" });
      response.end(sent.body);
    });
  });
}

let servers: { redis: TestServer; webdis: TestServer } | undefined;
let unavailable: string | undefined;
try {
  const redis = await startRedis();
  try {
    servers = { redis, webdis: await startWebdis(redis) };
  } catch (error) {
    await redis.stop();
    throw error;
  }
} catch (error) {
  unavailable = `cannot start redis-server and webdis (apt-get install redis-server webdis): ${
    (error as Error).message
  }`;
}

test("ServerClock: the offset from the best sample, less its uncertainty; a contradicting sample wins", () => {
  const clock = new ServerClock();
  assert.equal(clock.serverTimeNotAfter(1_000), 1_000, "no sample: the clocks are taken to agree");
  clock.observe(1_000, 1_010, 6_000); // server 5 s ahead, round trip 10 ms
  const coarse = clock.serverTimeNotAfter(2_000);
  assert.ok(coarse <= 2_000 + 4_990 && coarse >= 2_000 + 4_990 - 12, `coarse ${coarse}`);
  clock.observe(1_100, 1_101, 6_100); // a 1 ms round trip: more certain
  const fine = clock.serverTimeNotAfter(2_000);
  assert.ok(fine > coarse && fine <= 2_000 + 5_000 - 1, `fine ${fine}`);
  clock.observe(1_200, 1_260, 6_200); // a slow reply teaches nothing new
  assert.equal(clock.serverTimeNotAfter(2_000), fine);
  clock.observe(1_300, 1_301, 1_300); // the server's clock was stepped back 5 s
  const stepped = clock.serverTimeNotAfter(2_000);
  assert.ok(stepped <= 2_000 && stepped >= 1_997, `stepped ${stepped}`);
});

if (servers === undefined) {
  reportUnavailable("Redis fault tests", unavailable!);
} else {
  const { redis, webdis } = servers;
  after(async () => {
    await webdis.stop();
    await redis.stop();
  });

  test("WebdisStore: a Redis pause under concurrent reads of 40 sessions never serves a foreign record", async () => {
    const counts = await withOwnWebdis(redis, async (url) => {
      const store = new WebdisStore({ url, keyPrefix: "pause_", timeoutMs: 300 });
      return await pauseUnder(await readProbes(store, 40), redis, { pauseMs: 1500, afterMs: 1500 });
    });
    console.log(`WebdisStore under CLIENT PAUSE: ${JSON.stringify(counts)}`);
    assert.equal(counts.foreign, 0, "no read ever returned another session's record");
    assert.equal(counts.missing, 0, "no read of a live session answered 'no session'");
    assert.ok(counts.failed >= 40, "the reads in flight during the pause timed out (503)");
    assert.ok(counts.ownAfter >= 40, "reads work again once the pause is over");
  });

  test("WebdisStore: a Redis pause under concurrent listings of 40 users never lists a foreign session", async () => {
    const counts = await withOwnWebdis(redis, async (url) => {
      const store = new WebdisStore({ url, keyPrefix: "pause_", timeoutMs: 300 });
      return await pauseUnder(await listProbes(store, 40), redis, { pauseMs: 1500, afterMs: 1500 });
    });
    console.log(`WebdisStore listings under CLIENT PAUSE: ${JSON.stringify(counts)}`);
    assert.equal(counts.foreign, 0, "no listing ever answered another user's sessions");
    assert.equal(counts.missing, 0, "no listing left out a live session");
    assert.ok(counts.failed >= 40, "the listings in flight during the pause timed out (503)");
    assert.ok(counts.ownAfter >= 40, "listings work again once the pause is over");
  });

  test("RedisStore: a Redis pause under concurrent reads of 40 sessions never serves a foreign record", async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: "pause_", timeoutMs: 300 });
    await store.init();
    try {
      const counts = await pauseUnder(await readProbes(store, 40), redis, { pauseMs: 1500, afterMs: 1000 });
      assert.equal(counts.foreign, 0);
      assert.equal(counts.missing, 0);
      assert.ok(counts.failed >= 40, "the reads in flight during the pause timed out (503)");
      assert.ok(counts.ownAfter >= 40, "reads work again once the pause is over");
    } finally {
      await store.close();
    }
  });

  test("RedisStore: a write answered 503 during CLIENT PAUSE WRITE is not applied when the pause ends", async () => {
    // The core's deadline is the shorter: storeTimeout 0.3 s, the store's own 5 s.
    const store = new RedisStore({ url: redis.url, keyPrefix: "late_" });
    await store.init();
    try {
      await lateWrite(redis, store, 0.3, store);
    } finally {
      await store.close();
    }
  });

  test("WebdisStore: a write answered 503 during CLIENT PAUSE WRITE is not applied when the pause ends", async () => {
    // The store's own deadline is the shorter: timeoutMs 300, storeTimeout 5 s.
    await withOwnWebdis(redis, async (url) => {
      const store = new WebdisStore({ url, keyPrefix: "late_", timeoutMs: 300 });
      await lateWrite(redis, store, 5, new WebdisStore({ url: webdis.url, keyPrefix: "late_" }));
    });
  });

  for (
    const [stale, what] of [
      [{ EVALSHA: ["stale.0", "00", 0] }, "another request's reply"],
      [{ EVAL: ["stale.0", "00", 0] }, "another command's reply"],
    ] as const
  ) {
    test(`WebdisStore: a connection out of step (${what}) is closed after one more wrong reply`, async () => {
      const calm = new WebdisStore({ url: webdis.url, keyPrefix: "step_" });
      const key = `s1_${generateId()}`;
      assert.equal(await calm.set(key, createWrite({ n: 1 })), "written");
      // Redis caches the read script now: the replies the proxy holds back are reads' own, not NOSCRIPT.
      assert.equal((await calm.get(key))?.data.n, 1);
      const proxy = await outOfStepProxy(webdis.url, stale);
      try {
        const store = new WebdisStore({ url: proxy.url, keyPrefix: "step_" });
        const seen: string[] = [];
        for (let i = 0; i < 12; i++) {
          seen.push(
            await store.get(key).then(
              (record) => record?.data.n === 1 ? "own" : `wrong ${JSON.stringify(record)}`,
              (error: unknown) =>
                isForeignReply(error) || /without a "EVALSHA" reply/.test(String(error))
                  ? "refused"
                  : String(error),
            ),
          );
        }
        // The first reply is the stale one. The next 8 reads ask for `Connection: close`: the first of them
        // sent over the out-of-step connection (the second read on Deno, the third on Node) gets the first
        // read's reply, and the connection is closed after it. Without the close, every read over that
        // connection was refused (on Deno, all 12).
        assert.equal(seen[0], "refused", "the stale reply is refused");
        const refused = seen.flatMap((read, i) => read === "refused" ? [i] : []);
        assert.equal(refused.length, 2, seen.join());
        assert.ok(refused[1] <= 8, `the second wrong reply came within the 8 closing reads: ${seen.join()}`);
        assert.ok(seen.every((read) => read === "own" || read === "refused"), seen.join());
      } finally {
        await proxy.close();
      }
    });
  }

  test("RedisStore: a write whose deadline has passed is refused before it is sent", async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: "late_" });
    await store.init();
    try {
      const key = `s1_${generateId()}`;
      await assert.rejects(
        store.set(key, { ...createWrite({ a: 1 }), deadline: Date.now() - 1 }),
        /deadline passed before it was sent/,
      );
      assert.equal(await store.get(key), undefined);
      assert.equal(
        await store.set(key, { ...createWrite({ a: 1 }), deadline: Date.now() + 5_000 }),
        "written",
      );
      assert.equal(
        await store.set(key, { ...updateWrite({}, { set: { b: 2 } }), deadline: Date.now() + 5_000 }),
        "written",
      );
      assert.deepEqual((await store.get(key))?.data, { a: 1, b: 2 });
    } finally {
      await store.close();
    }
  });
}

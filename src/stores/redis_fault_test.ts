// Fault tests of RedisStore and WebdisStore against real servers this file starts and pauses itself
// (`CLIENT PAUSE`), so no other test file's server is ever paused. Each test is bounded to a few seconds.
//
// - A pause under concurrent reads of many sessions: Webdis hands the replies of requests it gave up on to
//   later requests on the same Redis connection. No read may ever see another session's record.
// - A write answered 503 while writes are paused must not be applied when the pause ends.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { RedisStore } from "./redis.ts";
import { WebdisStore } from "./webdis.ts";
import { ServerClock } from "./_redis_scripts.ts";
import { redisCommand, reportUnavailable, startRedis, startWebdis } from "./_test_servers.ts";
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
    assert.equal(await withOwnReply(async () => await store.set(key, createWrite({ owner }))), "written");
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
      assert.equal(await withOwnReply(async () => await store.set(key, write)), "written");
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
  await settle(probes);
  return counts;
}

/**
 * Probes until 20 in a row answer their own data (for at most 5 s), so a late reply of this test's timed-out
 * requests is not handed to the next test's first command. What the probes see here is not counted.
 */
async function settle(probes: Probe[]): Promise<void> {
  const until = Date.now() + 5_000;
  let clean = 0;
  for (let i = 0; clean < 20 && Date.now() < until; i++) {
    const found = await probes[i % probes.length]().catch(() => "failed");
    clean = found === "own" ? clean + 1 : 0;
  }
}

/** Whether `error` is the store refusing a reply that belongs to another request (as a store call throws it). */
function isForeignReply(error: unknown): boolean {
  return error instanceof Error && /belongs to another request/.test(error.message);
}

/**
 * Whether `error` is one of the two ways a Webdis reply meant for another request shows (as a store call throws
 * it): the store refusing a reply that belongs to another request, or this request's own reply never coming
 * because Webdis handed it elsewhere (the store's timeout, seen in CI on Deno on the load after a write pause).
 * A timeout of any other store is not one of them.
 */
function isMisroutedReply(error: unknown): boolean {
  return isForeignReply(error) ||
    (error instanceof Error && /Webdis did not answer within/.test(error.message));
}

/** The same through the core, which reports every store failure as a `SessionStoreError` (503). */
function isMisroutedReplyThroughCore(error: unknown): boolean {
  return error instanceof SessionStoreError && isMisroutedReply(error);
}

/**
 * Runs `call` (a store call, or a load with `isMisroutedReplyThroughCore`) again when its reply was another
 * request's. After a pause, Webdis may hand the late reply of a request that timed out, in this test or the
 * one before, to the next command on the same Redis connection, and that command's own reply to nobody (seen
 * in CI on Deno: the first on a load and on a setup write, the second on a load). The store refuses the first
 * and times out on the second, as it must, and the caller asks again. Only those two are retried, at most four
 * times; what the call answers is then asserted as before. Writes retried are creates of a fresh key: applying
 * one twice leaves the same record.
 */
async function withOwnReply<R>(call: () => Promise<R>, refused = isMisroutedReply): Promise<R> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!refused(error) || attempt === 5) throw error;
    }
  }
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
    const store = new WebdisStore({ url: webdis.url, keyPrefix: "pause_", timeoutMs: 300 });
    const counts = await pauseUnder(await readProbes(store, 40), redis, { pauseMs: 1500, afterMs: 1500 });
    console.log(`WebdisStore under CLIENT PAUSE: ${JSON.stringify(counts)}`);
    assert.equal(counts.foreign, 0, "no read ever returned another session's record");
    assert.equal(counts.missing, 0, "no read of a live session answered 'no session'");
    assert.ok(counts.failed >= 40, "the reads in flight during the pause timed out (503)");
    assert.ok(counts.ownAfter >= 40, "reads work again once the pause is over");
  });

  test("WebdisStore: a Redis pause under concurrent listings of 40 users never lists a foreign session", async () => {
    const store = new WebdisStore({ url: webdis.url, keyPrefix: "pause_", timeoutMs: 300 });
    const counts = await pauseUnder(await listProbes(store, 40), redis, { pauseMs: 1500, afterMs: 1500 });
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

  for (
    const [name, open] of [
      // The core's deadline is the shorter: storeTimeout 0.3 s, the store's own 5 s.
      ["RedisStore", async () => {
        const store = new RedisStore({ url: redis.url, keyPrefix: "late_" });
        await store.init();
        return { store, storeTimeout: 0.3, calm: store };
      }],
      // The store's own deadline is the shorter: timeoutMs 300, storeTimeout 5 s.
      ["WebdisStore", () =>
        Promise.resolve({
          store: new WebdisStore({ url: webdis.url, keyPrefix: "late_", timeoutMs: 300 }),
          storeTimeout: 5,
          calm: new WebdisStore({ url: webdis.url, keyPrefix: "late_" }),
        })],
    ] as const
  ) {
    test(`${name}: a write answered 503 during CLIENT PAUSE WRITE is not applied when the pause ends`, async () => {
      const { store, storeTimeout, calm } = await open();
      // Only the write under the pause runs on the short deadline: before and after it, a loaded machine
      // (CI runs every suite at once) must not turn a slow answer into a failure of this test.
      const patient = new SessionManager({ store: calm, storeTimeout: 10 });
      try {
        const manager = new SessionManager({ store, storeTimeout });
        const first = await patient.load({ cookie: null, https: false });
        first.set("n", 1);
        const cookie = (await patient.commit(first))!.split(";")[0];

        const session = await manager.load({ cookie, https: false });
        session.set("n", 2);
        assert.equal(await redisCommand(redis, "CLIENT PAUSE 1200 WRITE"), "+OK");
        const pauseEnds = Date.now() + 1200;
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

        await sleep(Math.max(0, pauseEnds - Date.now()) + 300);
        // Every load after the pause: Webdis may still misroute a reply.
        const loadAfterPause = () =>
          withOwnReply(() => patient.load({ cookie, https: false }), isMisroutedReplyThroughCore);
        const after = await loadAfterPause();
        assert.equal(after.get("n"), 1, "the write answered 503 was refused by Redis when the pause ended");
        after.set("n", 3);
        await patient.commit(after);
        assert.equal((await loadAfterPause()).get("n"), 3, "writes work again");
      } finally {
        await store.close?.();
        if (calm !== store) await calm.close?.();
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

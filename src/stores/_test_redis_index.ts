/**
 * Test helper: the per-user index cases of the Redis session store that the
 * shared store suite cannot see (the Redis layout behind the store's back,
 * unicode the Lua side must not choke on, the server's clock), registered for
 * each transport: `RedisStore` on one server, on a Redis Cluster, and
 * `WebdisStore`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { generateId, generateIdInGroup, storageKey, userKey } from "../_crypto.ts";
import type { SessionMeta, Store, StoreWrite } from "../store.ts";
import { createWrite, type TestFunction, updateWrite } from "../testing/store_suite.ts";
import { redisKey, type RedisSessionStore, userRedisKeys } from "./_redis_store.ts";

/** Commands behind the store's back, each sent to the server that holds `key`. */
export interface RawRedis {
  /** Sends `args` to the node serving `key` and resolves to the reply. */
  send(key: string, args: string[]): Promise<unknown>;
  /** Closes the connection. */
  close(): Promise<void> | void;
}

/** How to run the index cases against one Redis store. */
export interface RedisIndexCaseOptions {
  /** The store's name, for test titles. */
  name: string;
  /** A store with `keyPrefix` (closed after the test), with `now` as its clock when given. */
  open: (options?: { now?: () => number }) => Promise<RedisSessionStore>;
  /** The store's key prefix. */
  keyPrefix: string;
  /** Whether the store puts hash tags in keys (Redis Cluster). */
  hashTags: boolean;
  /** A connection for commands behind the store's back. */
  raw: () => Promise<RawRedis>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A storage key for a new session of `userId`, in the user's group when the store groups them. */
function keyOf(store: Store, userId: string): string {
  return storageKey(store.groupsUserSessions ? generateIdInGroup(userKey(userId).slice(3, 5)) : generateId());
}

/** A create logged in as `userId`. */
function loggedIn(userId: string, options: { lifetimeMs?: number; details?: Record<string, unknown> } = {}) {
  const write = createWrite({ n: 1 }, { lifetimeMs: options.lifetimeMs });
  write.record.meta.userId = userId;
  if (options.details !== undefined) write.record.meta.details = options.details;
  return write;
}

/** An update of a record of `userId` (none: `undefined`). */
function updateAs(userId: string | undefined, set: Record<string, unknown>): StoreWrite {
  const write = updateWrite({}, { set });
  if (userId !== undefined) write.record.meta.userId = userId;
  return write;
}

/** The earlier deadline of a meta, as the store keeps it in `exp` and as the index score. */
const deadline = (meta: SessionMeta) => Math.min(meta.expiresAt, meta.absoluteExpiresAt);

/**
 * Registers the Redis per-user index cases with `test`.
 *
 * @param test The runner's `test`.
 * @param options The store, its key layout and a raw connection.
 */
export function redisIndexCases(test: TestFunction, options: RedisIndexCaseOptions): void {
  const { keyPrefix, hashTags } = options;
  const recordKey = (key: string) => redisKey(keyPrefix, key, hashTags);
  const indexKey = (userId: string) => userRedisKeys(keyPrefix, userId, hashTags).index;
  const withStore = (
    title: string,
    body: (store: RedisSessionStore, raw: RawRedis, user: (name: string) => string) => Promise<void>,
    storeOptions?: { now?: () => number },
  ) =>
    test(`${options.name}: per-user index: ${title}`, async () => {
      const store = await options.open(storeOptions);
      const raw = await options.raw();
      // Each case has users of its own: every case shares the key prefix.
      const run = generateId().slice(0, 8);
      try {
        await body(store, raw, (name) => `${name}-${run}`);
      } finally {
        await raw.close();
        await store.close();
      }
    });

  withStore(
    "user ids and login details with NUL, emoji and lone surrogates round-trip through create, update and listing",
    async (store, _raw, user) => {
      // A user-agent cut in the middle of an emoji leaves a lone surrogate; Redis's cjson cannot decode its escape.
      const userId = user("a\u0000b 😀 \ud800|\udfff é");
      const details = {
        ua: "Firefox 😀".slice(0, 9),
        nul: "x\u0000y",
        "k\udc00": [1, "é", { deep: null }],
        n: 1.5,
      };
      const key = keyOf(store, userId);
      const write = loggedIn(userId, { details });
      assert.equal(await store.set(key, write), "written");
      assert.deepEqual((await store.get(key))?.meta, write.record.meta);
      const next = updateAs(userId, { n: 2 });
      next.record.meta.details = details;
      assert.equal(
        await store.set(key, next),
        "written",
        "an update of a record whose meta cjson cannot decode",
      );
      assert.deepEqual((await store.get(key))?.meta, next.record.meta);
      assert.deepEqual(await store.listByUser(userId), [{ key, meta: next.record.meta }]);
      // "\ud800" and "\ufffd" hash alike (UTF-8 turns a lone surrogate into U+FFFD): one index, two users.
      const twin = userId.replace("\ud800", "\ufffd");
      assert.equal(userKey(twin), userKey(userId));
      const twinKey = keyOf(store, twin);
      assert.equal(await store.set(twinKey, loggedIn(twin)), "written");
      assert.deepEqual((await store.listByUser(userId)).map((entry) => entry.key), [key], "never the twin's");
      assert.deepEqual((await store.listByUser(twin)).map((entry) => entry.key), [twinKey]);
    },
  );

  withStore(
    "layout: the record names its index; the index is a sorted set of storage keys scored by deadline, expiring with its last record",
    async (store, raw, user) => {
      const ada = user("ada");
      const index = indexKey(ada);
      assert.equal(index, keyPrefix + (hashTags ? `{s1_${userKey(ada).slice(3, 5)}}` : "") + userKey(ada));
      const [soon, later] = [keyOf(store, ada), keyOf(store, ada)];
      const first = loggedIn(ada, { lifetimeMs: 60_000 });
      const second = loggedIn(ada, { lifetimeMs: 120_000 });
      second.record.meta.absoluteExpiresAt = second.record.meta.expiresAt + 1; // the earlier one counts
      await store.set(soon, first);
      await store.set(later, second);
      assert.deepEqual(
        await raw.send(recordKey(soon), ["HMGET", recordKey(soon), "user", "exp"]),
        [index, String(deadline(first.record.meta))],
      );
      assert.equal(await raw.send(index, ["TYPE", index]), "zset");
      assert.deepEqual(
        (await raw.send(index, ["ZRANGE", index, "0", "-1", "WITHSCORES"]) as unknown[]).flat().map(String),
        [soon, String(deadline(first.record.meta)), later, String(deadline(second.record.meta))],
      );
      const expiry = async () => Number(await raw.send(index, ["PEXPIRETIME", index]));
      assert.equal(
        await expiry(),
        Math.ceil(deadline(second.record.meta)),
        "the index expires with its last record",
      );
      if (hashTags) {
        const slots = await Promise.all(
          [index, recordKey(soon), recordKey(later)].map((key) => raw.send(key, ["CLUSTER", "KEYSLOT", key])),
        );
        assert.equal(new Set(slots).size, 1, `one slot: ${slots}`);
      }
      // An update moves the score and the index's expiry with the record's deadline.
      const extended = updateAs(ada, { n: 2 });
      extended.record.meta.expiresAt = extended.record.meta.absoluteExpiresAt = second.record.meta.expiresAt +
        60_000;
      assert.equal(await store.set(soon, extended), "written");
      assert.equal(Number(await raw.send(index, ["ZSCORE", index, soon])), deadline(extended.record.meta));
      assert.equal(await expiry(), Math.ceil(deadline(extended.record.meta)));
      await store.delete(soon);
      assert.deepEqual(await raw.send(index, ["ZRANGE", index, "0", "-1"]), [later], "delete took it off");
      assert.equal(await expiry(), Math.ceil(deadline(second.record.meta)), "and lowered the index's expiry");
      await store.delete(later);
      assert.equal(await raw.send(index, ["EXISTS", index]), 0, "the last delete removed the index");
      // A record without a user names no index.
      const anonymous = storageKey(generateId());
      await store.set(anonymous, createWrite({ n: 1 }));
      assert.deepEqual(await raw.send(recordKey(anonymous), ["HMGET", recordKey(anonymous), "user"]), [null]);
    },
  );

  withStore(
    "an update cannot change or drop a record's user, nor give one to an anonymous record",
    async (store, _raw, user) => {
      const [ada, bob] = [user("ada"), user("bob")];
      const key = keyOf(store, ada);
      const write = loggedIn(ada);
      await store.set(key, write);
      for (const other of [bob, undefined]) {
        await assert.rejects(store.set(key, updateAs(other, { n: 2 })), /user/, String(other));
      }
      assert.deepEqual(await store.get(key), write.record, "nothing was written");
      assert.deepEqual(await store.listByUser(ada), [{ key, meta: write.record.meta }]);
      assert.deepEqual(await store.listByUser(bob), []);
      const anonymous = keyOf(store, bob); // in bob's group, so only the script can tell
      await store.set(anonymous, createWrite({ n: 1 }));
      await assert.rejects(store.set(anonymous, updateAs(bob, { n: 2 })), /cannot change a session's user/);
      assert.deepEqual(await store.listByUser(bob), []);
    },
  );

  withStore(
    "a listing prunes what expired by the server's clock and members whose record is gone or was recreated for another user",
    async (store, raw, user) => {
      const ada = user("ada");
      const index = indexKey(ada);
      const [short, gone, mine] = [keyOf(store, ada), keyOf(store, ada), keyOf(store, ada)];
      await store.set(short, loggedIn(ada, { lifetimeMs: 200 }));
      await store.set(gone, loggedIn(ada));
      await store.set(mine, loggedIn(ada));
      await raw.send(recordKey(gone), ["DEL", recordKey(gone)]); // behind the store's back
      // Another user in ada's group (in a cluster, a key of ada's group can only hold a record of such a user).
      let bob = user("bob");
      for (let i = 0; userKey(bob).slice(3, 5) !== userKey(ada).slice(3, 5); i++) bob = user(`bob${i}`);
      const bobs = loggedIn(bob);
      await store.set(mine, bobs);
      await sleep(300);
      const card = async () => Number(await raw.send(index, ["ZCARD", index]));
      assert.equal(await card(), 3, "nothing pruned before a listing");
      assert.deepEqual(await store.listByUser(ada), []);
      assert.equal(await raw.send(index, ["EXISTS", index]), 0, "every member pruned, the index removed");
      assert.deepEqual(await store.listByUser(bob), [{ key: mine, meta: bobs.record.meta }]);
      assert.equal(await store.get(short), undefined);
    },
  );

  withStore(
    "a record past its deadline by the app's clock is not listed, and stays indexed while the server's clock says it lives",
    async (store, raw, user) => {
      const ada = user("ada");
      const key = keyOf(store, ada);
      await store.set(key, loggedIn(ada, { lifetimeMs: 60_000 }));
      assert.deepEqual(await store.listByUser(ada), []);
      assert.equal(await store.get(key), undefined);
      assert.equal(Number(await raw.send(indexKey(ada), ["ZCARD", indexKey(ada)])), 1);
    },
    // The app's clock two minutes ahead: the record (one minute) is past its deadline by it, not by Redis's.
    { now: () => Date.now() + 120_000 },
  );

  withStore(
    "a record with a user needs a storage key of the core's shape; nothing is written",
    async (store, raw, user) => {
      const ada = user("ada");
      for (const key of ["s1_a/b", "s1_a\u0000b", "s1_é", "", "s1_" + "a".repeat(62)]) {
        await assert.rejects(store.set(key, loggedIn(ada)), TypeError, JSON.stringify(key));
        assert.equal(await raw.send(recordKey(key), ["EXISTS", recordKey(key)]), 0);
      }
      assert.deepEqual(await store.listByUser(ada), []);
      await assert.rejects(async () => await store.listByUser(""), TypeError);
    },
  );

  withStore(
    "a record written before the index (no exp field) is updated by its meta's deadlines, or gone when they passed",
    async (store, raw) => {
      const [live, expired] = [storageKey(generateId()), storageKey(generateId())];
      const now = Date.now();
      for (const [key, at] of [[live, now + 60_000], [expired, now - 1000]] as const) {
        const meta = JSON.stringify({ createdAt: now - 2000, expiresAt: at, absoluteExpiresAt: at + 1 });
        await raw.send(recordKey(key), ["HSET", recordKey(key), "d:a", "1", "meta", meta]);
        await raw.send(recordKey(key), ["PEXPIREAT", recordKey(key), String(now + 60_000)]);
      }
      assert.equal(await store.set(expired, updateAs(undefined, { b: 2 })), "gone");
      const update = updateAs(undefined, { b: 2 });
      assert.equal(await store.set(live, update), "written");
      assert.deepEqual(await store.get(live), { data: { a: 1, b: 2 }, meta: update.record.meta });
      assert.deepEqual(
        await raw.send(recordKey(live), ["HGET", recordKey(live), "exp"]),
        String(deadline(update.record.meta)),
      );
    },
  );
}

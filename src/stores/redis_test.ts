import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { RedisStore } from "./redis.ts";
import { userRedisKeys } from "./_redis_store.ts";
import { dataField, WRITE_SCRIPT, writeScriptSha1 } from "./_redis_scripts.ts";
import {
  dumpRedis,
  freePort,
  plantCorruptHash,
  redisCommand,
  RedisMonitor,
  redisText,
  rejectsWithin,
  reportUnavailable,
  startRedis,
  testServers,
  waitFor,
} from "./_test_servers.ts";
import { createWrite, storeConformanceSuite, updateWrite } from "../testing/store_suite.ts";
import { redisIndexCases } from "./_test_redis_index.ts";
import { generateId } from "../_crypto.ts";
import process from "node:process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { NEVER } from "../store.ts";

const create = (data: Record<string, unknown>, lifetimeMs?: number, flash?: Record<string, unknown>) =>
  createWrite(data, { lifetimeMs, flash });
const update = (set: Record<string, unknown>) => updateWrite({}, { set });

// Checked in the constructor, before any connection: no Redis needed.
test("RedisStore: unknown option names are refused, with the nearest known name, a hint, or the known ones", () => {
  const client = { sendCommand: () => Promise.resolve(null) };
  const cases: [unknown, string][] = [
    [
      { host: "127.0.0.1", port: 6379, passwrd: "x" },
      'Unknown RedisStore option "passwrd": did you mean "password"?',
    ],
    [
      { host: "127.0.0.1", maxRetries: 3 },
      'Unknown RedisStore option "maxRetries": known options are host, port, url, cluster, username, password, db, tls, keyPrefix, client, waitForReplicas, timeoutMs, now',
    ],
    [{ client, timeout: 200 }, 'Unknown RedisStore option "timeout": renamed "timeoutMs" (milliseconds)'],
    [{ hostname: "127.0.0.1" }, 'Unknown RedisStore option "hostname": the server is "host" (or "url")'],
    [{ host: "127.0.0.1", database: 2 }, 'Unknown RedisStore option "database": the database number is "db"'],
    [
      { cluster: { rootNode: [{ url: "redis://127.0.0.1:7000" }] } },
      'Unknown RedisStore option "cluster.rootNode": did you mean "cluster.rootNodes"?',
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new RedisStore(options as never), { name: "TypeError", message });
  }
  // The version 1 form, and every other name, construct (without connecting: that is init()'s work).
  new RedisStore({ host: "127.0.0.1", port: 6379 });
  new RedisStore({
    url: "redis://127.0.0.1:6379/1",
    username: "u",
    password: "p",
    db: 2,
    tls: { rejectUnauthorized: false },
    keyPrefix: "s_",
    waitForReplicas: 0,
    timeoutMs: 100,
    now: Date.now,
  });
  new RedisStore({ cluster: { rootNodes: [{ url: "redis://127.0.0.1:7000" }] } });
  new RedisStore({ client });
});

const servers = await testServers();

if (servers.unavailable !== undefined) {
  reportUnavailable("RedisStore", servers.unavailable);
} else {
  const redis = servers.redis;
  const run = `t${Date.now().toString(36)}_`;

  const open = async (options: ConstructorParameters<typeof RedisStore>[0] = {}) => {
    const store = new RedisStore({ url: redis.url, keyPrefix: `${run}suite_`, ...options });
    await store.init();
    return store;
  };

  storeConformanceSuite(test, {
    name: "RedisStore",
    createStore: () => open(),
    plantCorrupt: plantCorruptHash(redis, `${run}suite_`),
    dump: dumpRedis(redis, `${run}suite_`),
  });

  // node-redis 5 (the npm alias "redis5", the oldest major `peerDependencies` allows) as the client an app
  // passes in; the store neither connects nor closes such a client, so the test closes it with the store.
  const redis5 = createRequire(import.meta.url)("redis5") as typeof import("redis");
  storeConformanceSuite(test, {
    name: "RedisStore (node-redis 5 client)",
    createStore: async () => {
      const client = await redis5.createClient({ url: redis.url }).connect();
      try {
        const store = new RedisStore({ client, keyPrefix: `${run}redis5_` });
        await store.init();
        const closeStore = store.close.bind(store);
        store.close = async () => {
          try {
            await closeStore();
          } finally {
            client.destroy();
          }
        };
        return store;
      } catch (error) {
        client.destroy();
        throw error;
      }
    },
    plantCorrupt: plantCorruptHash(redis, `${run}redis5_`),
    dump: dumpRedis(redis, `${run}redis5_`),
  });

  test("RedisStore (node-redis 5 client): the alias is the major it names", () => {
    const manifest = new URL("../../node_modules/redis5/package.json", import.meta.url);
    assert.match((JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version, /^5\./);
  });

  redisIndexCases(test, {
    name: "RedisStore",
    open: (options) => open({ keyPrefix: `${run}index_`, ...options }),
    keyPrefix: `${run}index_`,
    hashTags: false,
    raw: async () => {
      const client = await createClient({ url: redis.url }).connect();
      return { send: (_key, args) => client.sendCommand(args), close: () => client.destroy() };
    },
  });

  test("RedisStore: the version 1 form, new RedisStore({ host, port }) then init()", async () => {
    const store = new RedisStore({ host: redis.host, port: redis.port });
    await store.init();
    try {
      const id = generateId();
      assert.equal(await store.set(id, create({ user: "ada" })), "written");
      assert.deepEqual((await store.get(id))?.data, { user: "ada" });
      assert.equal(
        await redisCommand(redis, `EXISTS session_${id}`),
        ":1",
        'default keyPrefix is "session_"',
      );
      await store.delete(id);
    } finally {
      await store.close();
    }
  });

  test("RedisStore: using the store before init() fails with a clear error", async () => {
    const store = new RedisStore({ host: redis.host, port: redis.port });
    const message = "Cannot use RedisStore before init(): call await store.init() first";
    await assert.rejects(store.get(generateId()), { message });
    await assert.rejects(store.set(generateId(), create({ a: 1 })), { message });
    await assert.rejects(store.delete(generateId()), { message });
  });

  test("RedisStore: init() twice connects once; a closed store refuses work", async () => {
    const store = new RedisStore({ url: redis.url });
    await Promise.all([store.init(), store.init()]);
    await store.close();
    await assert.rejects(store.get(generateId()), /closed RedisStore/);
    await store.close();
  });

  test("RedisStore: an existing client is used as it is and not closed by close()", async () => {
    const client = createClient({ url: redis.url });
    client.on("error", () => {});
    await client.connect();
    try {
      const store = new RedisStore({ client, keyPrefix: `${run}client_` });
      const id = generateId();
      assert.equal(await store.set(id, create({ a: 1 })), "written", "usable without init()");
      await store.init();
      assert.deepEqual((await store.get(id))?.data, { a: 1 });
      await store.close();
      await store.disconnect();
      assert.equal(client.isOpen, true);
      assert.equal(await client.ping(), "PONG");
      assert.equal(await client.exists(`${run}client_${id}`), 1);
    } finally {
      await client.close();
    }
  });

  test("RedisStore: invalid options are TypeErrors naming the option", () => {
    assert.throws(() => new RedisStore({ port: 0 }), {
      name: "TypeError",
      message: 'Invalid RedisStore option "port": must be an integer from 1 to 65535',
    });
    assert.throws(() => new RedisStore({ port: 6379.5 }), /"port"/);
    assert.throws(() => new RedisStore({ host: "" }), /"host"/);
    assert.throws(() => new RedisStore({ db: -1 }), /"db"/);
    assert.throws(
      () => new RedisStore({ url: "http://localhost" }),
      /"url": must be a redis:\/\/ or rediss:\/\//,
    );
    assert.throws(() => new RedisStore({ url: "redis://localhost/x" }), /"url"/);
    assert.throws(() => new RedisStore({ timeoutMs: 0 }), /"timeoutMs"/);
    assert.throws(() => new RedisStore({ keyPrefix: 1 as unknown as string }), /"keyPrefix"/);
    assert.throws(() => new RedisStore({ now: 1 as unknown as () => number }), /"now"/);
    const client = { sendCommand: () => Promise.resolve(null) };
    assert.throws(() => new RedisStore({ client, port: 6379 }), /"client": cannot be combined with "port"/);
    assert.throws(() => new RedisStore({ client: {} as typeof client }), /"client"/);
    // The 2.x name of a millisecond option, with or without a client: a clear "no", never a silent default.
    const renamed = { timeout: 200 } as unknown as { timeoutMs: number };
    assert.throws(() => new RedisStore(renamed), /"timeout": renamed "timeoutMs" \(milliseconds\)/);
    assert.throws(() => new RedisStore({ client, ...renamed }), /"timeout": renamed "timeoutMs"/);
  });

  test("RedisStore: url parts (db) apply and explicit options override them", async () => {
    const store = new RedisStore({ url: `redis://127.0.0.1:1/3`, port: redis.port, keyPrefix: `${run}db_` });
    await store.init();
    try {
      const id = generateId();
      await store.set(id, create({ a: 1 }));
      assert.equal(await redisCommand(redis, `EXISTS ${run}db_${id}`), ":0", "not in db 0");
      const db3 = createClient({ url: `${redis.url}/3` });
      await db3.connect();
      assert.equal(await db3.exists(`${run}db_${id}`), 1, "in db 3");
      await db3.close();
    } finally {
      await store.close();
    }
  });

  test("RedisStore: one hash per session, user keys in their own fields, its deadline in exp, native expiry from expiresAt", async () => {
    const store = await open();
    try {
      const id = generateId();
      const write = create({ user: "ada", meta: "a user key" }, 60_000, { notice: "hi" });
      await store.set(id, write);
      const client = createClient({ url: redis.url });
      await client.connect();
      try {
        const key = `${run}suite_${id}`;
        assert.equal(await client.type(key), "hash");
        assert.deepEqual({ ...(await client.hGetAll(key)) }, {
          [dataField("user")]: '"ada"',
          [dataField("meta")]: '"a user key"',
          meta: JSON.stringify(write.record.meta),
          exp: String(write.record.meta.expiresAt),
          flash: '{"notice":"hi"}',
        });
        assert.equal(await client.pExpireTime(key), write.record.meta.expiresAt);
        const pttl = await client.pTTL(key);
        assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
        await store.set(id, update({ x: 1 }));
        const later = await client.pTTL(key);
        assert.ok(later > 55_000, "an update sets expiry again");
      } finally {
        await client.close();
      }
    } finally {
      await store.close();
    }
  });

  test("RedisStore: NEVER reaches Redis as a far expiry that keeps the record", async () => {
    const store = await open();
    try {
      const id = generateId();
      const write = create({ a: 1 });
      write.record.meta.expiresAt = NEVER;
      write.record.meta.absoluteExpiresAt = NEVER;
      await store.set(id, write);
      assert.equal(await redisCommand(redis, `PEXPIRETIME ${run}suite_${id}`), `:${NEVER}`);
      assert.deepEqual((await store.get(id))?.data, { a: 1 });
      await store.delete(id);
    } finally {
      await store.close();
    }
  });

  test("RedisStore: a record that expired by the clock is neither read nor updated, even before Redis evicts it", async () => {
    const store = await open();
    try {
      const id = generateId();
      const write = create({ a: 1 });
      write.record.meta.expiresAt = Date.now() - 1000; // expired meta
      await store.set(id, create({ a: 1 }));
      // Put the expired meta (and its deadline, as the write script keeps it) in place while keeping Redis's own
      // TTL far away.
      const client = createClient({ url: redis.url });
      await client.connect();
      await client.hSet(`${run}suite_${id}`, {
        meta: JSON.stringify(write.record.meta),
        exp: String(write.record.meta.expiresAt),
      });
      await client.close();
      assert.equal(await store.get(id), undefined);
      assert.equal(await store.set(id, update({ b: 2 })), "gone");
    } finally {
      await store.close();
    }
  });

  test("RedisStore: the injected clock decides expiry for reads and updates", async () => {
    const id = generateId();
    const writer = await open();
    const later = await open({ now: () => Date.now() + 120_000 });
    try {
      await writer.set(id, create({ a: 1 }, 60_000));
      assert.equal(await later.get(id), undefined);
      assert.equal(await later.set(id, update({ b: 2 })), "gone");
      assert.deepEqual((await writer.get(id))?.data, { a: 1 }, "the refused update wrote nothing");
    } finally {
      await writer.close();
      await later.close();
    }
  });

  test("RedisStore: one round trip per operation (MONITOR): one EVALSHA each on the session's key", async () => {
    const store = await open();
    const monitor = await RedisMonitor.open(redis);
    try {
      const warm = generateId();
      await store.set(warm, create({ warm: true })); // the scripts are cached from here on
      await store.get(warm);
      await store.delete(warm);
      await store.listByUser("ada");
      await monitor.commands();

      const id = generateId();
      const key = `${run}suite_${id}`;
      const topLevel = async () => (await monitor.commands()).filter((c) => c.client !== "lua");

      const step = async (operation: () => Promise<unknown>, name: string, keys = [key]) => {
        await operation();
        const commands = await topLevel();
        assert.deepEqual(
          commands.map((c) => [c.args[0].toUpperCase(), ...c.args.slice(2, 3 + keys.length)]),
          [["EVALSHA", String(keys.length), ...keys]],
          name,
        );
      };
      await step(() => store.set(id, create({ a: 1 })), "create");
      await step(() => store.get(id), "get");
      await step(() => store.set(id, update({ b: 2 })), "update");
      await step(() => store.delete(id), "delete");
      // A session with a user: its index is the script's second key; a listing is one script on the index.
      const index = userRedisKeys(`${run}suite_`, "ada", false).index;
      const loggedIn = create({ a: 1 });
      loggedIn.record.meta.userId = "ada";
      const userUpdate = update({ b: 2 });
      userUpdate.record.meta.userId = "ada";
      await step(() => store.set(id, loggedIn), "create with a user", [key, index]);
      await step(() => store.set(id, userUpdate), "update with a user", [key, index]);
      await step(() => store.listByUser("ada"), "list", [index]);
      await step(() => store.delete(id), "delete with a user");
    } finally {
      monitor.close();
      await store.close();
    }
  });

  test("RedisStore: after SCRIPT FLUSH a write falls back to EVAL once, then EVALSHA works again", async () => {
    const store = await open();
    const monitor = await RedisMonitor.open(redis);
    try {
      assert.equal(await redisCommand(redis, "SCRIPT FLUSH"), "+OK");
      await monitor.commands();
      const id = generateId();
      assert.equal(await store.set(id, create({ a: 1 })), "written");
      const first = (await monitor.commands()).filter((c) => c.client !== "lua").map((c) =>
        c.args[0].toUpperCase()
      );
      assert.deepEqual(first, ["EVALSHA", "EVAL"]);
      assert.equal(await store.set(id, update({ b: 2 })), "written");
      const second = (await monitor.commands()).filter((c) => c.client !== "lua").map((c) =>
        c.args[0].toUpperCase()
      );
      assert.deepEqual(second, ["EVALSHA"]);
      assert.deepEqual((await store.get(id))?.data, { a: 1, b: 2 });
      // The list and delete scripts: the same fallback after a flush.
      for (
        const [name, operation] of [["list", () => store.listByUser("ada")], [
          "delete",
          () => store.delete(id),
        ]] as const
      ) {
        assert.equal(await redisCommand(redis, "SCRIPT FLUSH"), "+OK");
        await monitor.commands();
        await operation();
        await operation();
        const sent = (await monitor.commands()).filter((c) => c.client !== "lua").map((c) =>
          c.args[0].toUpperCase()
        );
        assert.deepEqual(sent, ["EVALSHA", "EVAL", "EVALSHA"], name);
      }
      assert.equal(await redisCommand(redis, `SCRIPT EXISTS ${await writeScriptSha1()}`), "*1");
      assert.ok(WRITE_SCRIPT.includes("PEXPIREAT"));
    } finally {
      monitor.close();
      await store.close();
    }
  });

  test("RedisStore: init() against a port with nothing listening rejects within 2 s", async () => {
    const port = await freePort();
    const store = new RedisStore({ host: "127.0.0.1", port });
    const error = await rejectsWithin(store.init(), 2000);
    assert.match(error.message, new RegExp(`^Cannot connect to Redis at 127\\.0\\.0\\.1:${port}: `));
    await assert.rejects(store.get(generateId()), /before init\(\)/, "still not initialised");
    await store.close();
  });

  if (servers.canSpawn) {
    test("RedisStore: password and username from options or the URL; a wrong password fails init() without echoing it", async () => {
      const guarded = await startRedis({ args: ["--requirepass", "s3cret/pw"] });
      try {
        const wrong = new RedisStore({ host: guarded.host, port: guarded.port, password: "wrong-pw" });
        const error = await rejectsWithin(wrong.init(), 2000);
        assert.match(error.message, /^Cannot connect to Redis at 127\.0\.0\.1:\d+: /);
        assert.ok(!error.message.includes("wrong-pw"), error.message);
        const stores = [
          new RedisStore({ host: guarded.host, port: guarded.port, password: "s3cret/pw" }),
          new RedisStore({
            host: guarded.host,
            port: guarded.port,
            username: "default",
            password: "s3cret/pw",
          }),
          new RedisStore({
            url: `redis://default:${encodeURIComponent("s3cret/pw")}@${guarded.host}:${guarded.port}`,
          }),
        ];
        for (const store of stores) {
          await store.init();
          const id = generateId();
          assert.equal(await store.set(id, create({ a: 1 })), "written");
          assert.deepEqual((await store.get(id))?.data, { a: 1 });
          await store.close();
        }
      } finally {
        await guarded.stop();
      }
    });

    test("RedisStore: with the server stopped, get/set/delete reject at once; after a restart it reconnects", async () => {
      let own = await startRedis();
      const store = new RedisStore({ host: own.host, port: own.port });
      await store.init();
      try {
        const id = generateId();
        await store.set(id, create({ a: 1 }));
        await own.stop();
        await rejectsWithin(store.get(id), 2000);
        await rejectsWithin(store.set(id, update({ b: 1 })), 2000);
        await rejectsWithin(store.set(generateId(), create({ c: 1 })), 2000);
        await rejectsWithin(store.delete(id), 2000);
        own = await startRedis({ port: own.port });
        const deadline = Date.now() + 5000;
        for (;;) {
          try {
            assert.equal(await store.get(id), undefined, "the new server is empty");
            break;
          } catch (error) {
            if (Date.now() > deadline) throw error;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        assert.equal(await store.set(id, create({ again: 1 })), "written");
      } finally {
        await store.close();
        await own.stop();
      }
    });

    test("RedisStore: waitForReplicas answers a write once its replica has it (WAIT after the write, on its connection)", async () => {
      // Replicas sync at once (the default waits 5 s for more replicas to share one transfer).
      const primary = await startRedis({ args: ["--repl-diskless-sync-delay", "0"] });
      const replica = await startRedis({ args: ["--replicaof", primary.host, String(primary.port)] });
      // 1.5 s: a replica on a loaded machine (CI runs every suite at once) may take a few hundred ms to confirm.
      const store = new RedisStore({ url: primary.url, waitForReplicas: 1, timeoutMs: 1500 });
      await store.init();
      try {
        await waitFor(
          "the replica to sync",
          async () => (await redisText(replica, "INFO replication")).includes("master_link_status:up"),
        );
        const key = `s1_${generateId()}`;
        assert.equal(await store.set(key, create({ warm: 1 })), "written"); // the script is cached from here on
        const monitor = await RedisMonitor.open(primary);
        try {
          await monitor.commands();
          assert.equal(await store.set(key, create({ a: 1 })), "written");
          const commands = (await monitor.commands()).filter((c) => c.client !== "lua").map((c) => c.args[0]);
          assert.deepEqual(commands.map((c) => c.toUpperCase()), ["EVALSHA", "WAIT"]);
        } finally {
          monitor.close();
        }
        assert.equal(await redisCommand(replica, `EXISTS session_${key}`), ":1", "the replica has it");
        process.kill(replica.pid!, "SIGSTOP");
        try {
          await assert.rejects(store.set(key, update({ b: 2 })), {
            message:
              "Redis applied the write, but 0 of 1 replicas confirmed it in time (WAIT): a failover now could lose it",
          });
          await assert.rejects(store.delete(key), {
            message:
              "Redis deleted the session, but 0 of 1 replicas confirmed it in time (WAIT): a failover now could bring it back",
          });
        } finally {
          process.kill(replica.pid!, "SIGCONT");
        }
        assert.equal(await store.set(key, create({ c: 3 })), "written");
        assert.equal(await redisCommand(replica, `EXISTS session_${key}`), ":1");
      } finally {
        await store.close();
        await replica.stop();
        await primary.stop();
      }
    });

    test("RedisStore: a write Redis applied whose WAIT answers after the deadline is reported applied but unconfirmed, never failed", async () => {
      // Fault injection on a real client: WAIT's reply is held back past the store's deadline,
      // as on a loaded machine where the reply to a WAIT that timed out in Redis arrives late.
      const client = createClient({ url: redis.url });
      client.on("error", () => {});
      await client.connect();
      const lateWait = {
        async sendCommand(args: string[]): Promise<unknown> {
          const reply = await client.sendCommand(args);
          if (args[0] === "WAIT") await new Promise((resolve) => setTimeout(resolve, 400));
          return reply;
        },
      };
      const store = new RedisStore({
        client: lateWait,
        keyPrefix: `${run}late_`,
        waitForReplicas: 1,
        timeoutMs: 300,
      });
      try {
        const key = `s1_${generateId()}`;
        await assert.rejects(store.set(key, create({ a: 1 })), {
          message:
            "Redis applied the write, but 0 of 1 replicas confirmed it in time (WAIT): a failover now could lose it",
        });
        assert.equal(await client.exists(`${run}late_${key}`), 1, "the write stands");
        await assert.rejects(store.delete(key), {
          message:
            "Redis deleted the session, but 0 of 1 replicas confirmed it in time (WAIT): a failover now could bring it back",
        });
        assert.equal(await client.exists(`${run}late_${key}`), 0, "the delete stands");
      } finally {
        await store.close();
        await client.close();
      }
    });

    test("RedisStore: a server that stops answering makes commands fail after `timeoutMs`", async () => {
      const own = await startRedis();
      const store = new RedisStore({ host: own.host, port: own.port, timeoutMs: 300 });
      await store.init();
      try {
        process.kill(own.pid!, "SIGSTOP");
        const error = await rejectsWithin(store.get(generateId()), 2000);
        assert.match(error.message, /^Redis EVALSHA failed: no reply within 300 ms$/);
      } finally {
        process.kill(own.pid!, "SIGCONT");
        await store.disconnect();
        await own.stop();
      }
    });
  }
}

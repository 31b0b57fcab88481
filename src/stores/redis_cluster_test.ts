// RedisStore on a Redis Cluster this file starts: three masters with a replica each on free loopback ports
// (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), one cluster for every test here.
// The failover test lives in tests/multi_instance_node_test.ts, which starts a cluster of its own.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { createClientPool, createCluster, createSentinel } from "redis";
import { type RedisClientLike, RedisStore } from "./redis.ts";
import { keySlot, redisKey, slotGroup, userRedisKeys } from "./_redis_store.ts";
import { SCRIPTS } from "./_redis_scripts.ts";
import {
  adminCluster,
  countClusterSessions,
  dumpCluster,
  freePort,
  plantCorruptClusterHash,
  redisCommand,
  RedisMonitor,
  redisText,
  rejectsWithin,
  reportUnavailable,
  testCluster,
  waitFor,
} from "./_test_servers.ts";
import type { TestCluster } from "./_test_servers.ts";
import { CountingProxy } from "./_test_postgres.ts";
import { createWrite, storeConformanceSuite, updateWrite } from "../testing/store_suite.ts";
import { redisIndexCases } from "./_test_redis_index.ts";
import { adapterConformanceSuite } from "../testing/adapter_suite.ts";
import { honoSuiteApp } from "../adapters/_test_hono_app.ts";
import { SessionManager } from "../core.ts";
import { generateId, generateIdInGroup, storageKey, userKey } from "../_crypto.ts";

const create = (data: Record<string, unknown>, lifetimeMs?: number) => createWrite(data, { lifetimeMs });
const update = (set: Record<string, unknown>) => updateWrite({}, { set });
const runtime = "Deno" in globalThis ? "Deno" : "Node";

/** The master that serves `slot` and its replicas, from `CLUSTER NODES`. */
async function shardOf(cluster: TestCluster, slot: number) {
  const nodes = await cluster.topology();
  const master = nodes.find((node) =>
    node.flags.includes("master") && !node.flags.includes("fail") &&
    node.slots.some((range) => {
      const [from, to = from] = range.split("-").map(Number);
      return slot >= from && slot <= to;
    })
  );
  assert.ok(master, `a master serves slot ${slot}`);
  const replicas = nodes.filter((node) => node.masterId === master.id);
  return {
    master,
    replicas,
    others: nodes.filter((node) => node.flags.includes("master") && node !== master),
  };
}

const started = await testCluster({ replicas: 1 });

if (started.unavailable !== undefined) {
  reportUnavailable("RedisStore (Redis Cluster)", started.unavailable);
} else {
  const { cluster } = started;
  const { rootNodes } = cluster;
  const run = `c${Date.now().toString(36)}_`;
  const open = async (options: ConstructorParameters<typeof RedisStore>[0] = {}) => {
    const store = new RedisStore({ cluster: { rootNodes }, keyPrefix: `${run}suite_`, ...options });
    await store.init();
    return store;
  };
  // A cluster client the tests share and pass in as `client`; the stores given it never close it.
  const shared = await adminCluster(cluster);
  let closed = false;
  const closeShared = () => {
    if (!closed) shared.destroy();
    closed = true;
  };
  // Node runs this; Deno skips top-level hooks, so the last test of the file does it too.
  after(closeShared);

  // Every write waits for its replica here: the path of a write and its WAIT on the slot's own node.
  storeConformanceSuite(test, {
    name: `RedisStore (Redis Cluster, waitForReplicas 1, ${runtime})`,
    createStore: () => open({ waitForReplicas: 1 }),
    plantCorrupt: plantCorruptClusterHash(cluster, (key) => redisKey(`${run}suite_`, key, true)),
    dump: dumpCluster(cluster, `${run}suite_`),
  });

  redisIndexCases(test, {
    name: `RedisStore (Redis Cluster, ${runtime})`,
    open: (options) => open({ keyPrefix: `${run}index_`, ...options }),
    keyPrefix: `${run}index_`,
    hashTags: true,
    raw: async () => {
      const admin = await adminCluster(cluster);
      return { send: (key, args) => admin.sendCommand(key, false, args), close: () => admin.destroy() };
    },
  });

  // Through a real framework, on a cluster client passed in (the cluster client's own routing).
  let adapterStores = 0;
  adapterConformanceSuite(test, {
    name: `hono + RedisStore (Redis Cluster client, ${runtime})`,
    createApp: honoSuiteApp,
    createStore(now) {
      const keyPrefix = `${run}adapter_${++adapterStores}_`;
      const store = new RedisStore({ client: shared, keyPrefix, now });
      return { store, count: () => countClusterSessions(cluster, keyPrefix, now()) };
    },
  });

  test("RedisStore (cluster): keys carry their slot group as a hash tag; slots agree with CLUSTER KEYSLOT", async () => {
    const store = await open();
    try {
      const id = generateId();
      const key = storageKey(id);
      const write = create({ user: "ada" }, 60_000);
      assert.equal(await store.set(key, write), "written");
      const name = `${run}suite_{${key.slice(0, 5)}}${key}`;
      assert.equal(redisKey(`${run}suite_`, key, true), name);
      assert.equal(slotGroup(key), key.slice(0, 5));
      const slot = keySlot(name);
      assert.equal(slot, keySlot(`{${key.slice(0, 5)}}`), "the tag alone picks the slot");
      const { master } = await shardOf(cluster, slot);
      const node = cluster.node(master.port);
      assert.equal(await redisCommand(node, `EXISTS ${name}`), ":1", "the key is on the slot's master");
      assert.equal(await redisCommand(node, `PEXPIRETIME ${name}`), `:${write.record.meta.expiresAt}`);
      assert.deepEqual((await store.get(key))?.data, { user: "ada" });
      // Another storage key of the same group (what a later per-user index keeps together) shares the slot.
      const sibling = `${key.slice(0, 5)}${"x".repeat(41)}`;
      assert.equal(keySlot(redisKey(`${run}suite_`, sibling, true)), slot);
      // A key of another shape gets an empty tag ({} is no tag to Redis) and still maps one to one.
      assert.equal(redisKey("p_", "{s1_Ab}s1_Abc", true), "p_{}{s1_Ab}s1_Abc");
      assert.notEqual(redisKey("p_", "{s1_Ab}s1_Abc", true), redisKey("p_", "s1_Abc", true));
      const keys = [
        name,
        "plain",
        "a{b}c",
        "{}x",
        "{",
        "}{a}",
        "a{}{b}",
        "é😀{ü}",
        redisKey("p_", "{s1_Ab}s1_Abc", true),
        ...Array.from({ length: 20 }, () => redisKey("session_", storageKey(generateId()), true)),
      ];
      for (const candidate of keys) {
        const answer = await shared.sendCommand(undefined, true, ["CLUSTER", "KEYSLOT", candidate]);
        assert.equal(keySlot(candidate), Number(answer), candidate);
      }
    } finally {
      await store.close();
    }
  });

  test("RedisStore (cluster): one round trip per operation, and one more for WAIT after a write", async () => {
    // Every node behind a proxy that counts round trips (client bursts answered by the server).
    const topology = await cluster.topology();
    const proxies = new Map<number, CountingProxy>();
    for (const node of topology) proxies.set(node.port, await CountingProxy.start("127.0.0.1", node.port));
    const client = createCluster({
      rootNodes: [{ url: `redis://127.0.0.1:${proxies.get(topology[0].port)!.port}` }],
      nodeAddressMap: (address: string) => {
        const proxy = proxies.get(Number(address.split(":")[1]));
        return proxy && { host: "127.0.0.1", port: proxy.port };
      },
    });
    client.on("error", () => {});
    await client.connect();
    const flights = () => [...proxies.values()].reduce((sum, proxy) => sum + proxy.takeFlights(), 0);
    try {
      // Scripts are cached per node: load them on every master, as a store's first calls there would.
      for (const master of client.masters) {
        const node = await client.nodeClient(master);
        for (const script of Object.values(SCRIPTS)) {
          await node.sendCommand(["SCRIPT", "LOAD", script.source]);
        }
      }
      for (const waitForReplicas of [0, 1]) {
        const store = new RedisStore({ client, keyPrefix: `${run}trips_`, waitForReplicas });
        // A key in the group of a user, so that user's index is on the same master.
        const userId = `trips-${generateId()}`;
        const key = storageKey(generateIdInGroup(userKey(userId).slice(3, 5)));
        const { master } = await shardOf(cluster, keySlot(redisKey(`${run}trips_`, key, true)));
        const monitor = await RedisMonitor.open(cluster.node(master.port));
        try {
          await monitor.commands();
          flights();
          const counted: Record<string, [number, string[]]> = {};
          for (
            const [name, operation] of [
              ["create", () => store.set(key, create({ a: 1 }))],
              ["get", () => store.get(key)],
              ["update", () => store.set(key, update({ b: 2 }))],
              ["list", () => store.listByUser(userId)],
              ["delete", () => store.delete(key)],
            ] as const
          ) {
            await operation();
            const commands = (await monitor.commands()).filter((c) => c.client !== "lua");
            counted[name] = [flights(), commands.map((c) => c.args[0].toUpperCase())];
          }
          const write: [number, string[]] = waitForReplicas ? [2, ["EVALSHA", "WAIT"]] : [1, ["EVALSHA"]];
          assert.deepEqual(counted, {
            create: write,
            get: [1, ["EVALSHA"]],
            update: write,
            list: [1, ["EVALSHA"]],
            delete: write,
          }, `waitForReplicas ${waitForReplicas}`);
        } finally {
          monitor.close();
        }

        // Per request, through the core: a new session, a read, a write.
        const manager = new SessionManager({ store, secret: "cluster-round-trips-secret-0123456789" });
        flights();
        const fresh = await manager.load({ cookie: null, https: false });
        fresh.set("n", 1);
        const cookie = (await manager.commit(fresh))!.split(";")[0];
        const newSession = flights();
        await manager.commit(await manager.load({ cookie, https: false }));
        const read = flights();
        const changed = await manager.load({ cookie, https: false });
        changed.set("n", 2);
        await manager.commit(changed);
        const written = flights();
        console.log(
          `RedisStore (cluster, waitForReplicas ${waitForReplicas}) round trips per request: new session ${newSession}, read ${read}, write ${written}`,
        );
        assert.deepEqual([newSession, read, written], [1 + waitForReplicas, 1, 2 + waitForReplicas]);
      }
    } finally {
      client.destroy();
      for (const proxy of proxies.values()) await proxy.close();
    }
  });

  test("RedisStore (cluster): a user's sessions and index share one slot (CLUSTER KEYSLOT); listing and revoking work through the cluster", async () => {
    const store = await open({ waitForReplicas: 1 });
    try {
      assert.equal(store.groupsUserSessions, true);
      const manager = new SessionManager({ store, secret: "cluster-user-index-secret-0123456789" });
      const userId = `ada-${generateId()}`;
      const cookies: string[] = [];
      for (let i = 0; i < 5; i++) {
        const session = await manager.load({ cookie: null, https: false });
        session.set("n", i);
        await session.logIn(userId, { details: { device: `d${i}` } });
        cookies.push((await manager.commit(session))!.split(";")[0]);
      }
      const entries = await store.listByUser(userId);
      assert.equal(entries.length, 5);
      const index = userRedisKeys(`${run}suite_`, userId, true).index;
      const names = [index, ...entries.map((entry) => redisKey(`${run}suite_`, entry.key, true))];
      const slots = new Set<number>();
      for (const name of names) {
        slots.add(Number(await shared.sendCommand(undefined, true, ["CLUSTER", "KEYSLOT", name])));
      }
      assert.equal(slots.size, 1, `the user's keys are in one slot: ${[...slots]}`);
      const [slot] = slots;
      assert.equal(keySlot(index), slot);
      const node = cluster.node((await shardOf(cluster, slot)).master.port);
      for (const name of names) assert.equal(await redisCommand(node, `EXISTS ${name}`), ":1", name);

      const listed = await manager.sessionsOfUser(userId);
      assert.deepEqual(listed.map((info) => info.details?.device).sort(), ["d0", "d1", "d2", "d3", "d4"]);
      assert.equal(await manager.revokeSession(userId, listed[0].handle), true);
      assert.equal((await manager.sessionsOfUser(userId)).length, 4);
      assert.equal(await manager.logOutEverywhere(userId), 4);
      assert.deepEqual(await manager.sessionsOfUser(userId), []);
      assert.equal(await redisCommand(node, `EXISTS ${index}`), ":0", "the index went with the last session");
      for (const cookie of cookies) {
        const session = await manager.load({ cookie, https: false });
        assert.equal(session.isNew, true, "every revoked browser starts afresh");
      }
    } finally {
      await store.close();
    }
  });

  test("RedisStore (cluster): a record with a user under a key outside the user's group is refused; nothing is written", async () => {
    const store = await open();
    try {
      const userId = `bob-${generateId()}`;
      let key = storageKey(generateId());
      while (slotGroup(key) === `s1_${userKey(userId).slice(3, 5)}`) key = storageKey(generateId());
      const write = create({ a: 1 });
      write.record.meta.userId = userId;
      await assert.rejects(store.set(key, write), { name: "TypeError", message: /in the user's group/ });
      assert.equal(await store.get(key), undefined);
      assert.deepEqual(await store.listByUser(userId), []);
    } finally {
      await store.close();
    }
  });

  test("RedisStore (cluster): with waitForReplicas, a write its replica does not confirm in time rejects", async () => {
    const store = await open({ waitForReplicas: 1, timeoutMs: 500 });
    const key = storageKey(generateId());
    const { replicas, others } = await shardOf(cluster, keySlot(redisKey(`${run}suite_`, key, true)));
    assert.equal(replicas.length, 1);
    const replica = cluster.node(replicas[0].port);
    try {
      assert.equal(await store.set(key, create({ a: 1 })), "written");
      process.kill(replica.pid!, "SIGSTOP");
      let error: Error;
      try {
        error = await rejectsWithin(store.set(key, update({ b: 2 })), 1000);
      } finally {
        process.kill(replica.pid!, "SIGCONT");
      }
      assert.match(
        error.message,
        /^Redis applied the write, but 0 of 1 replicas confirmed it in time \(WAIT\): a failover now could lose it$/,
      );
      // Nothing is hidden: the master has the write (a 503 for a write that may survive or be lost).
      assert.deepEqual((await store.get(key))?.data, { a: 1, b: 2 });
      // Another shard's writes never waited for that replica.
      assert.ok(others.length === 2);
      await waitFor(
        "the replica to answer again",
        async () => (await redisText(replica, "PING")) === "+PONG",
      );
      assert.equal(await store.set(key, update({ c: 3 })), "written");
    } finally {
      await store.close();
    }
  });

  test("RedisStore (cluster): with waitForReplicas, writes follow a slot through ASK (migrating) and MOVED (moved)", async () => {
    const store = await open({ waitForReplicas: 1 });
    const admin = await adminCluster(cluster);
    try {
      // A fresh group: its slot holds no key of this run yet, so it can move without MIGRATE.
      let key = storageKey(generateId());
      let slot = keySlot(redisKey(`${run}suite_`, key, true));
      while (
        Number(await admin.sendCommand(undefined, true, ["CLUSTER", "COUNTKEYSINSLOT", String(slot)])) > 0
      ) {
        key = storageKey(generateId());
        slot = keySlot(redisKey(`${run}suite_`, key, true));
      }
      assert.equal(await store.get(key), undefined, "the store has learnt the slot map");
      const { master, others } = await shardOf(cluster, slot);
      const source = cluster.node(master.port);
      const target = others[0];
      const targetNode = cluster.node(target.port);
      assert.equal(await redisCommand(targetNode, `CLUSTER SETSLOT ${slot} IMPORTING ${master.id}`), "+OK");
      assert.equal(await redisCommand(source, `CLUSTER SETSLOT ${slot} MIGRATING ${target.id}`), "+OK");
      // The source no longer has a key that is not there yet: it answers ASK, and the write goes to the target.
      assert.equal(await store.set(key, create({ via: "ask" })), "written");
      // The source does not have it either: it sends a reader on with ASK too.
      assert.match(await redisCommand(source, `EXISTS ${redisKey(`${run}suite_`, key, true)}`), /^-ASK /);
      for (const node of [targetNode, source, cluster.node(others[1].port)]) {
        assert.equal(await redisCommand(node, `CLUSTER SETSLOT ${slot} NODE ${target.id}`), "+OK");
      }
      // The store's slot map still names the source: MOVED, the map is fetched again, the write goes to the target.
      const second = `${key.slice(0, 5)}${"m".repeat(41)}`;
      assert.equal(await store.set(second, create({ via: "moved" })), "written");
      for (const written of [key, second]) {
        assert.equal(
          await redisCommand(targetNode, `EXISTS ${redisKey(`${run}suite_`, written, true)}`),
          ":1",
        );
      }
      assert.deepEqual((await store.get(key))?.data, { via: "ask" });
      assert.equal(await store.set(key, update({ more: 1 })), "written");
      assert.deepEqual((await store.get(key))?.data, { via: "ask", more: 1 });
    } finally {
      admin.destroy();
      await store.close();
    }
  });

  test("RedisStore (cluster): an existing cluster client is used as it is and not closed by close()", async () => {
    const store = new RedisStore({ client: shared, keyPrefix: `${run}client_` });
    const key = storageKey(generateId());
    assert.equal(await store.set(key, create({ a: 1 })), "written", "usable without init()");
    await store.init();
    assert.deepEqual((await store.get(key))?.data, { a: 1 });
    await store.close();
    await store.disconnect();
    assert.equal(shared.isOpen, true);
    assert.equal(await shared.exists(redisKey(`${run}client_`, key, true)), 1);
  });

  test("RedisStore (cluster): a client of one cluster node (not a cluster client) fails with a clear hint", async () => {
    const node = cluster.nodes[0];
    const store = new RedisStore({ url: node.url, keyPrefix: `${run}single_` });
    await store.init();
    try {
      // Some key lands on another master, which this client cannot follow to.
      let error: Error | undefined;
      for (let i = 0; i < 20 && error === undefined; i++) {
        error = await store.get(storageKey(generateId())).then(() => undefined, (e: Error) => e);
      }
      assert.ok(error, "a key of another master fails");
      assert.match(
        error.message,
        /^Redis EVALSHA failed: MOVED \d+ \S+ \(the server is a Redis Cluster node: use the cluster option or a cluster client\)$/,
      );
    } finally {
      await store.close();
    }
  });

  test("RedisStore (cluster): invalid cluster options are TypeErrors naming the option", async () => {
    const url = rootNodes[0].url;
    const cases: Array<[ConstructorParameters<typeof RedisStore>[0], RegExp]> = [
      [
        { cluster: {} as { rootNodes: [] } },
        /"cluster": needs "rootNodes": a non-empty list of \{ url \} objects/,
      ],
      [{ cluster: { rootNodes: [] } }, /"cluster": needs "rootNodes"/],
      [
        { cluster: { rootNodes: [{ url: "http://127.0.0.1:1" }] } },
        /"cluster\.rootNodes\[0\]\.url": must be a redis:/,
      ],
      [{ cluster: { rootNodes: [{ url }, {} as { url: string }] } }, /"cluster\.rootNodes\[1\]\.url"/],
      [{ cluster: { rootNodes: [{ url: `${url}/2` }] } }, /"cluster": a Redis Cluster has only database 0/],
      [{ cluster: { rootNodes: [{ url }] }, host: "h" }, /"cluster": cannot be combined with "host"/],
      [{ cluster: { rootNodes: [{ url }] }, db: 1 }, /"cluster": cannot be combined with "db"/],
      [{ cluster: { rootNodes: [{ url }] }, keyPrefix: "a{b}_" }, /"keyPrefix": must not contain \{ or \}/],
      [{ client: shared, keyPrefix: "{app}:" }, /"keyPrefix": must not contain \{ or \}/],
      [{ client: shared, cluster: { rootNodes: [{ url }] } }, /"client": cannot be combined with "cluster"/],
      [{ waitForReplicas: -1 }, /"waitForReplicas": must be a non-negative integer/],
      [{ waitForReplicas: 1.5 }, /"waitForReplicas"/],
      [
        // Its sendCommand takes (isReadonly, args): refused at once rather than failing on first use.
        {
          client: createSentinel({
            name: "m",
            sentinelRootNodes: [{ host: "127.0.0.1", port: 1 }],
          }) as unknown as RedisClientLike,
        },
        /"client": a node-redis Sentinel client is not supported/,
      ],
      [
        { client: createClientPool({ url }), waitForReplicas: 1 },
        /"waitForReplicas": needs one connection per write/,
      ],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => new RedisStore(options), { name: "TypeError", message }, JSON.stringify(options));
    }
    // The credentials of a root node's URL are used (an unknown user is refused).
    const store = new RedisStore({
      cluster: { rootNodes: [{ url: url.replace("://", "://nobody:wrong@") }] },
    });
    const error = await rejectsWithin(store.init(), 3000);
    assert.match(error.message, /^Cannot connect to Redis Cluster at 127\.0\.0\.1:\d+: /);
    assert.ok(!error.message.includes("wrong"), error.message);
  });

  test("RedisStore (cluster): init() with no node listening rejects within 2 s", async () => {
    const port = await freePort();
    const store = new RedisStore({ cluster: { rootNodes: [{ url: `redis://127.0.0.1:${port}` }] } });
    const error = await rejectsWithin(store.init(), 2000);
    assert.match(error.message, new RegExp(`^Cannot connect to Redis Cluster at 127\\.0\\.0\\.1:${port}: `));
    await assert.rejects(store.get(generateId()), /before init\(\)/, "still not initialised");
    await store.close();
  });

  test("RedisStore (cluster): close the shared client", () => {
    closeShared();
  });
}

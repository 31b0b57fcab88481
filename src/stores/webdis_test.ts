import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { encodeWebdisArgument, WebdisStore } from "./webdis.ts";
import { RedisStore } from "./redis.ts";
import {
  dumpRedis,
  faultServer,
  freePort,
  type MonitoredCommand,
  plantCorruptHash,
  redisCommand,
  RedisMonitor,
  reportUnavailable,
  startWebdis,
  testServers,
} from "./_test_servers.ts";
import { createWrite, storeConformanceSuite, updateWrite } from "../testing/store_suite.ts";
import { redisIndexCases } from "./_test_redis_index.ts";
import { createClient } from "redis";
import { generateId } from "../_crypto.ts";
import { NEVER } from "../store.ts";
import { keyEcho } from "./_redis_scripts.ts";
import { userRedisKeys } from "./_redis_store.ts";

const create = (data: Record<string, unknown>, lifetimeMs?: number) => createWrite(data, { lifetimeMs });
const update = (set: Record<string, unknown>) => updateWrite({}, { set });

/** Every store operation (the list script's too), each expected to reject with a message matching `pattern`. */
async function allReject(store: WebdisStore, pattern: RegExp) {
  await assert.rejects(store.get(generateId()), { message: pattern }, "get");
  await assert.rejects(store.set(generateId(), create({ a: 1 })), { message: pattern }, "create");
  await assert.rejects(store.set(generateId(), update({ a: 1 })), { message: pattern }, "update");
  await assert.rejects(store.delete(generateId()), { message: pattern }, "delete");
  await assert.rejects(store.listByUser("ada"), { message: pattern }, "list");
}

// Checked in the constructor, before any request: no Webdis needed.
test("WebdisStore: unknown option names are refused, with the nearest known name, a hint, or the known ones", () => {
  const url = "http://127.0.0.1:7379";
  const cases: [unknown, string][] = [
    [{ url, header: {} }, 'Unknown WebdisStore option "header": did you mean "headers"?'],
    [
      { url, host: "127.0.0.1" },
      'Unknown WebdisStore option "host": known options are url, keyPrefix, fetch, headers, timeoutMs, now',
    ],
    [{ url, timeout: 200 }, 'Unknown WebdisStore option "timeout": renamed "timeoutMs" (milliseconds)'],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new WebdisStore(options as never), { name: "TypeError", message });
  }
  // The version 1 form, and every other name, construct.
  new WebdisStore({ url });
  new WebdisStore({ url, keyPrefix: "s_", fetch, headers: {}, timeoutMs: 100, now: Date.now });
});

const servers = await testServers({ webdis: true });

if (servers.unavailable !== undefined) {
  reportUnavailable("WebdisStore", servers.unavailable);
} else {
  const redis = servers.redis;
  const webdis = servers.webdis!;
  const run = `w${Date.now().toString(36)}_`;
  const open = (options: Partial<ConstructorParameters<typeof WebdisStore>[0]> = {}) =>
    new WebdisStore({ url: webdis.url, keyPrefix: `${run}suite_`, ...options });

  storeConformanceSuite(test, {
    name: "WebdisStore",
    createStore: () => open(),
    plantCorrupt: plantCorruptHash(redis, `${run}suite_`),
    dump: dumpRedis(redis, `${run}suite_`),
  });

  redisIndexCases(test, {
    name: "WebdisStore",
    open: (options) => Promise.resolve(open({ keyPrefix: `${run}index_`, ...options })),
    keyPrefix: `${run}index_`,
    hashTags: false,
    raw: async () => {
      const client = await createClient({ url: redis.url }).connect();
      return { send: (_key, args) => client.sendCommand(args), close: () => client.destroy() };
    },
  });

  test("WebdisStore: the version 1 form, new WebdisStore({ url }) with keys prefixed session_", async () => {
    const store = new WebdisStore({ url: webdis.url.replace(/\/$/, "") });
    const id = generateId();
    assert.equal(await store.set(id, create({ user: "ada" })), "written");
    assert.deepEqual((await store.get(id))?.data, { user: "ada" });
    assert.equal(await redisCommand(redis, `EXISTS session_${id}`), ":1");
    await store.delete(id);
    assert.equal(await redisCommand(redis, `EXISTS session_${id}`), ":0");
  });

  test("WebdisStore: arguments are percent-encoded down to [A-Za-z0-9_-]", () => {
    assert.equal(encodeWebdisArgument("a/b?c#d%e"), "a%2Fb%3Fc%23d%25e");
    assert.equal(encodeWebdisArgument("../.json"), "%2E%2E%2F%2Ejson");
    assert.equal(encodeWebdisArgument("!'()*~ +"), "%21%27%28%29%2A%7E%20%2B");
    assert.equal(encodeWebdisArgument("Az09_-"), "Az09_-");
    // Why arguments never go into the URL path: URL parsing resolves ".." segments, even percent-encoded ones.
    assert.equal(new URL("http://h/GET/session_/../../FLUSHALL").pathname, "/FLUSHALL");
    assert.equal(new URL("http://h/GET/%2E%2E/FLUSHALL").pathname, "/FLUSHALL");
  });

  test("WebdisStore: hostile ids and values round-trip byte for byte, touch no other key and send no other command", async () => {
    const prefix = `${run}hostile_`;
    const store = open({ keyPrefix: prefix });
    const bystander = generateId();
    await store.set(bystander, create({ who: "bystander" }));
    const dbsize = await redisCommand(redis, "DBSIZE");
    const hostile = [
      "/",
      "?",
      "#",
      "%",
      "%2F",
      "%2E%2E",
      "..",
      ".",
      ".json",
      ".raw",
      "/../../FLUSHALL",
      `x/../../DEL/${prefix}${bystander}`,
      `../../DEL/${prefix}${bystander}`,
      "a+b c",
      "\u0000nul",
      "é😀\u2028",
    ];
    const monitor = await RedisMonitor.open(redis);
    try {
      const ids = hostile.map((chars) => `${chars}${generateId()}${chars}`);
      for (const [i, id] of ids.entries()) {
        assert.equal(
          await store.set(id, create({ [hostile[i]]: hostile[i], value: `v${hostile.join("")}` })),
          "written",
        );
      }
      for (const [i, id] of ids.entries()) {
        assert.deepEqual(
          (await store.get(id))?.data,
          { [hostile[i]]: hostile[i], value: `v${hostile.join("")}` },
          JSON.stringify(id),
        );
        await store.set(id, update({ more: hostile[i] }));
      }
      for (const id of ids) await store.delete(id);

      const commands: MonitoredCommand[] = (await monitor.commands()).filter((c) => c.client !== "lua");
      const allowed = new Set(["EVALSHA", "EVAL"]);
      const keys = new Set(ids.map((id) => prefix + id));
      for (const { args } of commands) {
        const name = args[0].toUpperCase();
        assert.ok(allowed.has(name), `unexpected command reached Redis: ${JSON.stringify(args)}`);
        assert.equal(args[2], "1", "one key per script");
        assert.ok(keys.has(args[3]), `command on an unexpected key: ${JSON.stringify(args.slice(0, 4))}`);
      }
      // create, get, update, delete: four scripts per id (EVAL only once per script, after a cold cache).
      assert.equal(commands.filter(({ args }) => args[0].toUpperCase() === "EVALSHA").length, 4 * ids.length);
    } finally {
      monitor.close();
    }
    assert.deepEqual((await store.get(bystander))?.data, { who: "bystander" }, "other sessions survive");
    assert.equal(await redisCommand(redis, "DBSIZE"), dbsize, "no key left behind, none lost");
  });

  test("WebdisStore: one HTTP request and one Redis command per operation", async () => {
    let requests = 0;
    const counting: typeof fetch = (input, init) => {
      requests++;
      return fetch(input, init);
    };
    const store = open({ fetch: counting });
    const warm = generateId();
    await store.set(warm, create({ warm: true })); // the scripts are cached from here on
    await store.get(warm);
    await store.delete(warm);
    await store.listByUser("ada");
    const monitor = await RedisMonitor.open(redis);
    try {
      const id = generateId();
      const key = `${run}suite_${id}`;
      const step = async (operation: () => Promise<unknown>) => {
        requests = 0;
        await operation();
        const commands = (await monitor.commands()).filter((c) => c.client !== "lua");
        return { requests, commands: commands.map((c) => c.args[0].toUpperCase()), args: commands[0]?.args };
      };
      for (
        const [name, operation] of [
          ["create", () => store.set(id, create({ a: 1 }))],
          ["get", () => store.get(id)],
          ["update", () => store.set(id, update({ b: 2 }))],
          ["delete", () => store.delete(id)],
          ["list", () => store.listByUser("ada")],
        ] as const
      ) {
        const done = await step(operation);
        const expected = name === "list" ? userRedisKeys(`${run}suite_`, "ada", false).index : key;
        assert.deepEqual([done.requests, done.commands, done.args?.[3]], [1, ["EVALSHA"], expected], name);
      }
    } finally {
      monitor.close();
    }
  });

  test("WebdisStore: after SCRIPT FLUSH a write falls back to EVAL once", async () => {
    const store = open();
    assert.equal(await redisCommand(redis, "SCRIPT FLUSH"), "+OK");
    const monitor = await RedisMonitor.open(redis);
    try {
      const id = generateId();
      assert.equal(await store.set(id, create({ a: 1 })), "written");
      assert.equal(await store.set(id, update({ b: 2 })), "written");
      const commands = (await monitor.commands()).filter((c) => c.client !== "lua").map((c) => c.args[0]);
      assert.deepEqual(commands.map((c) => c.toUpperCase()), ["EVALSHA", "EVAL", "EVALSHA"]);
      assert.deepEqual((await store.get(id))?.data, { a: 1, b: 2 });
      assert.deepEqual(await store.listByUser("ada"), []);
      assert.deepEqual(await store.listByUser("ada"), []);
      const listing = (await monitor.commands()).filter((c) => c.client !== "lua").map((c) => c.args[0]);
      assert.deepEqual(
        listing.map((c) => c.toUpperCase()),
        ["EVALSHA", "EVAL", "EVALSHA", "EVAL", "EVALSHA"],
        "the read, then the list script: once by its source, then by its SHA-1",
      );
    } finally {
      monitor.close();
    }
  });

  test("WebdisStore: every write sets native expiry (PEXPIREAT from expiresAt)", async () => {
    const store = open();
    const id = generateId();
    const write = create({ a: 1 }, 30_000);
    await store.set(id, write);
    assert.equal(
      await redisCommand(redis, `PEXPIRETIME ${run}suite_${id}`),
      `:${write.record.meta.expiresAt}`,
    );
    const pttl = Number((await redisCommand(redis, `PTTL ${run}suite_${id}`)).slice(1));
    assert.ok(pttl > 25_000 && pttl <= 30_000, `PTTL ${pttl}`);
  });

  test("WebdisStore: the injected clock decides expiry for reads and updates", async () => {
    const id = generateId();
    await open().set(id, create({ a: 1 }, 60_000));
    const later = open({ now: () => Date.now() + 120_000 });
    assert.equal(await later.get(id), undefined);
    assert.equal(await later.set(id, update({ b: 2 })), "gone");
    assert.deepEqual((await open().get(id))?.data, { a: 1 }, "the refused update wrote nothing");
  });

  test("WebdisStore and RedisStore share one layout: a session written by one reads in the other", async () => {
    const viaWebdis = open();
    const viaRedis = new RedisStore({ url: redis.url, keyPrefix: `${run}suite_` });
    await viaRedis.init();
    try {
      const id = generateId();
      await viaWebdis.set(id, create({ from: "webdis", "d:x": 1 }));
      await viaRedis.set(id, update({ also: "redis" }));
      assert.deepEqual((await viaWebdis.get(id))?.data, { from: "webdis", "d:x": 1, also: "redis" });
    } finally {
      await viaRedis.close();
    }
  });

  test("WebdisStore: an unreachable URL rejects", async () => {
    const store = open({ url: `http://127.0.0.1:${await freePort()}/` });
    await allReject(store, /^Cannot reach Webdis: /);
  });

  test("WebdisStore: HTTP 500, a non-JSON body or a foreign JSON body rejects, never reads as missing", async () => {
    let answer: [number, string] = [500, "Internal Server Error"];
    const server = await faultServer((request, response) => {
      request.resume();
      request.on("end", () => response.writeHead(answer[0], { "content-type": "text/plain" }).end(answer[1]));
    });
    try {
      const store = open({ url: server.url });
      await allReject(store, /with HTTP 500$/);
      answer = [502, "<html>Bad gateway</html>"];
      await allReject(store, /with HTTP 502$/);
      answer = [200, "<html>not webdis</html>"];
      await allReject(store, /with a body that is not JSON$/);
      answer = [200, '{"PING":[true,"PONG"]}'];
      await allReject(store, /without a "EVALSHA" reply$/);
      // Replies that do not carry the request's tag and key: another request's (Webdis mixing replies up),
      // or the shape of a plain command.
      for (const body of ["null", "1", '{"meta":"{}"}', '["meta","{}"]', '["tag","6b6579",1,2]']) {
        answer = [200, `{"EVALSHA":${body}}`];
        await allReject(store, /reply that belongs to another request/);
      }
      answer = [200, '{"EVALSHA":[false,"ERR boom"]}'];
      await allReject(store, /^Redis EVALSHA failed: ERR boom$/);
    } finally {
      await server.close();
    }
  });

  test("WebdisStore: a server before Redis 7 (no script flags) gets the read script without its flag, once", async () => {
    // What Redis 6 answers behind Webdis: an empty script cache, and a compile error for the `#!lua` line.
    const cached = new Set<string>();
    const sent: string[] = [];
    const sha1 = async (text: string) =>
      Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text))),
        (byte) => byte.toString(16).padStart(2, "0"),
      ).join("");
    const server = await faultServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => (body += chunk));
      request.on("end", async () => {
        const [command, first, , key, tag] = body.split("/").map(decodeURIComponent);
        const reply = (value: unknown) => response.end(JSON.stringify({ [command]: value }));
        sent.push(
          `${command} ${command === "EVAL" ? (first.startsWith("#!") ? "flagged" : "plain") : ""}`.trim(),
        );
        if (command === "EVALSHA" && !cached.has(first)) {
          return reply([false, "NOSCRIPT No matching script."]);
        }
        if (command === "EVAL" && first.startsWith("#!")) {
          return reply([
            false,
            "ERR Error compiling script (new function): user_script:1: unexpected symbol near '#'",
          ]);
        }
        if (command === "EVAL") cached.add(await sha1(first));
        reply([
          tag,
          keyEcho(key),
          Date.now(),
          "meta",
          JSON.stringify({ createdAt: 1, expiresAt: NEVER, absoluteExpiresAt: NEVER }),
        ]);
      });
    });
    try {
      const store = open({ url: server.url, keyPrefix: "" });
      assert.deepEqual(await store.get("s1_a"), {
        data: {},
        meta: { createdAt: 1, expiresAt: NEVER, absoluteExpiresAt: NEVER },
      });
      assert.deepEqual(sent, ["EVALSHA", "EVAL flagged", "EVALSHA", "EVAL plain"]);
      sent.length = 0;
      assert.ok(await store.get("s1_b"));
      assert.deepEqual(sent, ["EVALSHA"], "from then on the plain script, from the cache");
      // The list script carries no flag: Redis 6 compiles it as it is (the reply is the read's: nothing of ada).
      sent.length = 0;
      assert.deepEqual(await store.listByUser("ada"), []);
      assert.deepEqual(sent, ["EVALSHA", "EVAL plain"]);
    } finally {
      await server.close();
    }
  });

  test("WebdisStore: a server that never answers fails after `timeoutMs`", async () => {
    const server = await faultServer(() => {});
    try {
      const store = open({ url: server.url, timeoutMs: 200 });
      const started = Date.now();
      await assert.rejects(store.get(generateId()), { message: "Webdis did not answer within 200 ms" });
      assert.ok(Date.now() - started < 1500);
    } finally {
      await server.close();
    }
  });

  test("WebdisStore: invalid options are TypeErrors naming the option", () => {
    assert.throws(() => new WebdisStore({ url: "not a url" }), {
      name: "TypeError",
      message: 'Invalid WebdisStore option "url": must be an http:// or https:// URL',
    });
    assert.throws(() => new WebdisStore({ url: "redis://127.0.0.1" }), /"url"/);
    assert.throws(() => new WebdisStore(undefined as unknown as { url: string }), /"url"/);
    assert.throws(() => new WebdisStore({ url: webdis.url, timeoutMs: -1 }), /"timeoutMs"/);
    assert.throws(
      () => new WebdisStore({ url: webdis.url, timeout: 200 } as unknown as { url: string }),
      /"timeout": renamed "timeoutMs" \(milliseconds\)/,
    );
    assert.throws(
      () => new WebdisStore({ url: webdis.url, keyPrefix: null as unknown as string }),
      /"keyPrefix"/,
    );
    assert.throws(() => new WebdisStore({ url: webdis.url, fetch: 1 as unknown as typeof fetch }), /"fetch"/);
    assert.throws(() => new WebdisStore({ url: webdis.url, now: 1 as unknown as () => number }), /"now"/);
  });

  test("WebdisStore: webdis.ts and what it imports use fetch only (no node: modules, no redis package)", () => {
    for (const file of ["./webdis.ts", "./_redis_store.ts", "./_redis_scripts.ts", "../store.ts"]) {
      const source = readFileSync(new URL(file, import.meta.url), "utf8");
      const imports = [...source.matchAll(/^\s*import\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
      for (const specifier of imports) {
        assert.ok(specifier.startsWith("./") || specifier.startsWith("../"), `${file} imports ${specifier}`);
      }
    }
  });

  if (servers.canSpawn) {
    test("WebdisStore: a command disabled by the Webdis ACL (HTTP 403) rejects", async () => {
      const locked = await startWebdis(redis, { acl: [{ disabled: ["HGETALL", "EVALSHA", "EVAL", "DEL"] }] });
      try {
        await allReject(open({ url: locked.url }), /^Webdis refused (HGETALL|EVALSHA|DEL) \(HTTP 403\)/);
      } finally {
        await locked.stop();
      }
    });

    test("WebdisStore: HTTP Basic auth from the URL or from headers passes a Webdis ACL", async () => {
      const guarded = await startWebdis(redis, {
        acl: [{ disabled: ["*"] }, { http_basic_auth: "app:s3cret", enabled: ["*"] }],
      });
      try {
        await allReject(open({ url: guarded.url }), /HTTP 403/);
        const fromUrl = open({ url: guarded.url.replace("http://", "http://app:s3cret@") });
        const fromHeaders = open({
          url: guarded.url,
          headers: { authorization: `Basic ${btoa("app:s3cret")}` },
        });
        for (const store of [fromUrl, fromHeaders]) {
          const id = generateId();
          assert.equal(await store.set(id, create({ a: 1 })), "written");
          assert.deepEqual((await store.get(id))?.data, { a: 1 });
          await store.delete(id);
        }
      } finally {
        await guarded.stop();
      }
    });

    test("WebdisStore: Redis down behind Webdis (HTTP 503) rejects", async () => {
      const orphan = await startWebdis({ host: "127.0.0.1", port: await freePort() });
      try {
        await allReject(open({ url: orphan.url }), /with HTTP 503$/);
      } finally {
        await orphan.stop();
      }
    });
  }
}

// The original module's README examples, unchanged but for the import lines: Oak with SqliteStore, with
// RedisStore + `await store.init()`, and with WebdisStore, against real servers. Oak's npm build runs on Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Application, Router } from "@oakserver/oak";
import { OakSession, RedisStore, SqliteStore, WebdisStore } from "../mod.ts";
import type { SessionOptions, Store } from "../mod.ts";
import { RedisMonitor, reportUnavailable, startRedis, testServers } from "../src/stores/_test_servers.ts";

type OakRequest = Parameters<Application["handle"]>[0];

/** The original README's app: a page counter on `/`, with `store` (and, beyond the original, options). */
function originalApp(store: Store, options?: SessionOptions): Application {
  const app = new Application();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      ctx.response.status = (error as { status?: number }).status ?? 500;
      ctx.response.body = `error:${(error as Error).name}`;
    }
  });
  // Attach sessions to middleware
  const _session = new OakSession(app, store, options);
  const router = new Router();
  router.get("/", async (context) => {
    // Examples of getting and setting variables on a session
    if (await context.state.session.get("pageCount") === undefined) {
      await context.state.session.set("pageCount", 0);
    } else {
      await context.state.session.set("pageCount", await context.state.session.get("pageCount") + 1);
    }
    context.response.body = `Visited page ${await context.state.session.get("pageCount")} times`;
  });
  app.use(router.routes());
  return app;
}

/** A browser: keeps the session cookie between visits. */
class Visitor {
  cookie = "";
  constructor(public app: Application) {}
  async visit(cookie = this.cookie): Promise<{ status: number; text: string }> {
    const request = new Request("http://localhost/", { headers: cookie ? { cookie } : {} });
    const response = (await this.app.handle(request as unknown as OakRequest)) as unknown as Response;
    const setCookie = response.headers.get("set-cookie");
    if (setCookie) this.cookie = setCookie.split(";")[0];
    return { status: response.status, text: await response.text() };
  }
  async counts(times: number): Promise<string[]> {
    const seen = [];
    for (let i = 0; i < times; i++) seen.push((await this.visit()).text);
    return seen;
  }
}

const COUNTS = ["Visited page 0 times", "Visited page 1 times", "Visited page 2 times"];

test("original example: Oak with SqliteStore counts 0, 1, 2 and survives a server restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "original-sqlite-"));
  try {
    const path = join(dir, "database.db");
    let store = new SqliteStore({ path, tableName: "sessions" });
    const visitor = new Visitor(originalApp(store));
    assert.deepEqual(await visitor.counts(3), COUNTS);
    assert.equal((await new Visitor(visitor.app).visit()).text, "Visited page 0 times", "another visitor");
    await store.close();
    // A restart: a new process would open the same file.
    store = new SqliteStore({ path, tableName: "sessions" });
    visitor.app = originalApp(store);
    assert.equal((await visitor.visit()).text, "Visited page 3 times");
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const servers = await testServers({ webdis: true });
if (servers.unavailable !== undefined) {
  reportUnavailable("Original examples with Redis and Webdis", servers.unavailable);
} else {
  const redis = servers.redis;
  const webdis = servers.webdis!;

  test("original example: Oak with RedisStore({ host, port }) and await store.init() counts 0, 1, 2", async () => {
    const store = new RedisStore({ host: redis.host, port: redis.port });
    // Since Redis connection is async, must be initialized before used
    await store.init();
    try {
      const visitor = new Visitor(originalApp(store));
      assert.deepEqual(await visitor.counts(3), COUNTS);
    } finally {
      await store.close();
    }
  });

  test("original example: Oak with WebdisStore({ url }) counts 0, 1, 2", async () => {
    const visitor = new Visitor(originalApp(new WebdisStore({ url: webdis.url })));
    assert.deepEqual(await visitor.counts(3), COUNTS);
  });

  for (const signed of [false, true]) {
    test(`original example: the old Webdis injection through the cookie reaches nothing (${signed ? "signed" : "unsigned"})`, async () => {
      const options = signed ? { secret: "injection-test-secret-0123456789abcdef" } : undefined;
      const app = originalApp(new WebdisStore({ url: webdis.url }), options);
      const victim = new Visitor(app);
      await victim.counts(2);
      const victimId = victim.cookie.slice("sid=".length).split(".")[0];
      const monitor = await RedisMonitor.open(redis);
      try {
        for (
          const value of [
            "/../../FLUSHALL",
            `x/../../DEL/session_${victimId}`,
            "..%2F..%2FFLUSHALL",
            `${victimId}/../../FLUSHALL`,
            `/../../DEL/session_${victimId}.${"A".repeat(43)}`,
          ]
        ) {
          const attacker = new Visitor(app);
          const response = await attacker.visit(`sid=${value}`);
          assert.equal(response.status, 200);
          assert.equal(response.text, "Visited page 0 times", value);
        }
        // Commands the clients sent; what the store's own script ran inside Redis is reported as "lua".
        const commands = (await monitor.commands()).filter((command) => command.client !== "lua");
        const names = commands.map((command) => command.args[0]?.toUpperCase());
        assert.ok(!names.includes("FLUSHALL") && !names.includes("DEL"), names.join(" "));
        assert.ok(
          names.every((name) => name === "EVALSHA" || name === "EVAL"),
          `only the attackers' own new sessions were written: ${names.join(" ")}`,
        );
      } finally {
        monitor.close();
      }
      assert.equal((await victim.visit()).text, "Visited page 2 times", "the victim's session survived");
    });
  }

  test("original example: Redis going down reaches Oak's error handling as a 503, with no cookie", async () => {
    const own = await startRedis();
    const store = new RedisStore({ host: own.host, port: own.port });
    await store.init();
    try {
      const visitor = new Visitor(originalApp(store));
      assert.deepEqual(await visitor.counts(1), COUNTS.slice(0, 1));
      const cookie = visitor.cookie;
      await own.stop();
      const response = await visitor.visit();
      assert.equal(response.status, 503);
      assert.equal(response.text, "error:SessionStoreError");
      assert.equal(visitor.cookie, cookie, "no new cookie");
    } finally {
      await store.disconnect();
    }
  });
}

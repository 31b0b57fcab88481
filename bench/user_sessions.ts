// The cost of a user's list of sessions and of "log out everywhere" (issue 15), per store, for a user with
// 10 and with 1,000 sessions: `SessionManager.sessionsOfUser(userId)` and `logOutEverywhere(userId)`.
//
//   node --import tsx bench/user_sessions.ts [store ...]          memory, sqlite, postgres, redis, webdis,
//                                                                 redis-cluster
//   node_modules/.bin/deno run -A bench/user_sessions.ts deno-kv  (Deno KV on Deno; on Node, @deno/kv)
//
// Redis: REDIS_URL (default redis://127.0.0.1:6379), WEBDIS_URL for webdis, REDIS_CLUSTER_URL (a node of
// the cluster) for redis-cluster (each refused without its variable); PostgreSQL:
// PG_URL (default postgres://postgres@127.0.0.1:5432/test). Each run uses its own table or key prefix and
// removes it. Times are the median of the rounds, in milliseconds; the sessions are made through the core
// (logIn, commit) before each round and are not timed.
import process from "node:process";
import { SessionManager } from "../src/core.ts";
import type { Store } from "../src/store.ts";
import { MemoryStore } from "../src/stores/memory.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SIZES = [10, 1_000];
const run = `b${Date.now().toString(36)}`;

type Factory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const factories: Record<string, Factory> = {
  memory: () =>
    Promise.resolve({ store: new MemoryStore({ maxEntries: 1_000_000 }), cleanup: () => Promise.resolve() }),
  async sqlite() {
    const { SqliteStore } = await import("../src/stores/sqlite.ts");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "user-sessions-"));
    const store = new SqliteStore({ path: join(dir, "sessions.db") });
    return {
      store,
      cleanup: async () => {
        await store.close?.();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  async postgres() {
    const { PostgresStore } = await import("../src/stores/postgres.ts");
    const url = process.env.PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
    const tableName = `bench_${run}`;
    const store = new PostgresStore({ url, tableName });
    return {
      store,
      cleanup: async () => {
        const { default: postgres } = await import("postgres");
        const sql = postgres(url, { onnotice: () => {} });
        await sql.unsafe(`DROP TABLE IF EXISTS "${tableName}"`);
        await sql.end();
        await store.close?.();
      },
    };
  },
  async redis() {
    const { RedisStore } = await import("../src/stores/redis.ts");
    const store = new RedisStore({
      url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
      keyPrefix: `${run}_`,
    });
    await store.init();
    return { store, cleanup: () => store.close() };
  },
  async "redis-cluster"() {
    const url = process.env.REDIS_CLUSTER_URL;
    if (url === undefined) throw new Error("set REDIS_CLUSTER_URL");
    const { RedisStore } = await import("../src/stores/redis.ts");
    const store = new RedisStore({ cluster: { rootNodes: [{ url }] }, keyPrefix: `${run}_` });
    await store.init();
    return { store, cleanup: () => store.close() };
  },
  async webdis() {
    const url = process.env.WEBDIS_URL;
    if (url === undefined) throw new Error("set WEBDIS_URL");
    const { WebdisStore } = await import("../src/stores/webdis.ts");
    const store = new WebdisStore({ url, keyPrefix: `${run}_` });
    return { store, cleanup: () => store.close?.() ?? Promise.resolve() };
  },
  async "deno-kv"() {
    const { DenoKvStore } = await import("../src/stores/deno_kv.ts");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "user-sessions-kv-"));
    const store = new DenoKvStore({ path: join(dir, "kv.sqlite") });
    return {
      store,
      cleanup: async () => {
        await store.close?.();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Logs `count` sessions of `userId` in through the core, as that many browsers would. */
async function logIn(manager: SessionManager, userId: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const session = await manager.load({ cookie: undefined, https: false });
    await session.logIn(userId, { details: { device: `browser ${i}` } });
    await manager.commit(session);
  }
}

async function measure(name: string): Promise<void> {
  const { store, cleanup } = await factories[name]();
  const manager = new SessionManager({ store, secret: "bench-user-sessions-secret-0123456789" });
  try {
    for (const size of SIZES) {
      const list: number[] = [];
      const everywhere: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const userId = `user-${run}-${size}-${round}`;
        await logIn(manager, userId, size);
        let started = performance.now();
        const listed = await manager.sessionsOfUser(userId);
        list.push(performance.now() - started);
        if (listed.length !== size) throw new Error(`${name}: listed ${listed.length} of ${size}`);
        started = performance.now();
        const ended = await manager.logOutEverywhere(userId);
        everywhere.push(performance.now() - started);
        if (ended !== size) throw new Error(`${name}: ended ${ended} of ${size}`);
        if ((await manager.sessionsOfUser(userId)).length !== 0) throw new Error(`${name}: sessions left`);
      }
      console.log(
        `| ${name} | ${size} | ${median(list).toFixed(2)} | ${median(everywhere).toFixed(2)} |`,
      );
    }
  } finally {
    await cleanup();
  }
}

const chosen = process.argv.slice(2).filter((arg) => !arg.startsWith("-"));
const runtime = typeof (globalThis as { Deno?: unknown }).Deno === "object"
  ? "Deno"
  : `Node ${process.version}`;
console.log(`${runtime}, ${ROUNDS} rounds, median ms`);
console.log("| store | sessions of the user | sessionsOfUser | logOutEverywhere |");
console.log("| --- | ---: | ---: | ---: |");
for (const name of chosen.length > 0 ? chosen : ["memory", "sqlite", "postgres", "redis"]) {
  if (!(name in factories)) throw new Error(`unknown store ${name}: ${Object.keys(factories).join(", ")}`);
  await measure(name);
}
process.exit(0);

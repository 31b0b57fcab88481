// What "where am I logged in" and "log out everywhere" cost on a store with a per-user index: for a user with
// N sessions, the time of SessionManager.sessionsOfUser(userId) and of SessionManager.logOutEverywhere(userId),
// among `others` sessions of other users and anonymous ones. Generic: `measureUserSessions` takes any store
// factory; the command line below runs it on the stores of this repository.
//
//   node --import tsx bench/user_sessions.ts [--store=sqlite,postgres,memory] [--sizes=10,1000] [--runs=7]
//     [--others=10000]
//   deno run -A bench/user_sessions.ts --store=sqlite,deno-kv
//   ... --store=redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379), --store=webdis (BENCH_WEBDIS_URL),
//   --store=redis-cluster (BENCH_REDIS_CLUSTER_URL: a node of the cluster)
//
// sqlite: a file in a temporary directory (WAL, as the store opens it). postgres: postgres.js through `url`
// (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test) in a schema of the run's own, dropped
// at the end. Prints one table per store, then a line `USER_SESSIONS_JSON {...}`.
import process from "node:process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { generateId, generateIdInGroup, storageKey, userKey } from "../src/_crypto.ts";
import { SessionManager } from "../src/core.ts";
import type { Store, StoreWrite } from "../src/store.ts";
import { MemoryStore } from "../src/stores/memory.ts";
import { PostgresStore } from "../src/stores/postgres.ts";
import { SqliteStore } from "../src/stores/sqlite.ts";

/** How {@linkcode measureUserSessions} runs. */
export interface UserSessionsOptions {
  /** Sessions of the measured user, one measurement each. Default `[10, 1000]`. */
  sizes?: number[];
  /** Timed runs per size (after one untimed warm-up run); the median is reported. Default 7. */
  runs?: number;
  /** Sessions of other users (half of them) and anonymous ones (the other half) in the store. Default 10,000. */
  others?: number;
}

/** The timings for one size, in milliseconds. */
export interface UserSessionsTiming {
  /** Sessions of the measured user. */
  sessions: number;
  /** Median time of `manager.sessionsOfUser(userId)`. */
  sessionsOfUserMs: number;
  /** Median time of `manager.logOutEverywhere(userId)`. */
  logOutEverywhereMs: number;
  /** Every timed run, in order. */
  runs: { sessionsOfUserMs: number; logOutEverywhereMs: number }[];
}

const HOUR = 3_600_000;

function loginWrite(userId: string | undefined, n: number): StoreWrite {
  const now = Date.now();
  const record = {
    data: { n, cart: [1, 2, 3] },
    meta: {
      createdAt: now,
      expiresAt: now + HOUR,
      absoluteExpiresAt: now + 24 * HOUR,
      ...(userId === undefined ? {} : { userId, details: { device: `device ${n}`, ip: "203.0.113.7" } }),
    },
  };
  return { kind: "create", record, set: record.data, deleted: [], cleared: false, flashChanged: false };
}

/** A storage key for a session of `userId`, in the group a store that groups a user's sessions needs. */
function keyFor(store: Store, userId: string | undefined): string {
  const grouped = userId !== undefined && store.groupsUserSessions === true;
  return storageKey(grouped ? generateIdInGroup(userKey(userId).slice(3, 5)) : generateId());
}

/** Writes `count` sessions (of `userId`, or anonymous), 100 at a time. */
async function seed(store: Store, count: number, userOf: (i: number) => string | undefined): Promise<void> {
  for (let start = 0; start < count; start += 100) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 100); i++) {
      const userId = userOf(i);
      batch.push(store.set(keyFor(store, userId), loginWrite(userId, i)));
    }
    await Promise.all(batch);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Measures `sessionsOfUser` and `logOutEverywhere` through a `SessionManager` on a store made by
 * `createStore`, which must keep a per-user index (`listByUser`). Each run logs a fresh user in N times
 * (written straight to the store, not timed), lists them, then logs them out everywhere, checking both
 * answers. The store is closed at the end.
 *
 * @throws {Error} When an answer is not the sessions written (a wrong count).
 */
export async function measureUserSessions(
  createStore: () => Store | Promise<Store>,
  options: UserSessionsOptions = {},
): Promise<UserSessionsTiming[]> {
  const { sizes = [10, 1_000], runs = 7, others = 10_000 } = options;
  const store = await createStore();
  await (store as { ready?: Promise<void> }).ready;
  try {
    const manager = new SessionManager({ store, secret: "bench-user-sessions-secret-0123456789" });
    const prefix = generateId().slice(0, 8);
    await seed(store, others, (i) => i % 2 ? undefined : `other-${prefix}-${i % 500}`);
    const results: UserSessionsTiming[] = [];
    let users = 0;
    for (const size of sizes) {
      const timed: UserSessionsTiming["runs"] = [];
      for (let run = 0; run <= runs; run++) {
        const userId = `user-${prefix}-${++users}`;
        await seed(store, size, () => userId);
        let started = performance.now();
        const listed = await manager.sessionsOfUser(userId);
        const sessionsOfUserMs = performance.now() - started;
        if (listed.length !== size) throw new Error(`sessionsOfUser answered ${listed.length}, not ${size}`);
        started = performance.now();
        const ended = await manager.logOutEverywhere(userId);
        const logOutEverywhereMs = performance.now() - started;
        if (ended !== size) throw new Error(`logOutEverywhere answered ${ended}, not ${size}`);
        const left = (await manager.sessionsOfUser(userId)).length;
        if (left !== 0) throw new Error(`${left} sessions left after logOutEverywhere`);
        if (run > 0) timed.push({ sessionsOfUserMs, logOutEverywhereMs });
      }
      results.push({
        sessions: size,
        sessionsOfUserMs: median(timed.map((t) => t.sessionsOfUserMs)),
        logOutEverywhereMs: median(timed.map((t) => t.logOutEverywhereMs)),
        runs: timed,
      });
    }
    return results;
  } finally {
    await store.close?.();
  }
}

const isMain = import.meta.url === `file://${process.argv[1]}` ||
  (globalThis as { Deno?: { mainModule?: string } }).Deno?.mainModule === import.meta.url;

if (isMain) {
  const args = new Map(
    process.argv.slice(2).map((arg) => {
      const [key, value] = arg.replace(/^--/, "").split("=");
      return [key, value ?? "true"];
    }),
  );
  const numbers = (text: string) => text.split(",").map(Number);
  const options: UserSessionsOptions = {
    sizes: numbers(args.get("sizes") ?? "10,1000"),
    runs: Number(args.get("runs") ?? 7),
    others: Number(args.get("others") ?? 10_000),
  };
  const factories: Record<string, () => Promise<{ store: () => Store; stop: () => Promise<void> }>> = {
    memory: () => Promise.resolve({ store: () => new MemoryStore(), stop: () => Promise.resolve() }),
    sqlite: () => {
      const dir = mkdtempSync(join(tmpdir(), "bench-user-sessions-"));
      return Promise.resolve({
        store: () => new SqliteStore({ path: join(dir, "sessions.db") }),
        stop: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
      });
    },
    postgres: async () => {
      const url = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
      const admin = postgres(url, { max: 1, onnotice: () => {} });
      const schema = `bench_${Date.now().toString(36)}_${process.pid}`;
      await admin.unsafe(`CREATE SCHEMA "${schema}"`);
      return {
        store: () => new PostgresStore({ url, tableName: `${schema}.sessions` }),
        async stop() {
          await admin.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await admin.end();
        },
      };
    },
    redis: async () => {
      const { RedisStore } = await import("../src/stores/redis.ts");
      const url = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
      return {
        store: () => {
          const store = new RedisStore({ url, keyPrefix: `bench_${Date.now().toString(36)}_` });
          // The first command waits for the connection; init() is the documented way.
          return Object.assign(store, { ready: store.init() });
        },
        stop: () => Promise.resolve(),
      };
    },
    "redis-cluster": async () => {
      const url = process.env.BENCH_REDIS_CLUSTER_URL;
      if (url === undefined) {
        throw new Error("redis-cluster: set BENCH_REDIS_CLUSTER_URL (a node of the cluster)");
      }
      const { RedisStore } = await import("../src/stores/redis.ts");
      return {
        store: () => {
          const store = new RedisStore({
            cluster: { rootNodes: [{ url }] },
            keyPrefix: `bench_${Date.now().toString(36)}_`,
          });
          return Object.assign(store, { ready: store.init() });
        },
        stop: () => Promise.resolve(),
      };
    },
    webdis: async () => {
      const url = process.env.BENCH_WEBDIS_URL;
      if (url === undefined) throw new Error("webdis: set BENCH_WEBDIS_URL (e.g. http://127.0.0.1:7379)");
      const { WebdisStore } = await import("../src/stores/webdis.ts");
      return {
        store: () => new WebdisStore({ url, keyPrefix: `bench_${Date.now().toString(36)}_` }),
        stop: () => Promise.resolve(),
      };
    },
    "deno-kv": async () => {
      const { DenoKvStore } = await import("../src/stores/deno_kv.ts");
      const dir = mkdtempSync(join(tmpdir(), "bench-user-sessions-kv-"));
      return {
        store: () => new DenoKvStore({ path: join(dir, "kv.sqlite") }),
        stop: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
      };
    },
  };
  const runtime = (globalThis as { Deno?: { version: { deno: string } } }).Deno
    ? `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
    : `Node ${process.version}`;
  const report: Record<string, UserSessionsTiming[]> = {};
  for (const name of (args.get("store") ?? "sqlite,postgres").split(",")) {
    const factory = factories[name];
    if (factory === undefined) {
      throw new Error(`unknown store "${name}": ${Object.keys(factories).join(", ")}`);
    }
    const { store, stop } = await factory();
    try {
      report[name] = await measureUserSessions(store, options);
    } finally {
      await stop();
    }
    console.log(
      `\n${name} (${runtime}; ${options.others} other sessions; median of ${options.runs} runs, ms)`,
    );
    console.log("| sessions of the user | sessionsOfUser | logOutEverywhere |");
    console.log("| -------------------: | -------------: | ---------------: |");
    for (const row of report[name]) {
      console.log(
        `| ${row.sessions} | ${row.sessionsOfUserMs.toFixed(2)} | ${row.logOutEverywhereMs.toFixed(2)} |`,
      );
    }
  }
  console.log(`USER_SESSIONS_JSON ${JSON.stringify({ runtime, options, report })}`);
}

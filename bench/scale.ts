// Scale benchmarks: MemoryStore holding 1,000,000 live sessions (memory per session, lookups, and
// what expiry costs when they all lapse at once), and SqliteStore write throughput in WAL mode.
//
//   node --expose-gc --max-old-space-size=6144 --import tsx bench/scale.ts [--sessions=N] [--sqlite-writes=N]
//
// Prints a summary, then one line `SCALE_JSON {...}` for bench/run.mjs.
import process from "node:process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateId } from "../src/_crypto.ts";
import type { StoreWrite } from "../src/store.ts";
import { MemoryStore } from "../src/stores/memory.ts";
import { SqliteStore } from "../src/stores/sqlite.ts";
import type { SqliteDatabase } from "../src/stores/sqlite.ts";

const args = new Map(
  process.argv.slice(2).map((arg) => {
    const [key, value] = arg.replace(/^--/, "").split("=");
    return [key, value ?? "true"];
  }),
);
const SESSIONS = Number(args.get("sessions") ?? 1_000_000);
const SQLITE_WRITES = Number(args.get("sqlite-writes") ?? 20_000);
const HOUR = 3_600_000;
const gc = (globalThis as { gc?: () => void }).gc;

function collect(): number {
  if (!gc) throw new Error("run with --expose-gc: memory per session needs a full collection");
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

function createWrite(now: number, n: number): StoreWrite {
  // A typical small logged-in session: a user id, a counter, a role.
  const record = {
    data: { userId: `u-${n}`, n, role: "member" },
    meta: { createdAt: now, expiresAt: now + HOUR, absoluteExpiresAt: now + 24 * HOUR },
  };
  return { kind: "create", record, set: record.data, deleted: [], cleared: false, flashChanged: false };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function memoryStore() {
  let clock = Date.now();
  const store = new MemoryStore({ maxEntries: SESSIONS + 1, now: () => clock });
  // Slots allocated before the baseline; the id strings after it, since the store keeps them as keys.
  const ids: string[] = new Array(SESSIONS).fill("");
  const heapBefore = collect();
  const rssBefore = process.memoryUsage().rss;

  let started = performance.now();
  for (let i = 0; i < SESSIONS; i++) {
    ids[i] = generateId();
    await store.set(ids[i], createWrite(clock, i));
  }
  const fillMs = performance.now() - started;
  const heapAfter = collect();
  const rssAfter = process.memoryUsage().rss;

  const lookups = Math.min(200_000, SESSIONS);
  started = performance.now();
  for (let i = 0; i < lookups; i++) {
    const record = await store.get(ids[(i * 7919) % SESSIONS]);
    if (record === undefined) throw new Error("a live session went missing");
  }
  const getUs = ((performance.now() - started) * 1000) / lookups;

  // Every session lapses at once (a deploy-time spike of logins an hour ago, say). MemoryStore never
  // scans: each write removes up to a few expired entries from the oldest end. Draining means writes.
  clock += 2 * HOUR;
  const drainTimes: number[] = [];
  let writes = 0;
  const drainStarted = performance.now();
  const stallThresholdMs = 5;
  let stalls = 0;
  let slowestMs = 0;
  const checkpoints: { writes: number; remainingExpired: number; usPerWrite: number }[] = [];
  let windowStart = performance.now();
  let windowWrites = 0;
  const drainBudgetMs = Number(args.get("drain-budget-ms") ?? 120_000);
  let expiredLeft = SESSIONS;
  while (store.size > writes && performance.now() - drainStarted < drainBudgetMs) {
    const t0 = performance.now();
    await store.set(generateId(), createWrite(clock, writes));
    const took = performance.now() - t0;
    writes++;
    windowWrites++;
    if (took > slowestMs) slowestMs = took;
    if (took > stallThresholdMs) stalls++;
    if (writes % 1000 === 0) drainTimes.push(took);
    expiredLeft = store.size - writes;
    if (writes % 25_000 === 0) {
      const now = performance.now();
      checkpoints.push({
        writes,
        remainingExpired: expiredLeft,
        usPerWrite: ((now - windowStart) * 1000) / windowWrites,
      });
      windowStart = now;
      windowWrites = 0;
    }
  }
  const drainMs = performance.now() - drainStarted;
  drainTimes.sort((a, b) => a - b);

  return {
    sessions: SESSIONS,
    fillMs,
    createsPerSecond: SESSIONS / (fillMs / 1000),
    heapBytesPerSession: (heapAfter - heapBefore) / SESSIONS,
    rssBytesPerSession: (rssAfter - rssBefore) / SESSIONS,
    heapUsedMB: heapAfter / 2 ** 20,
    getUs,
    drain: {
      finished: expiredLeft <= 0,
      writes,
      expiredLeft,
      totalMs: drainMs,
      usPerWrite: (drainMs * 1000) / Math.max(1, writes),
      p50Ms: drainTimes.length ? percentile(drainTimes, 50) : NaN,
      p99Ms: drainTimes.length ? percentile(drainTimes, 99) : NaN,
      slowestMs,
      stallsOver5ms: stalls,
      checkpoints,
    },
  };
}

/**
 * The same drain on a plain Map with MemoryStore's entry order, swept two ways: a fresh iterator per write
 * (what MemoryStore#sweep does) and one cursor kept across writes. V8 leaves a hole for each deleted Map
 * entry until the table is rebuilt, and every fresh iterator walks the holes from the front again.
 */
function sweepModel(size: number, writes: number) {
  const run = (persistent: boolean) => {
    const entries = new Map<string, { expiresAt: number }>();
    for (let i = 0; i < size; i++) entries.set(`k${i}`, { expiresAt: 1 });
    const now = 2;
    let cursor: Iterator<[string, { expiresAt: number }]> | undefined;
    let pending: [string, { expiresAt: number }] | undefined;
    const sweep = () => {
      let budget = 4;
      if (!persistent) {
        for (const [id, entry] of entries) {
          if (budget-- === 0 || entry.expiresAt > now) return;
          entries.delete(id);
        }
        return;
      }
      while (budget-- > 0) {
        // A live entry seen last time is kept, not re-read from a new iterator that would walk the holes.
        let item = pending;
        pending = undefined;
        if (item === undefined) {
          cursor ??= entries.entries();
          const next = cursor.next();
          if (next.done) {
            cursor = undefined;
            return;
          }
          item = next.value;
        }
        if (entries.get(item[0]) !== item[1]) continue;
        if (item[1].expiresAt > now) {
          pending = item;
          return;
        }
        entries.delete(item[0]);
      }
    };
    const started = performance.now();
    let done = 0;
    // The fresh-iterator variant is quadratic; a time budget keeps the full run's schedule.
    while (done < writes && (persistent || performance.now() - started < 10_000)) {
      sweep();
      entries.set(`n${done}`, { expiresAt: 10 });
      done++;
    }
    return ((performance.now() - started) * 1000) / done;
  };
  return { size, writes, freshIteratorUsPerWrite: run(false), persistentCursorUsPerWrite: run(true) };
}

type Database = SqliteDatabase & { pragma(sql: string, options?: { simple?: boolean }): unknown };

function openBetterSqlite(path: string): Database {
  const require = createRequire(import.meta.url);
  const BetterSqlite = require("better-sqlite3");
  return new BetterSqlite(path) as Database;
}

async function sqliteCase(
  label: string,
  makeStore: (dir: string) => { store: SqliteStore; synchronous: string },
) {
  const dir = mkdtempSync(join(tmpdir(), "bench-sqlite-"));
  try {
    const { store, synchronous } = makeStore(dir);
    const now = Date.now();
    const ids: string[] = [];
    let started = performance.now();
    for (let i = 0; i < SQLITE_WRITES; i++) {
      const id = generateId();
      ids.push(id);
      await store.set(id, createWrite(now, i));
    }
    const createMs = performance.now() - started;
    started = performance.now();
    for (let i = 0; i < SQLITE_WRITES; i++) {
      const base = createWrite(now, i);
      await store.set(ids[i], { ...base, kind: "update", set: { n: i + 1 } });
    }
    const updateMs = performance.now() - started;
    started = performance.now();
    for (let i = 0; i < SQLITE_WRITES; i++) await store.get(ids[(i * 7919) % SQLITE_WRITES]);
    const readMs = performance.now() - started;
    await store.close();
    return {
      label,
      synchronous,
      writes: SQLITE_WRITES,
      createsPerSecond: SQLITE_WRITES / (createMs / 1000),
      updatesPerSecond: SQLITE_WRITES / (updateMs / 1000),
      readsPerSecond: SQLITE_WRITES / (readMs / 1000),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SYNC_NAMES = ["OFF", "NORMAL", "FULL", "EXTRA"];

async function sqlite() {
  const cases = [];
  cases.push(
    await sqliteCase("SqliteStore({ path }) as shipped (WAL)", (dir) => {
      const path = join(dir, "sessions.db");
      const store = new SqliteStore({ path });
      // synchronous is per connection: a second connection in WAL mode reports the driver's default.
      const probe = openBetterSqlite(path);
      const level = Number(probe.pragma("synchronous", { simple: true }));
      probe.close();
      return { store, synchronous: SYNC_NAMES[level] ?? String(level) };
    }),
  );
  for (const level of ["FULL", "NORMAL"]) {
    cases.push(
      await sqliteCase(`WAL + synchronous=${level} (caller's database)`, (dir) => {
        const db = openBetterSqlite(join(dir, "sessions.db"));
        db.exec("PRAGMA journal_mode = WAL");
        db.exec(`PRAGMA synchronous = ${level}`);
        const store = new SqliteStore({ database: db });
        const original = store.close.bind(store);
        store.close = async () => {
          await original();
          db.close();
        };
        return { store, synchronous: level };
      }),
    );
  }
  return cases;
}

const memory = await memoryStore();
const model = sweepModel(SESSIONS, Math.ceil(SESSIONS / 4));
const sqliteResults = args.get("sqlite") === "false" ? [] : await sqlite();
const result = { runtime: `node ${process.version}`, memory, sweepModel: model, sqlite: sqliteResults };

const m = memory;
console.log(`MemoryStore, ${m.sessions.toLocaleString("en")} live sessions`);
console.log(`  fill: ${Math.round(m.createsPerSecond).toLocaleString("en")} creates/s`);
console.log(
  `  heap per session: ${m.heapBytesPerSession.toFixed(0)} B, RSS per session ${
    m.rssBytesPerSession.toFixed(0)
  } B`,
);
console.log(`  get at full size: ${m.getUs.toFixed(2)} µs`);
console.log(
  `  all expired, drained by writes: ${m.drain.writes.toLocaleString("en")} writes in ${
    (m.drain.totalMs / 1000).toFixed(1)
  } s (${m.drain.usPerWrite.toFixed(2)} µs/write, slowest ${
    m.drain.slowestMs.toFixed(1)
  } ms, finished: ${m.drain.finished})`,
);
console.log(
  `  sweep model: fresh iterator ${model.freshIteratorUsPerWrite.toFixed(2)} µs/write, persistent cursor ${
    model.persistentCursorUsPerWrite.toFixed(2)
  } µs/write`,
);
for (const s of sqliteResults) {
  console.log(
    `${s.label} [synchronous=${s.synchronous}]: ${Math.round(s.createsPerSecond)} creates/s, ${
      Math.round(s.updatesPerSecond)
    } updates/s, ${Math.round(s.readsPerSecond)} reads/s`,
  );
}
console.log(`SCALE_JSON ${JSON.stringify(result)}`);

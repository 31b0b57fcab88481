import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "./sqlite.ts";
import type { SqliteDatabase, SqliteStoreOptions } from "./sqlite.ts";
import {
  createWrite,
  EDGE_DETAILS,
  EDGE_USER_IDS,
  storeConformanceSuite,
  updateWrite,
} from "../testing/store_suite.ts";
import { serveNodeHandler } from "../testing/node_server.ts";
import { type HeldLock, holdSqliteLock } from "./_test_sqlite_lock.ts";
import { SessionManager } from "../core.ts";
import { CorruptRecordError } from "../store.ts";
import type { Store } from "../store.ts";

/** A database file in a fresh temporary directory, removed by `cleanup`. */
function tempDatabase(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "sqlite-store-test-"));
  return { path: join(dir, "sessions.db"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A store on its own temporary file, which `close()` removes. */
class TempSqliteStore extends SqliteStore {
  readonly path: string;
  #cleanup: () => void;
  constructor(options: Omit<SqliteStoreOptions, "path" | "database"> = {}) {
    const { path, cleanup } = tempDatabase();
    super({ ...options, path });
    this.path = path;
    this.#cleanup = cleanup;
  }
  override async close(): Promise<void> {
    await super.close();
    this.#cleanup();
  }
}

/** Opens a second connection with the same driver the store picks, as a test's own handle. */
function openDatabase(path: string, readOnly = false): SqliteDatabase {
  type Builtin = { DatabaseSync: new (path: string, options: { readOnly: boolean }) => SqliteDatabase };
  const builtin = process.getBuiltinModule?.("node:sqlite") as Builtin | undefined;
  if (builtin) return new builtin.DatabaseSync(path, { readOnly });
  const Database = createRequire(import.meta.url)("better-sqlite3") as new (
    path: string,
    options: { readonly: boolean },
  ) => SqliteDatabase;
  return new Database(path, { readonly: readOnly });
}

function count(db: SqliteDatabase, table = "sessions"): number {
  return (db.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n;
}

const create = (data: Record<string, unknown>, expiresAt?: number) => createWrite(data, { expiresAt });
const update = (set: Record<string, unknown>, expiresAt?: number) => updateWrite({}, { set }, { expiresAt });

const id = (n: number | string) => `${n}`.padEnd(32, "x");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A store on a better-sqlite3 13 `Database` (the npm alias "better-sqlite3-13": its N-API build loads on every
 * Node and Deno CI runs, where the "better-sqlite3" 12 that `npm ci` compiles loads only on the Node that ran
 * it) of its own temporary file, passed as `database`: the driver an app brings, as on Node 22.13+, Deno and
 * Bun the store itself opens node:sqlite or bun:sqlite. `close()` closes the database, which the store leaves
 * open, and removes the file.
 */
class TempBetterSqliteStore extends SqliteStore {
  readonly path: string;
  #close: () => void;
  constructor() {
    const { path, cleanup } = tempDatabase();
    const BetterSqlite = createRequire(import.meta.url)("better-sqlite3-13") as new (
      path: string,
    ) => SqliteDatabase;
    const database = new BetterSqlite(path);
    super({ database });
    this.path = path;
    this.#close = () => {
      database.close();
      cleanup();
    };
  }
  override async close(): Promise<void> {
    await super.close();
    this.#close();
  }
}

const suiteInspection = {
  plantCorrupt: (store: Store, key: string) => {
    const db = openDatabase((store as unknown as { path: string }).path);
    const later = Date.now() + 60_000;
    db.prepare(
      "INSERT INTO sessions (id, data, flash, created_at, expires_at, absolute_expires_at) VALUES (?, ?, NULL, ?, ?, ?)",
    ).run(
      key,
      '{"truncat',
      Date.now(),
      later,
      later,
    );
    db.close();
    return Promise.resolve();
  },
  dump: (store: Store) => {
    const db = openDatabase((store as unknown as { path: string }).path, true);
    try {
      return Promise.resolve(
        JSON.stringify((db.prepare("SELECT * FROM sessions") as unknown as { all(): unknown[] }).all()),
      );
    } finally {
      db.close();
    }
  },
};

storeConformanceSuite(test, {
  name: "SqliteStore",
  createStore: () => new TempSqliteStore(),
  ...suiteInspection,
});

storeConformanceSuite(test, {
  name: "SqliteStore (better-sqlite3 13 Database)",
  createStore: () => new TempBetterSqliteStore(),
  ...suiteInspection,
});

test("SqliteStore (better-sqlite3 13 Database): the alias is the major it names", () => {
  const manifest = new URL("../../node_modules/better-sqlite3-13/package.json", import.meta.url);
  assert.match((JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version, /^13\./);
});

test("SqliteStore: sessions survive closing and reopening the file (a restart)", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const before = new SqliteStore({ path });
    await before.set(id("a"), create({ user: "ada" }));
    await before.close();
    const after = new SqliteStore({ path });
    assert.deepEqual((await after.get(id("a")))?.data, { user: "ada" });
    assert.equal(await after.set(id("a"), update({ cart: [1] })), "written");
    assert.deepEqual((await after.get(id("a")))?.data, { user: "ada", cart: [1] });
    await after.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: two connections to one file (two processes) both keep their overlapping updates", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const first = new SqliteStore({ path });
    const second = new SqliteStore({ path });
    await first.set(id("a"), create({ x: 0 }));
    await Promise.all([first.set(id("a"), update({ a: 1 })), second.set(id("a"), update({ b: 2 }))]);
    assert.deepEqual((await first.get(id("a")))?.data, { x: 0, a: 1, b: 2 });
    await second.delete(id("a"));
    assert.equal(await first.set(id("a"), update({ c: 3 })), "gone", "no resurrection across connections");
    await first.close();
    await second.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: a database it opens is switched to WAL mode", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const store = new SqliteStore({ path });
    const other = openDatabase(path);
    assert.deepEqual({ ...other.prepare("PRAGMA journal_mode").get() as object }, { journal_mode: "wal" });
    other.close();
    await store.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: rejects a table name that is not an identifier, naming the option", () => {
  const db = openDatabase(":memory:");
  try {
    for (const tableName of ["x; DROP TABLE", "", "1st", "a-b", 'x"y', "sqlite_master", "sessions "]) {
      assert.throws(
        () => new SqliteStore({ database: db, tableName }),
        (error: unknown) => error instanceof TypeError && /"tableName"/.test(error.message),
        JSON.stringify(tableName),
      );
    }
    assert.deepEqual(db.prepare("SELECT name FROM sqlite_master").get(), undefined, "nothing was created");
  } finally {
    db.close();
  }
});

test("SqliteStore: rejects other invalid options as TypeErrors naming them", () => {
  const db = openDatabase(":memory:");
  try {
    const cases: [SqliteStoreOptions, RegExp][] = [
      [{}, /"path"/],
      [{ path: "" }, /"path"/],
      [{ path: ":memory:", database: db }, /"path" or "database"/],
      [{ database: {} as SqliteDatabase }, /"database"/],
      [{ database: db, busyTimeout: 50 } as SqliteStoreOptions, /"busyTimeout": renamed "busyTimeoutMs"/],
      [
        { database: db, cleanupInterval: 0 } as SqliteStoreOptions,
        /"cleanupInterval": renamed "cleanupIntervalMs"/,
      ],
      [{ database: db, busyTimeoutMs: -1 }, /"busyTimeoutMs"/],
      [{ database: db, busyTimeoutMs: 1.5 }, /"busyTimeoutMs"/],
      [{ database: db, cleanupIntervalMs: Number.NaN }, /"cleanupIntervalMs"/],
      [{ database: db, cleanupIntervalMs: -1 }, /"cleanupIntervalMs"/],
    ];
    for (const [options, pattern] of cases) {
      assert.throws(() => new SqliteStore(options), (error: unknown) => {
        return error instanceof TypeError && pattern.test(error.message);
      });
    }
  } finally {
    db.close();
  }
});

test("SqliteStore: unknown option names are refused before anything opens, with the nearest known name or the known ones", async () => {
  const cases: [unknown, string][] = [
    [
      { path: ":memory:", tablename: "web_sessions" },
      'Unknown SqliteStore option "tablename": did you mean "tableName"?',
    ],
    [
      { path: ":memory:", synchronous: "FULL" },
      'Unknown SqliteStore option "synchronous": known options are path, database, tableName, busyTimeoutMs, cleanupIntervalMs, now',
    ],
    [
      { path: ":memory:", busyTimeout: 50 },
      'Unknown SqliteStore option "busyTimeout": renamed "busyTimeoutMs" (milliseconds)',
    ],
    // better-sqlite3's and connect-sqlite3's name: a hint, not the nearest name ("tableName").
    [{ filename: "sessions.db" }, 'Unknown SqliteStore option "filename": the database file is "path"'],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new SqliteStore(options as never), { name: "TypeError", message });
  }
  // The original module's form still constructs.
  await new SqliteStore({ path: ":memory:", tableName: "web_sessions" }).close();
});

test("SqliteStore: a file that cannot be opened throws a clear error", () => {
  const { path, cleanup } = tempDatabase();
  try {
    assert.throws(
      () => new SqliteStore({ path: join(path, "missing-dir", "x.db") }),
      /^Error: Cannot open SQLite database: /,
    );
  } finally {
    cleanup();
  }
});

test("SqliteStore: a custom table name is used, and two tables in one database stay apart", async () => {
  const db = openDatabase(":memory:");
  try {
    const web = new SqliteStore({ database: db, tableName: "web_sessions" });
    const api = new SqliteStore({ database: db, tableName: "_Api2" });
    await web.set(id(1), create({ from: "web" }));
    await api.set(id(1), create({ from: "api" }));
    assert.deepEqual((await web.get(id(1)))?.data, { from: "web" });
    assert.deepEqual((await api.get(id(1)))?.data, { from: "api" });
    assert.equal(count(db, "web_sessions"), 1);
    assert.equal(count(db, "_Api2"), 1);
    const tables = db.prepare(
      "SELECT group_concat(name, ',') AS names FROM sqlite_master WHERE type = 'table'",
    )
      .get() as { names: string };
    assert.deepEqual(tables.names.split(",").sort(), ["_Api2", "web_sessions"]);
    await web.close();
    await api.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: a table made by 3.0 (no lifetime_ms column) gets the column, and its rows still read", async () => {
  const db = openDatabase(":memory:");
  try {
    db.exec(`CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, flash TEXT,
      created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, absolute_expires_at INTEGER NOT NULL)`);
    const later = Date.now() + 60_000;
    db.prepare("INSERT INTO sessions VALUES (?, ?, NULL, ?, ?, ?)").run(
      id(1),
      '{"a":1}',
      Date.now(),
      later,
      later,
    );
    const store = new SqliteStore({ database: db });
    const old = await store.get(id(1));
    assert.deepEqual(old?.data, { a: 1 });
    assert.equal(old !== undefined && "lifetimeMs" in old.meta, false);
    const write = create({ b: 2 });
    write.record.meta.lifetimeMs = null;
    await store.set(id(2), write);
    assert.equal((await store.get(id(2)))?.meta.lifetimeMs, null);
    await store.close();
  } finally {
    db.close();
  }
});

/** Creates a table of 3.x (with lifetime_ms, before user_id and details) holding one row. */
function previousTable(db: SqliteDatabase): void {
  db.exec(`CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, flash TEXT,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, absolute_expires_at INTEGER NOT NULL,
    lifetime_ms INTEGER);
    CREATE INDEX sessions_expires_at ON sessions (expires_at)`);
  const later = Date.now() + 60_000;
  db.prepare("INSERT INTO sessions VALUES (?, ?, NULL, ?, ?, ?, ?)").run(
    id(1),
    '{"a":1}',
    Date.now(),
    later,
    later,
    5_000,
  );
}

function columns(db: SqliteDatabase): string[] {
  return db.prepare("SELECT name FROM pragma_table_info('sessions')").all().map((row) =>
    (row as { name: string }).name
  );
}

const loggedIn = (userId: string, details?: Record<string, unknown>, expiresAt?: number) => {
  const write = create({}, expiresAt);
  write.record.meta.userId = userId;
  if (details !== undefined) write.record.meta.details = details;
  return write;
};

test("SqliteStore: a table of the previous version (rows, no user_id nor details) gets both columns and the user index", async () => {
  const db = openDatabase(":memory:");
  try {
    previousTable(db);
    const store = new SqliteStore({ database: db });
    assert.deepEqual(columns(db).slice(-3), ["lifetime_ms", "user_id", "details"]);
    const index = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'sessions_user_id'").get() as {
      sql: string;
    };
    assert.match(index.sql, /ON "sessions" \(user_id\) WHERE user_id IS NOT NULL$/);
    const old = await store.get(id(1));
    assert.deepEqual(old?.data, { a: 1 });
    assert.equal(old?.meta.lifetimeMs, 5_000);
    assert.equal(
      old !== undefined && ("userId" in old.meta || "details" in old.meta),
      false,
      "an old row has no user",
    );
    await store.set(id(2), loggedIn("ada", { device: "phone" }));
    assert.deepEqual((await store.listByUser("ada")).map((entry) => [entry.key, entry.meta.details]), [
      [id(2), { device: "phone" }],
    ]);
    await store.close();
    const again = new SqliteStore({ database: db });
    assert.deepEqual(
      columns(db).slice(-3),
      ["lifetime_ms", "user_id", "details"],
      "opening it again adds nothing",
    );
    assert.equal((await again.listByUser("ada")).length, 1);
    await again.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: two processes migrating one file at once: the second ALTER TABLE finds the column added and goes on", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const setup = openDatabase(path);
    previousTable(setup);
    setup.close();
    // The first store reads the columns; another process adds user_id before the first one's ALTER TABLE.
    const db = openDatabase(path);
    const other = openDatabase(path);
    let raced = false;
    const racing: SqliteDatabase = {
      exec: (sql) => db.exec(sql),
      close: () => db.close(),
      prepare(sql) {
        const statement = db.prepare(sql);
        if (raced || !sql.includes("SELECT name FROM pragma_table_info")) return statement;
        return {
          run: (...params) => statement.run(...params),
          get: (...params) => statement.get(...params),
          all(...params) {
            const rows = statement.all(...params);
            raced = true;
            other.exec("ALTER TABLE sessions ADD COLUMN user_id TEXT");
            return rows;
          },
        };
      },
    };
    const store = new SqliteStore({ database: racing });
    assert.equal(raced, true);
    assert.deepEqual(columns(db).slice(-3), ["lifetime_ms", "user_id", "details"]);
    await store.set(id(2), loggedIn("ada"));
    assert.deepEqual((await store.listByUser("ada")).map((entry) => entry.key), [id(2)]);
    await store.close();
    other.close();
    db.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: the listing of a user's sessions is one SELECT through the user_id index, never a table scan", async () => {
  const db = openDatabase(":memory:");
  try {
    const prepared: string[] = [];
    const store = new SqliteStore({
      database: {
        exec: (sql) => db.exec(sql),
        close: () => db.close(),
        prepare: (sql) => (prepared.push(sql), db.prepare(sql)),
      },
    });
    db.exec("BEGIN");
    for (let i = 0; i < 1_000; i++) await store.set(id(`anon${i}`), create({}));
    for (let i = 0; i < 50; i++) await store.set(id(`u${i}`), loggedIn(`user${i % 5}`));
    db.exec("COMMIT");
    db.exec("ANALYZE");
    assert.equal((await store.listByUser("user3")).length, 10);
    const listing = prepared.filter((sql) => /^SELECT .* WHERE user_id = \?/s.test(sql));
    assert.equal(listing.length, 1);
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${listing[0]}`).all("user3", 0, 0) as { detail: string }[];
    assert.deepEqual(plan.map((row) => row.detail), [
      "SEARCH sessions USING INDEX sessions_user_id (user_id=?)",
    ]);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: an update never changes a row's user nor details; a create over a key replaces them", async () => {
  const db = openDatabase(":memory:");
  try {
    const store = new SqliteStore({ database: db });
    await store.set(id("a"), loggedIn("ada", { device: "phone" }));
    const other = update({ n: 1 });
    other.record.meta.userId = "eve";
    other.record.meta.details = { device: "stolen" };
    assert.equal(await store.set(id("a"), other), "written");
    assert.equal(await store.set(id("a"), update({ n: 2 })), "written", "nor does an update without them");
    const meta = (await store.get(id("a")))?.meta;
    assert.deepEqual([meta?.userId, meta?.details], ["ada", { device: "phone" }]);
    assert.deepEqual(await store.listByUser("eve"), []);
    assert.deepEqual((await store.listByUser("ada")).map((entry) => entry.key), [id("a")]);
    await store.set(id("a"), loggedIn("bob"));
    assert.deepEqual(await store.listByUser("ada"), [], "the create replaced the user");
    assert.equal("details" in (await store.listByUser("bob"))[0].meta, false, "and the details");
    await store.set(id("a"), create({}));
    assert.deepEqual(await store.listByUser("bob"), [], "an anonymous create leaves no user");
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: listByUser skips rows past either deadline by the store's clock, and never writes", async () => {
  const db = openDatabase(":memory:");
  try {
    let now = 1_000;
    const store = new SqliteStore({ database: db, now: () => now, cleanupIntervalMs: Infinity });
    await store.set(id("idle"), loggedIn("ada", undefined, 2_000));
    const absolute = loggedIn("ada");
    absolute.record.meta.expiresAt = 10_000;
    absolute.record.meta.absoluteExpiresAt = 3_000;
    await store.set(id("absolute"), absolute);
    await store.set(id("long"), loggedIn("ada", undefined, 10_000));
    const keys = async () => (await store.listByUser("ada")).map((entry) => entry.key).sort();
    assert.deepEqual(await keys(), [id("absolute"), id("idle"), id("long")]);
    now = 2_000;
    assert.deepEqual(await keys(), [id("absolute"), id("long")], "at its idle deadline a row is expired");
    now = 3_000;
    assert.deepEqual(await keys(), [id("long")], "at its absolute deadline too");
    assert.equal(count(db), 3, "expired rows are left to the cleanup");
    now = 10_000;
    assert.deepEqual(await keys(), []);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: user ids and details with NUL, lone surrogates, quotes and backslashes round-trip and stay apart", async () => {
  const db = openDatabase(":memory:");
  try {
    const store = new SqliteStore({ database: db });
    const users = EDGE_USER_IDS;
    const details = EDGE_DETAILS;
    for (const [i, user] of users.entries()) await store.set(id(i), loggedIn(user, details));
    for (const [i, user] of users.entries()) {
      const listed = await store.listByUser(user);
      assert.deepEqual(listed.map((entry) => entry.key), [id(i)], JSON.stringify(user));
      assert.deepEqual(listed[0].meta.details, details);
      assert.equal((await store.get(id(i)))?.meta.userId, user, JSON.stringify(user));
    }
    const stored = db.prepare("SELECT user_id FROM sessions WHERE id = ?").get(id(users.indexOf("ä"))) as {
      user_id: string;
    };
    assert.equal(stored.user_id, "ä", "an ordinary id is stored as it is");
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: a row whose details are not JSON reads as corrupt but is still listed, without details, so it can be revoked", async () => {
  const db = openDatabase(":memory:");
  try {
    const store = new SqliteStore({ database: db });
    await store.set(id("a"), loggedIn("ada", { device: "phone" }));
    db.prepare("UPDATE sessions SET details = ? WHERE id = ?").run('{"trunc', id("a"));
    assert.throws(() => store.get(id("a")), CorruptRecordError);
    const listed = await store.listByUser("ada");
    assert.deepEqual(listed.map((entry) => [entry.key, "details" in entry.meta]), [[id("a"), false]]);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: quotes, SQL comments, backslashes, $$ and 1 MB values round-trip; the table stays intact", async () => {
  const db = openDatabase(":memory:");
  try {
    const store = new SqliteStore({ database: db });
    const hostile = ["'", '";--', "\\", "$$", "'); DROP TABLE sessions; --", "?", ":id", "@x"];
    const big = "'\";--\\$$".repeat(1024 * 1024 / 8);
    for (const [i, text] of hostile.entries()) {
      await store.set(text, create({ [text]: text, big: i === 0 ? big : text }));
      await store.set(text, update({ [`${text}2`]: text }));
    }
    for (const [i, text] of hostile.entries()) {
      assert.deepEqual((await store.get(text))?.data, {
        [text]: text,
        big: i === 0 ? big : text,
        [`${text}2`]: text,
      }, JSON.stringify(text));
    }
    assert.equal(count(db), hostile.length);
    const schema = db.prepare(
      "SELECT count(*) AS n FROM sqlite_master WHERE name IN ('sessions', 'sessions_expires_at')",
    )
      .get() as { n: number };
    assert.equal(schema.n, 2, "table and index still exist");
    for (const text of hostile) await store.delete(text);
    assert.equal(count(db), 0);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: on a read-only database reads work and writes reject", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const writer = new SqliteStore({ path });
    await writer.set(id("a"), create({ user: "ada" }));
    await writer.close();
    const readOnly = openDatabase(path, true);
    const store = new SqliteStore({ database: readOnly });
    assert.deepEqual((await store.get(id("a")))?.data, { user: "ada" });
    assert.throws(() => store.set(id("b"), create({ user: "bob" })), /readonly/);
    assert.throws(() => store.set(id("a"), update({ x: 1 })), /readonly/);
    assert.throws(() => store.delete(id("a")), /readonly/);
    await store.close();
    readOnly.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: a database locked by another connection makes calls wait on a timer, then reject after busyTimeoutMs", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const store = new SqliteStore({ path, busyTimeoutMs: 50 });
    await store.set(id("a"), create({ n: 0 }));
    const other = openDatabase(path);
    other.exec("BEGIN EXCLUSIVE");
    const started = Date.now();
    const pending = [
      store.set(id("b"), create({ n: 1 })),
      store.set(id("a"), update({ n: 2 })),
      store.delete(id("a")),
    ];
    assert.ok(Date.now() - started < 20, "no call waited inside the driver");
    for (const call of pending) assert.ok(call instanceof Promise, "a locked database answers a promise");
    for (const result of await Promise.allSettled(pending)) {
      assert.equal(result.status, "rejected");
      assert.match(
        (result as PromiseRejectedResult).reason.message,
        /database is locked: still locked after \d+ ms \(busyTimeoutMs\)/,
      );
    }
    const waited = Date.now() - started;
    assert.ok(waited >= 45 && waited < 2_000, `gave up after ${waited} ms`);
    other.exec("ROLLBACK");
    other.close();
    // A failed BEGIN must not leave the store's connection inside a transaction.
    assert.equal(await store.set(id("a"), update({ n: 3 })), "written");
    assert.deepEqual((await store.get(id("a")))?.data, { n: 3 });
    await store.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: a call that finds the database locked gets through once the lock is released", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const store = new SqliteStore({ path });
    await store.set(id("a"), create({ n: 0 }));
    const other = openDatabase(path);
    other.exec("BEGIN EXCLUSIVE");
    const pending = store.set(id("a"), update({ n: 1 }));
    setTimeout(() => {
      other.exec("COMMIT");
      other.close();
    }, 100);
    assert.equal(await pending, "written");
    assert.deepEqual((await store.get(id("a")))?.data, { n: 1 });
    await store.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: a write stops waiting for the lock at its deadline and is never applied after it", async () => {
  const { path, cleanup } = tempDatabase();
  try {
    const store = new SqliteStore({ path });
    await store.set(id("a"), create({ n: 0 }));
    const other = openDatabase(path);
    other.exec("BEGIN EXCLUSIVE");
    const started = Date.now();
    const write = { ...update({ n: 1 }), deadline: started + 150 };
    await assert.rejects(
      Promise.resolve().then(() => store.set(id("a"), write)),
      /the write's deadline passed after \d+ ms of waiting; nothing was written/,
    );
    assert.ok(Date.now() - started < 1_000, "gave up at the deadline, not after busyTimeoutMs");
    other.exec("COMMIT");
    other.close();
    await sleep(100);
    assert.deepEqual((await store.get(id("a")))?.data, { n: 0 }, "the refused write did not land later");
    assert.throws(
      () => store.set(id("a"), { ...update({ n: 2 }), deadline: Date.now() - 1 }),
      /deadline passed before it ran/,
    );
    await store.close();
  } finally {
    cleanup();
  }
});

test("SqliteStore: another process holding BEGIN EXCLUSIVE never stalls the server: an unrelated route stays fast", async () => {
  const { path, cleanup } = tempDatabase();
  const store = new SqliteStore({ path });
  const manager = new SessionManager({ store, storeTimeout: 1 });
  const server = await serveNodeHandler(async (req, res) => {
    if (req.url === "/health") {
      res.end("ok");
      return;
    }
    try {
      const session = await manager.load({ cookie: req.headers.cookie, https: false });
      session.set("n", ((session.get("n") as number | undefined) ?? 0) + 1);
      const setCookie = await manager.commit(session);
      if (setCookie) res.setHeader("set-cookie", setCookie);
      res.end(String(session.get("n")));
    } catch (error) {
      res.statusCode = (error as { status?: number }).status ?? 500;
      res.end((error as Error).name);
    }
  });
  const holdMs = 2_000;
  let holder: HeldLock | undefined;
  // The loops below run until `stop`; a failure midway stops them too, and `finally` waits for them before the
  // server closes under them.
  let stop = false;
  let loops: Promise<unknown>[] = [];
  try {
    // Twenty clients, each incrementing its own session's counter in a loop.
    const clients = Array.from({ length: 20 }, () => ({ cookie: "", acknowledged: 0, failed: 0 }));
    for (const client of clients) {
      const response = await server.fetch(new Request("http://localhost/write"));
      client.cookie = response.headers.get("set-cookie")!.split(";")[0];
      client.acknowledged = Number(await response.text());
    }
    const writers = clients.map(async (client) => {
      while (!stop) {
        const response = await server.fetch(
          new Request("http://localhost/write", { headers: { cookie: client.cookie } }),
        );
        const body = await response.text();
        if (response.status === 200) client.acknowledged = Number(body);
        else {
          assert.equal(response.status, 503, body);
          client.failed++;
        }
        // Clients that pause between requests, so the probe measures the server, not a queue of writes.
        await sleep(50);
      }
    });
    // A probe of /health due every 10 ms from now to the end: before the lock, while it is held, and after.
    // Each is timed from when it was due, not from when it could be sent: a server whose thread sleeps
    // cannot even send it, and a client arriving then would wait just as long.
    let spawnedAt = Number.POSITIVE_INFINITY;
    const longest = { unlocked: 0, locked: 0 };
    const probe = (async () => {
      for (let due = Date.now(); !stop; due = Math.max(due + 10, Date.now())) {
        await sleep(due - Date.now());
        await (await server.fetch(new Request("http://localhost/health"))).text();
        const phase = due < spawnedAt ? "unlocked" : "locked";
        longest[phase] = Math.max(longest[phase], Date.now() - due);
      }
    })();
    loops = [...writers, probe];
    await sleep(500);
    // A separate process, as in production (holdSqliteLock: the runtime running this test, with node:sqlite).
    spawnedAt = Date.now();
    holder = await holdSqliteLock(path, "EXCLUSIVE", holdMs);
    let released = false;
    void holder.released.then(() => (released = true));
    const giveUp = Date.now() + holdMs + 10_000;
    while (!released) {
      if (Date.now() > giveUp) throw new Error("the lock holder did not finish");
      await sleep(10);
    }
    await sleep(300);
    stop = true;
    await Promise.all([...writers, probe]);
    console.log(
      `SqliteStore, BEGIN EXCLUSIVE held by another process for ${holdMs} ms under 20 writing clients: ` +
        `longest /health ${longest.locked} ms (${longest.unlocked} ms before the lock), ` +
        `${clients.reduce((n, c) => n + c.failed, 0)} writes answered 503`,
    );
    // Blocked in the driver, the server answers nothing until the lock is released (about holdMs). The bound
    // leaves room for a loaded machine's own hiccups (2 cores shared with other test runs).
    assert.ok(
      longest.locked < 700,
      `an unrelated route waited ${longest.locked} ms while the database was locked`,
    );
    assert.ok(clients.some((c) => c.failed > 0), "writes during the lock timed out (503)");
    // Every counter is exactly what its client was last told: no write answered 503 landed later.
    for (const client of clients) {
      const response = await server.fetch(
        new Request("http://localhost/write", { headers: { cookie: client.cookie } }),
      );
      assert.equal(Number(await response.text()), client.acknowledged + 1);
    }
  } finally {
    stop = true;
    await Promise.allSettled(loops);
    holder?.kill();
    await server.close();
    await store.close();
    cleanup();
  }
});

test("SqliteStore: an update that fails halfway rolls back and leaves the store usable", async () => {
  const db = openDatabase(":memory:");
  try {
    const store = new SqliteStore({ database: db });
    await store.set(id("a"), create({ n: 1 }));
    // JSON.stringify throws on a bigint after BEGIN IMMEDIATE and the read.
    assert.throws(() => store.set(id("a"), update({ n: 2, big: 1n })), TypeError);
    assert.deepEqual((await store.get(id("a")))?.data, { n: 1 });
    assert.equal(await store.set(id("a"), update({ m: 3 })), "written");
    assert.deepEqual((await store.get(id("a")))?.data, { n: 1, m: 3 });
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: expired rows are removed by a write at most once per cleanupInterval, through the index", async () => {
  const db = openDatabase(":memory:");
  try {
    let now = 1_000;
    const store = new SqliteStore({ database: db, now: () => now, cleanupIntervalMs: 60_000 });
    for (let i = 0; i < 5; i++) await store.set(id(`old${i}`), create({ i }, 2_000)); // the first cleans up
    await store.set(id("live"), create({ live: true }, 1_000_000));
    now = 3_000;
    assert.equal(await store.get(id("old0")), undefined, "an expired row is not returned before cleanup");
    await store.set(id("new1"), create({}, 1_000_000));
    assert.equal(count(db), 7, "within the interval nothing is removed");
    now = 61_000;
    await store.set(id("new2"), create({}, 1_000_000));
    assert.equal(count(db), 3, "the first write after the interval removes the five expired rows");
    await store.set(id("old5"), create({}, 2_000));
    now = 100_000;
    await store.set(id("new3"), create({}, 1_000_000));
    assert.equal(count(db), 5, "old5 waits for the next interval");
    now = 121_000;
    await store.set(id("new4"), create({}, 1_000_000));
    assert.equal(count(db), 5, "old5 removed, new4 added");
    assert.deepEqual((await store.get(id("live")))?.data, { live: true });

    const plan = db.prepare(
      `EXPLAIN QUERY PLAN SELECT rowid FROM "sessions" WHERE expires_at <= ? LIMIT ?`,
    ).get(0, 1) as { detail: string };
    assert.match(plan.detail, /USING (COVERING )?INDEX sessions_expires_at/);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: a large backlog of expired rows is removed in batches over the next writes", async () => {
  const db = openDatabase(":memory:");
  try {
    let now = 1_000;
    const store = new SqliteStore({ database: db, now: () => now, cleanupIntervalMs: 60_000 });
    await store.set(id("first"), create({}, 1_000_000)); // takes this store's first cleanup
    db.exec("BEGIN");
    for (let i = 0; i < 2_500; i++) await store.set(id(`old${i}`), create({}, 2_000));
    db.exec("COMMIT");
    now = 61_001;
    await store.set(id("w1"), create({}, 1_000_000));
    assert.equal(count(db), 1 + 1_500 + 1, "one batch of 1,000");
    await store.set(id("w2"), create({}, 1_000_000));
    assert.equal(count(db), 1 + 500 + 2, "a full batch means more is due at once");
    await store.set(id("w3"), create({}, 1_000_000));
    assert.equal(count(db), 4);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: deleteExpired removes every expired row, with automatic cleanup off", async () => {
  const db = openDatabase(":memory:");
  try {
    let now = 1_000;
    const store = new SqliteStore({ database: db, now: () => now, cleanupIntervalMs: Infinity });
    db.exec("BEGIN");
    for (let i = 0; i < 2_100; i++) await store.set(id(`old${i}`), create({}, 2_000));
    db.exec("COMMIT");
    now = 3_000;
    await store.set(id("live"), create({}, 1_000_000));
    assert.equal(count(db), 2_101, "no automatic cleanup, not even on the first write");
    assert.equal(await store.deleteExpired(), 2_100);
    assert.equal(count(db), 1);
    assert.equal(await store.deleteExpired(), 0);
    await store.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: a passed-in database is used and stays open after close()", async () => {
  const db = openDatabase(":memory:");
  try {
    const store = new SqliteStore({ database: db });
    await store.init();
    await store.set(id("a"), create({ a: 1 }));
    assert.equal(count(db), 1);
    await store.close();
    await store.close(); // closing twice is harmless
    assert.equal(count(db), 1, "the caller's connection still works");
    assert.throws(() => store.get(id("a")), /SqliteStore is closed/);
    assert.throws(() => store.set(id("a"), update({ b: 2 })), /SqliteStore is closed/);
    const again = new SqliteStore({ database: db });
    assert.deepEqual((await again.get(id("a")))?.data, { a: 1 });
    await again.close();
  } finally {
    db.close();
  }
});

test("SqliteStore: close() closes a database it opened itself", async () => {
  const store = new TempSqliteStore();
  await store.set(id("a"), create({ a: 1 }));
  await store.close();
  assert.throws(() => store.get(id("a")), /SqliteStore is closed/);
});

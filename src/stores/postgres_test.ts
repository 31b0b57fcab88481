import { after, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import postgres from "postgres";
import { PostgresStore } from "./postgres.ts";
import type { PostgresStoreOptions } from "./postgres.ts";
import { type AdminSql, CountingProxy, testDatabase } from "./_test_postgres.ts";
import { freePort, rejectsWithin, reportUnavailable } from "./_test_servers.ts";
import {
  createWrite,
  EDGE_DETAILS,
  EDGE_USER_IDS,
  storeConformanceSuite,
  updateWrite,
} from "../testing/store_suite.ts";
import { adapterConformanceSuite } from "../testing/adapter_suite.ts";
import { honoSuiteApp } from "../adapters/_test_hono_app.ts";
import { SessionManager } from "../core.ts";
import { SessionStoreError } from "../errors.ts";
import { generateId } from "../_crypto.ts";
import { CorruptRecordError, NEVER } from "../store.ts";

const create = (data: Record<string, unknown>, lifetimeMs?: number, flash?: Record<string, unknown>) =>
  createWrite(data, { lifetimeMs, flash });
const update = (set: Record<string, unknown>) => updateWrite({}, { set });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Checked in the constructor, which never connects: no PostgreSQL needed.
test("PostgresStore: unknown option names are refused, with the nearest known name, a hint, or the known ones", async () => {
  const url = "postgres://127.0.0.1:1/db";
  const cases: [unknown, string][] = [
    [
      { url, tablename: "web_sessions" },
      'Unknown PostgresStore option "tablename": did you mean "tableName"?',
    ],
    [
      { url, max: 20 },
      'Unknown PostgresStore option "max": known options are url, client, tableName, createTable, timeoutMs, cleanupIntervalMs, now',
    ],
    [{ url, timeout: 100 }, 'Unknown PostgresStore option "timeout": renamed "timeoutMs" (milliseconds)'],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new PostgresStore(options as never), { name: "TypeError", message });
  }
  // A postgres.js sql passed where the options go (oak_sessions' form) is not a plain object: its own
  // properties are not option names, and the answer stays the one about "url" and "client".
  const sql = postgres(url, { max: 1 });
  try {
    assert.throws(() => new PostgresStore(sql as never), /"url": .*\(or pass "client"\)/);
  } finally {
    await sql.end({ timeout: 0 });
  }
});

const db = await testDatabase();

if ("unavailable" in db) {
  reportUnavailable("PostgresStore", db.unavailable);
} else {
  const { schema } = db;
  const admin: AdminSql = db.sql;
  const quiet = { onnotice: () => {} };
  // Clients the tests share; the stores given them never close them.
  const shared = postgres(db.url, { max: 10, ...quiet });
  const pool = new pg.Pool({ connectionString: db.url, max: 10 });
  pool.on("error", () => {});
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    cleaned ??= (async () => {
      await shared.end({ timeout: 5 });
      await pool.end();
      await db.drop();
    })();
  // Node runs this; Deno skips top-level hooks, so the last test of the file does it too.
  after(cleanup);

  const table = (name: string) => `${schema}.${name}`;
  const quoted = (name: string) => `"${schema}"."${name}"`;
  const open = (options: PostgresStoreOptions = {}) =>
    new PostgresStore({ url: db.url, tableName: table("suite"), ...options });
  const proxyUrl = (proxy: CountingProxy) => {
    const url = new URL(db.url);
    url.hostname = "127.0.0.1";
    url.port = String(proxy.port);
    return url.href;
  };
  /** Plants a row whose value is truncated JSON, behind the store's back. */
  const plantCorrupt = (name: string) => async (store: unknown, key: string) => {
    await (store as PostgresStore).init();
    const later = Date.now() + 60_000;
    await admin.unsafe(
      `INSERT INTO ${quoted(name)} VALUES ($1, $2::text::jsonb, NULL, $3, $4, $4)`,
      [key, JSON.stringify({ user: '{"truncat' }), Date.now(), later],
    );
  };
  const dump = (name: string) => async () =>
    JSON.stringify(await admin.unsafe(`SELECT id, data::text, flash FROM ${quoted(name)}`));

  storeConformanceSuite(test, {
    name: "PostgresStore (url, postgres.js)",
    createStore: () => open(),
    plantCorrupt: plantCorrupt("suite"),
    dump: dump("suite"),
  });

  storeConformanceSuite(test, {
    name: "PostgresStore (pg Pool)",
    createStore: () => new PostgresStore({ client: pool, tableName: table("suite_pg") }),
    plantCorrupt: plantCorrupt("suite_pg"),
    dump: dump("suite_pg"),
  });

  /** A store on a table of its own that counts its live rows, for the adapter suite. */
  class CountedStore extends PostgresStore {
    #name: string;
    #now: () => number;
    constructor(name: string, now: () => number) {
      super({ client: shared, tableName: table(name), now });
      this.#name = name;
      this.#now = now;
    }
    get size(): Promise<number> {
      return admin.unsafe(
        `SELECT count(*)::int AS n FROM ${
          quoted(this.#name)
        } WHERE expires_at > $1 AND absolute_expires_at > $1`,
        [this.#now()],
      ).then((rows) => rows[0].n as number);
    }
  }
  let adapterTables = 0;
  adapterConformanceSuite(test, {
    name: "hono + PostgresStore",
    createApp: honoSuiteApp,
    async createStore(now) {
      const store = new CountedStore(`adapter_${++adapterTables}`, now);
      await store.init();
      return { store, count: () => store.size };
    },
  });

  test("PostgresStore: invalid options are TypeErrors naming the option", () => {
    const url = "postgres://localhost/db";
    const cases: Array<[PostgresStoreOptions, RegExp]> = [
      [{}, /"url": must be a postgres:\/\/ or postgresql:\/\/ URL/],
      [{ url: "mysql://localhost/db" }, /"url"/],
      [{ url: "postgres://" }, /"url"/],
      [{ url, client: pool }, /pass "url" or "client", not both/],
      [{ client: {} as pg.Pool }, /"client": must be a postgres.js sql instance or a pg Pool/],
      [{ url, tableName: "" }, /"tableName"/],
      [{ url, tableName: "1sessions" }, /"tableName"/],
      [{ url, tableName: 'x"; DROP TABLE y; --' }, /"tableName"/],
      [{ url, tableName: "a.b.c" }, /"tableName"/],
      [{ url, tableName: "pg_sessions" }, /"tableName"/],
      [{ url, tableName: "x".repeat(53) }, /"tableName"/],
      [{ url, createTable: "yes" as unknown as boolean }, /"createTable"/],
      [{ url, timeoutMs: 0 }, /"timeoutMs"/],
      [{ url, timeoutMs: Infinity }, /"timeoutMs"/],
      [{ url, cleanupIntervalMs: -1 }, /"cleanupIntervalMs"/],
      [{ url, now: 1 as unknown as () => number }, /"now"/],
      [{ url, timeout: 100 } as PostgresStoreOptions, /"timeout": renamed "timeoutMs" \(milliseconds\)/],
    ];
    for (const [i, [options, message]] of cases.entries()) {
      assert.throws(() => new PostgresStore(options), { name: "TypeError", message }, `case ${i}`);
    }
    // Valid forms construct without connecting.
    new PostgresStore({ url: "postgresql://u:p@h:5433/d?sslmode=require", tableName: "auth.web_sessions" });
    new PostgresStore({ url: "postgres://u@h1:5432,h2:5433/d?target_session_attrs=primary" });
    new PostgresStore({ client: shared, tableName: "x".repeat(52), cleanupIntervalMs: Infinity });
  });

  test("PostgresStore: the default table is sessions, created with its index on first use", async () => {
    // A client whose search_path is this run's schema, so the default name lands there.
    const scoped = postgres(db.url, { max: 2, ...quiet, connection: { search_path: schema } });
    const store = new PostgresStore({ client: scoped });
    try {
      const id = generateId();
      assert.equal(await store.set(id, create({ a: 1 })), "written", "no init() needed");
      const columns = await admin`
        SELECT column_name, data_type FROM information_schema.columns
        WHERE table_schema = ${schema} AND table_name = 'sessions' ORDER BY ordinal_position`;
      assert.deepEqual(columns.map((c) => `${c.column_name} ${c.data_type}`), [
        "id text",
        "data jsonb",
        "flash text",
        "created_at double precision",
        "expires_at double precision",
        "absolute_expires_at double precision",
        "lifetime_ms double precision",
        "user_id text",
        "details text",
      ]);
      const indexes = await admin`
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = ${schema} AND tablename = 'sessions'
        ORDER BY 1`;
      assert.deepEqual(indexes.map((i) => i.indexname), [
        "sessions_expires_at",
        "sessions_pkey",
        "sessions_user_id",
      ]);
      assert.match(indexes[2].indexdef, /\(user_id\) WHERE \(user_id IS NOT NULL\)$/);
    } finally {
      await store.close();
      await scoped.end();
    }
  });

  test("PostgresStore: one row per session; user keys as JSON text in a jsonb object, escaped where text cannot hold them", async () => {
    const store = open({ tableName: table("layout") });
    try {
      const id = generateId();
      const write = create({ user: "ada", nul: "a\u0000b", "k\u0000": [1, { x: "\ud800" }] }, 60_000, {
        notice: "hi\u0000",
      });
      await store.set(id, write);
      const [row] = await admin.unsafe(
        `SELECT data::text AS data, data->>'user' AS "user", flash, expires_at FROM ${
          quoted("layout")
        } WHERE id = $1`,
        [id],
      );
      assert.deepEqual(JSON.parse(row.data), {
        user: '"ada"',
        nul: '"a\\u0000b"',
        "k\\u0000": '[1,{"x":"\\ud800"}]',
      });
      assert.equal(row.user, '"ada"', "data->>'key' gives the value's JSON");
      assert.equal(row.flash, '{"notice":"hi\\u0000"}');
      assert.equal(row.expires_at, write.record.meta.expiresAt);
      assert.deepEqual(await store.get(id), write.record);
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: a schema-qualified table and a caller's pg Pool; close() leaves passed-in clients open", async () => {
    for (const client of [pool, shared]) {
      const store = new PostgresStore({ client, tableName: table("passed_in") });
      const id = generateId();
      assert.equal(await store.set(id, create({ a: 1 })), "written");
      assert.deepEqual((await store.get(id))?.data, { a: 1 });
      await store.close();
      await assert.rejects(store.get(id), /closed PostgresStore/);
      await store.close();
    }
    assert.equal((await pool.query("SELECT 1 AS one")).rows[0].one, 1, "the pool is still open");
    assert.equal((await shared`SELECT 1 AS one`)[0].one, 1, "the postgres.js client is still open");
  });

  test("PostgresStore: a client's own transforms and type parsers change nothing the store reads", async () => {
    // A postgres.js client that renames every column (data → Data) and upper-cases every text value read.
    const renaming = postgres(db.url, {
      max: 2,
      ...quiet,
      transform: {
        column: { from: postgres.toPascal },
        value: { from: (value: unknown) => typeof value === "string" ? value.toUpperCase() : value },
      },
    });
    // A pg pool whose parsers give float8 back as text and upper-case text.
    const upper = (value: string) => value.toUpperCase();
    const getTypeParser = ((oid: number, format?: "text") =>
      oid === 701
        ? String
        : oid === 25
        ? upper
        : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;
    const stringly = new pg.Pool({ connectionString: db.url, max: 2, types: { getTypeParser } });
    try {
      for (const client of [renaming, stringly]) {
        const store = new PostgresStore({ client, tableName: table("transforms") });
        const id = generateId();
        const write = create({ user: "ada" }, 60_000, { notice: "hi" });
        await store.set(id, write);
        assert.deepEqual(await store.get(id), write.record);
        assert.equal(await store.set(id, update({ b: 1 })), "written");
        await store.close();
      }
    } finally {
      await renaming.end();
      await stringly.end();
    }
  });

  test("PostgresStore: overlapping updates of one session through two pools each keep their key; a delete racing them stays deleted", async () => {
    const name = table("race");
    const a = open({ tableName: name });
    const b = new PostgresStore({ client: pool, tableName: name });
    try {
      const id = generateId();
      await a.set(id, create({ x: 0 }));
      const results = await Promise.all(
        Array.from(
          { length: 50 },
          (_, i) =>
            (i % 2 ? a : b).set(id, updateWrite({ x: 0 }, { set: { [`k${i}`]: i } })),
        ),
      );
      assert.deepEqual(new Set(results), new Set(["written"]));
      const data = (await b.get(id))!.data;
      assert.equal(Object.keys(data).length, 51);
      for (let i = 0; i < 50; i++) assert.equal(data[`k${i}`], i);

      // Logout while 30 other requests write: whatever order the server picks, nothing comes back after it.
      const writes = Array.from(
        { length: 30 },
        (_, i) => (i % 2 ? a : b).set(id, update({ [`late${i}`]: i })),
      );
      const logout = (async () => {
        await sleep(1);
        await a.delete(id);
      })();
      const answers = await Promise.all([...writes, logout]);
      assert.ok(answers.slice(0, 30).every((r) => r === "written" || r === "gone"));
      assert.equal(await a.get(id), undefined);
      assert.equal(await b.set(id, update({ after: 1 })), "gone");
      const [{ n }] = await admin.unsafe(`SELECT count(*)::int AS n FROM ${quoted("race")} WHERE id = $1`, [
        id,
      ]);
      assert.equal(n, 0, "no row was recreated");
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("PostgresStore: the injected clock decides expiry for reads and updates", async () => {
    const id = generateId();
    const writer = open({ cleanupIntervalMs: Infinity });
    const later = open({ now: () => Date.now() + 120_000, cleanupIntervalMs: Infinity });
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

  test("PostgresStore: NEVER is stored as it is and kept", async () => {
    const store = open();
    try {
      const id = generateId();
      const write = create({ a: 1 });
      write.record.meta.expiresAt = write.record.meta.absoluteExpiresAt = NEVER;
      await store.set(id, write);
      const [row] = await admin.unsafe(`SELECT expires_at FROM ${quoted("suite")} WHERE id = $1`, [id]);
      assert.equal(row.expires_at, NEVER);
      assert.equal(await store.deleteExpired(), 0);
      assert.deepEqual((await store.get(id))?.meta, write.record.meta);
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: a write with a meta that is not finite is refused before it reaches the table", async () => {
    const store = open();
    try {
      const write = create({ a: 1 });
      write.record.meta.expiresAt = Number.NaN;
      await assert.rejects(store.set(generateId(), write), /must be finite/);
    } finally {
      await store.close();
    }
  });

  /** Inserts `expired` rows past their deadline and `live` rows ahead of it, behind the store's back. */
  const plantRows = async (name: string, expired: number, live: number, now = Date.now()) => {
    await admin.unsafe(
      `INSERT INTO ${quoted(name)}
       SELECT 's1_expired_' || i || '_' || $3, '{}'::jsonb, NULL, $1::float8 - 1000, $1::float8 - i, $1::float8 - i FROM generate_series(1, $4::int) i
       UNION ALL
       SELECT 's1_live_' || i || '_' || $3, '{}'::jsonb, NULL, $1::float8, $2::float8 + i, $2::float8 + i FROM generate_series(1, $5::int) i`,
      [now, now + 3_600_000, generateId(), expired, live],
    );
  };

  const countRows = async (name: string, expired: boolean, now = Date.now()) => {
    const [{ n }] = await admin.unsafe(
      `SELECT count(*)::int AS n FROM ${quoted(name)} WHERE expires_at ${expired ? "<=" : ">"} $1`,
      [now],
    );
    return n as number;
  };

  test("PostgresStore: deleteExpired removes expired rows in batches of 1,000 through the expires_at index", async () => {
    const name = "cleanup_index";
    // One connection with auto_explain reporting each statement's plan as a notice.
    const plans: string[] = [];
    const explained = postgres(db.url, {
      max: 1,
      onnotice: (notice) => plans.push(String(notice.message)),
    });
    const store = new PostgresStore({
      client: explained,
      tableName: table(name),
      cleanupIntervalMs: Infinity,
    });
    try {
      await store.init();
      await plantRows(name, 2_500, 20_000);
      await admin.unsafe(`ANALYZE ${quoted(name)}`);
      await explained.unsafe("LOAD 'auto_explain'");
      await explained.unsafe("SET auto_explain.log_min_duration = 0");
      await explained.unsafe("SET auto_explain.log_level = notice");
      assert.equal(await store.deleteExpired(), 2_500);
      const deletes = plans.filter((plan) => plan.includes("Delete on"));
      assert.equal(deletes.length, 3, "three statements: 1,000 + 1,000 + 500");
      for (const plan of deletes) {
        // The expired ids come from the expires_at index; the rows are found through the primary key.
        assert.match(plan, new RegExp(`Index Scan (using|on) ${name}_expires_at`), plan);
        assert.match(plan, new RegExp(`Index Scan (using|on) ${name}_pkey`), plan);
        assert.doesNotMatch(plan, /Seq Scan/, plan);
      }
      assert.equal(await countRows(name, true), 0);
      assert.equal(await countRows(name, false), 20_000, "live rows untouched");
    } finally {
      await store.close();
      await explained.end();
    }
  });

  test("PostgresStore: writes start one batch of cleanup in the background when it is due", async () => {
    const name = "cleanup_auto";
    let clock = Date.now();
    const store = new PostgresStore({
      client: shared,
      tableName: table(name),
      cleanupIntervalMs: 60_000,
      now: () => clock,
    });
    try {
      await store.init();
      await plantRows(name, 1_500, 10, clock);
      const id = generateId();
      await store.set(id, create({ a: 1 }));
      await store.close(); // waits for the cleanup the write started
      assert.equal(await countRows(name, true, clock), 500, "one batch of 1,000 removed by the first write");
    } finally {
      await store.close();
    }
    const again = new PostgresStore({ client: shared, tableName: table(name), now: () => clock });
    try {
      const id = generateId();
      await again.set(id, create({ a: 1 })); // a fresh store cleans on its first write
      await sleep(200);
      assert.equal(await countRows(name, true, clock), 0, "a part batch ends the run");
      await plantRows(name, 10, 0, clock);
      await again.set(id, update({ b: 1 }));
      await sleep(200);
      assert.equal(await countRows(name, true, clock), 10, "not again within cleanupIntervalMs");
      clock += 61_000;
      await again.set(id, update({ c: 1 }));
      await sleep(200);
      assert.equal(await countRows(name, true, clock), 0, "again after the interval");
    } finally {
      await again.close();
    }
  });

  const loggedIn = (userId: string, details?: Record<string, unknown>, lifetimeMs?: number) => {
    const write = create({}, lifetimeMs);
    write.record.meta.userId = userId;
    if (details !== undefined) write.record.meta.details = details;
    return write;
  };
  const keysOf = async (store: PostgresStore, userId: string) =>
    (await store.listByUser(userId)).map((entry) => entry.key).sort();

  /** Creates a table of 3.x (with lifetime_ms, before user_id and details) and its expires_at index. */
  const previousTable = (name: string) =>
    admin.unsafe(`CREATE TABLE ${quoted(name)} (
      id text COLLATE "C" PRIMARY KEY, data jsonb NOT NULL, flash text, created_at double precision NOT NULL,
      expires_at double precision NOT NULL, absolute_expires_at double precision NOT NULL,
      lifetime_ms double precision);
      CREATE INDEX "${name}_expires_at" ON ${quoted(name)} (expires_at)`);

  test("PostgresStore: a table of the previous version (rows, no user_id nor details) gets both columns and the user index", async () => {
    const name = "previous";
    await previousTable(name);
    const old = generateId();
    const later = Date.now() + 60_000;
    await admin.unsafe(`INSERT INTO ${quoted(name)} VALUES ($1, $2::text::jsonb, NULL, $3, $4, $4, 5000)`, [
      old,
      JSON.stringify({ a: "1" }),
      Date.now(),
      later,
    ]);
    const store = new PostgresStore({ client: shared, tableName: table(name) });
    try {
      await store.init();
      const columns = await admin`
        SELECT column_name, data_type, collation_name FROM information_schema.columns
        WHERE table_schema = ${schema} AND table_name = ${name} ORDER BY ordinal_position`;
      assert.deepEqual(columns.slice(-3).map((c) => `${c.column_name} ${c.data_type} ${c.collation_name}`), [
        "lifetime_ms double precision null",
        "user_id text C",
        "details text null",
      ]);
      const [index] = await admin`
        SELECT indexdef FROM pg_indexes WHERE schemaname = ${schema} AND indexname = ${name + "_user_id"}`;
      assert.match(index.indexdef, /\(user_id\) WHERE \(user_id IS NOT NULL\)$/);
      const record = await store.get(old);
      assert.deepEqual(record?.data, { a: 1 });
      assert.deepEqual(record?.meta, {
        createdAt: record!.meta.createdAt,
        expiresAt: later,
        absoluteExpiresAt: later,
        lifetimeMs: 5000,
      });
      const id = generateId();
      await store.set(id, loggedIn("ada", { device: "phone" }));
      assert.deepEqual((await store.listByUser("ada")).map((entry) => [entry.key, entry.meta.details]), [
        [id, { device: "phone" }],
      ]);
      const again = new PostgresStore({ client: pool, tableName: table(name) });
      await again.init();
      assert.deepEqual(await keysOf(again, "ada"), [id], "opening it again changes nothing");
      await again.close();
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: with createTable false a table of the previous version fails listings and logins with a clear message", async () => {
    const name = "previous_kept";
    await previousTable(name);
    const store = new PostgresStore({ client: shared, tableName: table(name), createTable: false });
    try {
      const error = await rejectsWithin(store.listByUser("ada"), 2000);
      assert.match(
        error.message,
        new RegExp(
          `^PostgreSQL SELECT \\(user\\) failed: column "user_id" does not exist \\(42703\\) \\(createTable is false: add this version's columns to ${schema}.${name}, see docs/stores.md\\)$`,
        ),
      );
      await assert.rejects(
        store.set(generateId(), loggedIn("ada")),
        /failed: column "user_id" .* does not exist/,
      );
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: the listing of a user's sessions is one SELECT through the user_id index alone, whatever the statistics say", async () => {
    const name = "user_index";
    const plans: string[] = [];
    const explained = postgres(db.url, { max: 1, onnotice: (notice) => plans.push(String(notice.message)) });
    let clock = Date.now();
    const store = new PostgresStore({
      client: explained,
      tableName: table(name),
      cleanupIntervalMs: Infinity,
      now: () => clock,
    });
    try {
      await store.init();
      await admin.unsafe(`ALTER TABLE ${quoted(name)} SET (autovacuum_enabled = false)`);
      // 100,000 sessions expiring over the next hour, half of them of 500 other users.
      await admin.unsafe(
        `INSERT INTO ${quoted(name)} (id, data, created_at, expires_at, absolute_expires_at, user_id)
        SELECT 's1_other_' || i, '{}'::jsonb, $1::float8, $1::float8 + i * 36, $1::float8 + 86400000,
          CASE WHEN i % 2 = 0 THEN 'other' || (i % 1000) END
        FROM generate_series(1, 100000) i`,
        [clock],
      );
      const keys = [];
      for (let i = 0; i < 50; i++) {
        const id = generateId();
        if (i % 5 === 3) keys.push(id);
        await store.set(id, loggedIn(`user${i % 5}`, undefined, 7_200_000));
      }
      await explained.unsafe("LOAD 'auto_explain'");
      await explained.unsafe("SET auto_explain.log_min_duration = 0");
      await explained.unsafe("SET auto_explain.log_level = notice");
      // Without statistics, and with statistics that say only a tenth of the sessions are still ahead of the
      // clock (a histogram gone stale as time moves on), the planner once picked the expires_at index, alone
      // or ANDed with user_id's: an entry per live session of every user. A prepared statement may also run
      // with a generic plan, which cannot look at the user id.
      const start = clock;
      for (const analyzed of [false, true]) {
        if (analyzed) await admin.unsafe(`ANALYZE ${quoted(name)}`);
        for (const ahead of [0, 3_240_000]) {
          clock = start + ahead;
          for (const mode of ["force_custom_plan", "force_generic_plan"]) {
            await explained.unsafe(`SET plan_cache_mode = ${mode}`);
            plans.length = 0;
            assert.deepEqual(await keysOf(store, "user3"), keys.sort());
            const listings = plans.filter((plan) => plan.includes("user_id = $1"));
            assert.equal(listings.length, 1, "one statement");
            const what = `${analyzed ? "analyzed" : "no statistics"}, clock +${ahead} ms, ${mode}: ${
              listings[0]
            }`;
            assert.match(listings[0], new RegExp(`Index Scan (using|on) ${name}_user_id`), what);
            assert.doesNotMatch(listings[0], new RegExp(`Seq Scan|BitmapAnd|${name}_expires_at`), what);
          }
        }
      }
    } finally {
      await store.close();
      await explained.end();
    }
  });

  test("PostgresStore: an update never changes a row's user nor details; a create over a key replaces them", async () => {
    const store = open({ tableName: table("user_fixed") });
    try {
      const id = generateId();
      await store.set(id, loggedIn("ada", { device: "phone" }));
      const other = update({ n: 1 });
      other.record.meta.userId = "eve";
      other.record.meta.details = { device: "stolen" };
      assert.equal(await store.set(id, other), "written");
      assert.equal(await store.set(id, update({ n: 2 })), "written", "nor does an update without them");
      const meta = (await store.get(id))?.meta;
      assert.deepEqual([meta?.userId, meta?.details], ["ada", { device: "phone" }]);
      assert.deepEqual(await store.listByUser("eve"), []);
      assert.deepEqual(await keysOf(store, "ada"), [id]);
      await store.set(id, loggedIn("bob"));
      assert.deepEqual(await store.listByUser("ada"), [], "the create replaced the user");
      assert.equal("details" in (await store.listByUser("bob"))[0].meta, false, "and the details");
      await store.set(id, create({}));
      assert.deepEqual(await store.listByUser("bob"), [], "an anonymous create leaves no user");
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: listByUser skips rows past either deadline by the store's clock, and never writes", async () => {
    const name = "user_clock";
    let now = Date.now();
    const start = now;
    const store = new PostgresStore({
      client: shared,
      tableName: table(name),
      now: () => now,
      cleanupIntervalMs: Infinity,
    });
    try {
      const [idle, absolute, long] = [generateId(), generateId(), generateId()];
      await store.set(idle, loggedIn("ada", undefined, 1_000));
      const write = loggedIn("ada", undefined, 10_000);
      write.record.meta.absoluteExpiresAt = write.record.meta.createdAt + 2_000;
      await store.set(absolute, write);
      await store.set(long, loggedIn("ada", undefined, 10_000));
      assert.deepEqual(await keysOf(store, "ada"), [idle, absolute, long].sort());
      now = start + 1_000 + 100;
      assert.deepEqual(await keysOf(store, "ada"), [absolute, long].sort(), "past its idle deadline");
      now = start + 2_000 + 100;
      assert.deepEqual(await keysOf(store, "ada"), [long], "past its absolute deadline");
      const [{ n }] = await admin.unsafe(`SELECT count(*)::int AS n FROM ${quoted(name)}`);
      assert.equal(n, 3, "expired rows are left to the cleanup");
      now = start + 10_000 + 100;
      assert.deepEqual(await keysOf(store, "ada"), []);
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: user ids and details with NUL, lone surrogates, quotes and backslashes round-trip and stay apart", async () => {
    const name = "user_text";
    const users = EDGE_USER_IDS;
    const details = EDGE_DETAILS;
    for (
      const store of [
        open({ tableName: table(name) }),
        new PostgresStore({ client: pool, tableName: table(name) }),
      ]
    ) {
      try {
        const keys = users.map(() => generateId());
        for (const [i, user] of users.entries()) await store.set(keys[i], loggedIn(user, details));
        for (const [i, user] of users.entries()) {
          const listed = (await store.listByUser(user)).filter((entry) => keys.includes(entry.key));
          assert.deepEqual(listed.map((entry) => entry.key), [keys[i]], JSON.stringify(user));
          assert.deepEqual(listed[0].meta.details, details);
          assert.equal((await store.get(keys[i]))?.meta.userId, user, JSON.stringify(user));
        }
        const [row] = await admin.unsafe(`SELECT user_id, details FROM ${quoted(name)} WHERE id = $1`, [
          keys[users.indexOf("ä")],
        ]);
        assert.equal(row.user_id, "ä", "an ordinary id is stored as it is");
        assert.deepEqual(JSON.parse(row.details), details);
      } finally {
        await store.close();
      }
    }
  });

  test("PostgresStore: a row whose details are not JSON reads as corrupt but is still listed, without details, so it can be revoked", async () => {
    const name = "user_corrupt";
    const store = open({ tableName: table(name) });
    try {
      const id = generateId();
      await store.set(id, loggedIn("ada", { device: "phone" }));
      await admin.unsafe(`UPDATE ${quoted(name)} SET details = '{"trunc' WHERE id = $1`, [id]);
      await assert.rejects(store.get(id), CorruptRecordError);
      const listed = await store.listByUser("ada");
      assert.deepEqual(listed.map((entry) => [entry.key, "details" in entry.meta]), [[id, false]]);
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: one statement and one round trip per call once a connection has prepared it", async () => {
    const proxy = await CountingProxy.start(db.host, db.port);
    const statements: string[] = [];
    const js = postgres(proxyUrl(proxy), { max: 1, ...quiet, debug: (_c, query) => statements.push(query) });
    const pgPool = new pg.Pool({ connectionString: proxyUrl(proxy), max: 1 });
    pgPool.on("error", () => {});
    const figures: Record<string, number[]> = {};
    try {
      for (const [driver, client] of [["postgres.js", js], ["pg", pgPool]] as const) {
        const store = new PostgresStore({ client, tableName: table("trips"), cleanupIntervalMs: Infinity });
        await store.init();
        const round = async () => {
          const id = generateId();
          const trips: number[] = [];
          statements.length = 0;
          proxy.takeFlights();
          const steps: Array<() => Promise<unknown>> = [
            () => store.set(id, create({ a: 1 })),
            () => store.get(id),
            () => store.set(id, update({ b: 2 })),
            () => store.delete(id),
            () => store.set(id, update({ c: 3 })),
            () => store.listByUser("ada"),
          ];
          for (const step of steps) {
            await step();
            trips.push(proxy.takeFlights());
          }
          return { trips, statements: statements.length };
        };
        const first = await round();
        const warm = await round();
        figures[`${driver} first use`] = first.trips;
        figures[`${driver} prepared`] = warm.trips;
        assert.deepEqual(
          warm.trips,
          [1, 1, 1, 1, 1, 1],
          `${driver}: create, get, update, delete, gone update, list`,
        );
        if (driver === "postgres.js") assert.equal(warm.statements, 6, "one statement per call");
        await store.close();
      }
      // postgres.js asks the server for parameter types once per statement and connection; pg never does.
      assert.deepEqual(figures["pg first use"], [1, 1, 1, 1, 1, 1]);
      assert.ok(figures["postgres.js first use"].every((n) => n === 1 || n === 2));
      console.log(
        `PostgresStore round trips per call (create, get, update, delete, gone, list): ${
          JSON.stringify(figures)
        }`,
      );
    } finally {
      await js.end();
      await pgPool.end();
      await proxy.close();
    }
  });

  test("PostgresStore: round trips per request through the core: read 1, new session 1, write 2, logout 2", async () => {
    const proxy = await CountingProxy.start(db.host, db.port);
    const client = postgres(proxyUrl(proxy), { max: 1, ...quiet });
    const store = new PostgresStore({ client, tableName: table("trips_http"), cleanupIntervalMs: Infinity });
    const app = honoSuiteApp({ store, secret: "a-secret-of-at-least-32-bytes-long!" });
    const request = async (path: string, cookie?: string) => {
      const response = await app.fetch(
        new Request(`http://localhost${path}`, { headers: cookie ? { cookie } : {} }),
      );
      await response.text();
      return response.headers.get("set-cookie")?.split(";")[0];
    };
    try {
      await store.init();
      // Prepare every statement on the one connection first.
      const warm = await request("/set?key=a&value=1");
      await request("/peek", warm);
      await request("/set?key=b&value=2", warm);
      await request("/logout", warm);
      proxy.takeFlights();
      const cookie = await request("/set?key=a&value=1");
      const perRequest = { new: proxy.takeFlights(), read: 0, write: 0, logout: 0 };
      await request("/peek", cookie);
      perRequest.read = proxy.takeFlights();
      await request("/set?key=b&value=2", cookie);
      perRequest.write = proxy.takeFlights();
      await request("/logout", cookie);
      perRequest.logout = proxy.takeFlights();
      assert.deepEqual(perRequest, { new: 1, read: 1, write: 2, logout: 2 });
    } finally {
      await store.close();
      await client.end();
      await proxy.close();
    }
  });

  test("PostgresStore: stores starting together create one table without colliding", async () => {
    const stores = Array.from(
      { length: 8 },
      (_, i) =>
        i % 2
          ? new PostgresStore({ client: pool, tableName: table("together") })
          : new PostgresStore({ client: shared, tableName: table("together") }),
    );
    try {
      await Promise.all(stores.map((store) => store.init()));
      const id = generateId();
      await stores[0].set(id, create({ a: 1 }));
      assert.deepEqual((await stores[7].get(id))?.data, { a: 1 });
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  test("PostgresStore: with createTable false a missing table fails every call with a clear message, as a 503", async () => {
    const store = new PostgresStore({ client: shared, tableName: table("missing"), createTable: false });
    try {
      await store.init(); // nothing to create
      const error = await rejectsWithin(store.get(generateId()), 2000);
      assert.match(
        error.message,
        new RegExp(
          `^PostgreSQL SELECT failed: relation "${schema}.missing" does not exist \\(42P01\\) \\(createTable is false: create the table ${schema}.missing, see docs/stores.md\\)$`,
        ),
      );
      const manager = new SessionManager({ store });
      const session = await manager.load({ cookie: null, https: false });
      session.set("a", 1);
      const failure = await manager.commit(session).then(() => assert.fail("committed"), (e) => e);
      assert.ok(failure instanceof SessionStoreError);
      assert.equal(failure.status, 503);
      assert.match(failure.message, /^Cannot write session to store: PostgreSQL INSERT failed: relation/);
    } finally {
      await store.close();
    }
  });

  test("PostgresStore: nothing listening: init() rejects within 2 s naming PostgreSQL and the refusal", async () => {
    const port = await freePort();
    const store = new PostgresStore({ url: `postgres://postgres@127.0.0.1:${port}/test` });
    const error = await rejectsWithin(store.init(), 2000);
    assert.match(error.message, new RegExp(`^PostgreSQL CREATE TABLE failed: .*ECONNREFUSED.*${port}`));
    await rejectsWithin(store.get(generateId()), 2000);
    await store.close();
  });

  test("PostgresStore: the server going away fails calls at once as 503s; the store recovers when it is back", async () => {
    const proxy = await CountingProxy.start(db.host, db.port);
    const store = new PostgresStore({ url: proxyUrl(proxy), tableName: table("outage"), timeoutMs: 1000 });
    const manager = new SessionManager({ store, secret: "a-secret-of-at-least-32-bytes-long!" });
    try {
      const first = await manager.load({ cookie: null, https: false });
      first.set("user", "ada");
      const cookie = (await manager.commit(first))!.split(";")[0];
      await proxy.cut();
      const failure = await rejectsWithin(manager.load({ cookie, https: false }), 2000);
      assert.ok(failure instanceof SessionStoreError);
      assert.equal(failure.status, 503);
      assert.match(failure.message, /^Cannot read session from store: PostgreSQL SELECT failed: /);
      await rejectsWithin(store.set(generateId(), create({ a: 1 })), 2000);
      await rejectsWithin(store.delete(generateId()), 2000);
      await proxy.restore();
      const again = await manager.load({ cookie, https: false });
      assert.equal(again.get("user"), "ada", "the next call reconnects");
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  test("PostgresStore: a server that stops answering fails calls after timeoutMs", async () => {
    const proxy = await CountingProxy.start(db.host, db.port);
    const store = new PostgresStore({ url: proxyUrl(proxy), tableName: table("hung"), timeoutMs: 300 });
    try {
      await store.init();
      proxy.hang();
      const error = await rejectsWithin(store.get(generateId()), 2000);
      assert.equal(error.message, "PostgreSQL SELECT failed: no answer within 300 ms");
      await proxy.restore();
      assert.equal(await store.get(generateId()), undefined, "works again once the server answers");
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  test("PostgresStore: drop this run's schema", async () => {
    await cleanup();
    const check = postgres(db.url, { max: 1, ...quiet });
    try {
      const [{ n }] = await check`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`;
      assert.equal(n, 0);
    } finally {
      await check.end();
    }
  });
}

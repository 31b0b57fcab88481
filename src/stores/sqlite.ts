/**
 * A store that keeps sessions in an SQLite database file: persistent across
 * restarts, shared by every process on one machine, no server to run.
 *
 * The driver is found when the first store opens a file, in this order:
 * 1. the runtime's own `node:sqlite` (`DatabaseSync`): Node 22.13 and later
 *    (22.5-22.12 only with `--experimental-sqlite`), Deno 2, and Bun (1.4
 *    has it);
 * 2. `bun:sqlite`, Bun's own driver, on a Bun without `node:sqlite`;
 * 3. the `better-sqlite3` package (an optional peer dependency), on a Node
 *    without `node:sqlite`.
 *
 * Drivers are reached through `process.getBuiltinModule`, never imported, so
 * the module loads on every runtime, Workers included, and names no type of
 * Node's.
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import { applyChange, CorruptRecordError, storedRecord, storeTime } from "../store.ts";
import type {
  MaybePromise,
  SessionMeta,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "../store.ts";

/**
 * The part of a prepared statement the store uses; `node:sqlite`,
 * `bun:sqlite` and `better-sqlite3` all fit. The store binds only strings, numbers and null;
 * the parameters are typed `unknown` so both drivers' declarations match.
 */
export interface SqliteStatement {
  /** Runs the statement; `changes` is the number of rows it wrote. */
  run(...params: unknown[]): { changes: number | bigint };
  /** Runs the statement and returns its first row; `undefined` (`null` in `bun:sqlite`) when there is none. */
  get(...params: unknown[]): unknown;
  /** Runs the statement and returns all its rows. */
  all(...params: unknown[]): unknown[];
}

/**
 * The part of a database connection the store uses: a `DatabaseSync` of
 * `node:sqlite`, a `Database` of `bun:sqlite` or one of `better-sqlite3`.
 */
export interface SqliteDatabase {
  /** Runs one or more statements without parameters. */
  exec(sql: string): unknown;
  /** Compiles a statement. */
  prepare(sql: string): SqliteStatement;
  /** Closes the connection. */
  close(): unknown;
}

/** Options for {@linkcode SqliteStore}: either `path` or `database`. */
export interface SqliteStoreOptions {
  /**
   * The database file, created if missing (`":memory:"` for a private
   * in-memory database). The store opens it, switches it to WAL mode and
   * closes it in `close()`.
   */
  path?: string;
  /**
   * A connection opened by the caller instead of `path`: a `node:sqlite`
   * `DatabaseSync`, a `bun:sqlite` `Database` or a `better-sqlite3` `Database`. The store leaves its
   * journal mode alone and never closes it, but sets `PRAGMA busy_timeout = 0`
   * on it: a wait inside the driver would freeze the event loop (see
   * `busyTimeoutMs`).
   */
  database?: SqliteDatabase;
  /**
   * The table holding the sessions, created if missing. A plain SQL
   * identifier: letters, digits and `_`, not starting with a digit. Default
   * `"sessions"`.
   */
  tableName?: string;
  /**
   * Milliseconds a call waits for another connection's lock before it fails
   * with `database is locked`. Default 5,000. The wait never blocks the event
   * loop: the driver itself is told not to wait (`PRAGMA busy_timeout = 0`, on
   * a passed-in `database` too), and a call that finds the database locked
   * tries again on a timer (after 1, 2, 4 … 25 ms) until it gets through or
   * this time runs out. A write also stops trying at its deadline
   * (`StoreWrite.deadline`, the core's `storeTimeout`), so a write answered
   * 503 is never applied later.
   */
  busyTimeoutMs?: number;
  /**
   * Milliseconds between two removals of expired rows, done by the next
   * write. `0` removes them on every write; `Infinity` never (call
   * {@linkcode SqliteStore.deleteExpired} yourself). Default 60,000.
   */
  cleanupIntervalMs?: number;
  /**
   * The clock, in milliseconds since the epoch. When given, it decides
   * expiry on every call; by default the store judges at the time the core
   * hands it (`Date.now()` for a call made outside the core, and for
   * {@linkcode SqliteStore.deleteExpired}; see `storeTime`).
   */
  now?: () => number;
}

/** Every {@linkcode SqliteStoreOptions} name (the type checker keeps the list complete): others are refused. */
const OPTION_NAMES = Object.keys(
  {
    path: true,
    database: true,
    tableName: true,
    busyTimeoutMs: true,
    cleanupIntervalMs: true,
    now: true,
  } satisfies Record<keyof SqliteStoreOptions, true>,
);
/** What names from 2.x (options in milliseconds) and from other SQLite session stores (`filename`) say. */
const OPTION_HINTS = {
  filename: 'the database file is "path"',
  busyTimeout: 'renamed "busyTimeoutMs" (milliseconds)',
  cleanupInterval: 'renamed "cleanupIntervalMs" (milliseconds)',
};

/** The metadata columns of a row. */
interface MetaRow {
  created_at: number;
  expires_at: number;
  absolute_expires_at: number;
  lifetime_ms: number | null;
  /** The user id as {@linkcode storedUserId} wrote it. */
  user_id: string | null;
  details: string | null;
}

interface Row extends MetaRow {
  data: string;
  flash: string | null;
}

/** A row of a listing: its key and metadata. */
interface KeyedRow extends MetaRow {
  id: string;
}

/** The metadata columns, in the order of {@linkcode MetaRow}. */
const META_COLUMNS = "created_at, expires_at, absolute_expires_at, lifetime_ms, user_id, details";

/**
 * A user id as the `user_id` column holds it: the inside of its JSON string
 * literal. An ordinary id stays as it is; `"`, `\`, control characters and
 * lone surrogates are escaped, because the drivers cannot keep the last two:
 * `node:sqlite` turns a lone surrogate into U+FFFD (two users would share one
 * id) and Deno's `node:sqlite` cuts text read back at a NUL.
 */
function storedUserId(userId: string): string {
  return JSON.stringify(userId).slice(1, -1);
}

/** The user id of a `user_id` value; only escaped ones contain a backslash. */
function userIdOf(stored: string): string {
  return stored.includes("\\") ? JSON.parse(`"${stored}"`) : stored;
}

/**
 * Columns added after the first schema, with their types: a table made by an
 * earlier version gets each one it lacks when a store opens it (NULL in the
 * rows it holds: no lifetime of their own, no user).
 */
const ADDED_COLUMNS = [["lifetime_ms", "INTEGER"], ["user_id", "TEXT"], ["details", "TEXT"]] as const;

/**
 * A row's metadata. A `user_id` or `details` that cannot be decoded throws a
 * {@linkcode CorruptRecordError}.
 */
function metaOf(row: MetaRow): SessionMeta {
  const meta: SessionMeta = {
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    absoluteExpiresAt: row.absolute_expires_at,
  };
  if (row.lifetime_ms !== null) meta.lifetimeMs = row.lifetime_ms === 0 ? null : row.lifetime_ms;
  try {
    if (row.user_id !== null) meta.userId = userIdOf(row.user_id);
    if (row.details !== null) meta.details = JSON.parse(row.details);
  } catch (error) {
    throw new CorruptRecordError("the user_id or details column cannot be decoded", { cause: error });
  }
  return meta;
}

/**
 * `meta.lifetimeMs` in the `lifetime_ms` column: SQL NULL when the session has
 * none of its own, 0 for `null` (a browser-session cookie; a lifetime is
 * always positive), else the number.
 */
function lifetimeColumn(lifetimeMs: number | null | undefined): number | null {
  return lifetimeMs === undefined ? null : lifetimeMs === null ? 0 : lifetimeMs;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The longest pause between two tries of a call that found the database locked, in ms. */
const MAX_RETRY_DELAY = 25;
/**
 * Milliseconds before a write's deadline at which retries stop: the core's
 * timer may fire up to a millisecond before `Date.now()` reaches the deadline.
 */
const DEADLINE_MARGIN = 2;

/**
 * Whether a driver error is `SQLITE_BUSY`: another connection holds the lock.
 * better-sqlite3 and bun:sqlite set `code`; Node's node:sqlite sets
 * `errcode`; Deno's node:sqlite only the message, SQLite's text for the code.
 */
function isBusy(error: unknown): boolean {
  const { code, errcode, message } = (error ?? {}) as {
    code?: unknown;
    errcode?: unknown;
    message?: unknown;
  };
  if (typeof code === "string" && code.startsWith("SQLITE_BUSY")) return true;
  if (typeof errcode === "number") return (errcode & 0xff) === 5;
  return code === "ERR_SQLITE_ERROR" && typeof message === "string" &&
    message.startsWith("database is locked");
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rows removed by one automatic cleanup, so a large backlog never stalls a single request. */
const CLEANUP_BATCH = 1_000;

type DatabaseConstructor = new (path: string) => SqliteDatabase;

/** `process.getBuiltinModule` where the runtime has it (Node >= 20.16, Deno 2, Bun), read without importing `node:process`. */
function builtinModule(id: string): unknown {
  const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  try {
    return process?.getBuiltinModule?.(id);
  } catch {
    // Node 22.5-22.12 without --experimental-sqlite throws or yields undefined for node:sqlite.
    return undefined;
  }
}

/**
 * Finds a driver without importing one statically, so the module loads on
 * every runtime: `node:sqlite`, then `bun:sqlite`, then `better-sqlite3`.
 */
function loadDriver(): DatabaseConstructor {
  const builtin = builtinModule("node:sqlite") as { DatabaseSync?: DatabaseConstructor } | undefined;
  if (builtin?.DatabaseSync) return builtin.DatabaseSync;
  const bun = builtinModule("bun:sqlite") as { Database?: DatabaseConstructor } | undefined;
  if (bun?.Database) return bun.Database;
  const nodeModule = builtinModule("node:module") as
    | { createRequire(from: string): (id: string) => unknown }
    | undefined;
  try {
    if (nodeModule === undefined) throw new Error("this runtime has no process.getBuiltinModule");
    return nodeModule.createRequire(import.meta.url)("better-sqlite3") as DatabaseConstructor;
  } catch (error) {
    throw new Error(
      "Cannot open SQLite database: this runtime has no node:sqlite (Node >= 22.13, Deno 2, Bun) and the " +
        '"better-sqlite3" package could not be loaded: install it, or pass an open database as "database"',
      { cause: error },
    );
  }
}

/**
 * Adds to the table each column of {@linkcode ADDED_COLUMNS} it lacks. Two
 * processes opening one file of an earlier version may both find a column
 * missing: the one whose `ALTER TABLE` comes second fails with "duplicate
 * column name", which is fine once the column exists.
 */
function addMissingColumns(db: SqliteDatabase, tableName: string): void {
  const present = new Set(
    (db.prepare("SELECT name FROM pragma_table_info(?)").all(tableName) as { name: string }[])
      .map((column) => column.name),
  );
  for (const [name, type] of ADDED_COLUMNS) {
    if (present.has(name)) continue;
    try {
      db.exec(`ALTER TABLE "${tableName}" ADD COLUMN ${name} ${type}`);
    } catch (error) {
      const added = db.prepare("SELECT 1 FROM pragma_table_info(?) WHERE name = ?").get(tableName, name);
      if (added === undefined || added === null) throw error;
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Keeps sessions in one SQLite table: a row per session, user keys as JSON,
 * flash values as JSON, and the deadlines in an indexed `expires_at` column.
 * A logged-in session's row holds its user in `user_id` (and the login's
 * details as JSON): a partial index on `user_id` is the per-user index
 * ({@linkcode SqliteStore.listByUser}), written and removed with the row.
 *
 * Updates run in a `BEGIN IMMEDIATE` transaction that reads the row, applies
 * the request's change and writes it back, so overlapping requests that set
 * different keys both persist, even from different processes, and an update of
 * a deleted or expired row answers `"gone"`. Expired rows are never returned;
 * they are removed through the index by a write at most once per
 * `cleanupIntervalMs`.
 *
 * The driver is synchronous, and so are `get`, `set` and `delete` as long as
 * the database is not locked by another connection: the core then skips its
 * awaits and timer. A call that finds it locked never waits inside the driver
 * (that would freeze the whole server, every route, for as long as the lock
 * is held): it answers a promise and tries again on a timer, up to
 * `busyTimeoutMs`, and for a write up to its deadline. Driver errors (a
 * database locked past that time, a read-only file) reject the call; the core
 * reports them as a `SessionStoreError`.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "./sqlite.ts";
 * import { SessionManager } from "../core.ts";
 *
 * const store = new SqliteStore({ path: ":memory:", tableName: "web_sessions" });
 * const sessions = new SessionManager({ store });
 * const session = await sessions.load({ cookie: null, https: false });
 * session.set("user", "ada");
 * await sessions.commit(session);
 * await store.close();
 * ```
 */
export class SqliteStore implements Store {
  /** A write stops trying to get through a locked database at its deadline. */
  readonly refusesLateWrites = true;
  #db: SqliteDatabase;
  #busyTimeout: number;
  #owned: boolean;
  #closed = false;
  /** The clock the app gave the store, if any (see `storeTime`). */
  #clock: (() => number) | undefined;
  #cleanupInterval: number;
  #nextCleanup: number;
  #select: SqliteStatement;
  #insert: SqliteStatement;
  #update: SqliteStatement;
  #delete: SqliteStatement;
  #deleteExpired: SqliteStatement;
  #listByUser: SqliteStatement;

  /**
   * Opens (or adopts) the database and creates the table and its index if
   * missing. Usable at once.
   *
   * @param options `path` or `database`, and the table name.
   * @throws {TypeError} When an option is invalid or unknown.
   * @throws {Error} When the database cannot be opened or the table cannot be created.
   */
  constructor(options: SqliteStoreOptions = {}) {
    rejectUnknownStoreOptions("SqliteStore", options, OPTION_NAMES, OPTION_HINTS);
    const { path, database } = options;
    const tableName = options.tableName ?? "sessions";
    if (typeof tableName !== "string" || !IDENTIFIER.test(tableName) || /^sqlite_/i.test(tableName)) {
      throw new TypeError(
        'Invalid SqliteStore option "tableName": must be a SQL identifier (letters, digits and _, not starting with a digit or "sqlite_")',
      );
    }
    if (path !== undefined && database !== undefined) {
      throw new TypeError('Invalid SqliteStore options: pass "path" or "database", not both');
    }
    if (database === undefined && (typeof path !== "string" || path === "")) {
      throw new TypeError(
        'Invalid SqliteStore option "path": must be a non-empty string (or pass "database")',
      );
    }
    if (
      database !== undefined &&
      (typeof database?.prepare !== "function" || typeof database.exec !== "function")
    ) {
      throw new TypeError(
        'Invalid SqliteStore option "database": must be a node:sqlite DatabaseSync or a better-sqlite3 Database',
      );
    }
    const busyTimeout = options.busyTimeoutMs;
    if (busyTimeout !== undefined && (!Number.isInteger(busyTimeout) || busyTimeout < 0)) {
      throw new TypeError('Invalid SqliteStore option "busyTimeoutMs": must be a non-negative integer');
    }
    const cleanupInterval = options.cleanupIntervalMs ?? 60_000;
    if (typeof cleanupInterval !== "number" || !(cleanupInterval >= 0)) {
      throw new TypeError('Invalid SqliteStore option "cleanupIntervalMs": must be a non-negative number');
    }
    this.#busyTimeout = busyTimeout ?? 5_000;
    this.#cleanupInterval = cleanupInterval;
    // The first write clears what expired while no process was running, unless cleanup is off.
    this.#nextCleanup = cleanupInterval === Infinity ? Infinity : 0;
    this.#clock = options.now;
    this.#owned = database === undefined;

    let db: SqliteDatabase;
    if (database === undefined) {
      const Database = loadDriver();
      try {
        db = new Database(path!);
      } catch (error) {
        throw new Error(`Cannot open SQLite database: ${describe(error)}`, { cause: error });
      }
    } else {
      db = database;
    }
    this.#db = db;

    const table = `"${tableName}"`;
    try {
      // The driver must never wait for a lock: it would sleep the only JavaScript thread. The store waits on a
      // timer instead (#retry), also on a passed-in connection.
      db.exec("PRAGMA busy_timeout = 0");
      // WAL lets readers go on while one connection writes. It is a property
      // of the file, so a caller's own database keeps the mode it chose.
      if (this.#owned) {
        db.exec("PRAGMA journal_mode = WAL");
        // With WAL, NORMAL syncs at checkpoints instead of on every commit: 4–6× the writes per second
        // (node:sqlite defaults to FULL). A power cut may lose the last commits, never corrupt the file;
        // for sessions that is a few users logged out. Pass your own `database` to choose otherwise.
        db.exec("PRAGMA synchronous = NORMAL");
      }
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${table} (
          id TEXT PRIMARY KEY NOT NULL,
          data TEXT NOT NULL,
          flash TEXT,
          created_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          absolute_expires_at INTEGER NOT NULL,
          lifetime_ms INTEGER,
          user_id TEXT,
          details TEXT
        );
        CREATE INDEX IF NOT EXISTS "${tableName}_expires_at" ON ${table} (expires_at);`,
      );
      addMissingColumns(db, tableName);
      // Only logged-in sessions are indexed: anonymous ones cost the index nothing.
      db.exec(
        `CREATE INDEX IF NOT EXISTS "${tableName}_user_id" ON ${table} (user_id) WHERE user_id IS NOT NULL`,
      );
      const live = "expires_at > ? AND absolute_expires_at > ?";
      this.#select = db.prepare(`SELECT data, flash, ${META_COLUMNS} FROM ${table} WHERE id = ? AND ${live}`);
      // INDEXED BY: the statement fails to compile rather than ever scanning the table (say, should statistics
      // from ANALYZE make the expires_at index look cheaper). `user_id = ?` implies the partial index's
      // `user_id IS NOT NULL`, so SQLite can use it.
      this.#listByUser = db.prepare(
        `SELECT id, ${META_COLUMNS} FROM ${table} INDEXED BY "${tableName}_user_id" WHERE user_id = ? AND ${live}`,
      );
      // A create replaces the whole row, its user and details included; an update (below) never touches them.
      this.#insert = db.prepare(
        `INSERT INTO ${table}
          (id, data, flash, created_at, expires_at, absolute_expires_at, lifetime_ms, user_id, details)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET data = excluded.data, flash = excluded.flash,
          created_at = excluded.created_at, expires_at = excluded.expires_at,
          absolute_expires_at = excluded.absolute_expires_at, lifetime_ms = excluded.lifetime_ms,
          user_id = excluded.user_id, details = excluded.details`,
      );
      this.#update = db.prepare(
        `UPDATE ${table} SET data = ?, flash = ?, created_at = ?, expires_at = ?, absolute_expires_at = ?,
          lifetime_ms = ?
        WHERE id = ?`,
      );
      this.#delete = db.prepare(`DELETE FROM ${table} WHERE id = ?`);
      // The subquery walks the expires_at index; LIMIT bounds the work of one write.
      this.#deleteExpired = db.prepare(
        `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE expires_at <= ? LIMIT ?)`,
      );
    } catch (error) {
      if (this.#owned) {
        try {
          db.close();
        } catch {
          // The original error says more than a failed close.
        }
      }
      throw new Error(`Cannot open SQLite database: ${describe(error)}`, { cause: error });
    }
  }

  /**
   * Does nothing: the constructor already opened the database. Present so code
   * written for stores that connect asynchronously runs unchanged.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:" });
   * await store.init(); // resolves at once
   * await store.close();
   * ```
   */
  init(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Reads a fresh copy of a record; `undefined` when unknown or expired at
   * `now` (the core's time; see `storeTime`). Throws `CorruptRecordError`
   * for a row whose JSON cannot be parsed.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:" });
   * console.log(await store.get("unknown")); // undefined
   * await store.close();
   * ```
   */
  get(key: string, now?: number): MaybePromise<SessionRecord | undefined> {
    const at = storeTime(this.#clock, now);
    return this.#run(() => {
      // `?? undefined`: bun:sqlite answers null for no row, node:sqlite and better-sqlite3 undefined.
      const row = (this.#select.get(key, at, at) ?? undefined) as Row | undefined;
      if (row === undefined) return undefined;
      const meta = metaOf(row);
      let record: SessionRecord;
      try {
        record = { data: JSON.parse(row.data), meta };
        if (row.flash !== null) record.flash = JSON.parse(row.flash);
      } catch (error) {
        throw new CorruptRecordError("the data or flash column is not valid JSON", { cause: error });
      }
      return storedRecord(record);
    });
  }

  /**
   * Creates a record, or applies an update to a live one in one transaction
   * (`"gone"` when it is gone or expired).
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:" });
   * const now = Date.now();
   * const record = { data: { user: "ada" }, meta: { createdAt: now, expiresAt: now + 60_000, absoluteExpiresAt: now + 60_000 } };
   * await store.set("s1_key", { kind: "create", record, set: record.data, deleted: [], cleared: false, flashChanged: false });
   * console.log((await store.get("s1_key"))?.data); // { user: "ada" }
   * await store.close();
   * ```
   */
  set(key: string, write: StoreWrite): MaybePromise<WriteResult> {
    const now = storeTime(this.#clock, write.now);
    return this.#run(() => {
      this.#cleanup(now);
      const { meta } = write.record;
      if (write.kind === "create") {
        const flash = write.record.flash === undefined ? null : JSON.stringify(write.record.flash);
        this.#insert.run(
          key,
          JSON.stringify(write.record.data),
          flash,
          meta.createdAt,
          meta.expiresAt,
          meta.absoluteExpiresAt,
          lifetimeColumn(meta.lifetimeMs),
          meta.userId === undefined ? null : storedUserId(meta.userId),
          meta.details === undefined ? null : JSON.stringify(meta.details),
        );
        return "written";
      }
      // IMMEDIATE takes the write lock before the read, so no other connection
      // can change the row between reading and writing it.
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const row = (this.#select.get(key, now, now) ?? undefined) as Row | undefined;
        if (row === undefined) {
          this.#db.exec("COMMIT");
          return "gone";
        }
        const data = applyChange(JSON.parse(row.data), write);
        let flash = row.flash;
        if (write.flashChanged) {
          flash = write.record.flash === undefined ? null : JSON.stringify(write.record.flash);
        }
        this.#update.run(
          JSON.stringify(data),
          flash,
          meta.createdAt,
          meta.expiresAt,
          meta.absoluteExpiresAt,
          lifetimeColumn(meta.lifetimeMs),
          key,
        );
        this.#db.exec("COMMIT");
        return "written";
      } catch (error) {
        try {
          this.#db.exec("ROLLBACK");
        } catch {
          // SQLite already rolled back on some errors; the original error is what matters.
        }
        throw error;
      }
    }, write.deadline);
  }

  /**
   * The live sessions of `userId`: one `SELECT` through the partial index on
   * `user_id`, so its cost grows with that user's rows, not with the table.
   * Expired rows are skipped (both deadlines against `now`, the core's time) and
   * left for the cleanup of expired rows: a listing never writes. A row whose
   * `details` column is not valid JSON is listed without details, so it can
   * still be revoked (`get` reports it as corrupt).
   *
   * @param userId The user, as in `meta.userId`.
   * @param now The core's time, in milliseconds since the epoch (see `storeTime`).
   * @returns Each live record of the user: its storage key and metadata, in no particular order.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:" });
   * const now = Date.now();
   * const meta = { createdAt: now, expiresAt: now + 60_000, absoluteExpiresAt: now + 60_000, userId: "ada" };
   * await store.set("s1_key", { kind: "create", record: { data: {}, meta }, set: {}, deleted: [], cleared: false, flashChanged: false });
   * console.log((await store.listByUser("ada")).map((entry) => entry.key)); // ["s1_key"]
   * await store.close();
   * ```
   */
  listByUser(userId: string, now?: number): MaybePromise<UserSessionEntry[]> {
    const at = storeTime(this.#clock, now);
    return this.#run(() => {
      return (this.#listByUser.all(storedUserId(userId), at, at) as KeyedRow[]).map((row) => {
        let meta: SessionMeta;
        try {
          meta = metaOf(row);
        } catch {
          meta = metaOf({ ...row, details: null });
        }
        return { key: row.id, meta };
      });
    });
  }

  /**
   * Deletes a record.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:" });
   * await store.delete("unknown"); // not an error
   * await store.close();
   * ```
   */
  delete(key: string): MaybePromise<void> {
    return this.#run(() => {
      this.#delete.run(key);
    });
  }

  /**
   * Removes every expired row now, whatever `cleanupIntervalMs` says, for a
   * scheduled job when automatic cleanup is off.
   *
   * @returns How many rows were removed.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:", cleanupIntervalMs: Infinity });
   * console.log(await store.deleteExpired()); // 0
   * await store.close();
   * ```
   */
  deleteExpired(): Promise<number> {
    // Outside the body: a retry after a lock goes on counting the batches already removed.
    let total = 0;
    return this.#promised(() => {
      const now = storeTime(this.#clock, undefined);
      for (;;) {
        const removed = Number(this.#deleteExpired.run(now, CLEANUP_BATCH).changes);
        total += removed;
        if (removed < CLEANUP_BATCH) return total;
      }
    });
  }

  /**
   * Closes the database if the store opened it (`path`); a passed-in
   * `database` stays open. Later calls reject.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   *
   * const store = new SqliteStore({ path: ":memory:" });
   * await store.close();
   * try {
   *   store.get("x");
   * } catch (error) {
   *   console.log((error as Error).message); // "SqliteStore is closed"
   * }
   * ```
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (!this.#owned) return Promise.resolve();
    try {
      this.#db.close();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Runs one batch of expired rows when it is due at `now`. */
  #cleanup(now: number): void {
    if (now < this.#nextCleanup) return;
    const removed = Number(this.#deleteExpired.run(now, CLEANUP_BATCH).changes);
    // A full batch means a backlog: keep going on the next write instead of waiting.
    this.#nextCleanup = removed === CLEANUP_BATCH ? now : now + this.#cleanupInterval;
  }

  /** {@linkcode SqliteStore.#run}, always as a promise. */
  #promised<T>(body: () => T): Promise<T> {
    try {
      return Promise.resolve(this.#run(body));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs statements on the open database. The driver answers synchronously,
   * and so does this (the store contract allows it: the session core then
   * skips its awaits and timeout), unless another connection holds the lock:
   * then it answers the promise of {@linkcode SqliteStore.#retry}.
   *
   * @param body The statements; it must leave no transaction open when it throws.
   * @param deadline For a write, when the core stops waiting (`Date.now()` scale).
   */
  #run<T>(body: () => T, deadline?: number): MaybePromise<T> {
    if (this.#closed) throw new Error("SqliteStore is closed");
    const started = Date.now();
    if (deadline !== undefined && started >= deadline - DEADLINE_MARGIN) {
      throw new Error("the write's deadline passed before it ran: nothing was written");
    }
    try {
      return body();
    } catch (error) {
      if (!isBusy(error)) throw error;
      return this.#retry(body, started, deadline);
    }
  }

  /**
   * Tries `body` again on a timer while the database is locked (after 1, 2, 4
   * … 25 ms, with jitter so waiting calls spread out), until it gets through,
   * `busyTimeoutMs` has passed since `started`, or the write's `deadline`
   * comes within 2 ms. Each try returns at once when the lock is still held:
   * the event loop is never blocked.
   */
  async #retry<T>(body: () => T, started: number, deadline: number | undefined): Promise<T> {
    const giveUpAt = Math.min(
      started + this.#busyTimeout,
      deadline === undefined ? Number.POSITIVE_INFINITY : deadline - DEADLINE_MARGIN,
    );
    for (let delay = 1;; delay = Math.min(delay * 2, MAX_RETRY_DELAY)) {
      const wait = Math.min(delay * (0.5 + Math.random()), giveUpAt - Date.now());
      if (wait > 0) await sleep(wait);
      if (this.#closed) throw new Error("SqliteStore is closed");
      if (Date.now() >= giveUpAt) {
        const waited = Date.now() - started;
        throw new Error(
          deadline !== undefined && giveUpAt < started + this.#busyTimeout
            ? `database is locked: the write's deadline passed after ${waited} ms of waiting; nothing was written`
            : `database is locked: still locked after ${waited} ms (busyTimeoutMs)`,
        );
      }
      try {
        return body();
      } catch (error) {
        if (!isBusy(error)) throw error;
      }
    }
  }
}

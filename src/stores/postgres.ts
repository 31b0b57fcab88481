/**
 * A store that keeps sessions in PostgreSQL: one row per session, shared by
 * every process and machine that connects to the same database.
 *
 * The driver is the npm package `postgres` (postgres.js, an optional peer
 * dependency loaded only when the store connects through `url`); a client of
 * it, or a `pg` `Pool`, can be passed in instead.
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import { CorruptRecordError, setOwn, storedRecord, storeTime } from "../store.ts";
import type {
  SessionMeta,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "../store.ts";

/**
 * The part of a postgres.js client (`postgres(url)`, npm `postgres` v3) the
 * store uses. A `sql` instance fits as it is.
 */
export interface PostgresJsClient {
  /** Runs one statement with bound parameters. */
  unsafe(
    query: string,
    parameters?: unknown[],
    options?: { prepare?: boolean },
  ): {
    /**
     * Rows as arrays of the server's bytes: the client's column and value transforms
     * (`postgres.camel`, ...) and type parsers do not apply.
     */
    raw(): PromiseLike<ArrayLike<unknown> & { count: number | null }>;
    cancel?(): unknown;
  };
  /** Closes every connection; used only for a client the store created. */
  end?(options?: { timeout?: number }): PromiseLike<unknown>;
}

/** The part of a `pg` `Pool` (or `Client`) the store uses. */
export interface PgQueryable {
  /**
   * Runs one statement with bound parameters; `rowMode: "array"` and `types` give rows as arrays of
   * the server's text, whatever type parsers the pool was given.
   */
  query(config: {
    text: string;
    values?: unknown[];
    rowMode: "array";
    types: { getTypeParser: (...args: never[]) => (text: string) => unknown };
  }): PromiseLike<{ rows: unknown[]; rowCount: number | null }>;
}

/** Options for {@linkcode PostgresStore}: either `url` or `client`. */
export interface PostgresStoreOptions {
  /**
   * A `postgres://` or `postgresql://` connection URL, e.g.
   * `postgres://app:secret@db.internal:5432/app?sslmode=require`. The store
   * loads postgres.js, opens a pool of up to 10 connections on first use and
   * closes it in `close()`.
   */
  url?: string;
  /**
   * An existing client instead of `url`: a postgres.js `sql` instance or a
   * `pg` `Pool`. The store never closes it. Pool size, TLS and the like are
   * then the client's settings.
   */
  client?: PostgresJsClient | PgQueryable;
  /**
   * The table holding the sessions: an SQL identifier (letters, digits and
   * `_`, not starting with a digit, at most 52 characters), optionally
   * qualified by an existing schema (`"auth.sessions"`). Default `"sessions"`.
   */
  tableName?: string;
  /**
   * Create the table and its index on first use when missing. Default `true`.
   * With `false` the table must exist (see docs/stores.md for its SQL).
   */
  createTable?: boolean;
  /**
   * Milliseconds a statement (or, for `url`, a connection attempt) may take
   * before the call fails. Default 5,000.
   */
  timeoutMs?: number;
  /**
   * Milliseconds between two removals of expired rows, started in the
   * background by a write. `0`: after every write; `Infinity`: never (call
   * {@linkcode PostgresStore.deleteExpired} from a scheduled job). Default
   * 60,000.
   */
  cleanupIntervalMs?: number;
  /**
   * The clock for expiry checks, in milliseconds since the epoch. When
   * given, it decides on every call; by default the store judges at the time
   * the core hands it (`Date.now()` for a call made outside the core, and for
   * {@linkcode PostgresStore.deleteExpired}; see `storeTime`). Every instance
   * sharing a table should have the same time (NTP).
   */
  now?: () => number;
}

/** Every {@linkcode PostgresStoreOptions} name (the type checker keeps the list complete): others are refused. */
const OPTION_NAMES = Object.keys(
  {
    url: true,
    client: true,
    tableName: true,
    createTable: true,
    timeoutMs: true,
    cleanupIntervalMs: true,
    now: true,
  } satisfies Record<keyof PostgresStoreOptions, true>,
);
/** The 2.x name of an option in milliseconds. */
const OPTION_HINTS = { timeout: 'renamed "timeoutMs" (milliseconds)' };

/** A statement's answer: rows as arrays of values in the SELECT's order, and the number of rows written. */
interface Answer {
  rows: ArrayLike<ArrayLike<unknown>>;
  count: number;
}

type Execute = (text: string, parameters: unknown[]) => { answer: PromiseLike<Answer>; cancel?: () => void };

/**
 * A row of a SELECT, each cell the server's text output: a string (pg) or its UTF-8 bytes (postgres.js),
 * `null` for NULL. A read selects data and flash, then {@linkcode META_COLUMNS}; a listing, id then them.
 */
type Row = ArrayLike<string | Uint8Array | null>;

/** The metadata columns, in the order {@linkcode decodeMeta} reads them. */
const META_COLUMNS = "created_at, expires_at, absolute_expires_at, lifetime_ms, user_id, details";

const utf8 = new TextDecoder();

function text(cell: string | Uint8Array | null): string | null {
  return cell === null || typeof cell === "string" ? cell : utf8.decode(cell);
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,51}$/;
const SCHEMA = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Rows removed by one cleanup statement, so a large backlog never holds many locks at once. */
const CLEANUP_BATCH = 1_000;

/** SQLSTATE of a missing table. */
const UNDEFINED_TABLE = "42P01";
/** SQLSTATE of a missing column. */
const UNDEFINED_COLUMN = "42703";

function invalid(option: string, rule: string): TypeError {
  return new TypeError(`Invalid PostgresStore option "${option}": ${rule}`);
}

/** The message of an error, with its SQLSTATE or system error code. */
function reason(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reason(error.errors[0]);
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const message = error.message || error.name;
  return typeof code === "string" && code !== "" && !message.includes(code)
    ? `${message} (${code})`
    : message;
}

/**
 * A user key or a user id as it is stored: the inside of its JSON string
 * literal, so NUL, lone surrogates and other characters PostgreSQL text cannot
 * hold travel escaped (the drivers would turn a lone surrogate into U+FFFD,
 * making two user ids one). Plain ones stay as they are.
 */
function storedKey(key: string): string {
  return JSON.stringify(key).slice(1, -1);
}

/** The user key or user id of a stored one; only escaped ones contain a backslash. */
function userKey(stored: string): string {
  return stored.includes("\\") ? JSON.parse(`"${stored}"`) : stored;
}

/**
 * The `jsonb` object of user keys to write: stored key → the value's JSON text,
 * as a JSON string. Values JSON cannot hold (`undefined`, functions) are left
 * out and, for an update, added to `dropped`, the way they vanish from a
 * JSON document.
 */
function encodeEntries(source: Record<string, unknown>, dropped: string[] | undefined): string {
  let out = "{";
  for (const key of Object.keys(source)) {
    const json = JSON.stringify(source[key]);
    if (json === undefined) {
      dropped?.push(storedKey(key));
      continue;
    }
    if (out.length > 1) out += ",";
    out += JSON.stringify(storedKey(key)) + ":" + JSON.stringify(json);
  }
  return out + "}";
}

function checkMeta(meta: SessionMeta): void {
  if (
    !Number.isFinite(meta?.createdAt) || !Number.isFinite(meta.expiresAt) ||
    !Number.isFinite(meta.absoluteExpiresAt)
  ) {
    // PostgreSQL sorts NaN above every number: such a row would never expire.
    throw new TypeError("Invalid session meta: createdAt, expiresAt and absoluteExpiresAt must be finite");
  }
}

function decodeRow(row: Row): SessionRecord {
  let record: SessionRecord;
  try {
    const stored = JSON.parse(text(row[0]) ?? "null");
    if (typeof stored !== "object" || stored === null || Array.isArray(stored)) {
      throw new Error("the data column is not an object");
    }
    const data: Record<string, unknown> = {};
    for (const key of Object.keys(stored)) {
      const json = stored[key];
      if (typeof json !== "string") throw new Error("a value in the data column is not JSON text");
      setOwn(data, userKey(key), JSON.parse(json));
    }
    record = { data, meta: decodeMeta(row, 2, true) };
    const flash = text(row[1]);
    if (flash !== null) record.flash = JSON.parse(flash);
  } catch (error) {
    throw new CorruptRecordError(`the stored row cannot be decoded: ${reason(error)}`, { cause: error });
  }
  return storedRecord(record);
}

/**
 * The metadata of a row, from its {@linkcode META_COLUMNS} starting at
 * `at`. `details` that is not valid JSON throws, unless `withDetails` is
 * false: the record is then read without them.
 */
function decodeMeta(row: Row, at: number, withDetails: boolean): SessionMeta {
  const meta: SessionMeta = {
    // float8's text output is the shortest exact form (PostgreSQL 12+), so Number() gives the same double.
    createdAt: Number(text(row[at])),
    expiresAt: Number(text(row[at + 1])),
    absoluteExpiresAt: Number(text(row[at + 2])),
  };
  // lifetime_ms: NULL when the session has no lifetime of its own, 0 for a browser-session cookie (null).
  const lifetime = text(row[at + 3]);
  if (lifetime !== null) meta.lifetimeMs = Number(lifetime) === 0 ? null : Number(lifetime);
  const userId = text(row[at + 4]);
  if (userId !== null) meta.userId = userKey(userId);
  const details = text(row[at + 5]);
  if (details !== null && withDetails) meta.details = JSON.parse(details);
  return meta;
}

/** `meta.lifetimeMs` in the lifetime_ms column: NULL for none of its own, 0 for `null`, else the number. */
function lifetimeColumn(lifetimeMs: number | null | undefined): number | null {
  return lifetimeMs === undefined ? null : lifetimeMs === null ? 0 : lifetimeMs;
}

function isPostgresJs(client: PostgresJsClient | PgQueryable): client is PostgresJsClient {
  return typeof (client as PostgresJsClient).unsafe === "function";
}

/**
 * Runs statements through a postgres.js client, prepared (one round trip each once a connection knows
 * them), with raw rows: the client's transforms and parsers never change what the store reads.
 */
function postgresJsExecute(sql: PostgresJsClient): Execute {
  return (statement, parameters) => {
    const query = sql.unsafe(statement, parameters, { prepare: true });
    return {
      answer: Promise.resolve(query.raw()).then((rows) => ({
        rows: rows as unknown as ArrayLike<ArrayLike<unknown>>,
        count: rows.count ?? 0,
      })),
      cancel: typeof query.cancel === "function" ? () => query.cancel!() : undefined,
    };
  };
}

/** Every column as the server's text, whatever parsers a pool was configured with. */
const PG_TEXT_TYPES = { getTypeParser: () => (value: string) => value };

/** Runs statements through a `pg` pool (the extended protocol in one round trip), rows as arrays of text. */
function pgExecute(pool: PgQueryable): Execute {
  return (statement, parameters) => ({
    answer: Promise.resolve(
      pool.query({ text: statement, values: parameters, rowMode: "array", types: PG_TEXT_TYPES }),
    ).then((result) => ({
      rows: result.rows as ArrayLike<unknown>[],
      count: result.rowCount ?? 0,
    })),
  });
}

/**
 * Keeps sessions in one PostgreSQL table: a row per session, the user keys in
 * a `jsonb` object (stored key → the value's JSON text), the flash values as
 * JSON text, and the deadlines in indexed `double precision` columns.
 *
 * Every call is one statement and one round trip (once a pooled connection has
 * prepared it): a read is a `SELECT`, a create an `INSERT … ON CONFLICT`, a
 * delete a `DELETE`, and an update one `UPDATE` that merges the request's
 * change into the stored keys on the server (`data - removed || set`), only
 * while the row exists and has not expired. PostgreSQL's row lock orders
 * overlapping updates, each applied to the row the previous one left, so
 * requests that set different keys both persist, and an update of a deleted
 * or expired row writes nothing and answers `"gone"`.
 *
 * Values are kept as JSON text inside `jsonb` strings rather than as `jsonb`
 * values, because `jsonb` refuses `\u0000` and lone surrogates: every value
 * round-trips exactly, as in the other stores.
 *
 * Expired rows are never returned nor updated; they are removed in batches
 * through the `expires_at` index, in the background, at most once per
 * `cleanupIntervalMs`.
 *
 * Failures (the server down, a statement over `timeoutMs`, a missing table)
 * reject with an `Error` naming PostgreSQL and the cause; the core reports it
 * as a `SessionStoreError` (503).
 *
 * @example
 * ```ts
 * import { PostgresStore } from "./postgres.ts";
 * import { SessionManager } from "../core.ts";
 *
 * const store = new PostgresStore({ url: "postgres://app@127.0.0.1:5432/app" });
 * await store.init(); // optional: connects and creates the table now rather than on the first request
 * const sessions = new SessionManager({ store });
 * // ... on shutdown:
 * await store.close();
 * ```
 */
export class PostgresStore implements Store {
  #url: string | undefined;
  #client: PostgresJsClient | PgQueryable | undefined;
  #owned: PostgresJsClient | undefined;
  #execute: Execute | undefined;
  #starting: Promise<Execute> | undefined;
  #closed = false;
  #createTable: boolean;
  #table: string;
  #tableName: string;
  #index: string;
  #userIndex: string;
  #timeout: number;
  /** The clock the app gave the store, if any (see `storeTime`). */
  #clock: (() => number) | undefined;
  #cleanupInterval: number;
  #nextCleanup: number;
  #cleaning: Promise<void> | undefined;
  #sql: {
    select: string;
    insert: string;
    update: string;
    delete: string;
    deleteExpired: string;
    listByUser: string;
  };

  /**
   * Checks the options; nothing connects until {@linkcode PostgresStore.init}
   * or the first call.
   *
   * @param options `url` or `client`, and the table.
   * @throws {TypeError} When an option is invalid or unknown, naming it.
   */
  constructor(options: PostgresStoreOptions = {}) {
    rejectUnknownStoreOptions("PostgresStore", options, OPTION_NAMES, OPTION_HINTS);
    const { url, client } = options;
    if (url !== undefined && client !== undefined) {
      throw new TypeError('Invalid PostgresStore options: pass "url" or "client", not both');
    }
    if (client !== undefined) {
      const fits = (typeof client === "function" || (typeof client === "object" && client !== null)) &&
        (typeof (client as PostgresJsClient).unsafe === "function" ||
          typeof (client as PgQueryable).query === "function");
      if (!fits) throw invalid("client", "must be a postgres.js sql instance or a pg Pool");
      this.#client = client;
    } else {
      // postgres.js parses the rest, including forms URL cannot (several hosts: postgres://h1,h2/db).
      if (typeof url !== "string" || !/^postgres(ql)?:\/\/./.test(url)) {
        throw invalid("url", 'must be a postgres:// or postgresql:// URL (or pass "client")');
      }
      this.#url = url;
    }
    const tableName = options.tableName ?? "sessions";
    const parts = typeof tableName === "string" ? tableName.split(".") : [];
    const table = parts.at(-1) ?? "";
    if (
      parts.length < 1 || parts.length > 2 || !IDENTIFIER.test(table) ||
      (parts.length === 2 && !SCHEMA.test(parts[0])) || /^pg_/i.test(table)
    ) {
      throw invalid(
        "tableName",
        'must be an SQL identifier (letters, digits and _, not starting with a digit or "pg_", at most 52 characters), optionally after a schema and a dot',
      );
    }
    this.#tableName = tableName;
    this.#table = parts.map((part) => `"${part}"`).join(".");
    this.#index = `"${table}_expires_at"`;
    this.#userIndex = `"${table}_user_id"`;
    const createTable = options.createTable ?? true;
    if (typeof createTable !== "boolean") throw invalid("createTable", "must be a boolean");
    this.#createTable = createTable;
    const timeoutMs = options.timeoutMs ?? 5_000;
    if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw invalid("timeoutMs", "must be a positive number of milliseconds");
    }
    this.#timeout = timeoutMs;
    const cleanupInterval = options.cleanupIntervalMs ?? 60_000;
    if (typeof cleanupInterval !== "number" || !(cleanupInterval >= 0)) {
      throw invalid("cleanupIntervalMs", "must be a non-negative number of milliseconds (or Infinity)");
    }
    this.#cleanupInterval = cleanupInterval;
    // The first write clears what expired while no instance ran, unless cleanup is off.
    this.#nextCleanup = cleanupInterval === Infinity ? Infinity : 0;
    if (options.now !== undefined && typeof options.now !== "function") {
      throw invalid("now", "must be a function");
    }
    this.#clock = options.now;

    const t = this.#table;
    const live = "id = $1 AND expires_at > $2 AND absolute_expires_at > $2";
    this.#sql = {
      // Read by position and as text (decodeRow), never by column name or through the client's parsers.
      select: `SELECT data::text, flash, ${META_COLUMNS} FROM ${t} WHERE ${live}`,
      // A create replaces the whole row, its user and details included; an update never touches them.
      insert: `INSERT INTO ${t}
          (id, data, flash, created_at, expires_at, absolute_expires_at, lifetime_ms, user_id, details)
        VALUES ($1, $2::text::jsonb, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (id) DO UPDATE SET data = excluded.data, flash = excluded.flash,
          created_at = excluded.created_at, expires_at = excluded.expires_at,
          absolute_expires_at = excluded.absolute_expires_at, lifetime_ms = excluded.lifetime_ms,
          user_id = excluded.user_id, details = excluded.details`,
      // One statement: the row lock orders overlapping updates, and each merges into the row the last one left.
      update: `UPDATE ${t} SET
          data = CASE WHEN $3::boolean THEN '{}'::jsonb
            ELSE data - ARRAY(SELECT jsonb_array_elements_text($4::text::jsonb)) END || $5::text::jsonb,
          flash = CASE WHEN $6::boolean THEN $7::text ELSE flash END,
          created_at = $8, expires_at = $9, absolute_expires_at = $10, lifetime_ms = $11
        WHERE ${live}`,
      delete: `DELETE FROM ${t} WHERE id = $1`,
      // The subquery walks the expires_at index and the DELETE the primary key (= ANY of an array, where
      // IN (subquery) may hash-join against a full scan); SKIP LOCKED lets instances clean side by side.
      deleteExpired: `DELETE FROM ${t} WHERE id = ANY(ARRAY(
          SELECT id FROM ${t} WHERE expires_at <= $1 LIMIT ${CLEANUP_BATCH} FOR UPDATE SKIP LOCKED))`,
      // `user_id = $1` implies the partial index's `user_id IS NOT NULL`: the planner can use it. The deadlines
      // are tested as one expression (the same rows as `expires_at > $2 AND absolute_expires_at > $2`) that no
      // index serves: without statistics the planner otherwise ANDs in a bitmap scan of the expires_at index,
      // which reads an entry per live session of every user (3 ms at 100,000 sessions, measured).
      listByUser: `SELECT id, ${META_COLUMNS} FROM ${t}
        WHERE user_id = $1 AND LEAST(expires_at, absolute_expires_at) > $2`,
    };
  }

  /**
   * Loads postgres.js (for `url`) and, with `createTable`, creates the table
   * and its index if missing, which also proves the server reachable.
   * Optional: the first call does it otherwise; calling it at startup makes a
   * wrong URL, a missing driver or a missing permission fail there. Calling
   * it again after success does nothing; after a failure, it tries again.
   *
   * @throws {Error} (rejects) When postgres.js is missing, the server cannot
   * be reached, or the table cannot be created.
   */
  async init(): Promise<void> {
    await this.#ready();
  }

  #ready(): Promise<Execute> {
    if (this.#closed) return Promise.reject(new Error("Cannot use a closed PostgresStore"));
    if (this.#execute !== undefined) return Promise.resolve(this.#execute);
    this.#starting ??= this.#start().then(
      (execute) => {
        if (this.#closed) throw new Error("Cannot use a closed PostgresStore");
        this.#execute = execute;
        return execute;
      },
      (error) => {
        this.#starting = undefined;
        throw error;
      },
    );
    return this.#starting;
  }

  async #start(): Promise<Execute> {
    let execute: Execute;
    if (this.#client !== undefined) {
      execute = isPostgresJs(this.#client) ? postgresJsExecute(this.#client) : pgExecute(this.#client);
    } else {
      let postgres: (url: string, options: Record<string, unknown>) => PostgresJsClient;
      try {
        postgres = (await import("postgres")).default as unknown as typeof postgres;
      } catch (cause) {
        throw new Error(
          'PostgresStore needs the npm package "postgres" (postgres.js) for "url": install it with npm install postgres, or pass a pg Pool as "client"',
          { cause },
        );
      }
      const sql = postgres(this.#url!, {
        max: 10,
        connect_timeout: Math.max(1, Math.ceil(this.#timeout / 1000)),
        // Close idle connections after a minute so a quiet app holds none.
        idle_timeout: 60,
        onnotice: () => {},
        // Overlapping updates rely on READ COMMITTED re-reading the row they waited for (the default;
        // a database or role set to REPEATABLE READ would make them fail with serialization errors).
        connection: { application_name: "deno-sessions", default_transaction_isolation: "read committed" },
      });
      if (this.#closed) {
        await sql.end?.({ timeout: 0 });
        throw new Error("PostgresStore was closed during init()");
      }
      this.#owned = sql;
      execute = postgresJsExecute(sql);
    }
    if (this.#createTable) await this.#run(execute, "CREATE TABLE", this.#createSql(), []);
    return execute;
  }

  /**
   * One statement (a DO block runs as one transaction): the advisory lock
   * makes instances that start together create the table one after the
   * other, since `CREATE TABLE IF NOT EXISTS` alone can collide on the
   * catalog. `client_min_messages` keeps "already exists" notices quiet.
   */
  #createSql(): string {
    const t = this.#table;
    return `DO $do$ BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('deno-sessions:${this.#tableName}'));
      PERFORM set_config('client_min_messages', 'warning', true);
      CREATE TABLE IF NOT EXISTS ${t} (
        id text COLLATE "C" PRIMARY KEY,
        data jsonb NOT NULL,
        flash text,
        created_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        absolute_expires_at double precision NOT NULL,
        lifetime_ms double precision,
        user_id text COLLATE "C",
        details text
      );
      -- Columns added since the first version; rows already there get NULL (no lifetime of their own, no user).
      ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS lifetime_ms double precision,
        ADD COLUMN IF NOT EXISTS user_id text COLLATE "C", ADD COLUMN IF NOT EXISTS details text;
      CREATE INDEX IF NOT EXISTS ${this.#index} ON ${t} (expires_at);
      CREATE INDEX IF NOT EXISTS ${this.#userIndex} ON ${t} (user_id) WHERE user_id IS NOT NULL;
    END $do$`;
  }

  /**
   * Runs one statement with the store's deadline. A statement past it is
   * cancelled where the driver can (postgres.js) and the call rejects.
   */
  async #run(execute: Execute, what: string, text: string, parameters: unknown[]): Promise<Answer> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let answer: PromiseLike<Answer> | undefined;
    try {
      const running = execute(text, parameters);
      answer = running.answer;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          running.cancel?.();
          reject(new Error(`no answer within ${this.#timeout} ms`));
        }, this.#timeout);
      });
      return await Promise.race([answer, deadline]);
    } catch (error) {
      let message = `PostgreSQL ${what} failed: ${reason(error)}`;
      if ((error as { code?: unknown })?.code === UNDEFINED_TABLE) {
        message += this.#createTable
          ? ` (the table ${this.#tableName} was dropped after the store created it)`
          : ` (createTable is false: create the table ${this.#tableName}, see docs/stores.md)`;
      } else if ((error as { code?: unknown })?.code === UNDEFINED_COLUMN && !this.#createTable) {
        message +=
          ` (createTable is false: add this version's columns to ${this.#tableName}, see docs/stores.md)`;
      }
      throw new Error(message, { cause: error });
    } finally {
      clearTimeout(timer);
      // A statement that lost the race may still reject; that is already reported.
      if (answer !== undefined) Promise.resolve(answer).catch(() => {});
    }
  }

  /**
   * Reads a record; `undefined` when unknown or expired at `now` (the
   * core's time; see `storeTime`). One `SELECT`. Throws
   * `CorruptRecordError` for a row that cannot be decoded.
   */
  async get(key: string, now?: number): Promise<SessionRecord | undefined> {
    const at = storeTime(this.#clock, now);
    const execute = this.#execute ?? await this.#ready();
    const { rows } = await this.#run(execute, "SELECT", this.#sql.select, [key, at]);
    if (rows.length === 0) return undefined;
    return decodeRow(rows[0] as unknown as Row);
  }

  /**
   * Creates a record (one `INSERT … ON CONFLICT`), or applies an update per
   * key to a live one (one `UPDATE`; `"gone"` when it is gone or expired).
   */
  async set(key: string, write: StoreWrite): Promise<WriteResult> {
    const now = storeTime(this.#clock, write.now);
    const execute = this.#execute ?? await this.#ready();
    const { record } = write;
    const { meta } = record;
    checkMeta(meta);
    const flash = record.flash === undefined ? null : JSON.stringify(record.flash);
    let result: WriteResult;
    if (write.kind === "create") {
      await this.#run(execute, "INSERT", this.#sql.insert, [
        key,
        encodeEntries(record.data, undefined),
        flash,
        meta.createdAt,
        meta.expiresAt,
        meta.absoluteExpiresAt,
        lifetimeColumn(meta.lifetimeMs),
        meta.userId === undefined ? null : storedKey(meta.userId),
        meta.details === undefined ? null : JSON.stringify(meta.details),
      ]);
      result = "written";
    } else {
      const removed = write.deleted.map(storedKey);
      const set = encodeEntries(write.set, removed);
      const { count } = await this.#run(execute, "UPDATE", this.#sql.update, [
        key,
        now,
        write.cleared,
        JSON.stringify(removed),
        set,
        write.flashChanged,
        flash,
        meta.createdAt,
        meta.expiresAt,
        meta.absoluteExpiresAt,
        lifetimeColumn(meta.lifetimeMs),
      ]);
      result = count === 1 ? "written" : "gone";
    }
    this.#cleanupWhenDue(execute, now);
    return result;
  }

  /**
   * The live sessions of `userId`: one `SELECT` through the partial index on
   * `user_id`, so its cost grows with that user's rows, not with the table.
   * Rows past either deadline at `now` (the core's time) are skipped and left to
   * the cleanup of expired rows: a listing never writes. A row whose
   * `details` are not valid JSON is listed without them, so it can still be
   * revoked (`get` reports it as corrupt).
   *
   * @param userId The user, as in `meta.userId`.
   * @param now The core's time, in milliseconds since the epoch (see `storeTime`).
   * @returns Each live record of the user: its storage key and metadata, in no particular order.
   * @throws {Error} (rejects) When PostgreSQL fails or does not answer within `timeoutMs`.
   */
  async listByUser(userId: string, now?: number): Promise<UserSessionEntry[]> {
    const at = storeTime(this.#clock, now);
    const execute = this.#execute ?? await this.#ready();
    const { rows } = await this.#run(execute, "SELECT (user)", this.#sql.listByUser, [storedKey(userId), at]);
    return Array.from(rows as ArrayLike<Row>, (row) => {
      let meta: SessionMeta;
      try {
        meta = decodeMeta(row, 1, true);
      } catch {
        meta = decodeMeta(row, 1, false);
      }
      return { key: text(row[0])!, meta };
    });
  }

  /** Deletes a record. One `DELETE`. */
  async delete(key: string): Promise<void> {
    const execute = this.#execute ?? await this.#ready();
    await this.#run(execute, "DELETE", this.#sql.delete, [key]);
  }

  /**
   * Removes every expired row now, in batches of 1,000 through the index,
   * whatever `cleanupIntervalMs` says: for a scheduled job when automatic
   * cleanup is off.
   *
   * @returns How many rows were removed.
   */
  async deleteExpired(): Promise<number> {
    const execute = this.#execute ?? await this.#ready();
    const now = storeTime(this.#clock, undefined);
    let total = 0;
    for (;;) {
      const { count } = await this.#run(execute, "DELETE (expired)", this.#sql.deleteExpired, [now]);
      total += count;
      if (count < CLEANUP_BATCH) return total;
    }
  }

  /**
   * Starts one batch of cleanup in the background when it is due at `now`
   * (the write's time), never holding the request that triggered it. A full
   * batch makes the next write run another; a failure waits for the next
   * interval.
   */
  #cleanupWhenDue(execute: Execute, now: number): void {
    if (now < this.#nextCleanup || this.#cleaning !== undefined) return;
    this.#nextCleanup = now + this.#cleanupInterval;
    this.#cleaning = this.#run(execute, "DELETE (expired)", this.#sql.deleteExpired, [now]).then(
      ({ count }) => {
        if (count === CLEANUP_BATCH) this.#nextCleanup = now;
      },
      () => {},
    ).finally(() => {
      this.#cleaning = undefined;
    });
  }

  /**
   * Waits for a running cleanup, then closes the connections the store opened
   * (`url`), letting statements in flight finish for up to `timeoutMs`. A
   * passed-in `client` stays open. Later calls reject.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#cleaning;
    const owned = this.#owned;
    this.#owned = undefined;
    this.#execute = undefined;
    // Statements in flight may finish; past timeoutMs the connections are dropped (they would fail by then).
    if (owned !== undefined) await owned.end?.({ timeout: this.#timeout / 1000 });
  }
}

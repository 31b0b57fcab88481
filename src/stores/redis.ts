/**
 * A store that keeps sessions in Redis through the official client, node-redis
 * (the npm package `redis`, an optional peer dependency loaded only by
 * `init()`).
 *
 * @module
 */

import type { SessionRecord, Store, StoreWrite, WriteResult } from "../store.ts";
import { RedisSessions, TIMEOUT_ERROR, timeoutError } from "./_redis_scripts.ts";

/**
 * The part of a node-redis client the store uses. Any client from
 * `createClient()` of the `redis` package (v4 or later) fits.
 */
export interface RedisClientLike {
  /** Sends one command and resolves to its reply. */
  sendCommand(args: string[]): Promise<unknown>;
}

/** A client the store created, connects and closes itself. */
interface OwnedClient extends RedisClientLike {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  on(event: "error" | "ready", listener: (error?: unknown) => void): unknown;
}

/** Options for {@linkcode RedisStore}. */
export interface RedisStoreOptions {
  /** Host name or IP address of the server. Default `"127.0.0.1"`. */
  host?: string;
  /** TCP port of the server. Default `6379`. */
  port?: number;
  /**
   * A `redis://` or `rediss://` URL (`rediss:` turns TLS on), e.g.
   * `redis://user:secret@cache.internal:6380/2`. The other connection options,
   * when given too, take precedence over the parts of the URL.
   */
  url?: string;
  /** ACL user name (Redis 6+). Default: none (the `default` user). */
  username?: string;
  /** Password for `AUTH`. Default: none. */
  password?: string;
  /** Logical database number, for `SELECT`. Default `0`. */
  db?: number;
  /** `true`, or Node TLS options, to connect over TLS. Default `false`. */
  tls?: boolean | RedisTlsOptions;
  /** Prefix of every session key. Default `"session_"`, as in version 1. */
  keyPrefix?: string;
  /**
   * An existing node-redis client to use instead of a connection of the
   * store's own. The store neither connects nor closes it, and it cannot be
   * combined with the connection options.
   */
  client?: RedisClientLike;
  /**
   * Milliseconds a connection attempt or a command's round trip may take
   * before it fails. Default `5000`. A `client` you pass in keeps its own
   * connection settings; the command deadline applies to it too.
   */
  timeoutMs?: number;
  /**
   * The clock for expiry checks, in milliseconds since the epoch. Default
   * `Date.now`. Native expiry (`PEXPIREAT`) follows the server's clock.
   */
  now?: () => number;
}

/** Connection attempts before the first successful connect gives up. */
const INITIAL_CONNECT_ATTEMPTS = 3;
/**
 * TLS options for the connection: those of Node's `tls.connect()` (`ca`,
 * `cert`, `key`, `servername`, `rejectUnauthorized`...), passed on to the
 * `redis` client as they are. Typed loosely so that this module names no type
 * of Node's and type-checks without `@types/node`.
 */
export type RedisTlsOptions = { readonly [option: string]: unknown };

const CONNECTION_OPTIONS = ["host", "port", "url", "username", "password", "db", "tls"] as const;
const NOT_INITIALISED = "Cannot use RedisStore before init(): call await store.init() first";

interface ConnectionSettings {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  tls: boolean | RedisTlsOptions;
  timeout: number;
}

function invalid(option: string, rule: string): TypeError {
  return new TypeError(`Invalid RedisStore option "${option}": ${rule}`);
}

function checkPort(port: unknown, option: string): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(option, "must be an integer from 1 to 65535");
  }
  return port;
}

function connectionSettings(options: RedisStoreOptions): ConnectionSettings {
  const settings: ConnectionSettings = { host: "127.0.0.1", port: 6379, db: 0, tls: false, timeout: 5000 };
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw invalid("url", "must be a redis:// or rediss:// URL");
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      throw invalid("url", "must be a redis:// or rediss:// URL");
    }
    if (url.hostname !== "") settings.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    if (url.port !== "") settings.port = checkPort(Number(url.port), "url");
    if (url.username !== "") settings.username = decodeURIComponent(url.username);
    if (url.password !== "") settings.password = decodeURIComponent(url.password);
    if (url.pathname.length > 1) {
      const db = Number(url.pathname.slice(1));
      if (!Number.isInteger(db) || db < 0) throw invalid("url", "the path must be a database number");
      settings.db = db;
    }
    settings.tls = url.protocol === "rediss:";
  }
  if (options.host !== undefined) {
    if (typeof options.host !== "string" || options.host === "") {
      throw invalid("host", "must be a non-empty string");
    }
    settings.host = options.host;
  }
  if (options.port !== undefined) settings.port = checkPort(options.port, "port");
  if (options.username !== undefined) {
    if (typeof options.username !== "string") throw invalid("username", "must be a string");
    settings.username = options.username;
  }
  if (options.password !== undefined) {
    if (typeof options.password !== "string") throw invalid("password", "must be a string");
    settings.password = options.password;
  }
  if (options.db !== undefined) {
    if (!Number.isInteger(options.db) || options.db < 0) {
      throw invalid("db", "must be a non-negative integer");
    }
    settings.db = options.db;
  }
  if (options.tls !== undefined) {
    if (typeof options.tls !== "boolean" && (typeof options.tls !== "object" || options.tls === null)) {
      throw invalid("tls", "must be a boolean or an object of TLS options");
    }
    settings.tls = options.tls;
  }
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined) {
    if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw invalid("timeoutMs", "must be a positive number of milliseconds");
    }
    settings.timeout = timeoutMs;
  }
  return settings;
}

/** The message of an error; for a connection refused on every address, the first refusal. */
function reason(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reason(error.errors[0]);
  if (error instanceof Error) {
    return error.message || (error as { code?: string }).code || error.name;
  }
  return String(error);
}

/**
 * Keeps each session in one Redis hash, `keyPrefix` + the storage key: user keys in fields
 * of their own (`d:<key>`), the metadata in `meta`, flash values in `flash`.
 * Every write sets native expiry (`PEXPIREAT`) from the record's `expiresAt`,
 * and reads re-check it, because Redis evicts lazily.
 *
 * Each operation is one round trip: one Lua script (`EVALSHA`, falling back to
 * `EVAL` once after a server restart) that reads, deletes, or writes. A write
 * applies an update per key, atomically, and only while the record still
 * exists: a logged-out session is never recreated. Writes carry a deadline
 * the script checks against the server's clock, so a write that timed out is
 * not applied later. Every reply carries back the request's unique tag and
 * the key it touched, and a reply that does not match is refused (the same
 * protocol as `WebdisStore`, where a proxy can mix replies up).
 *
 * When Redis is down, operations reject at once instead of queueing, and the
 * client keeps reconnecting in the background.
 *
 * @example The version 1 form
 * ```ts ignore
 * import { RedisStore } from "./redis.ts";
 *
 * const store = new RedisStore({ host: "127.0.0.1", port: 6379 });
 * await store.init();
 * console.log(await store.get("unknown-id")); // undefined
 * await store.close();
 * ```
 *
 * @example A URL, and an existing client
 * ```ts ignore
 * import { createClient } from "redis";
 * import { RedisStore } from "./redis.ts";
 *
 * const store = new RedisStore({ url: "rediss://app:secret@cache.internal:6380/1", keyPrefix: "myapp:sess:" });
 * await store.init();
 *
 * const client = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const shared = new RedisStore({ client }); // usable at once; close() leaves the client open
 * ```
 */
export class RedisStore implements Store {
  /** Writes carry a deadline the write script enforces by the server's clock. */
  readonly refusesLateWrites = true;
  #settings: ConnectionSettings | undefined;
  #client: RedisClientLike | undefined;
  #owned: OwnedClient | undefined;
  #initialising: Promise<void> | undefined;
  #closed = false;
  #timeout: number;
  #sessions: RedisSessions;

  /** @param options Connection, key prefix, or an existing client. */
  constructor(options: RedisStoreOptions = {}) {
    const keyPrefix = options.keyPrefix === undefined ? "session_" : options.keyPrefix;
    if (typeof keyPrefix !== "string") throw invalid("keyPrefix", "must be a string");
    if (options.now !== undefined && typeof options.now !== "function") {
      throw invalid("now", "must be a function");
    }
    if ("timeout" in options) throw invalid("timeout", 'renamed "timeoutMs" (milliseconds)');
    if (options.client !== undefined) {
      if (typeof options.client?.sendCommand !== "function") {
        throw invalid("client", "must be a node-redis client (with sendCommand())");
      }
      const conflict = CONNECTION_OPTIONS.find((name) => options[name] !== undefined);
      if (conflict !== undefined) throw invalid("client", `cannot be combined with "${conflict}"`);
      this.#client = options.client;
      this.#timeout = connectionSettings({ timeoutMs: options.timeoutMs }).timeout;
    } else {
      this.#settings = connectionSettings(options);
      this.#timeout = this.#settings.timeout;
    }
    this.#sessions = new RedisSessions({
      send: (args) => this.#send(args),
      keyPrefix,
      timeoutMs: this.#timeout,
      now: options.now ?? Date.now,
    });
  }

  /**
   * Loads the `redis` package and connects. Rejects when the package is
   * missing or the server cannot be reached after a few attempts. Calling it
   * again after success does nothing; after a failure, it tries again.
   */
  init(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot init a closed RedisStore"));
    if (this.#client !== undefined) return Promise.resolve();
    this.#initialising ??= this.#connect().catch((error) => {
      this.#initialising = undefined;
      throw error;
    });
    return this.#initialising;
  }

  async #connect(): Promise<void> {
    const settings = this.#settings!;
    let redis: typeof import("redis");
    try {
      redis = await import("redis");
    } catch (cause) {
      const message =
        'RedisStore needs the npm package "redis" (node-redis): install it with `npm install redis`';
      throw new Error(message, { cause });
    }
    let everReady = false;
    const socket = {
      host: settings.host,
      port: settings.port,
      connectTimeout: settings.timeout,
      // Give up early on the first connect so init() fails fast; once connected,
      // keep trying forever, because the store cannot recreate the client itself.
      reconnectStrategy: (retries: number, cause: Error): number | Error =>
        !everReady && retries + 1 >= INITIAL_CONNECT_ATTEMPTS ? cause : Math.min(50 * 2 ** retries, 2000),
      ...(settings.tls === false
        ? {}
        : { ...(settings.tls === true ? {} : settings.tls), tls: true as const }),
    };
    const client = redis.createClient({
      socket,
      username: settings.username,
      password: settings.password,
      database: settings.db,
      // Without this, commands sent while Redis is down wait in a queue with no bound.
      disableOfflineQueue: true,
    }) as unknown as OwnedClient;
    // An EventEmitter without an "error" listener would crash the process on the first refused reconnect;
    // failures reach callers through the rejected commands instead.
    client.on("error", () => {});
    client.on("ready", () => {
      everReady = true;
    });
    try {
      await client.connect();
    } catch (error) {
      if (client.isOpen) client.destroy();
      throw new Error(`Cannot connect to Redis at ${settings.host}:${settings.port}: ${reason(error)}`, {
        cause: error,
      });
    }
    if (this.#closed) {
      client.destroy();
      throw new Error("RedisStore was closed during init()");
    }
    this.#owned = client;
    this.#client = client;
  }

  #ready(): RedisClientLike {
    if (this.#closed) throw new Error("Cannot use a closed RedisStore");
    if (this.#client === undefined) throw new Error(NOT_INITIALISED);
    return this.#client;
  }

  /**
   * Sends one command. node-redis's own command timeout stops counting once a
   * command is written, so a server that accepts bytes but never answers would
   * hold the request forever: the deadline here covers the whole round trip.
   */
  async #send(args: string[]): Promise<unknown> {
    const client = this.#ready();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(timeoutError(`Redis ${args[0]} failed: no reply within ${this.#timeout} ms`)),
        this.#timeout,
      );
    });
    try {
      return await Promise.race([client.sendCommand(args), deadline]);
    } catch (error) {
      if ((error as Error)?.name === TIMEOUT_ERROR) throw error;
      throw new Error(`Redis ${args[0]} failed: ${reason(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads a record; `undefined` when unknown or expired. One `EVALSHA` of the read script. */
  async get(key: string): Promise<SessionRecord | undefined> {
    this.#ready();
    return await this.#sessions.get(key);
  }

  /**
   * Creates a record, or applies an update per key to a live one (`"gone"` when
   * it is gone or expired). One `EVALSHA`; Redis refuses it once
   * `write.deadline` (or `timeoutMs`) has passed.
   */
  async set(key: string, write: StoreWrite): Promise<WriteResult> {
    this.#ready();
    return await this.#sessions.set(key, write);
  }

  /** Deletes a record. One `EVALSHA` of the delete script. */
  async delete(key: string): Promise<void> {
    this.#ready();
    await this.#sessions.delete(key);
  }

  /**
   * Closes the connection the store opened, after pending replies arrive. A
   * client passed in as `client` stays open.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#owned;
    this.#owned = undefined;
    this.#client = undefined;
    if (client === undefined || !client.isOpen) return;
    await client.close();
  }

  /** Closes the connection the store opened at once, failing pending commands. */
  disconnect(): Promise<void> {
    this.#closed = true;
    const client = this.#owned;
    this.#owned = undefined;
    this.#client = undefined;
    if (client?.isOpen) client.destroy();
    return Promise.resolve();
  }
}

/**
 * A store that keeps sessions in Redis — one server or a Redis Cluster, and
 * servers that speak its protocol, such as Valkey — through the official
 * client, node-redis (the npm package `redis`, an optional peer dependency
 * loaded only by `init()`).
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import {
  checkCommonOptions,
  COMMON_OPTION_HINTS,
  keySlot,
  optionError,
  RedisSessionStore,
  type RedisStoreCommonOptions,
  type RedisTransport,
  type WaitedReply,
} from "./_redis_store.ts";
import { TIMEOUT_ERROR, timeoutError } from "./_redis_scripts.ts";

/**
 * TLS options for the connection: those of Node's `tls.connect()` (`ca`,
 * `cert`, `key`, `servername`, `rejectUnauthorized`...), passed on to the
 * `redis` client as they are. Typed loosely so that this module names no type
 * of Node's and type-checks without `@types/node`.
 */
export type RedisTlsOptions = { readonly [option: string]: unknown };

/**
 * The part of a node-redis client the store uses. Any client from
 * `createClient()` of the `redis` package (v5 or later) fits.
 */
export interface RedisClientLike {
  /** Sends one command and resolves to its reply. */
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * The part of a node-redis cluster client (`createCluster()` of the `redis`
 * package, v5 or later) the store uses: commands routed by their key, and, to
 * wait for replicas, the slot map and each node's own client.
 */
export interface RedisClusterClientLike {
  /** Sends one command to the node that serves `firstKey`'s slot, following `MOVED` and `ASK`. */
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  /** The slot map: each slot's shard, with its master node. */
  readonly slots: ReadonlyArray<{ master: unknown } | undefined>;
  /** The nodes by `host:port`. */
  readonly nodeByAddress: ReadonlyMap<string, unknown>;
  /** The connected client of one node. */
  nodeClient(node: never): Promise<RedisClientLike> | RedisClientLike;
}

/** A Redis Cluster to connect to, for {@linkcode RedisStoreOptions.cluster}. */
export interface RedisClusterOptions {
  /**
   * Some nodes of the cluster (one is enough; three survive a node being
   * down), each as a `redis://` or `rediss://` URL, e.g.
   * `[{ url: "redis://10.0.0.1:6379" }]`. The store discovers the other
   * nodes and the slot map from them (`CLUSTER SLOTS`).
   */
  rootNodes: ReadonlyArray<{ url: string }>;
}

/** Options for {@linkcode RedisStore}. */
export interface RedisStoreOptions extends RedisStoreCommonOptions {
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
  /**
   * A Redis Cluster instead of one server: `{ rootNodes: [{ url }] }`.
   * `username`, `password` and `tls` apply to every node; credentials in the
   * root nodes' URLs do too. Cannot be combined with `host`, `port`, `url`,
   * `db` or `client`.
   */
  cluster?: RedisClusterOptions;
  /** ACL user name (Redis 6+). Default: none (the `default` user). */
  username?: string;
  /** Password for `AUTH`. Default: none. */
  password?: string;
  /** Logical database number, for `SELECT`. Default `0`. Not in a cluster. */
  db?: number;
  /** `true`, or Node TLS options, to connect over TLS. Default `false`. */
  tls?: boolean | RedisTlsOptions;
  /**
   * Prefix of every session key. Default `"session_"`, as in version 1. In a
   * cluster it must not hold `{` or `}`: the store puts its own hash tag after
   * it.
   */
  keyPrefix?: string;
  /**
   * An existing node-redis client to use instead of a connection of the
   * store's own: from `createClient()`, or a cluster client from
   * `createCluster()`. The store neither connects nor closes it, and it cannot
   * be combined with the connection options.
   */
  client?: RedisClientLike | RedisClusterClientLike;
  /**
   * Replicas that must confirm every write and delete before the store
   * answers it (Redis `WAIT` after the write, on the same connection: one
   * more round trip per write). Default `0`: answered once the master has
   * it. With `1` and one replica per master, a failover never loses a write
   * the store acknowledged; a write that fewer replicas confirm in the time
   * left rejects (503), although the master applied it. Set
   * `min-replicas-to-write` to the same number on the servers, so a master
   * without its replicas refuses writes at once instead of making each
   * `WAIT` wait out its timeout. Not with a client pool
   * (`createClientPool()`), whose commands may take different connections.
   */
  waitForReplicas?: number;
  /**
   * Milliseconds a connection attempt or a command's round trip may take
   * before it fails. Default `5000`. A `client` you pass in keeps its own
   * connection settings; the command deadline applies to it too.
   */
  timeoutMs?: number;
  /**
   * The clock for expiry checks, in milliseconds since the epoch. When
   * given, it decides on every call; by default the store judges at the time
   * the core hands it (`Date.now()` for a call made outside the core; see
   * `storeTime`). Native expiry (`PEXPIREAT`) follows the server's clock.
   */
  now?: () => number;
}

/** A client the store created, connects and closes itself: a standalone client or a cluster client. */
interface OwnedClient {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  on(event: "error" | "ready", listener: (error?: unknown) => void): unknown;
}

/** Connection attempts before the first successful connect gives up. */
const INITIAL_CONNECT_ATTEMPTS = 3;
/** The longest pause between reconnection attempts to a cluster node, in ms. */
const CLUSTER_RECONNECT_MAX_MS = 500;
/**
 * How soon after a cluster node's connection drops the store's cluster client
 * asks the others for the slot map again (and again on later attempts), in
 * ms: the shortest unavailability after a failover.
 */
const CLUSTER_TOPOLOGY_REFRESH_MS = 100;
/** Attempts of a write that waits for replicas when its slot moved (`MOVED`, `ASK`). */
const REDIRECT_ATTEMPTS = 3;
const CONNECTION_OPTIONS = ["host", "port", "url", "username", "password", "db", "tls"] as const;
const CLUSTER_CONFLICTS = ["host", "port", "url", "db"] as const;
const NOT_INITIALISED = "Cannot use RedisStore before init(): call await store.init() first";
const STORE = "RedisStore";
/**
 * Every {@linkcode RedisStoreOptions} name (the type checker keeps the list complete): others are refused.
 * What `tls` holds goes to the driver unchecked: Node's TLS options.
 */
const OPTION_NAMES = Object.keys(
  {
    host: true,
    port: true,
    url: true,
    cluster: true,
    username: true,
    password: true,
    db: true,
    tls: true,
    keyPrefix: true,
    client: true,
    waitForReplicas: true,
    timeoutMs: true,
    now: true,
  } satisfies Record<keyof RedisStoreOptions, true>,
);
/** Hints for the 2.x name and for the names other Redis clients use. */
const OPTION_HINTS = {
  ...COMMON_OPTION_HINTS,
  hostname: 'the server is "host" (or "url")',
  database: 'the database number is "db"',
};
const CLUSTER_OPTION_NAMES = Object.keys(
  { rootNodes: true } satisfies Record<keyof RedisClusterOptions, true>,
);

interface Endpoint {
  host: string;
  port: number;
}

interface ConnectionSettings extends Endpoint {
  username?: string;
  password?: string;
  db: number;
  tls: boolean | RedisTlsOptions;
  timeout: number;
  /** The root nodes of a cluster; absent for one server. */
  rootNodes?: Endpoint[];
}

function invalid(option: string, rule: string): TypeError {
  return optionError(STORE, option, rule);
}

function checkPort(port: unknown, option: string): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(option, "must be an integer from 1 to 65535");
  }
  return port;
}

/** The parts of a `redis://` or `rediss://` URL, written into `settings`. */
function applyUrl(settings: ConnectionSettings, value: unknown, option: string): Endpoint {
  let url: URL;
  try {
    url = new URL(value as string);
  } catch {
    throw invalid(option, "must be a redis:// or rediss:// URL");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw invalid(option, "must be a redis:// or rediss:// URL");
  }
  const endpoint = { host: settings.host, port: settings.port };
  if (url.hostname !== "") endpoint.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (url.port !== "") endpoint.port = checkPort(Number(url.port), option);
  if (url.username !== "") settings.username ??= decodeURIComponent(url.username);
  if (url.password !== "") settings.password ??= decodeURIComponent(url.password);
  if (url.pathname.length > 1) {
    const db = Number(url.pathname.slice(1));
    if (!Number.isInteger(db) || db < 0) throw invalid(option, "the path must be a database number");
    settings.db = db;
  }
  if (url.protocol === "rediss:") settings.tls = true;
  return endpoint;
}

function connectionSettings(options: RedisStoreOptions, timeout: number): ConnectionSettings {
  const settings: ConnectionSettings = { host: "127.0.0.1", port: 6379, db: 0, tls: false, timeout };
  if (options.url !== undefined) Object.assign(settings, applyUrl(settings, options.url, "url"));
  if (options.cluster !== undefined) {
    rejectUnknownStoreOptions(STORE, options.cluster, CLUSTER_OPTION_NAMES, {}, "cluster.");
    const rootNodes = (options.cluster as Partial<RedisClusterOptions> | null)?.rootNodes;
    if (!Array.isArray(rootNodes) || rootNodes.length === 0) {
      throw invalid("cluster", 'needs "rootNodes": a non-empty list of { url } objects');
    }
    settings.rootNodes = rootNodes.map((node, i) =>
      applyUrl(settings, (node as { url?: unknown } | null)?.url, `cluster.rootNodes[${i}].url`)
    );
    if (settings.db !== 0) throw invalid("cluster", "a Redis Cluster has only database 0");
  }
  // Explicit options override what the URLs said.
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

/** The kinds of client `client` may be, told apart by their methods. */
type ClientKind = "standalone" | "pool" | "cluster" | "sentinel";

function clientKind(client: object): ClientKind {
  const methods = client as Record<string, unknown>;
  if (typeof methods.nodeClient === "function" && "slots" in client) return "cluster";
  if (typeof methods.getMasterNode === "function") return "sentinel";
  if ("totalClients" in client) return "pool";
  return "standalone";
}

/** The write's own reply, once Redis answered it (before its `WAIT`). */
interface WrittenReply {
  answered: boolean;
  reply: unknown;
}

/**
 * Sends `args` (after the commands in `before`, pipelined), and once it
 * succeeded, `WAIT` on the same client (connection), with the time left until
 * `waitUntil`. Not pipelined: a `WAIT` after a write the server refused (no
 * replica: `NOREPLICAS`) would still block the connection, and every command
 * queued behind it, for its whole timeout. `written` receives the write's
 * reply as soon as it arrives, so a caller that stops waiting during `WAIT`
 * still knows the write was applied.
 */
async function writeThenWait(
  client: RedisClientLike,
  args: string[],
  replicas: number,
  waitUntil: number,
  written: WrittenReply,
  before: string[][] = [],
): Promise<WaitedReply> {
  for (const command of before) client.sendCommand(command).catch(() => {});
  const reply = await client.sendCommand(args);
  written.reply = reply;
  written.answered = true;
  const timeoutMs = Math.max(1, Math.floor(waitUntil - Date.now()));
  return { reply, replicas: Number(await client.sendCommand(["WAIT", String(replicas), String(timeoutMs)])) };
}

/**
 * The node-redis transport: one server or a Redis Cluster, through a client
 * the store owns (connected by `init()`) or one passed in.
 */
class NodeRedisTransport implements RedisTransport {
  readonly cluster: boolean;
  #settings: ConnectionSettings | undefined;
  #standalone: RedisClientLike | undefined;
  #clusterClient: RedisClusterClientLike | undefined;
  #owned: OwnedClient | undefined;
  #given: boolean;
  #initialising: Promise<void> | undefined;
  #closed = false;
  #timeout: number;

  constructor(
    timeout: number,
    source: { client: RedisClientLike | RedisClusterClientLike; cluster: boolean } | {
      settings: ConnectionSettings;
    },
  ) {
    this.#timeout = timeout;
    if ("client" in source) {
      this.#given = true;
      this.cluster = source.cluster;
      if (source.cluster) this.#clusterClient = source.client as RedisClusterClientLike;
      else this.#standalone = source.client as RedisClientLike;
    } else {
      this.#given = false;
      this.#settings = source.settings;
      this.cluster = source.settings.rootNodes !== undefined;
    }
  }

  init(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot init a closed RedisStore"));
    if (this.#given) return Promise.resolve();
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
    const tls = settings.tls === false
      ? {}
      : { ...(settings.tls === true ? {} : settings.tls), tls: true as const };
    let client: OwnedClient;
    let where: string;
    let lastError: unknown;
    if (settings.rootNodes !== undefined) {
      where = `Redis Cluster at ${settings.rootNodes.map(({ host, port }) => `${host}:${port}`).join(", ")}`;
      client = redis.createCluster({
        rootNodes: settings.rootNodes.map(({ host, port }) => ({ socket: { host, port } })),
        defaults: {
          username: settings.username,
          password: settings.password,
          socket: {
            connectTimeout: settings.timeout,
            // A node keeps being retried while the slot map still names it; a failover replaces it.
            reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, CLUSTER_RECONNECT_MAX_MS),
            ...tls,
          },
          // Without this, commands for a node that is down wait in a queue with no bound.
          disableOfflineQueue: true,
        },
        topologyRefreshOnReconnectionAttemptStrategy: CLUSTER_TOPOLOGY_REFRESH_MS,
      }) as unknown as OwnedClient;
      client.on("error", (error) => (lastError = error));
    } else {
      where = `Redis at ${settings.host}:${settings.port}`;
      let everReady = false;
      client = redis.createClient({
        socket: {
          host: settings.host,
          port: settings.port,
          connectTimeout: settings.timeout,
          // Give up early on the first connect so init() fails fast; once connected,
          // keep trying forever, because the store cannot recreate the client itself.
          reconnectStrategy: (retries: number, cause: Error): number | Error =>
            !everReady && retries + 1 >= INITIAL_CONNECT_ATTEMPTS ? cause : Math.min(50 * 2 ** retries, 2000),
          ...tls,
        },
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
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // A cluster node named in the slot map but down is retried without end: bound the whole start.
      const startLimit = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no connection within ${settings.timeout * INITIAL_CONNECT_ATTEMPTS} ms`)),
          settings.timeout * INITIAL_CONNECT_ATTEMPTS,
        );
      });
      await Promise.race([client.connect(), startLimit]);
    } catch (error) {
      if (client.isOpen) client.destroy();
      const cause = lastError ?? error;
      throw new Error(`Cannot connect to ${where}: ${reason(cause)}`, { cause });
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed) {
      client.destroy();
      throw new Error("RedisStore was closed during init()");
    }
    this.#owned = client;
    if (this.cluster) this.#clusterClient = client as unknown as RedisClusterClientLike;
    else this.#standalone = client as unknown as RedisClientLike;
  }

  #assertReady(): void {
    if (this.#closed) throw new Error("Cannot use a closed RedisStore");
    if (this.#standalone === undefined && this.#clusterClient === undefined) throw new Error(NOT_INITIALISED);
  }

  /**
   * Waits for `reply`, at most `timeoutMs`. node-redis's own command timeout
   * stops counting once a command is written, so a server that accepts bytes
   * but never answers would hold the request forever: the deadline here
   * covers the whole round trip. Errors name the command.
   */
  async #deadline<T>(command: string, reply: () => Promise<T>): Promise<T> {
    this.#assertReady();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(timeoutError(`Redis ${command} failed: no reply within ${this.#timeout} ms`)),
        this.#timeout,
      );
    });
    try {
      return await Promise.race([reply(), deadline]);
    } catch (error) {
      if ((error as Error)?.name === TIMEOUT_ERROR) throw error;
      let message = `Redis ${command} failed: ${reason(error)}`;
      if (!this.cluster && /^(MOVED|ASK) /.test(reason(error))) {
        message += " (the server is a Redis Cluster node: use the cluster option or a cluster client)";
      }
      throw new Error(message, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  send(args: string[], key: string, readonly: boolean): Promise<unknown> {
    return this.#deadline(
      args[0],
      () =>
        this.#clusterClient !== undefined
          ? this.#clusterClient.sendCommand(key, readonly, args)
          : this.#standalone!.sendCommand(args),
    );
  }

  /**
   * Once the write itself was answered, it stands whatever happens to its
   * `WAIT`: a `WAIT` that fails or answers after the deadline (its own timeout
   * plus a slow reply) counts as 0 replicas confirmed, so the store reports an
   * applied but unconfirmed write, never a write that failed.
   */
  async sendAndWait(args: string[], key: string, replicas: number, waitUntil: number): Promise<WaitedReply> {
    const written: WrittenReply = { answered: false, reply: undefined };
    try {
      return await this.#deadline(
        args[0],
        () =>
          this.#clusterClient !== undefined
            ? this.#clusterWriteThenWait(this.#clusterClient, args, key, replicas, waitUntil, written)
            : writeThenWait(this.#standalone!, args, replicas, waitUntil, written),
      );
    } catch (error) {
      if (written.answered) return { reply: written.reply, replicas: 0 };
      throw error;
    }
  }

  /**
   * A write, then its `WAIT`, on the connection of the node that serves the
   * key's slot. The cluster client's own routing cannot do it: it sends `WAIT`
   * (a keyless command) to every master, and may follow a redirect for the
   * write but not for the `WAIT`. Here a `MOVED` (the slot moved; the write
   * did not run) makes the cluster client learn the new slot map and the
   * write go again to the new owner; an `ASK` (the slot is being migrated and
   * the key is already on the target) sends `ASKING`, the write and `WAIT` to
   * the target node.
   */
  async #clusterWriteThenWait(
    cluster: RedisClusterClientLike,
    args: string[],
    key: string,
    replicas: number,
    waitUntil: number,
    written: WrittenReply,
  ): Promise<WaitedReply> {
    const slot = keySlot(key);
    let askAt: string | undefined;
    for (let attempt = 1;; attempt++) {
      const node = askAt === undefined ? cluster.slots[slot]?.master : cluster.nodeByAddress.get(askAt);
      if (node === undefined) throw new Error(`no Redis Cluster node is known for slot ${slot}`);
      const client = await cluster.nodeClient(node as never);
      try {
        return await writeThenWait(
          client,
          args,
          replicas,
          waitUntil,
          written,
          askAt === undefined ? [] : [["ASKING"]],
        );
      } catch (error) {
        const redirect = /^(MOVED|ASK) \d+ (\S+)/.exec(reason(error));
        if (redirect === null || attempt >= REDIRECT_ATTEMPTS) throw error;
        if (redirect[1] === "ASK" && cluster.nodeByAddress.has(redirect[2])) {
          askAt = redirect[2];
          continue;
        }
        askAt = undefined;
        // A keyed read through the cluster client meets the same redirect, and the client then
        // fetches the new slot map (its own MOVED handling); the write goes again to the new owner.
        await cluster.sendCommand(key, true, ["EXISTS", key]).catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#owned;
    this.#owned = undefined;
    this.#standalone = undefined;
    this.#clusterClient = undefined;
    if (client === undefined || !client.isOpen) return;
    await client.close();
  }

  disconnect(): Promise<void> {
    this.#closed = true;
    const client = this.#owned;
    this.#owned = undefined;
    this.#standalone = undefined;
    this.#clusterClient = undefined;
    if (client?.isOpen) client.destroy();
    return Promise.resolve();
  }
}

function checkWaitForReplicas(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw invalid("waitForReplicas", "must be a non-negative integer");
  }
  return value;
}

/** Checks the options and builds the transport they describe. */
function transportFor(options: RedisStoreOptions, timeoutMs: number, keyPrefix: string): NodeRedisTransport {
  if (typeof options !== "object" || options === null) throw invalid("options", "must be an object");
  const waitForReplicas = checkWaitForReplicas(options.waitForReplicas);
  let transport: NodeRedisTransport;
  if (options.client !== undefined) {
    const client = options.client as unknown as Record<string, unknown> | null;
    if (typeof client?.sendCommand !== "function") {
      throw invalid("client", "must be a node-redis client (with sendCommand())");
    }
    const conflict = [...CONNECTION_OPTIONS, "cluster" as const].find((name) => options[name] !== undefined);
    if (conflict !== undefined) throw invalid("client", `cannot be combined with "${conflict}"`);
    const kind = clientKind(client);
    if (kind === "sentinel") {
      throw invalid(
        "client",
        "a node-redis Sentinel client is not supported: pass a client of the current master, or a cluster client",
      );
    }
    if (kind === "pool" && waitForReplicas > 0) {
      throw invalid(
        "waitForReplicas",
        "needs one connection per write (WAIT counts the writes of its own connection): pass a client from createClient(), not a pool",
      );
    }
    transport = new NodeRedisTransport(timeoutMs, {
      client: options.client,
      cluster: kind === "cluster",
    });
  } else {
    if (options.cluster !== undefined) {
      const conflict = CLUSTER_CONFLICTS.find((name) => options[name] !== undefined);
      if (conflict !== undefined) throw invalid("cluster", `cannot be combined with "${conflict}"`);
    }
    transport = new NodeRedisTransport(timeoutMs, { settings: connectionSettings(options, timeoutMs) });
  }
  if (transport.cluster && /[{}]/.test(keyPrefix)) {
    throw invalid(
      "keyPrefix",
      "must not contain { or } with a Redis Cluster: the store puts its own hash tag after it",
    );
  }
  return transport;
}

/**
 * Keeps each session in one Redis hash, `keyPrefix` + the storage key (in a
 * Redis Cluster, with a hash tag: `keyPrefix` + `{s1_Ab}` + the storage key):
 * user keys in fields of their own (`d:<key>`), the metadata in `meta`, flash
 * values in `flash`. Every write sets native expiry (`PEXPIREAT`) from the
 * record's `expiresAt`, and reads re-check it, because Redis evicts lazily.
 *
 * Each operation is one round trip: one Lua script (`EVALSHA`, falling back to
 * `EVAL` once after a server restart) that reads, deletes, or writes. A write
 * applies an update per key, atomically, and only while the record still
 * exists: a logged-out session is never recreated. Writes carry a deadline
 * the script checks against the server's clock, so a write that timed out is
 * not applied later. Every reply carries back the request's unique tag and
 * the key it touched, and a reply that does not match is refused (the same
 * store as `WebdisStore`, over another transport).
 *
 * When Redis (or a cluster node) is down, operations reject at once instead
 * of queueing, and the client keeps reconnecting in the background; a cluster
 * client also asks the other nodes for the slot map, so a failover's new
 * master takes over.
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
 * @example A URL, an existing client, a Redis Cluster
 * ```ts ignore
 * import { createClient, createCluster } from "redis";
 * import { RedisStore } from "./redis.ts";
 *
 * const store = new RedisStore({ url: "rediss://app:secret@cache.internal:6380/1", keyPrefix: "myapp:sess:" });
 * await store.init();
 *
 * const client = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const shared = new RedisStore({ client }); // usable at once; close() leaves the client open
 *
 * const cluster = new RedisStore({
 *   cluster: { rootNodes: [{ url: "redis://10.0.0.1:6379" }, { url: "redis://10.0.0.2:6379" }] },
 *   waitForReplicas: 1, // every write is on a replica before it is acknowledged
 * });
 * await cluster.init();
 * const sharedCluster = new RedisStore({ client: await createCluster({ rootNodes: [{ url: "redis://10.0.0.1:6379" }] }).connect() });
 * ```
 */
export class RedisStore extends RedisSessionStore {
  #transport: NodeRedisTransport;

  /**
   * A store over node-redis; call `init()` before the first request.
   *
   * @param options Connection (one server or `cluster`), key prefix, or an existing client.
   * @throws {TypeError} naming the option, when an option is invalid or unknown.
   */
  constructor(options: RedisStoreOptions = {}) {
    rejectUnknownStoreOptions(STORE, options, OPTION_NAMES, OPTION_HINTS);
    const common = checkCommonOptions(STORE, options ?? {});
    const transport = transportFor(options, common.timeoutMs, common.keyPrefix);
    super(transport, {
      ...common,
      hashTags: transport.cluster,
      waitForReplicas: checkWaitForReplicas(options.waitForReplicas),
    });
    this.#transport = transport;
  }

  /**
   * Loads the `redis` package and connects (to one server, or discovers the
   * cluster from its root nodes and connects to its masters). Rejects when
   * the package is missing or the server cannot be reached after a few
   * attempts. Calling it again after success does nothing; after a failure,
   * it tries again. Resolves at once for a `client` passed in.
   */
  init(): Promise<void> {
    return this.#transport.init();
  }

  /**
   * Closes the connection the store opened, after pending replies arrive. A
   * client passed in as `client` stays open.
   */
  override close(): Promise<void> {
    return this.#transport.close();
  }

  /** Closes the connection the store opened at once, failing pending commands. */
  disconnect(): Promise<void> {
    return this.#transport.disconnect();
  }
}

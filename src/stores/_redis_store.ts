/**
 * The one Redis session store: the protocol `RedisStore` (node-redis, a
 * standalone server or a Redis Cluster) and `WebdisStore` (Webdis over
 * `fetch`) share, over an injected {@linkcode RedisTransport} that only
 * carries commands. Everything else lives here once: the key layout (with
 * Redis Cluster hash tags), the scripts' `EVALSHA` → `EVAL` fallback, the
 * proof that a reply belongs to its request, write deadlines in the server's
 * clock, and `WAIT` for replicas. Runtime-neutral (Web Crypto only), so the
 * fetch-only Webdis store can import it.
 *
 * @module
 */

import { storeTime, userKey } from "../store.ts";
import type { SessionRecord, Store, StoreWrite, UserSessionEntry, WriteResult } from "../store.ts";
import {
  decodeSessionHash,
  decodeUserList,
  hashPairs,
  keyEcho,
  type RedisScript,
  SCRIPTS,
  ServerClock,
  TIMEOUT_ERROR,
  writeScriptArguments,
} from "./_redis_scripts.ts";

/** A reply, and how many replicas confirmed the write before it (the answer of `WAIT`). */
export interface WaitedReply {
  /** The reply of the write command. */
  reply: unknown;
  /** `WAIT`'s answer: the replicas that confirmed every write of the connection so far. */
  replicas: number;
}

/**
 * How commands travel: the one part the Redis stores do not share. Each
 * rejects with an `Error` whose message carries Redis's own error text
 * (`NOSCRIPT …`, `MOVED …`) when Redis refused a command, and with an error
 * named {@linkcode TIMEOUT_ERROR} when it gave up waiting for a reply.
 */
export interface RedisTransport {
  /**
   * Sends one command whose only key is `key` (a cluster routes it by that
   * key's slot) and resolves to its reply. `readonly` marks commands that
   * write nothing.
   */
  send(args: string[], key: string, readonly: boolean): Promise<unknown>;
  /**
   * Sends one write command, then, once it succeeded, `WAIT replicas ms` on
   * the same connection with the time left until `waitUntil` (`Date.now()`
   * scale), and resolves to the command's reply and `WAIT`'s count. Absent
   * when the transport cannot keep the two on one connection (Webdis).
   */
  sendAndWait?(args: string[], key: string, replicas: number, waitUntil: number): Promise<WaitedReply>;
  /**
   * Told when a reply that came through this transport proved to belong to
   * another request. The connection it came on may be out of step: holding
   * a reply still owed to an earlier request, which the next request sent
   * over it would read as its own.
   */
  outOfStep?(): void;
}

/** Milliseconds of a request's time budget kept back for the reply's way home, at most. */
const REPLY_MARGIN_MAX_MS = 100;
/** The share of a request's time budget kept back for the reply's way home. */
const REPLY_MARGIN_SHARE = 0.2;

/** A random prefix for the tags of one store's requests: 64 bits in hex. */
function tagPrefix(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

function mixedUp(): Error {
  return new Error(
    "Redis answered with a reply that belongs to another request (its tag or key differs): not used",
  );
}

/** Whether `reply` is an array of at least `length` items that starts with the request's tag and key. */
function isOwnReply(reply: unknown, tag: string, key: string, length: number): reply is unknown[] {
  return Array.isArray(reply) && reply.length >= length && reply[0] === tag && reply[1] === keyEcho(key);
}

/** Whether Redis refused a command because its script is not cached (after a restart or `SCRIPT FLUSH`). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && /\bNOSCRIPT\b/.test(error.message);
}

const SLOT_GROUP = /^[A-Za-z0-9]+_[A-Za-z0-9_-]{2}/;

/**
 * The slot group of a storage key: its scheme (`s1`), the `_`, and the next
 * two characters, e.g. `s1_Ab` (4,096 groups per scheme); `""` for a key of
 * another shape. In a Redis Cluster, every key of one group lives in one
 * slot: a user's index lives in the group its sessions' storage keys start
 * with (see {@linkcode RedisSessionStore.groupsUserSessions}).
 */
export function slotGroup(storageKey: string): string {
  return SLOT_GROUP.exec(storageKey)?.[0] ?? "";
}

/**
 * The Redis key of a session: `keyPrefix` + the storage key, and with
 * `hashTags` (Redis Cluster) the storage key's {@linkcode slotGroup} in a hash
 * tag in front of it: `session_{s1_Ab}s1_Ab…`. The tag never holds `}`, so
 * distinct storage keys always give distinct Redis keys (an empty tag, `{}`,
 * is no tag to Redis: the whole key picks the slot).
 */
export function redisKey(keyPrefix: string, storageKey: string, hashTags: boolean): string {
  return hashTags ? `${keyPrefix}{${slotGroup(storageKey)}}${storageKey}` : keyPrefix + storageKey;
}

const encoder = new TextEncoder();

/** CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, the checksum of Redis Cluster's key slots. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

/**
 * The Redis Cluster slot of a key (0 to 16383), as `CLUSTER KEYSLOT` answers:
 * CRC16 of the key's UTF-8 bytes modulo 16384, or of its hash tag, the bytes
 * between the first `{` and the first `}` after it when there are any
 * (Redis Cluster specification, "Hash tags").
 */
export function keySlot(key: string): number {
  let bytes = encoder.encode(key);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  return crc16(bytes) & 0x3fff;
}

/** The shape of a storage key the core makes, which a record with a user must have (it is an index member). */
const INDEXED_KEY = /^[A-Za-z0-9_-]{1,64}$/;

/** Where a user's keys live: the index, and what goes in front of a storage key of theirs. */
interface UserKeys {
  /** The Redis key of the user's index. */
  index: string;
  /** `keyPrefix`, and in a cluster the hash tag of the user's group: + a storage key = a record's Redis key. */
  records: string;
}

/**
 * The Redis keys of a user: `keyPrefix` + `userKey(userId)` for the index,
 * and with `hashTags` the hash tag of the user's group in between
 * (`session_{s1_Xy}u1_Xy…`), the group whose storage keys the core gives the
 * user's sessions (`s1_Xy…`): the index shares their slot.
 */
export function userRedisKeys(keyPrefix: string, userId: string, hashTags: boolean): UserKeys {
  const user = userKey(userId);
  const records = hashTags ? `${keyPrefix}{s1_${user.slice(3, 5)}}` : keyPrefix;
  return { index: records + user, records };
}

/** The options every Redis store shares. */
export interface RedisStoreCommonOptions {
  /** Prefix of every session key. Default `"session_"`, as in version 1. */
  keyPrefix?: string;
  /** Milliseconds a command may take before it fails. Default `5000`. */
  timeoutMs?: number;
  /**
   * The clock for expiry checks, in milliseconds since the epoch. When given,
   * it decides on every call; by default the store judges at the time the
   * core hands it (`Date.now()` for a call made outside the core; see
   * `storeTime`). Native expiry (`PEXPIREAT`) follows the server's clock.
   */
  now?: () => number;
}

/** What an unknown option name of a Redis store says when it is a 2.x name. */
export const COMMON_OPTION_HINTS: Readonly<Record<string, string>> = {
  timeout: 'renamed "timeoutMs" (milliseconds)',
};

/** Validated {@linkcode RedisStoreCommonOptions}. */
export interface CheckedCommonOptions {
  keyPrefix: string;
  timeoutMs: number;
  /** The app's clock for this store, if it gave one. */
  now: (() => number) | undefined;
}

/** A `TypeError` naming a store's option. */
export function optionError(store: string, option: string, rule: string): TypeError {
  return new TypeError(`Invalid ${store} option "${option}": ${rule}`);
}

/** Checks the options every Redis store shares; throws a `TypeError` naming the first bad one. */
export function checkCommonOptions(store: string, options: RedisStoreCommonOptions): CheckedCommonOptions {
  const keyPrefix = options.keyPrefix === undefined ? "session_" : options.keyPrefix;
  if (typeof keyPrefix !== "string") throw optionError(store, "keyPrefix", "must be a string");
  if (options.now !== undefined && typeof options.now !== "function") {
    throw optionError(store, "now", "must be a function");
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw optionError(store, "timeoutMs", "must be a positive number of milliseconds");
  }
  return { keyPrefix, timeoutMs, now: options.now };
}

/** How a {@linkcode RedisSessionStore} keeps its keys and waits for replicas. */
export interface RedisSessionStoreSettings extends CheckedCommonOptions {
  /** Put each key's slot group in a hash tag (Redis Cluster). */
  hashTags: boolean;
  /** Replicas that must confirm each write (`WAIT`); 0 for none. Needs `transport.sendAndWait`. */
  waitForReplicas: number;
}

/**
 * The session store over any Redis transport: the one implementation behind
 * `RedisStore` and `WebdisStore`.
 *
 * Every operation is one script (`EVALSHA`, falling back to `EVAL` once when
 * the server's script cache is empty), and every reply must prove it belongs
 * to the request: it carries back the request's tag (unique per request) and
 * the key it touched. A proxy that hands one request's reply to another (as
 * Webdis before 0.1.20 does with the reply of a request its client
 * abandoned) is caught: the mismatch rejects, so it becomes a 503, never
 * another user's session and never another request's "written".
 *
 * Writes carry a deadline in the server's clock: the moment the store or the
 * core gives up waiting (`write.deadline`, `timeoutMs`), less a margin for the
 * reply's way back (a fifth of the budget, at most 100 ms) and less the
 * uncertainty of the clock offset learnt from earlier replies. A write that
 * reaches Redis later (queued behind `CLIENT PAUSE`, a slow network) is
 * refused by the script, so a write answered 503 is not applied afterwards.
 *
 * With `waitForReplicas` above 0, every write and delete that succeeded is
 * followed on the same connection by `WAIT`, and is answered only once that
 * many replicas confirmed it; fewer within the time left rejects (503).
 *
 * The per-user index ({@linkcode listByUser}) is a sorted set per user (see
 * {@linkcode userRedisKeys}): member the storage key, score the record's
 * deadline. The write script adds or rescores a record with a user in the
 * same step as it writes it; the delete script removes it in the same step
 * as the record (the record's `user` field names the index); the list script
 * prunes what expired by the server's clock and reads every listed record.
 */
export class RedisSessionStore implements Store {
  /** Writes carry a deadline the write script enforces by the server's clock. */
  readonly refusesLateWrites = true;
  /**
   * `true` with hash tags (Redis Cluster): a script touches the keys of one
   * slot only, so the core gives a user's sessions storage keys of the
   * group of the user's index, and the store refuses a record with a user
   * under a key of another group.
   */
  readonly groupsUserSessions: boolean;
  #transport: RedisTransport;
  #keyPrefix: string;
  #hashTags: boolean;
  #timeout: number;
  /** The clock the app gave the store, if any (see `storeTime`); `#clock` is the server's. */
  #appClock: (() => number) | undefined;
  #waitFor: number;
  #tagPrefix = tagPrefix();
  #requests = 0;
  #clock = new ServerClock();
  #read = SCRIPTS.read;

  /**
   * @param transport How commands travel.
   * @param settings Checked options: key prefix, timeout, clock, hash tags, replicas to wait for.
   */
  constructor(transport: RedisTransport, settings: RedisSessionStoreSettings) {
    if (settings.waitForReplicas > 0 && transport.sendAndWait === undefined) {
      throw new TypeError("This Redis transport cannot wait for replicas (WAIT)");
    }
    this.#transport = transport;
    this.#keyPrefix = settings.keyPrefix;
    this.#hashTags = settings.hashTags;
    this.groupsUserSessions = settings.hashTags;
    this.#timeout = settings.timeoutMs;
    this.#appClock = settings.now;
    this.#waitFor = settings.waitForReplicas;
  }

  #tag(): string {
    return `${this.#tagPrefix}.${(this.#requests++).toString(36)}`;
  }

  /**
   * The reply as an array that starts with the request's tag and key. Any
   * other reply belongs to another request: the transport is told (see
   * {@linkcode RedisTransport.outOfStep}) and the call rejects.
   */
  #verified(reply: unknown, tag: string, key: string, length: number): unknown[] {
    if (isOwnReply(reply, tag, key, length)) return reply;
    this.#transport.outOfStep?.();
    throw mixedUp();
  }

  /**
   * Runs a script by its SHA-1; after a `NOSCRIPT` (a restart, `SCRIPT FLUSH`),
   * once by its source. With `waitUntil`, a write followed by `WAIT`. The
   * first of `keys` routes the command (in a cluster, all share its slot).
   */
  async #run(script: RedisScript, keys: string[], args: string[], waitUntil?: number): Promise<WaitedReply> {
    const key = keys[0];
    const send = (command: string[]): Promise<WaitedReply> =>
      waitUntil === undefined
        ? this.#transport.send(command, key, script === this.#read).then((reply) => ({ reply, replicas: 0 }))
        : this.#transport.sendAndWait!(command, key, this.#waitFor, waitUntil);
    try {
      return await send(["EVALSHA", await script.sha1(), String(keys.length), ...keys, ...args]);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return await send(["EVAL", script.source, String(keys.length), ...keys, ...args]);
    }
  }

  /** The Redis keys of `userId`; a `TypeError` for a user id that is not a non-empty string. */
  #userKeys(userId: unknown): UserKeys {
    if (typeof userId !== "string" || userId === "") {
      throw new TypeError("A session's user id must be a non-empty string");
    }
    return userRedisKeys(this.#keyPrefix, userId, this.#hashTags);
  }

  /** When `WAIT` stops waiting for a write to be answered by `giveUpAt`; none without replicas to wait for. */
  #waitUntil(giveUpAt: number, margin: number): number | undefined {
    return this.#waitFor > 0 ? giveUpAt - margin : undefined;
  }

  /** Reads a record; `undefined` when unknown or expired at `now` (see `storeTime`). One `EVALSHA` of the read script. */
  async get(key: string, now?: number): Promise<SessionRecord | undefined> {
    const fullKey = redisKey(this.#keyPrefix, key, this.#hashTags);
    const tag = this.#tag();
    const sentAt = Date.now();
    let reply: unknown;
    try {
      reply = (await this.#run(this.#read, [fullKey], [tag])).reply;
    } catch (error) {
      // Servers before Redis 7 cannot compile the flag line: read without it from now on.
      if (this.#read === SCRIPTS.readPlain || !/Error compiling script/i.test((error as Error)?.message)) {
        throw error;
      }
      this.#read = SCRIPTS.readPlain;
      reply = (await this.#run(this.#read, [fullKey], [tag])).reply;
    }
    const items = this.#verified(reply, tag, fullKey, 3);
    this.#clock.observe(sentAt, Date.now(), Number(items[2]));
    return decodeSessionHash(hashPairs(items.slice(3)), storeTime(this.#appClock, now));
  }

  /**
   * Creates a record, or applies an update per key to a live one (`"gone"`
   * when it is gone or expired), unless the deadline has passed when Redis
   * runs it. One `EVALSHA` (and, with `waitForReplicas`, a `WAIT` after it);
   * Redis refuses it once `write.deadline` (or `timeoutMs`) has passed. A
   * record with a user (`meta.userId`) is put on, or rescored in, the user's
   * index by the same script.
   *
   * @throws {TypeError} for a record with a user under a storage key not of
   * the core's shape (`[A-Za-z0-9_-]`, at most 64), or, in a cluster, not in
   * the user's group; nothing is sent.
   * @throws {Error} for an update that names another user (or none) than the
   * record was created with: nothing is written.
   */
  async set(key: string, write: StoreWrite): Promise<WriteResult> {
    const fullKey = redisKey(this.#keyPrefix, key, this.#hashTags);
    const keys = [fullKey];
    const userId = write.record?.meta?.userId;
    if (userId !== undefined) {
      const user = this.#userKeys(userId);
      if (!INDEXED_KEY.test(key)) {
        throw new TypeError(
          "A session with a user needs a storage key of 1 to 64 characters [A-Za-z0-9_-], as the core makes: nothing was written",
        );
      }
      if (user.records + key !== fullKey) {
        throw new TypeError(
          "In a Redis Cluster, a session with a user needs a storage key in the user's group (groupsUserSessions: the core makes these): nothing was written",
        );
      }
      keys.push(user.index);
    }
    const tag = this.#tag();
    const sentAt = Date.now();
    const giveUpAt = Math.min(write.deadline ?? Number.POSITIVE_INFINITY, sentAt + this.#timeout);
    const budget = giveUpAt - sentAt;
    if (!(budget > 0)) throw new Error("the write's deadline passed before it was sent: nothing was written");
    const margin = Math.min(REPLY_MARGIN_MAX_MS, budget * REPLY_MARGIN_SHARE);
    const deadline = Math.floor(this.#clock.serverTimeNotAfter(giveUpAt - margin));
    const waitUntil = this.#waitUntil(giveUpAt, margin);
    let answer: WaitedReply;
    try {
      answer = await this.#run(
        SCRIPTS.write,
        keys,
        [
          tag,
          String(deadline),
          ...writeScriptArguments(write, storeTime(this.#appClock, write.now), keys.length > 1 ? key : ""),
        ],
        waitUntil,
      );
    } catch (error) {
      if ((error as Error)?.name !== TIMEOUT_ERROR) throw error;
      throw new Error(
        `${
          (error as Error).message
        }; Redis refuses the write once its deadline has passed, so it is not applied later`,
        { cause: error },
      );
    }
    const [, , status, serverMs] = this.#verified(answer.reply, tag, fullKey, 4);
    this.#clock.observe(sentAt, Date.now(), Number(serverMs));
    if (status === 1) {
      if (answer.replicas < this.#waitFor) {
        throw new Error(
          `Redis applied the write, but ${answer.replicas} of ${this.#waitFor} replicas confirmed it in time (WAIT): a failover now could lose it`,
        );
      }
      return "written";
    }
    if (status === 0 && write.kind === "update") return "gone";
    if (status === -1) {
      throw new Error(
        "Redis ran the write after its deadline (the request had given up waiting) and refused it: nothing was written",
      );
    }
    if (status === -2) {
      throw new Error(
        "An update cannot change a session's user (meta.userId is fixed when the record is created): nothing was written",
      );
    }
    throw new Error(`Unexpected reply from the session write script: ${JSON.stringify(status)}`);
  }

  /**
   * Deletes a record and takes it off its user's index in the same step. One
   * `EVALSHA` of the delete script (and, with `waitForReplicas`, a `WAIT`
   * after it).
   */
  async delete(key: string): Promise<void> {
    const fullKey = redisKey(this.#keyPrefix, key, this.#hashTags);
    const tag = this.#tag();
    const sentAt = Date.now();
    const margin = Math.min(REPLY_MARGIN_MAX_MS, this.#timeout * REPLY_MARGIN_SHARE);
    const answer = await this.#run(
      SCRIPTS.delete,
      [fullKey],
      [tag, key],
      this.#waitUntil(sentAt + this.#timeout, margin),
    );
    this.#verified(answer.reply, tag, fullKey, 2);
    if (answer.replicas < this.#waitFor) {
      throw new Error(
        `Redis deleted the session, but ${answer.replicas} of ${this.#waitFor} replicas confirmed it in time (WAIT): a failover now could bring it back`,
      );
    }
  }

  /**
   * The live records of `userId`, each with its metadata: one `EVALSHA` of
   * the list script on the user's index, which also prunes it (entries past
   * their deadline by the server's clock, entries whose record is gone).
   * O(sessions of that user). Records past their deadline by `now` are not
   * answered, as `get` answers none for them.
   *
   * @param userId The user, as in `meta.userId`.
   * @returns The entries, in no particular order.
   * @throws {TypeError} for a user id that is not a non-empty string.
   */
  async listByUser(userId: string, now?: number): Promise<UserSessionEntry[]> {
    const { index, records } = this.#userKeys(userId);
    const tag = this.#tag();
    const sentAt = Date.now();
    const { reply } = await this.#run(SCRIPTS.list, [index], [tag, records]);
    const items = this.#verified(reply, tag, index, 3);
    this.#clock.observe(sentAt, Date.now(), Number(items[2]));
    return decodeUserList(items.slice(3), userId, storeTime(this.#appClock, now));
  }

  /** Releases what the transport holds; nothing here. Stores with connections override it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

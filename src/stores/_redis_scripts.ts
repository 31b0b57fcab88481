/**
 * The Redis scripts and codec of the Redis session store (`_redis_store.ts`,
 * behind `RedisStore` and `WebdisStore`): one hash per session, the Lua
 * scripts that read, write and delete it and list a user's sessions, the
 * server clock that write deadlines are set in, and the codec between hash
 * fields and {@linkcode SessionRecord}s. Runtime-neutral (Web Crypto only), so the
 * fetch-only Webdis store can import it.
 *
 * Hash fields:
 * - `d:<key>` for each user key, the value as JSON. The key is written as the
 *   inside of a JSON string literal, so NUL characters and lone surrogates
 *   never reach Redis raw (Webdis truncates field names at NUL, and UTF-8
 *   cannot carry lone surrogates).
 * - `meta`: the {@linkcode SessionMeta} as JSON.
 * - `flash`: the flash values as JSON, absent when there are none.
 * - `exp`: the record's deadline in ms (the earlier of `expiresAt` and
 *   `absoluteExpiresAt`), which the write script compares without decoding
 *   `meta`.
 * - `user`: for a record with a user (`meta.userId`), the Redis key of that
 *   user's index, which the delete script takes the record off.
 *
 * A user's index is a sorted set at `keyPrefix` (+ the group's hash tag in a
 * cluster) + `userKey(userId)` (`src/store.ts`): each member a storage key, its
 * score the record's deadline. The write, delete and list scripts keep it in
 * the same step as the records.
 *
 * @module
 */

import { CorruptRecordError, isSessionRecord, NEVER, setOwn, storedRecord } from "../store.ts";
import type { SessionMeta, SessionRecord, StoreWrite, UserSessionEntry } from "../store.ts";

/** Prefix of the hash fields that hold user keys. */
export const DATA_FIELD_PREFIX = "d:";

/** The server's clock in whole milliseconds, as a Lua expression over a `TIME` reply in `time`. */
const SERVER_MS = "tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)";

/**
 * Lua that sets `echo` to the key a script touched, as it sends it back: the
 * key itself, or its bytes in hex when it holds a NUL byte, which Webdis cuts
 * JSON strings at (see {@linkcode keyEcho}). The hex form costs a Lua call per
 * byte, so it is kept for the keys that need it.
 */
const KEY_ECHO = `local echo = KEYS[1]
if string.find(echo, '%z') then
  echo = echo:gsub('.', function(c) return string.format('%02x', string.byte(c)) end)
end`;

/**
 * Reads one session hash. Read-only (`no-writes`, Redis 7+), so it runs while
 * writes are paused (`CLIENT PAUSE … WRITE` during a failover), as `HGETALL`
 * does; {@linkcode READ_SCRIPT_PLAIN} is the same without the flag, for older
 * servers.
 *
 * KEYS[1]: the session hash. ARGV[1]: the request's tag.
 *
 * Answers the tag, the key (see {@linkcode keyEcho}), the server's time in
 * ms, then the hash's fields and values: the first two prove which request and
 * which record the reply belongs to.
 */
export const READ_SCRIPT = `#!lua flags=no-writes
${KEY_ECHO}
local time = redis.call('TIME')
local reply = {ARGV[1], echo, ${SERVER_MS}}
for _, item in ipairs(redis.call('HGETALL', KEYS[1])) do reply[#reply + 1] = item end
return reply
`;

/** {@linkcode READ_SCRIPT} without its `no-writes` flag, which servers before Redis 7 cannot compile. */
export const READ_SCRIPT_PLAIN = READ_SCRIPT.slice(READ_SCRIPT.indexOf("\n") + 1);

/**
 * Lua that defines `keepIndex(index)`: sets the expiry of a user's index (a
 * sorted set scored by its records' deadlines) to its highest score, so the
 * index outlives every record it lists and vanishes with the last of them.
 * Scores are milliseconds, at most {@linkcode NEVER}: `%.0f` writes them as
 * the integer `PEXPIREAT` wants.
 */
const KEEP_INDEX = `local function keepIndex(index)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', index, string.format('%.0f', math.ceil(tonumber(top[2])))) end
end`;

/**
 * Writes one session hash atomically: a create, or an update applied per key,
 * unless the request's deadline has passed by the server's clock; and, for a
 * record with a user, that user's index in the same step.
 *
 * KEYS[1]: the session hash; KEYS[2], only for a record with a user: the
 * user's index (a sorted set: member the storage key, score the record's
 * deadline).
 * ARGV: the request's tag, the deadline (server ms, "" for none), mode
 * ("create" | "update"), now (ms, the app's clock, for expiry), PEXPIREAT
 * deadline (ms), meta JSON, flash action ("keep" | "drop" | "set"), flash
 * JSON ("" unless "set"), cleared ("1" | "0"), the record's deadline (ms, the
 * earlier of `expiresAt` and `absoluteExpiresAt`, kept in the `exp` field and
 * as its index score), the storage key ("" without a user), the number n of
 * deleted fields, n deleted fields, then field/value pairs to set.
 *
 * An update reads the stored record's deadline from `exp`, never by decoding
 * `meta` in Lua: Redis's cjson refuses the `\udXXX` escape of a lone
 * surrogate, which a user id or login details may hold. (Records written
 * before `exp` existed hold only numbers in `meta` and are decoded.)
 *
 * Answers the tag, the key (see {@linkcode keyEcho}), a status and the
 * server's time in ms. Status 1: written; 0: an update found no live record
 * (nothing written); -1: the deadline had passed when the script ran (nothing
 * written): the client has answered 503 by then, and a write it gave up on
 * must not land later; -2: an update names another user (or none) than the
 * record was created with (nothing written): a record's user is fixed.
 */
export const WRITE_SCRIPT = `local key = KEYS[1]
local index = KEYS[2]
${KEY_ECHO}
${KEEP_INDEX}
local time = redis.call('TIME')
local serverNow = ${SERVER_MS}
local function answer(status) return {ARGV[1], echo, status, serverNow} end
if ARGV[2] ~= '' and serverNow > tonumber(ARGV[2]) then return answer(-1) end
if ARGV[3] == 'create' then
  redis.call('DEL', key)
else
  local stored = redis.call('HMGET', key, 'meta', 'exp', 'user')
  if not stored[1] then return answer(0) end
  -- Redis evicts lazily and by its own clock: an expired record must not be revived by a late update.
  local now = tonumber(ARGV[4])
  local deadline
  if stored[2] then
    deadline = tonumber(stored[2])
  else
    local meta = cjson.decode(stored[1])
    deadline = tonumber(meta.expiresAt)
    local absoluteExpiresAt = tonumber(meta.absoluteExpiresAt)
    if deadline ~= nil and absoluteExpiresAt ~= nil then deadline = math.min(deadline, absoluteExpiresAt) end
  end
  if deadline == nil or deadline <= now then return answer(0) end
  if (stored[3] or '') ~= (index or '') then return answer(-2) end
  if ARGV[9] == '1' then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, 2) == 'd:' then redis.call('HDEL', key, field) end
    end
  end
end
local deleted = tonumber(ARGV[12])
for i = 13, 12 + deleted do redis.call('HDEL', key, ARGV[i]) end
for i = 13 + deleted, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
if ARGV[7] == 'set' then
  redis.call('HSET', key, 'flash', ARGV[8])
elseif ARGV[7] == 'drop' then
  redis.call('HDEL', key, 'flash')
end
redis.call('HSET', key, 'meta', ARGV[6], 'exp', ARGV[10])
redis.call('PEXPIREAT', key, ARGV[5])
if index then
  redis.call('HSET', key, 'user', index)
  redis.call('ZADD', index, ARGV[10], ARGV[11])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', serverNow)
  keepIndex(index)
end
return answer(1)
`;

/**
 * Deletes one session hash and, in the same step, takes it off its user's
 * index: the index's name is in the hash's `user` field (absent for a record
 * without a user).
 *
 * KEYS[1]: the hash. ARGV[1]: the request's tag; ARGV[2]: the storage key
 * (the index member). Answers the tag and the key (see {@linkcode keyEcho}).
 *
 * A key that holds something else than a hash is deleted all the same, and
 * an index that cannot be changed (not a sorted set) keeps a member that
 * the next listing drops, since its record is gone: a delete never fails
 * because of the index.
 */
export const DELETE_SCRIPT = `${KEY_ECHO}
${KEEP_INDEX}
local index = redis.pcall('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1])
if type(index) == 'string' then
  if type(redis.pcall('ZREM', index, ARGV[2])) == 'number' then keepIndex(index) end
end
return {ARGV[1], echo}
`;

/**
 * Lists one user's live records from the user's index, pruning it on the way.
 *
 * KEYS[1]: the user's index. ARGV[1]: the request's tag; ARGV[2]: what goes
 * in front of a storage key to make the Redis key of a record of this user
 * (`keyPrefix`, and in a cluster the group's hash tag).
 *
 * Members whose score (the record's deadline) has passed by the server's
 * clock are removed (`ZREMRANGEBYSCORE`), as are members whose record is gone
 * or no longer names this index in its `user` field (recreated for another
 * user). Cost: O(log n + m) for the m pruned, and one `HMGET` per remaining
 * member: O(sessions of that user).
 *
 * Answers the tag, the index key (see {@linkcode keyEcho}), the server's
 * time in ms, then each listed record's storage key and its `meta` JSON.
 */
export const LIST_SCRIPT = `local index = KEYS[1]
${KEY_ECHO}
${KEEP_INDEX}
local time = redis.call('TIME')
local serverNow = ${SERVER_MS}
local reply = {ARGV[1], echo, serverNow}
local removed = redis.call('ZREMRANGEBYSCORE', index, '-inf', serverNow)
for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local fields = redis.call('HMGET', ARGV[2] .. member, 'meta', 'user')
  if fields[1] and fields[2] == index then
    reply[#reply + 1] = member
    reply[#reply + 1] = fields[1]
  else
    redis.call('ZREM', index, member)
    removed = removed + 1
  end
end
if removed > 0 then keepIndex(index) end
return reply
`;

/** A Lua script and its SHA-1, for `EVALSHA`. */
export class RedisScript {
  /** The script's source, for `EVAL`. */
  readonly source: string;
  #sha1: Promise<string> | undefined;

  /** @param source The Lua source. */
  constructor(source: string) {
    this.source = source;
  }

  /** The SHA-1 of the source in hex, as `EVALSHA` wants it. */
  sha1(): Promise<string> {
    this.#sha1 ??= crypto.subtle.digest("SHA-1", new TextEncoder().encode(this.source)).then((digest) =>
      Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("")
    );
    return this.#sha1;
  }
}

/** The scripts, each with its SHA-1 once computed. */
export const SCRIPTS = {
  read: new RedisScript(READ_SCRIPT),
  readPlain: new RedisScript(READ_SCRIPT_PLAIN),
  write: new RedisScript(WRITE_SCRIPT),
  delete: new RedisScript(DELETE_SCRIPT),
  list: new RedisScript(LIST_SCRIPT),
};

/** The SHA-1 of {@linkcode WRITE_SCRIPT} in hex, as EVALSHA wants it. */
export function writeScriptSha1(): Promise<string> {
  return SCRIPTS.write.sha1();
}

/** The name of the error a store's transport rejects with when it gave up waiting for a reply. */
export const TIMEOUT_ERROR = "TimeoutError";

/** An error for a command that got no reply in time, recognised by the store's `set`. */
export function timeoutError(message: string, cause?: unknown): Error {
  const error = new Error(message, { cause });
  error.name = TIMEOUT_ERROR;
  return error;
}

/** How fast the uncertainty of a clock sample grows with its age: 1 ms per second, far above real drift. */
const CLOCK_DRIFT = 1e-3;

/**
 * What this process knows about the Redis server's clock: its offset from
 * `Date.now()`, learnt from the server time every script reply carries, and
 * how uncertain that offset is (half a round trip, plus the clocks'
 * millisecond steps). The most certain sample is kept; it ages, and a sample
 * that contradicts it (a clock was stepped) replaces it at once.
 */
export class ServerClock {
  #offset = 0;
  #uncertainty = Number.POSITIVE_INFINITY;
  #at = Number.NEGATIVE_INFINITY;

  /**
   * Learns from one reply.
   *
   * @param sentAt `Date.now()` when the command was sent.
   * @param receivedAt `Date.now()` when its reply arrived.
   * @param serverMs The server's time in whole ms while it ran the command.
   */
  observe(sentAt: number, receivedAt: number, serverMs: number): void {
    if (!Number.isFinite(serverMs) || receivedAt < sentAt) return;
    // The true offset lies in [serverMs - (receivedAt + 1), serverMs + 1 - sentAt]: both clocks tick in ms.
    const low = serverMs - receivedAt - 1;
    const high = serverMs + 1 - sentAt;
    const offset = (low + high) / 2;
    const uncertainty = (high - low) / 2;
    const aged = this.#uncertainty + (receivedAt - this.#at) * CLOCK_DRIFT;
    const contradicts = Math.abs(offset - this.#offset) > uncertainty + aged;
    if (uncertainty <= aged || contradicts) {
      this.#offset = offset;
      this.#uncertainty = uncertainty;
      this.#at = receivedAt;
    }
  }

  /**
   * The latest server time that is surely not after the local time
   * `localMs`. Before any sample, the clocks are taken to agree.
   */
  serverTimeNotAfter(localMs: number): number {
    const uncertainty = Number.isFinite(this.#uncertainty) ? this.#uncertainty : 0;
    return localMs + this.#offset - uncertainty;
  }
}

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
const encoder = new TextEncoder();

/** The UTF-8 bytes of `text` in hex. */
export function hexOf(text: string): string {
  let hex = "";
  for (const byte of encoder.encode(text)) hex += HEX[byte];
  return hex;
}

/**
 * The key as the scripts send it back, for comparing: as it is, but in hex
 * when it holds a NUL character (Webdis 0.1.9 cuts JSON strings at NUL), and
 * with any lone surrogate as U+FFFD, as the key travelled (UTF-8 cannot carry
 * lone surrogates). Storage keys from the core are plain ASCII: the fast path.
 */
export function keyEcho(key: string): string {
  if (key.includes("\0")) return hexOf(key);
  const wellFormed = (key as { toWellFormed?: () => string }).toWellFormed;
  return wellFormed ? wellFormed.call(key) : key;
}

/** The hash field of a user key. */
export function dataField(key: string): string {
  return DATA_FIELD_PREFIX + JSON.stringify(key).slice(1, -1);
}

/** The user key of a hash field made by {@linkcode dataField}. */
function keyOfField(field: string): string {
  return JSON.parse(`"${field.slice(DATA_FIELD_PREFIX.length)}"`);
}

/** A PEXPIREAT argument: whole milliseconds, never past the largest `Date`. */
function expiryArgument(meta: SessionMeta): string {
  const { expiresAt } = meta;
  if (typeof expiresAt !== "number" || Number.isNaN(expiresAt)) {
    throw new TypeError("Invalid session meta: expiresAt must be a number");
  }
  return String(Math.min(Math.ceil(expiresAt), NEVER));
}

/**
 * A record's deadline, for the `exp` field and its index score: the earlier
 * of `expiresAt` and `absoluteExpiresAt` in milliseconds (as they are, not
 * rounded: the same comparison as a read's), never past {@linkcode NEVER}.
 */
function deadlineArgument(meta: SessionMeta): string {
  const deadline = Math.min(meta.expiresAt, meta.absoluteExpiresAt ?? meta.expiresAt, NEVER);
  if (typeof deadline !== "number" || Number.isNaN(deadline)) {
    throw new TypeError("Invalid session meta: expiresAt and absoluteExpiresAt must be numbers");
  }
  return String(deadline);
}

/**
 * The ARGV of {@linkcode WRITE_SCRIPT} for one write, from the mode on (the
 * tag and the deadline come first).
 *
 * Values that JSON cannot hold (`undefined`, functions) count as deleted, the
 * way they vanish from a JSON document.
 *
 * @param write The write.
 * @param now The current time in milliseconds, to refuse updates of expired records.
 * @param member The storage key, for a record with a user (its index member); `""` for one without.
 */
export function writeScriptArguments(write: StoreWrite, now: number, member: string): string[] {
  const update = write.kind === "update";
  const source = update ? write.set : write.record.data;
  const deleted = update ? write.deleted.map(dataField) : [];
  const pairs: string[] = [];
  for (const key of Object.keys(source)) {
    const json = JSON.stringify(source[key]);
    if (json === undefined) {
      if (update) deleted.push(dataField(key));
    } else {
      pairs.push(dataField(key), json);
    }
  }
  let flashAction = "keep";
  let flash = "";
  if (!update || write.flashChanged) {
    if (write.record.flash === undefined) {
      flashAction = "drop";
    } else {
      flashAction = "set";
      flash = JSON.stringify(write.record.flash);
    }
  }
  return [
    write.kind,
    String(Math.floor(now)),
    expiryArgument(write.record.meta),
    JSON.stringify(write.record.meta),
    flashAction,
    flash,
    update && write.cleared ? "1" : "0",
    deadlineArgument(write.record.meta),
    member,
    String(deleted.length),
    ...deleted,
    ...pairs,
  ];
}

/**
 * Turns the fields of a session hash into a record, or `undefined` when the
 * hash is empty, has no meta, or has expired by `now`.
 *
 * @param fields The hash as field/value pairs.
 * @param now The current time in milliseconds.
 * @throws {CorruptRecordError} when a field is not valid JSON or the meta is
 * not valid: bad data, not a Redis failure (the core deletes the record).
 */
export function decodeSessionHash(
  fields: Iterable<readonly [string, string]>,
  now: number,
): SessionRecord | undefined {
  let record: SessionRecord | undefined;
  try {
    record = decodeFields(fields, now);
  } catch (error) {
    throw new CorruptRecordError("a hash field is not valid JSON", { cause: error });
  }
  return record === undefined ? undefined : storedRecord(record);
}

function decodeFields(fields: Iterable<readonly [string, string]>, now: number): SessionRecord | undefined {
  let meta: SessionMeta | undefined;
  let flash: Record<string, unknown> | undefined;
  const data: Record<string, unknown> = {};
  for (const [field, value] of fields) {
    if (field.startsWith(DATA_FIELD_PREFIX)) {
      setOwn(data, keyOfField(field), JSON.parse(value));
    } else if (field === "meta") {
      meta = JSON.parse(value);
    } else if (field === "flash") {
      flash = JSON.parse(value);
    }
  }
  if (meta === undefined) return undefined;
  if (!(meta.expiresAt > now) || !(meta.absoluteExpiresAt > now)) return undefined;
  const record: SessionRecord = { data, meta };
  if (flash !== undefined) record.flash = flash;
  return record;
}

/**
 * The entries of a list script reply (after its tag, key and time): storage
 * key and `meta` JSON pairs. Entries past their deadline by `now` are left
 * out, as `get` answers nothing for them, and so are entries whose `meta` is
 * not the metadata of a record of `userId`: such a record is dead already
 * (`get` throws {@linkcode CorruptRecordError} for it and the core deletes
 * it), and leaving it out keeps the user's other sessions listable.
 *
 * @param items Storage key and `meta` JSON, alternating.
 * @param userId The user listed.
 * @param now The current time in milliseconds.
 * @throws {Error} when the reply is not such pairs of strings.
 */
export function decodeUserList(items: unknown[], userId: string, now: number): UserSessionEntry[] {
  if (items.length % 2 !== 0) throw new Error("Unexpected list reply from Redis: odd number of elements");
  const entries: UserSessionEntry[] = [];
  for (let i = 0; i < items.length; i += 2) {
    const [key, json] = [items[i], items[i + 1]];
    if (typeof key !== "string" || typeof json !== "string") {
      throw new Error("Unexpected list reply from Redis: not pairs of strings");
    }
    let meta: SessionMeta;
    try {
      meta = JSON.parse(json);
    } catch {
      continue;
    }
    if (!isSessionRecord({ data: {}, meta }) || meta.userId !== userId) continue;
    if (meta.expiresAt > now && meta.absoluteExpiresAt > now) entries.push({ key, meta });
  }
  return entries;
}

/**
 * The field/value pairs of a hash reply in any shape a client may produce: a
 * flat RESP2 array, a RESP3 `Map`, or an object (Webdis, RESP3 defaults).
 */
export function hashPairs(reply: unknown): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (Array.isArray(reply)) {
    if (reply.length % 2 !== 0) throw new Error("Unexpected hash reply from Redis: odd number of elements");
    for (let i = 0; i < reply.length; i += 2) pairs.push([String(reply[i]), String(reply[i + 1])]);
  } else if (reply instanceof Map) {
    for (const [field, value] of reply) pairs.push([String(field), String(value)]);
  } else if (typeof reply === "object" && reply !== null) {
    for (const [field, value] of Object.entries(reply)) pairs.push([field, String(value)]);
  } else {
    throw new Error(`Unexpected hash reply from Redis: ${reply === null ? "null" : typeof reply}`);
  }
  return pairs;
}

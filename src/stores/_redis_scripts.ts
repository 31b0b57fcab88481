/**
 * The Redis layout shared by `RedisStore` and `WebdisStore`:
 * one hash per session, the Lua script that writes it, and the codec between
 * hash fields and {@linkcode SessionRecord}s. Runtime-neutral (Web Crypto only),
 * so the fetch-only Webdis store can import it.
 *
 * Hash fields:
 * - `d:<key>` for each user key, the value as JSON. The key is written as the
 *   inside of a JSON string literal, so NUL characters and lone surrogates
 *   never reach Redis raw (Webdis truncates field names at NUL, and UTF-8
 *   cannot carry lone surrogates).
 * - `meta`: the {@linkcode SessionMeta} as JSON.
 * - `flash`: the flash values as JSON, absent when there are none.
 *
 * @module
 */

import { CorruptRecordError, NEVER, setOwn, storedRecord } from "../store.ts";
import type { SessionMeta, SessionRecord, StoreWrite } from "../store.ts";

/** Prefix of the hash fields that hold user keys. */
export const DATA_FIELD_PREFIX = "d:";

/**
 * Writes one session hash atomically: a create, or an update applied per key.
 *
 * KEYS[1]: the session hash.
 * ARGV: mode ("create" | "update"), now (ms), PEXPIREAT deadline (ms), meta
 * JSON, flash action ("keep" | "drop" | "set"), flash JSON ("" unless "set"),
 * cleared ("1" | "0"), the number n of deleted fields, n deleted fields, then
 * field/value pairs to set.
 *
 * Answers 1 when written, 0 when an update found no live record. Integers
 * rather than nil, so a reply is never confused with a missing one.
 */
export const WRITE_SCRIPT = `local key = KEYS[1]
if ARGV[1] == 'create' then
  redis.call('DEL', key)
else
  local stored = redis.call('HGET', key, 'meta')
  if not stored then return 0 end
  -- Redis evicts lazily and by its own clock: an expired record must not be revived by a late update.
  local now = tonumber(ARGV[2])
  local meta = cjson.decode(stored)
  local expiresAt = tonumber(meta.expiresAt)
  local absoluteExpiresAt = tonumber(meta.absoluteExpiresAt)
  if expiresAt == nil or expiresAt <= now then return 0 end
  if absoluteExpiresAt ~= nil and absoluteExpiresAt <= now then return 0 end
  if ARGV[7] == '1' then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, 2) == 'd:' then redis.call('HDEL', key, field) end
    end
  end
end
local deleted = tonumber(ARGV[8])
for i = 9, 8 + deleted do redis.call('HDEL', key, ARGV[i]) end
for i = 9 + deleted, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
if ARGV[5] == 'set' then
  redis.call('HSET', key, 'flash', ARGV[6])
elseif ARGV[5] == 'drop' then
  redis.call('HDEL', key, 'flash')
end
redis.call('HSET', key, 'meta', ARGV[4])
redis.call('PEXPIREAT', key, ARGV[3])
return 1
`;

let writeScriptSha: Promise<string> | undefined;

/** The SHA-1 of {@linkcode WRITE_SCRIPT} in hex, as EVALSHA wants it. */
export function writeScriptSha1(): Promise<string> {
  writeScriptSha ??= crypto.subtle.digest("SHA-1", new TextEncoder().encode(WRITE_SCRIPT)).then((digest) =>
    Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("")
  );
  return writeScriptSha;
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
 * The ARGV of {@linkcode WRITE_SCRIPT} for one write.
 *
 * Values that JSON cannot hold (`undefined`, functions) count as deleted, the
 * way they vanish from a JSON document.
 *
 * @param write The write.
 * @param now The current time in milliseconds, to refuse updates of expired records.
 */
export function writeScriptArguments(write: StoreWrite, now: number): string[] {
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

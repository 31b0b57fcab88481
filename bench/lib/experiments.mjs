// Experiments: patches applied to the run's snapshot of src/ or bench/servers/ (never to the repository
// itself), so the report can state a proposal's gain, or what an earlier shape of the harness cost, as a
// measurement. A patch whose anchor text is gone is reported as not applied, and its contender is skipped.

/**
 * Replaces each `[anchor, replacement]` pair's anchor in `text`, in order; `undefined` (not applied) when any
 * anchor is gone.
 */
function swap(text, ...pairs) {
  for (const [anchor, replacement] of pairs) {
    if (text === undefined || !text.includes(anchor)) return undefined;
    text = text.replace(anchor, replacement);
  }
  return text;
}

/**
 * hono-async-routes: the Hono bench app as it was before issue 17, every library's routes `async` handlers
 * that await the counter, ours too, while the floors' are synchronous. Our users' handlers are synchronous
 * (ours answers `get`/`set` at once), so the current app gives a synchronous library synchronous routes;
 * this twin measures what the old shape charged in the same run.
 * (Replaces hono-inplace-cookie, adopted in src/adapters/hono.ts since.)
 */
const honoAsyncRoutes = {
  id: "hono-async-routes",
  file: "bench/servers/hono_app.ts",
  apply: (text) => swap(text, ["} else if (access.sync) {", "} else if (false) {"]),
};

/**
 * shared-clock-*: what a store contract in which the core hands its time to the store would save. Today every
 * store checks expiry on its own clock, so a write reads `Date.now()` four times (the core at load and at
 * commit, `MemoryStore` at `get` and at `set`; about 40 ns each on Deno). Patched, the core's clock reads
 * record their value in a shared cell and `MemoryStore` reads that cell instead of the clock: two reads less
 * per write, one per read. Only for measuring: as patched, the store's `get` sees the time of the core's
 * previous read (the core reads the clock after the store answers), which a real contract change would
 * order the other way round.
 */
const sharedClockCell = {
  id: "shared-clock-cell",
  file: "src/store.ts",
  apply: (text) =>
    `${text}\n/** Experiment shared-clock: the core's last clock read. */\nexport const sharedClock = { now: 0 };\n`,
};
const sharedClockCore = {
  id: "shared-clock-core",
  file: "src/core.ts",
  apply: (text) =>
    swap(
      text,
      [
        'import { isSessionRecord, NEVER } from "./store.ts";',
        'import { isSessionRecord, NEVER, sharedClock } from "./store.ts";',
      ],
      [
        "this.#now = options.now ?? Date.now;",
        "this.#now = options.now ?? (() => (sharedClock.now = Date.now()));",
      ],
      ["this.#realClock = this.#now === Date.now;", "this.#realClock = options.now === undefined;"],
    ),
};
const sharedClockMemory = {
  id: "shared-clock-memory",
  file: "src/stores/memory.ts",
  apply: (text) =>
    swap(
      text,
      [
        'import { applyChange, setOwn } from "../store.ts";',
        'import { applyChange, setOwn, sharedClock } from "../store.ts";',
      ],
      ["this.#now = options.now ?? Date.now;", "this.#now = options.now ?? (() => sharedClock.now);"],
    ),
};

/**
 * fast-write-set: an update's `write.set` made as an object whose prototype is an empty, frozen
 * null-prototype object, instead of `Object.create(null)`, which V8 keeps in dictionary mode (slow
 * `Object.keys` and property stores in every store's update). No key is inherited either way; only
 * `Object.getPrototypeOf(write.set) === null`, which the store contract documents, would change.
 * In process: 22–24 ns against 66–72 ns to make the object and apply it (issue 17, session 9).
 */
const fastWriteSet = {
  id: "fast-write-set",
  file: "src/core.ts",
  apply(text) {
    const made = swap(text, ["const set = Object.create(null);", "const set = new BareRecord();"]);
    return made &&
      `${made}\n// Experiment fast-write-set.\nfunction BareRecord() {}\nBareRecord.prototype = Object.freeze(Object.create(null));\n`;
  },
};

export const PATCHES = Object.fromEntries(
  [honoAsyncRoutes, sharedClockCell, sharedClockCore, sharedClockMemory, fastWriteSet].map((p) => [p.id, p]),
);

// Checking option names: an unknown name is a typo until proven otherwise, so it is refused with the nearest
// known name suggested (or a hint written for names users bring from other session libraries).

/**
 * The Damerau-free edit distance (insertions, deletions, substitutions)
 * between two short strings, compared case-insensitively.
 */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * The known name nearest to `name`, if one is near enough to be a typo of it
 * (at most a third of the letters of the longer of the two differ: `maxEntry` is near `maxEntries`).
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(name, candidate);
    const near = d <= Math.max(1, Math.floor(Math.max(name.length, candidate.length) / 3));
    if (near && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * Throws a `TypeError` naming the first own key of `options` that is not in
 * `known`, with the nearest known name, or the hint `hints` has for it.
 *
 * @param options The options object (already known to be an object).
 * @param known The accepted names.
 * @param prefix Prepended to names in the message (`"cookie."` for nested options).
 * @param hints What to say for names that users bring from elsewhere, by name.
 * @param owner Whose options they are, in the message: `Unknown <owner> option "..."`.
 */
export function rejectUnknownOptions(
  options: object,
  known: readonly string[],
  prefix = "",
  hints: Readonly<Record<string, string>> = {},
  owner = "session",
): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const hint = Object.hasOwn(hints, name) ? hints[name] : undefined;
    const nearest = hint === undefined ? nearestName(name, known) : undefined;
    const detail = hint ??
      (nearest === undefined
        ? `known options are ${known.map((k) => prefix + k).join(", ")}`
        : `did you mean "${prefix}${nearest}"?`);
    throw new TypeError(`Unknown ${owner} option "${prefix}${name}": ${detail}`);
  }
}

/**
 * {@linkcode rejectUnknownOptions} for the options of the store `store`, when they are a plain object (a literal,
 * `Object.create(null)`, JSON): anything else (say, a driver's client passed where the options go) is left to
 * the store's own checks, as before names were checked.
 */
export function rejectUnknownStoreOptions(
  store: string,
  options: unknown,
  known: readonly string[],
  hints: Readonly<Record<string, string>> = {},
  prefix = "",
): void {
  if (typeof options !== "object" || options === null) return;
  const proto = Object.getPrototypeOf(options);
  // Object.prototype of any realm (a vm context's, another frame's) has no prototype of its own.
  if (proto !== null && Object.getPrototypeOf(proto) !== null) return;
  rejectUnknownOptions(options, known, prefix, hints, store);
}

/**
 * A rotation list (`secret: [newSecret, oldSecret]`, `keys: [newKey, oldKey]`) without its unset entries.
 * An entry after the first may be `undefined`: an old secret whose environment variable is not set has
 * nothing to rotate from, and is left out. The first signs (or seals), so an unset first entry is refused,
 * fail closed, through `error` (which names the option).
 */
export function withoutUnsetEntries<T>(
  list: readonly (T | undefined)[],
  error: (detail: string) => Error,
): T[] {
  if (list.length > 0 && list[0] === undefined) {
    throw error(
      "its first entry is undefined (an unset environment variable?); the first signs, so it must be set",
    );
  }
  return list.filter((entry): entry is T => entry !== undefined);
}

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
 * (at most a third of its letters differ).
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Throws a `TypeError` naming the first own key of `options` that is not in
 * `known`, with the nearest known name, or the hint `hints` has for it.
 *
 * @param options The options object (already known to be an object).
 * @param known The accepted names.
 * @param prefix Prepended to names in the message (`"cookie."` for nested options).
 * @param hints What to say for names that users bring from elsewhere, by name.
 */
export function rejectUnknownOptions(
  options: object,
  known: readonly string[],
  prefix = "",
  hints: Readonly<Record<string, string>> = {},
): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const hint = Object.hasOwn(hints, name) ? hints[name] : undefined;
    const nearest = hint === undefined ? nearestName(name, known) : undefined;
    const detail = hint ??
      (nearest === undefined
        ? `known options are ${known.map((k) => prefix + k).join(", ")}`
        : `did you mean "${prefix}${nearest}"?`);
    throw new TypeError(`Unknown session option "${prefix}${name}": ${detail}`);
  }
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

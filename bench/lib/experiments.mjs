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

export const PATCHES = Object.fromEntries(
  [honoAsyncRoutes].map((p) => [p.id, p]),
);

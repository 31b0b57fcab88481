// Reads a V8 .cpuprofile (node --cpu-prof) and answers: where did the server's CPU go while the load
// ran? Samples outside the load window (startup, module loading, seeding, warm-up) are left out.
import { readFileSync } from "node:fs";

const SPECIAL = new Set(["(program)", "(idle)", "(garbage collector)", "(root)"]);

/** Where a frame's code comes from. `root` is the repository root URL (file:///.../). */
export function categorize(callFrame, root) {
  const { url, functionName } = callFrame;
  if (!url) return SPECIAL.has(functionName) ? functionName : "native (V8/runtime builtins)";
  if (url.startsWith("node:")) return "node internals";
  if (url.includes("/node_modules/hono/")) return "hono";
  if (url.includes("/node_modules/@hono/node-server/")) return "@hono/node-server";
  if (url.includes("/node_modules/tsx/")) return "tsx loader";
  if (url.includes("/node_modules/")) return "other packages";
  if (url.startsWith(`${root}src/`)) return "ours (src/)";
  if (url.startsWith(`${root}bench/`)) return "bench app";
  return "other";
}

/** Paths relative to the transpiled tree, named after their TypeScript source. */
function shortUrl(url, root) {
  if (!url.startsWith(root)) return url.replace(/^.*\/node_modules\//, "");
  return url.slice(root.length).replace(/\.js$/, ".ts");
}

/**
 * @param {string} file the .cpuprofile
 * @param {{ root: string, fromMs?: number, toMs?: number, top?: number }} options window relative to
 *   the profile's start
 */
export function analyzeProfile(file, { root, fromMs = 0, toMs = Infinity, top = 15 }) {
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map();
  const parent = new Map();
  for (const node of profile.nodes) byId.set(node.id, node);
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const ours = new Map();
  for (const node of profile.nodes) ours.set(node.id, categorize(node.callFrame, root) === "ours (src/)");
  // A sample counts as "under our code" when any frame on its stack is ours: inclusive time.
  const underOurs = new Map();
  const isUnderOurs = (id) => {
    if (underOurs.has(id)) return underOurs.get(id);
    const p = parent.get(id);
    const value = ours.get(id) || (p !== undefined && isUnderOurs(p));
    underOurs.set(id, value);
    return value;
  };

  const self = new Map();
  const categories = new Map();
  let total = 0;
  let idle = 0;
  let inclusiveOurs = 0;
  let t = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    // A sample stands for the time until the next one.
    const weight = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    const at = t / 1000;
    if (at < fromMs || at > toMs || weight <= 0) continue;
    const node = byId.get(samples[i]);
    const frame = node.callFrame;
    if (frame.functionName === "(idle)") {
      idle += weight;
      continue;
    }
    total += weight;
    const category = categorize(frame, root);
    categories.set(category, (categories.get(category) ?? 0) + weight);
    if (isUnderOurs(node.id)) inclusiveOurs += weight;
    const key = `${frame.functionName || "(anonymous)"}\u0000${frame.url}\u0000${frame.lineNumber}`;
    const entry = self.get(key) ??
      {
        functionName: frame.functionName || "(anonymous)",
        url: frame.url,
        line: frame.lineNumber + 1,
        category,
        us: 0,
      };
    entry.us += weight;
    self.set(key, entry);
  }
  const rows = [...self.values()].sort((a, b) => b.us - a.us);
  const share = (us) => (total > 0 ? us / total : 0);
  const format = (entry) => ({
    function: entry.functionName,
    // Line numbers are the transpiled file's; TypeScript's emit keeps them close to the source.
    where: entry.url ? `${shortUrl(entry.url, root)}:${entry.line}` : "",
    category: entry.category,
    selfMs: entry.us / 1000,
    share: share(entry.us),
  });
  return {
    busyMs: total / 1000,
    idleMs: idle / 1000,
    inclusiveOursShare: share(inclusiveOurs),
    categories: [...categories.entries()]
      .map(([name, us]) => ({ name, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms),
    topOurs: rows.filter((row) => row.category === "ours (src/)").slice(0, top).map(format),
    topAll: rows.slice(0, top).map(format),
  };
}

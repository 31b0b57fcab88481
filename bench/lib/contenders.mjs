// Every framework group and contender the harness knows, and the targets the report checks.
// `floor` is the no-op middleware each ratio is taken against; `peers` pairs our contender with the
// library users pick today on the same framework and store.

export const SCENARIOS = ["bare", "read", "write", "new"];

const EXPRESS_OAK_FLOOR = { read: 0.95, write: 0.93, new: 0.9 };
const FETCH_FLOOR = { read: 0.85, write: 0.8, new: 0.7 };

const none = { name: "none", kind: "none", label: "no middleware" };
const noop = { name: "noop", kind: "floor", label: "no-op middleware (floor)" };
// Sessionless like the floor, plus the cookie I/O of any cookie session (read Cookie; on /new append a
// Set-Cookie of our length): cookie-floor ÷ floor is the most any such middleware can reach (the ceiling).
const cookieFloor = { name: "cookie-floor", kind: "cookie-floor", label: "cookie floor: no-op + cookie I/O" };
const oursMemory = { name: "ours-memory", kind: "ours", store: "memory", label: "ours + MemoryStore" };
const oursRedis = { name: "ours-redis", kind: "ours", store: "redis", label: "ours + RedisStore" };
const oursCookie = {
  name: "ours-cookie",
  kind: "ours",
  store: "cookie",
  label: "ours + CookieStore (sealed cookie)",
  requires: "src/stores/cookie.ts",
};
// Experiments: our contender on a patched snapshot of src/ or bench/servers/ (bench/lib/experiments.mjs),
// opt-in with --experiments; "runs" is the server-side contender the patched tree serves.
const asyncRoutes = {
  name: "ours-memory+async",
  kind: "experiment",
  store: "memory",
  label: "ours + MemoryStore, routes as async handlers (before issue 17)",
  runs: "ours-memory",
  patches: ["hono-async-routes"],
  optional: true,
};

/** The Hono session libraries, the same on Node and on Deno. */
const HONO_PEERS = [
  { name: "hono-sessions-memory", kind: "peer", store: "memory", label: "hono-sessions + MemoryStore" },
  { name: "hono-session-memory", kind: "peer", store: "memory", label: "@hono/session + Map storage" },
];
/** The same libraries keeping the whole session in the cookie: the contenders of our CookieStore. */
const HONO_COOKIE_PEERS = [
  {
    name: "hono-sessions-cookie",
    kind: "peer",
    store: "cookie",
    label: "hono-sessions + CookieStore (iron)",
  },
  { name: "hono-session-cookie", kind: "peer", store: "cookie", label: "@hono/session, stateless (JWE)" },
];
const HONO_PEER_TARGETS = [
  { ours: "ours-memory", peer: "hono-sessions-memory", min: 5 },
  { ours: "ours-memory", peer: "hono-session-memory", min: 5 },
  // Issue 16: the sealed cookie at least 3x @hono/session's JWE on read and write.
  { ours: "ours-cookie", peer: "hono-session-cookie", min: 3, scenarios: ["read", "write"] },
  { ours: "ours-cookie", peer: "hono-sessions-cookie", min: 3, scenarios: ["read", "write"] },
];

export const GROUPS = [
  {
    id: "express",
    label: "Express 5 (Node)",
    runtime: "node",
    entry: "bench/servers/express.ts",
    floorTargets: EXPRESS_OAK_FLOOR,
    contenders: [
      none,
      noop,
      { ...oursMemory, requires: "src/adapters/express.ts" },
      { ...oursRedis, requires: "src/adapters/express.ts" },
      {
        name: "express-session-memory",
        kind: "peer",
        store: "memory",
        label: "express-session + MemoryStore",
      },
      {
        name: "express-session-redis",
        kind: "peer",
        store: "redis",
        label: "express-session + connect-redis",
      },
      {
        name: "ours-postgres",
        kind: "ours",
        store: "postgres",
        label: "ours + PostgresStore",
        requires: "src/stores/postgres.ts",
      },
      {
        name: "express-session-postgres",
        kind: "peer",
        store: "postgres",
        label: "express-session + connect-pg-simple",
      },
    ],
    peers: [
      { ours: "ours-memory", peer: "express-session-memory", min: 1.5 },
      { ours: "ours-redis", peer: "express-session-redis", min: 1.5 },
    ],
  },
  {
    id: "hono-node",
    label: "Hono (Node, @hono/node-server)",
    runtime: "node",
    entry: "bench/servers/hono_node.ts",
    floorTargets: FETCH_FLOOR,
    contenders: [
      none,
      noop,
      cookieFloor,
      oursMemory,
      oursRedis,
      ...HONO_PEERS,
      oursCookie,
      ...HONO_COOKIE_PEERS,
      asyncRoutes,
    ],
    peers: HONO_PEER_TARGETS,
  },
  {
    id: "hono-deno",
    label: "Hono (Deno, Deno.serve(app.fetch))",
    runtime: "deno",
    entry: "bench/servers/hono_deno.ts",
    floorTargets: FETCH_FLOOR,
    contenders: [
      none,
      noop,
      cookieFloor,
      oursMemory,
      { ...oursRedis, optional: true },
      ...HONO_PEERS,
      oursCookie,
      ...HONO_COOKIE_PEERS,
      asyncRoutes,
    ],
    peers: HONO_PEER_TARGETS,
  },
  {
    id: "oak",
    label: "Oak 14 (Node)",
    runtime: "node",
    entry: "bench/servers/oak.ts",
    floorTargets: EXPRESS_OAK_FLOOR,
    contenders: [none, noop, oursMemory, { ...oursRedis, optional: true }],
    peers: [],
  },
  {
    id: "deno-serve",
    label: "Deno.serve (fetch adapter)",
    runtime: "deno",
    entry: "bench/servers/deno_serve.ts",
    floorTargets: FETCH_FLOOR,
    contenders: [
      none,
      noop,
      cookieFloor,
      // Issue 17's per-step measure, by name only (--only=deno-serve/steps-token,...): our leaves on top of
      // the cookie floor (bench/servers/deno_serve.ts).
      { name: "steps-token", kind: "steps", optional: true, label: "cookie floor + cookie token" },
      {
        name: "steps-store",
        kind: "steps",
        optional: true,
        label: "cookie floor + token + MemoryStore",
      },
      oursMemory,
      { ...oursRedis, optional: true },
    ],
    peers: [],
  },
];

/** Contenders that keep no session: no session checks (and no pool seeded through them, but for "steps"). */
export const sessionless = (contender) =>
  contender.kind === "none" || contender.kind === "floor" || contender.kind === "cookie-floor" ||
  contender.kind === "steps";

/**
 * Whether the read/write pool is made of cookies the server itself gave: every session contender, and the
 * per-step contenders (they verify real signed cookies, but keep no counter); the others get cookies of the
 * same format.
 */
export const seedsPool = (contender) => !sessionless(contender) || contender.kind === "steps";

/** Suffix of a contender's twin under --baseline: the same server, the baseline revision's src/. */
export const BASE_SUFFIX = "@base";

/**
 * Under --baseline=REV every contender of ours gets a twin: the same bench server and BENCH_CONTENDER,
 * run on a tree whose src/ is REV's (bench/lib/build.mjs). Peers, floors and experiments run once.
 */
export function baselineTwin(contender, baseline) {
  return {
    ...contender,
    name: `${contender.name}${BASE_SUFFIX}`,
    label: `${contender.label} @ base${baseline?.short ? ` ${baseline.short}` : ""}`,
    runs: contender.runs ?? contender.name,
    base: true,
    twinOf: contender.name,
  };
}

export const hasTwin = (contender) => contender.kind === "ours";

/**
 * Selectors: `group` (every default contender of it), `group/contender`, `*\/contender` or a bare
 * contender name (in every group). Optional contenders run only when named explicitly.
 * With `baseline` (a resolved revision), each chosen contender of ours is followed by its twin, unless a
 * skip selector names the twin (`--skip=*\/ours-redis@base`).
 */
export function select(only, skip, experiments = false, baseline = undefined) {
  const matches = (selector, group, contender, explicitOnly) => {
    const [g, c] = selector.includes("/") ? selector.split("/") : [undefined, selector];
    if (g === undefined) {
      if (selector === group.id) return !explicitOnly;
      return c === contender.name;
    }
    return (g === "*" || g === group.id) && (c === "*" ? !explicitOnly : c === contender.name);
  };
  const chosen = [];
  for (const group of GROUPS) {
    for (const contender of group.contenders) {
      const optional = contender.optional && !(experiments && contender.kind === "experiment");
      const wanted = only.length === 0 ? !optional : only.some((s) => matches(s, group, contender, optional));
      const unwanted = skip.some((s) => matches(s, group, contender, false));
      if (!wanted || unwanted) continue;
      chosen.push({ group, contender });
      if (baseline && hasTwin(contender)) {
        const twin = baselineTwin(contender, baseline);
        if (!skip.some((s) => matches(s, group, twin, false))) {
          chosen.push({ group, contender: twin });
        }
      }
    }
  }
  return chosen;
}

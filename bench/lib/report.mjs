// Turns the harness's results into bench/results/<date>.md. Ratios are medians of per-round paired
// ratios: each round measures the contender and its reference minutes apart, so drift on a shared
// machine cancels instead of landing on whichever contender ran during a noisy spell.
import { BASE_SUFFIX, GROUPS, hasTwin, SCENARIOS } from "./contenders.mjs";

const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en") : "–");
const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : "–");

function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median over rounds of ratio(a round, b round), pairing round i with round i. */
function paired(a, b, ratio) {
  if (!a?.rounds?.length || !b?.rounds?.length) return NaN;
  const ratios = [];
  for (const r of a.rounds) {
    const other = b.rounds.find((x) => x.round === r.round);
    if (other) ratios.push(ratio(r, other));
  }
  return median(ratios);
}

/** Throughput ratio a ÷ b. */
export function pairedRatio(a, b) {
  return paired(a, b, (x, y) => (y.rps > 0 ? x.rps / y.rps : NaN));
}

/** Capacity ratio from CPU per request: what a ÷ b would be if both kept one core busy. */
export function pairedCpuRatio(a, b) {
  return paired(a, b, (x, y) => (x.cpuUsPerRequest > 0 ? y.cpuUsPerRequest / x.cpuUsPerRequest : NaN));
}

/** Below this share of a core the server was waiting on the load generator, not working. */
export const SATURATED = 0.85;

/**
 * The ratio a target is judged on: throughput when both servers were saturated, else the CPU-based
 * capacity ratio (a load generator that tops out flatters whichever side it capped).
 */
export function judgedRatio(a, b) {
  const rps = pairedRatio(a, b);
  const cpu = pairedCpuRatio(a, b);
  const saturated = (a?.median?.cpuShare ?? 0) >= SATURATED && (b?.median?.cpuShare ?? 0) >= SATURATED;
  return { rps, cpu, saturated, value: saturated ? rps : cpu };
}

/**
 * Above this spread between a server's rounds (slowest to fastest, on the measure the verdict uses), the
 * host, not the code, moved the result: the same server on the same code costs the same each round. On
 * 2026-11-30, on a quiet host (bench/results/2026-11-30-issue-17-run13.md to run15), the Deno target rows'
 * rounds mostly agreed within 2–8%, and all rows' spreads had a median of 11–12%. On a busier one (run16
 * to run18, another host at 2,096 MHz against 2,596, its Deno floors at 2–3 times the CPU per request) the
 * Deno rows spread by 17–137% and all rows' median was 49–54%: a verdict there says little either way.
 */
export const STEADY_SPREAD = 0.10;

/** How far apart a server's rounds were: fastest ÷ slowest − 1, on req/s or on CPU per request. */
export function roundSpread(s, onRps) {
  const values = (s?.rounds ?? []).map((r) => (onRps ? r.rps : r.cpuUsPerRequest)).filter((v) => v > 0);
  if (values.length < 2) return NaN;
  return Math.max(...values) / Math.min(...values) - 1;
}

/**
 * A comparison's steadiness: the larger round spread of its two servers, on the measure its verdict
 * uses (`judged.saturated`: req/s, else CPU per request), and whether that is within `STEADY_SPREAD`.
 */
export function steadiness(a, b, judged) {
  const spread = Math.max(roundSpread(a, judged.saturated), roundSpread(b, judged.saturated));
  return { spread, steady: Number.isFinite(spread) ? spread <= STEADY_SPREAD : undefined };
}

function spreadCell(r) {
  if (!Number.isFinite(r.spread)) return "";
  return `${(r.spread * 100).toFixed(0)}%${r.steady ? "" : " ⚠"}`;
}

/** A row's ceiling: × against a peer, a plain share against the floor, blank when not measured. */
function ceilingCell(r) {
  if (!Number.isFinite(r.ceiling)) return "";
  return r.kind === "peer" ? `${fmt(r.ceiling)}×` : fmt(r.ceiling);
}

function verdict(value, min) {
  if (!Number.isFinite(value) || min === undefined) return "";
  return value >= min ? "✅" : "❌";
}

function scenarioOf(groupResult, contender, scenario) {
  return groupResult?.contenders?.[contender]?.scenarios?.[scenario];
}

/**
 * The group's contenders in report order, each @base twin (--baseline) right after its original; a twin
 * is described by the contender object the run stored, since GROUPS does not list it.
 */
function contendersOf(group, g) {
  const out = [];
  for (const contender of group.contenders) {
    out.push(contender);
    const twin = g?.contenders?.[`${contender.name}${BASE_SUFFIX}`];
    if (twin?.contender) out.push(twin.contender);
  }
  return out;
}

/** Every target of the issue, evaluated; `null` value when a contender did not run. */
export function evaluateTargets(results) {
  const rows = [];
  for (const group of GROUPS) {
    const g = results.http?.[group.id];
    if (!g) continue;
    for (const scenario of ["read", "write", "new"]) {
      const min = group.floorTargets[scenario];
      const ours = scenarioOf(g, "ours-memory", scenario);
      const floor = scenarioOf(g, "noop", scenario);
      const r = judgedRatio(ours, floor);
      // The most a cookie session could reach on this framework: the cookie floor (sessionless, but reading
      // the Cookie header and sending a Set-Cookie of our length where ours does) ÷ the floor.
      const ceiling =
        judgedRatio(scenarioOf(g, "cookie-floor", scenario), scenarioOf(g, "noop", scenario)).value;
      // What our own work costs once that platform cost is paid: ours ÷ the cookie floor.
      const own =
        judgedRatio(scenarioOf(g, "ours-memory", scenario), scenarioOf(g, "cookie-floor", scenario)).value;
      rows.push({
        group,
        scenario,
        kind: "floor",
        what: "ours (MemoryStore) ÷ no-op floor",
        min,
        ceiling,
        own,
        ...r,
        ...steadiness(ours, floor, r),
      });
    }
    for (const pair of group.peers) {
      for (const scenario of pair.scenarios ?? SCENARIOS) {
        const ours = scenarioOf(g, pair.ours, scenario);
        const peer = scenarioOf(g, pair.peer, scenario);
        const r = judgedRatio(ours, peer);
        rows.push({
          group,
          scenario,
          kind: "peer",
          what: `${pair.ours} ÷ ${pair.peer}`,
          min: pair.min,
          // The most any middleware could reach against this peer: a free one runs at the floor.
          ceiling: judgedRatio(scenarioOf(g, "noop", scenario), peer).value,
          ...r,
          ...steadiness(ours, peer, r),
        });
      }
    }
  }
  return rows;
}

function machineSection(results) {
  const m = results.machine;
  const o = results.options;
  const lines = [
    "## Machine",
    "",
    "| | |",
    "| --- | --- |",
    `| CPU | ${m.cpu} |`,
    `| Cores | ${m.cores} |`,
    `| Memory | ${m.memoryGiB} GiB |`,
    `| Kernel | ${m.kernel} |`,
    `| Node | ${m.node} |`,
    `| Deno | ${m.deno} |`,
    `| Load generator | ${m.wrk} |`,
    `| Redis | ${m.redis} |`,
    ...(m.postgres ? [`| PostgreSQL | ${m.postgres} (the machine's server, not pinned) |`] : []),
    `| Load average (1/5/15 min) at start → end | ${m.loadAverage} → ${m.loadAverageEnd ?? "?"} |`,
    `| Source | commit ${m.commit}; snapshot of src/ taken at start, fingerprint \`${m.source}\`${
      m.sourceAfter
        ? ` (src/ changed during the run, now \`${m.sourceAfter}\`; every runtime ran the snapshot)`
        : ""
    } |`,
    ...(results.baseline
      ? [
        `| Baseline (\`--baseline=${results.baseline.rev}\`) | commit ${results.baseline.short} ` +
        `(${results.baseline.date}), src/ from git, fingerprint \`${results.baseline.fingerprint}\`; ` +
        "its contenders are named `…@base` |",
      ]
      : []),
    `| Packages | ${Object.entries(m.packages).map(([k, v]) => `${k} ${v}`).join(", ")} |`,
    "",
    "## Method",
    "",
    `- Load: \`wrk -t1 -c${o.connections} -d${o.duration}s\` on loopback from a separate process; ` +
    `${o.warmup} s of warm-up per contender and scenario, then ${o.rounds} timed rounds, interleaved ` +
    "(every contender of a framework runs once per round, in rotating order); medians reported. While one " +
    "server takes load, the framework's other servers are paused (SIGSTOP).",
    `- Pinning: ${results.pinning}.`,
    `- read/write requests cycle through ${o.pool} distinct sessions created through each server before timing; ` +
    "baselines receive cookies of the same format.",
    "- CPU/request: server utime+stime from /proc/<pid>/stat over the run ÷ requests. RSS: VmRSS after the last round.",
    "- Ratios: median over rounds of the per-round ratio (contender ÷ reference measured in the same round).",
    `- Elapsed: ${fmt(results.elapsedMinutes, 1)} min.` +
    (o.quick ? " **Quick mode: indicative only.**" : "") +
    (o.partial ? " **Partial run (filtered).**" : ""),
    "",
  ];
  return lines.join("\n");
}

function headlineSection(results) {
  const rows = evaluateTargets(results);
  if (rows.length === 0) return "";
  const lines = [
    "## Headline ratios",
    "",
    "What the README quotes. Floor = the same framework with a no-op middleware; peer = the library users pick",
    "today on that framework, same store kind.",
    "",
    "Two ratios per row: req/s (median of per-round ratios) and CPU capacity (reference CPU/request ÷ ours:",
    "the throughput ratio one fully busy core would give). The verdict uses req/s when both servers kept",
    `their core ≥ ${
      SATURATED * 100
    }% busy, otherwise CPU capacity (marked *), because then the load generator,`,
    "not the server, set the req/s of the faster side.",
    "",
    "Ceiling (peer rows): floor ÷ peer, the most a middleware that cost nothing could reach against that",
    "peer; a target above its ceiling cannot be met by making our code faster. Ceiling (floor rows, where the",
    "framework has a cookie floor): cookie floor ÷ floor, the most any cookie session could reach there: the",
    "cookie floor keeps no session but reads the `Cookie` header and, on `new`, appends a `Set-Cookie` of our",
    "cookie's length as our adapter does. Ours ÷ cookie floor is what our own work (signing, hashing, the",
    "session, the store) leaves of that.",
    "",
    "Rounds spread: how far apart the rounds of the row's two servers were (fastest ÷ slowest − 1, the larger",
    "of the two, on the verdict's measure). The same server on the same code costs the same every round, so a",
    `spread above ${
      STEADY_SPREAD * 100
    }% (⚠) is the host's doing: that row's verdict says little either way; run again.`,
    "",
    "| Framework | Scenario | Comparison | req/s ratio | CPU-capacity ratio | Target | | Ceiling | Ours ÷ cookie floor | Rounds spread |",
    "| --- | --- | --- | ---: | ---: | ---: | :-: | ---: | ---: | ---: |",
  ];
  const show = (r, v) => (r.kind === "floor" ? fmt(v) : Number.isFinite(v) ? `${fmt(v)}×` : "–");
  for (const r of rows) {
    const target = r.kind === "floor" ? `≥ ${fmt(r.min)}` : `≥ ${r.min}×`;
    const star = Number.isFinite(r.value) && !r.saturated ? " *" : "";
    lines.push(
      `| ${r.group.label} | ${r.scenario} | ${r.what} | ${show(r, r.rps)} | ${
        show(r, r.cpu)
      }${star} | ${target} | ${verdict(r.value, r.min)} | ${ceilingCell(r)} | ${
        Number.isFinite(r.own) ? fmt(r.own) : ""
      } | ${spreadCell(r)} |`,
    );
  }
  // Redis-backed: informational ratios, the targets being about round trips (next section).
  const redisRows = [];
  for (const group of GROUPS) {
    const g = results.http?.[group.id];
    if (!g?.contenders?.["ours-redis"]) continue;
    for (const scenario of SCENARIOS) {
      const ours = scenarioOf(g, "ours-redis", scenario);
      const floor = pairedRatio(ours, scenarioOf(g, "noop", scenario));
      const peer = g.contenders["express-session-redis"]
        ? pairedRatio(ours, scenarioOf(g, "express-session-redis", scenario))
        : NaN;
      redisRows.push(
        `| ${group.label} | ${scenario} | ${fmtInt(ours?.median?.rps)} | ${fmt(floor)} | ${
          Number.isFinite(peer) ? `${fmt(peer)}× ${verdict(peer, 1.5)}` : "–"
        } |`,
      );
    }
  }
  if (redisRows.length) {
    lines.push(
      "",
      "Redis-backed (same redis-server; peer = express-session + connect-redis, target ≥ 1.5×):",
      "",
      "| Framework | Scenario | ours + Redis req/s | ÷ floor | ÷ peer |",
      "| --- | --- | ---: | ---: | ---: |",
      ...redisRows,
    );
  }
  // PostgreSQL-backed: informational, no target (issue 14 asks for the comparison, not a ratio).
  const postgresRows = [];
  for (const group of GROUPS) {
    const g = results.http?.[group.id];
    if (!g?.contenders?.["ours-postgres"]) continue;
    for (const scenario of SCENARIOS) {
      const ours = scenarioOf(g, "ours-postgres", scenario);
      const peerScenario = scenarioOf(g, "express-session-postgres", scenario);
      const floor = pairedRatio(ours, scenarioOf(g, "noop", scenario));
      const peer = judgedRatio(ours, peerScenario);
      postgresRows.push(
        `| ${group.label} | ${scenario} | ${fmtInt(ours?.median?.rps)} | ${
          fmtInt(peerScenario?.median?.rps)
        } | ${fmt(floor)} | ${Number.isFinite(peer.rps) ? `${fmt(peer.rps)}×` : "–"} | ${
          Number.isFinite(peer.cpu) ? `${fmt(peer.cpu)}×` : "–"
        } |`,
      );
    }
  }
  if (postgresRows.length) {
    lines.push(
      "",
      "PostgreSQL-backed (same server and database; peer = express-session + connect-pg-simple; no target):",
      "",
      "| Framework | Scenario | ours + PostgreSQL req/s | peer req/s | ours ÷ floor | ours ÷ peer (req/s) | ours ÷ peer (CPU capacity) |",
      "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
      ...postgresRows,
    );
  }
  const missed = rows.filter((r) => Number.isFinite(r.value) && r.value < r.min);
  const absent = rows.filter((r) => !Number.isFinite(r.value));
  lines.push("", "### Targets missed", "");
  if (missed.length === 0) lines.push("None among the targets measured.");
  for (const r of missed) {
    const value = r.kind === "floor" ? fmt(r.value) : `${fmt(r.value)}×`;
    const basis = r.saturated ? "" : " (CPU capacity)";
    const aboveCeiling = Number.isFinite(r.ceiling) && r.ceiling < r.min
      ? `; above this run's ceiling of ${ceilingCell(r)}: the cookie floor itself fell short of it`
      : "";
    const unsteady = r.steady === false ? `; unsteady: rounds ${(r.spread * 100).toFixed(0)}% apart` : "";
    lines.push(
      `- ${r.group.label}, ${r.scenario}: ${r.what} = ${value}${basis} (target ≥ ${r.min}${
        r.kind === "peer" ? "×" : ""
      }${aboveCeiling}${unsteady})`,
    );
  }
  const unsteadyRows = rows.filter((r) => r.steady === false);
  if (unsteadyRows.length) {
    lines.push(
      "",
      `Unsteady (rounds more than ${
        STEADY_SPREAD * 100
      }% apart; these verdicts, met or missed, need another run): ${
        unsteadyRows.map((r) => `${r.group.label} ${r.scenario} ${r.what}`).join("; ")
      }.`,
    );
  }
  if (absent.length) {
    lines.push(
      "",
      `Not measured (contender skipped or filtered out): ${
        [...new Set(absent.map((r) => `${r.group.label} ${r.what}`))].join("; ")
      }.`,
    );
  }
  lines.push("");
  return lines.join("\n");
}

function groupSection(group, g) {
  const lines = [`### ${g.label}`, ""];
  lines.push(
    "| Contender | Scenario | req/s (min–max) | p50 ms | p99 ms | CPU µs/req | server CPU | RSS MB | ÷ floor | ÷ none | errors |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  const contenders = contendersOf(group, g);
  for (const contender of contenders) {
    const c = g.contenders[contender.name];
    if (!c || Object.keys(c.scenarios).length === 0) continue;
    for (const scenario of SCENARIOS) {
      const s = c.scenarios[scenario];
      if (!s?.median) continue;
      const m = s.median;
      const floor = pairedRatio(s, scenarioOf(g, "noop", scenario));
      const none = pairedRatio(s, scenarioOf(g, "none", scenario));
      lines.push(
        `| ${contender.label} | ${scenario} | ${fmtInt(m.rps)} (${fmtInt(m.minRps)}–${fmtInt(m.maxRps)}) | ${
          fmt(m.p50Ms)
        } | ${fmt(m.p99Ms)} | ${fmt(m.cpuUsPerRequest, 1)} | ${pct(m.cpuShare)} | ${fmt(m.rssMB, 0)} | ${
          fmt(floor)
        } | ${fmt(none)} | ${m.errors} |`,
      );
    }
  }
  const notes = [];
  for (const contender of contenders) {
    const c = g.contenders[contender.name];
    if (!c?.check) continue;
    const parts = [...(c.check.problems ?? []).map((p) => `**${p}**`), ...(c.check.notes ?? [])];
    if (c.poolAfterLoad) parts.push(`pool after load: ${c.poolAfterLoad}`);
    if (parts.length) notes.push(`- ${contender.label}: ${parts.join("; ")}`);
  }
  for (const s of g.skipped ?? []) notes.push(`- skipped ${s.name}: ${s.reason}`);
  if (notes.length) lines.push("", "Correctness checks before timing, and notes:", "", ...notes);
  lines.push("");
  return lines.join("\n");
}

function experimentSection(results) {
  const lines = [];
  for (const group of GROUPS) {
    const g = results.http?.[group.id];
    if (!g) continue;
    for (const contender of group.contenders.filter((c) => c.kind === "experiment")) {
      const c = g.contenders[contender.name];
      if (!c) continue;
      for (const scenario of SCENARIOS) {
        const s = c.scenarios?.[scenario];
        if (!s?.median) continue;
        const ours = scenarioOf(g, "ours-memory", scenario);
        const vsOurs = judgedRatio(s, ours);
        const vsFloor = judgedRatio(s, scenarioOf(g, "noop", scenario));
        lines.push(
          `| ${group.label} | ${contender.patches.join(" + ")} | ${scenario} | ${fmtInt(s.median.rps)} | ${
            fmt(s.median.cpuUsPerRequest, 1)
          } (unpatched ${fmt(ours?.median?.cpuUsPerRequest, 1)}) | ${fmt(vsOurs.rps)}× / ${
            fmt(vsOurs.cpu)
          }× | ${fmt(vsFloor.rps)} / ${fmt(vsFloor.cpu)} |`,
        );
      }
    }
  }
  if (lines.length === 0) return "";
  return [
    "## Experiments (patched copies of src/, not the library as shipped)",
    "",
    "bench/lib/experiments.mjs patches a transpiled copy of src/ to measure an optimisation before anyone",
    "writes it. Ratios are req/s / CPU capacity.",
    "",
    "| Framework | Patches | Scenario | req/s | CPU µs/req | ÷ unpatched ours | ÷ floor |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ...lines,
    "",
  ].join("\n");
}

/** The spread of the per-round ratios a ÷ b, so a reader can tell a change from the run's noise. */
function pairedRange(a, b, ratio) {
  const values = [];
  for (const r of a?.rounds ?? []) {
    const other = b?.rounds?.find((x) => x.round === r.round);
    if (other) values.push(ratio(r, other));
  }
  const finite = values.filter(Number.isFinite);
  return finite.length ? [Math.min(...finite), Math.max(...finite)] : [NaN, NaN];
}

function change(ratio) {
  if (!Number.isFinite(ratio)) return "–";
  const percent = (ratio - 1) * 100;
  return `${percent >= 0 ? "+" : "−"}${Math.abs(percent).toFixed(1)}%`;
}

/** --baseline: each contender of ours against its @base twin, both as ratios to the floor of the same rounds. */
function baselineSection(results) {
  const b = results.baseline;
  if (!b || !results.http) return "";
  const rows = [];
  const missing = [];
  for (const group of GROUPS) {
    const g = results.http[group.id];
    if (!g) continue;
    for (const contender of group.contenders.filter(hasTwin)) {
      const twinName = `${contender.name}${BASE_SUFFIX}`;
      const ran = (name) => Object.keys(g.contenders?.[name]?.scenarios ?? {}).length > 0;
      const hasOurs = ran(contender.name);
      const hasTwin = ran(twinName);
      if (!hasOurs && !hasTwin) continue;
      if (hasOurs !== hasTwin) {
        missing.push(`${group.label} ${hasOurs ? twinName : contender.name}`);
        continue;
      }
      for (const scenario of SCENARIOS) {
        const now = scenarioOf(g, contender.name, scenario);
        const base = scenarioOf(g, twinName, scenario);
        if (!now?.median || !base?.median) continue;
        const floor = scenarioOf(g, "noop", scenario);
        const before = judgedRatio(base, floor);
        const after = judgedRatio(now, floor);
        const direct = judgedRatio(now, base);
        const [lo, hi] = direct.saturated
          ? pairedRange(now, base, (x, y) => (y.rps > 0 ? x.rps / y.rps : NaN))
          : pairedRange(
            now,
            base,
            (x, y) => (x.cpuUsPerRequest > 0 ? y.cpuUsPerRequest / x.cpuUsPerRequest : NaN),
          );
        const star = (r) => (Number.isFinite(r.value) && !r.saturated ? " *" : "");
        rows.push(
          `| ${group.label} | ${contender.label} | ${scenario} | ${fmt(before.rps)} → ${fmt(after.rps)} | ${
            fmt(before.cpu)
          } → ${fmt(after.cpu)} | ${fmt(base.median.cpuUsPerRequest, 1)} → ${
            fmt(now.median.cpuUsPerRequest, 1)
          } | ${fmtInt(base.median.rps)} → ${fmtInt(now.median.rps)} | **${change(direct.value)}**${
            star(direct)
          } (${change(lo)} … ${change(hi)}) |`,
        );
      }
    }
  }
  const lines = [
    `## Before → after: ${b.short} → this run's tree (${results.machine?.commit ?? "?"})`,
    "",
    `Before: our contenders on the src/ of commit ${b.short} (${b.date}, "${b.subject}"), as \`…@base\` twins.`,
    "After: the same contenders on this run's snapshot of the working tree. Both ran the same bench server",
    "files, interleaved in the same rounds with the floor, so machine noise hits both alike.",
    "",
    "÷ floor: median of per-round ratios to the no-op floor (req/s, and CPU capacity = floor CPU/request ÷",
    "ours). Change: after ÷ before paired round by round, on req/s when both kept their core ≥ " +
    `${SATURATED * 100}% busy,`,
    "else on CPU capacity (marked *); in brackets the smallest and largest per-round value, a change inside",
    "that spread is noise.",
    "",
  ];
  if (rows.length === 0) {
    lines.push("No contender of ours ran with its @base twin.", "");
  } else {
    lines.push(
      "| Framework | Contender | Scenario | ÷ floor, req/s | ÷ floor, CPU capacity | CPU µs/req | req/s | Change (per-round range) |",
      "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
      ...rows,
      "",
    );
  }
  if (missing.length) {
    lines.push(
      `Without a pair (the other side was skipped; see its framework's notes): ${missing.join("; ")}.`,
      "",
    );
  }
  return lines.join("\n");
}

function redisSection(results) {
  const lines = [];
  for (const group of GROUPS) {
    const g = results.http?.[group.id];
    if (!g) continue;
    for (const contender of contendersOf(group, g)) {
      const c = g.contenders[contender.name];
      if (!c?.redisProbe) continue;
      if (c.redisProbe.error) {
        lines.push(`| ${group.label} | ${contender.label} | probe failed: ${c.redisProbe.error} | | | |`);
        continue;
      }
      const cell = (scenario) => {
        const r = c.redisProbe[scenario];
        if (!r) return "–";
        const list = (o) => Object.entries(o).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") || "none";
        const underLoad = c.scenarios?.[scenario]?.median?.redisPerRequest;
        return `**${fmt(r.total)}** (${list(r.perCommand)}); executed ${fmt(r.executed?.total)}${
          Number.isFinite(underLoad) ? `, under load ${fmt(underLoad)}` : ""
        }`;
      };
      lines.push(
        `| ${group.label} | ${contender.label} | ${cell("bare")} | ${cell("read")} | ${cell("write")} | ${
          cell("new")
        } |`,
      );
    }
  }
  if (lines.length === 0) return "";
  return [
    "## Redis round trips per request",
    "",
    "Round trips, in bold: commands the server's clients sent during 100 sequential requests per scenario,",
    "counted with MONITOR, ÷ 100. Executed: the `INFO commandstats` delta over the same requests, which also",
    "counts the commands a Lua script runs inside Redis (work, not round trips); under load: that delta over",
    "the timed wrk runs ÷ completed requests. Targets: a read-only request = 1 round trip, a write = 1 round",
    "trip for the write itself, an unchanged session = no write.",
    "",
    "| Framework | Contender | bare | read | write | new |",
    "| --- | --- | --- | --- | --- | --- |",
    ...lines,
    "",
  ].join("\n");
}

function postgresSection(results) {
  const lines = [];
  for (const group of GROUPS) {
    const g = results.http?.[group.id];
    if (!g) continue;
    for (const contender of contendersOf(group, g)) {
      const c = g.contenders[contender.name];
      if (!c?.postgresProbe) continue;
      if (c.postgresProbe.error) {
        lines.push(`| ${group.label} | ${contender.label} | probe failed: ${c.postgresProbe.error} | | | |`);
        continue;
      }
      const cell = (scenario) => {
        const r = c.postgresProbe[scenario];
        if (!r) return "–";
        const underLoad = c.scenarios?.[scenario]?.median?.pgPerRequest;
        return `**${fmt(r.total)}**${Number.isFinite(underLoad) ? ` (under load ${fmt(underLoad)})` : ""}`;
      };
      lines.push(
        `| ${group.label} | ${contender.label} | ${cell("bare")} | ${cell("read")} | ${cell("write")} | ${
          cell("new")
        } |`,
      );
    }
  }
  if (lines.length === 0) return "";
  return [
    "## PostgreSQL statements per request",
    "",
    "In bold: statements the server's PostgreSQL client sent during 100 sequential requests per scenario ÷ 100,",
    "counted by the client itself (postgres.js's `debug` hook for ours, a wrapped `pg` `Pool.query` for",
    "connect-pg-simple) and read from the server's `/__pg_statements`; under load: the same count over the timed",
    "wrk runs ÷ completed requests. Every statement is one round trip once its connection has prepared it.",
    "",
    "| Framework | Contender | bare | read | write | new |",
    "| --- | --- | --- | --- | --- | --- |",
    ...lines,
    "",
  ].join("\n");
}

function microSection(results) {
  if (!results.micro?.length) return "";
  const runtimes = results.micro.filter((m) => m.results);
  const names = [];
  for (const m of runtimes) {
    for (const r of m.results) if (!names.some((n) => n.name === r.name)) names.push(r);
  }
  const time = (
    ns,
  ) => (!Number.isFinite(ns) ? "–" : ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
  const lines = [
    "## Micro-benchmarks (mitata)",
    "",
    "Serial latency of one call (avg / p99). Rows starting with `alt:` are not library code: they measure the",
    "replacement an optimisation proposal would make. Web Crypto calls in Node hop to the libuv thread pool,",
    "so their latency is mostly waiting, not CPU: compare with the CPU/request columns above.",
    "",
    `| Group | Case | ${runtimes.map((m) => `${m.runtime} avg | p99`).join(" | ")} |`,
    `| --- | --- | ${runtimes.map(() => "---: | ---:").join(" | ")} |`,
  ];
  for (const n of names) {
    const cells = runtimes.map((m) => {
      const r = m.results.find((x) => x.name === n.name);
      return r ? `${time(r.avgNs)} | ${time(r.p99Ns)}` : "– | –";
    });
    lines.push(`| ${n.group} | ${n.name} | ${cells.join(" | ")} |`);
  }
  for (const m of results.micro.filter((m) => m.error)) lines.push("", `${m.runtime} failed: \`${m.error}\``);
  lines.push("");
  return lines.join("\n");
}

function scaleSection(results) {
  const s = results.scale;
  if (!s) return "";
  if (s.error) return `## Scale\n\nFailed: \`\`\`\n${s.error}\n\`\`\`\n`;
  const m = s.memory;
  const d = m.drain;
  const lines = [
    "## Scale",
    "",
    `### MemoryStore, ${fmtInt(m.sessions)} live sessions (${s.runtime})`,
    "",
    "| Measure | Value |",
    "| --- | ---: |",
    `| Fill rate (store.set create) | ${fmtInt(m.createsPerSecond)} /s |`,
    `| V8 heap per session (id + record; after full GC) | ${fmtInt(m.heapBytesPerSession)} B |`,
    `| RSS per session | ${fmtInt(m.rssBytesPerSession)} B |`,
    `| Heap used at ${fmtInt(m.sessions)} sessions | ${fmtInt(m.heapUsedMB)} MiB |`,
    `| get() at full size | ${fmt(m.getUs)} µs |`,
    `| All expired at once: writes it took to sweep them | ${fmtInt(d.writes)} (${
      fmt(m.sessions / Math.max(1, d.writes), 1)
    } expired sessions removed per write)${
      d.finished ? "" : `, stopped at the time budget, ${fmtInt(d.expiredLeft)} left`
    } |`,
    `| … time for those writes | ${fmt(d.totalMs / 1000, 1)} s |`,
    `| … mean cost per write while sweeping | ${fmt(d.usPerWrite, 1)} µs (fill: ${
      fmt(1e6 / m.createsPerSecond, 1)
    } µs) |`,
    `| … slowest single write; writes over 5 ms | ${fmt(d.slowestMs, 1)} ms; ${d.stallsOver5ms} |`,
    "",
    "Cost per write while draining, per 25,000 writes:",
    "",
    "| Writes so far | Expired left | µs/write |",
    "| ---: | ---: | ---: |",
    ...d.checkpoints.map((c) =>
      `| ${fmtInt(c.writes)} | ${fmtInt(c.remainingExpired)} | ${fmt(c.usPerWrite, 1)} |`
    ),
    "",
  ];
  if (s.sweepModel) {
    const sm = s.sweepModel;
    lines.push(
      `For reference, the same drain on a plain \`Map\` of ${fmtInt(sm.size)} entries swept from its front: ${
        fmt(sm.freshIteratorUsPerWrite, 1)
      } µs/write when each sweep starts a fresh iterator (V8 keeps deleted entries as holes until it rebuilds`,
      `the table, and every new iterator walks them again), ${
        fmt(sm.persistentCursorUsPerWrite, 2)
      } µs/write with one cursor kept across writes.`,
      "",
    );
  }
  if (s.sqlite?.length) {
    lines.push(
      "### SqliteStore, WAL",
      "",
      "| Configuration | synchronous | creates/s | updates/s | reads/s |",
      "| --- | --- | ---: | ---: | ---: |",
      ...s.sqlite.map((c) =>
        `| ${c.label} | ${c.synchronous} | ${fmtInt(c.createsPerSecond)} | ${fmtInt(c.updatesPerSecond)} | ${
          fmtInt(c.readsPerSecond)
        } |`
      ),
      "",
      `Each store call is one transaction; ${
        fmtInt(s.sqlite[0].writes)
      } of each, sequential, one connection.`,
      "",
    );
  }
  return lines.join("\n");
}

function profileSection(results) {
  const p = results.profile;
  if (!p) return "";
  const lines = [
    "## CPU profiles",
    "",
    `\`node --cpu-prof\` on ${p.target}, under the same wrk load; only samples inside the timed load window count.`,
    'Self time: time in the function itself. "Under our code": samples with any src/ frame on the stack.',
    "",
  ];
  for (const [scenario, s] of Object.entries(p.scenarios)) {
    lines.push(`### ${scenario}`, "");
    if (s.error) {
      lines.push(`Failed: ${s.error}`, "");
      continue;
    }
    lines.push(
      `${fmtInt(s.rps)} req/s while profiled; busy ${fmt(s.busyMs / 1000, 2)} s, idle ${
        fmt(s.idleMs / 1000, 2)
      } s; ` +
        `under our code (inclusive): ${pct(s.inclusiveOursShare)}. Profile: \`${s.file}\`.`,
      "",
      "| Where the busy time went | share |",
      "| --- | ---: |",
      ...s.categories.map((c) => `| ${c.name} | ${pct(c.share)} |`),
      "",
      "Top self time in our code:",
      "",
      "| Function | Where | Self | Share of busy |",
      "| --- | --- | ---: | ---: |",
      ...s.topOurs.map((r) =>
        `| \`${r.function}\` | ${r.where} | ${fmt(r.selfMs, 1)} ms | ${pct(r.share)} |`
      ),
      "",
      "Top self time overall:",
      "",
      "| Function | Where | Category | Share of busy |",
      "| --- | --- | --- | ---: |",
      ...s.topAll.slice(0, 12).map((r) =>
        `| \`${r.function}\` | ${r.where || "–"} | ${r.category} | ${pct(r.share)} |`
      ),
      "",
    );
  }
  return lines.join("\n");
}

export function renderReport(results) {
  const parts = [
    `# Session benchmark, ${results.startedAt.slice(0, 10)}`,
    "",
    "Generated by `npm run bench` (bench/run.mjs). Raw numbers: the .json file next to this one.",
    "",
    machineSection(results),
    headlineSection(results),
    baselineSection(results),
  ];
  if (results.http) {
    parts.push("## Results per framework", "");
    for (const group of GROUPS) {
      if (results.http[group.id]) parts.push(groupSection(group, results.http[group.id]));
    }
  }
  parts.push(
    experimentSection(results),
    redisSection(results),
    postgresSection(results),
    profileSection(results),
    microSection(results),
    scaleSection(results),
  );
  return parts.filter((p) => p !== "").join("\n") + "\n";
}

// Issue 17: the core's lifecycle on Deno, before (the src/ of a git revision) and after (the working tree),
// in alternating processes, so both see the same machine: a separate process per side keeps each side's
// optimised code its own (two copies in one process share call sites, which skewed an A/A test by ±10%).
//
//   node bench/deno_core_ab.mjs [--baseline=HEAD] [--scenarios=read,write,new] [--rounds=7] [--requests=300000]
//                               [--runtime=deno|node] [--node=/path/to/node]
//
// --runtime=node runs the same loop under Node (through tsx; the binary running this script, or --node), to
// check that a change made for Deno leaves Node no worse.
//
// Prints per scenario the median ns per request of each side and the median of the per-round ratios
// (after ÷ before) with their range; an A/A run (no change in src/) gives medians within ±2% here.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { flagArgs } from "./lib/args.mjs";
import { requireDeno } from "./lib/deno.mjs";
import { extractRevision, linkLikeRepo, resolveRevision } from "./lib/build.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = flagArgs(process.argv.slice(2));
const revision = resolveRevision(ROOT, args.baseline ?? "HEAD");
const scenarios = (args.scenarios ?? "read,write,new").split(",");
const rounds = Number(args.rounds ?? 7);
const requests = String(args.requests ?? 300_000);
const deno = requireDeno(ROOT);
const runtime = args.runtime ?? "deno";
if (runtime !== "deno" && runtime !== "node") throw new Error("--runtime is deno or node");
const node = args.node ?? process.execPath;

const parent = mkdtempSync(join(tmpdir(), "deno-core-ab-"));
const base = extractRevision(ROOT, revision.hash, parent);
linkLikeRepo(ROOT, base);

function side(tree, scenario) {
  const loop = [join(ROOT, "bench", "deno_core_loop.ts"), join(tree, "src"), scenario, requests];
  const out = runtime === "deno"
    ? spawnSync(deno, ["run", "-A", "--config", join(tree, "deno.json"), ...loop], {
      encoding: "utf8",
      cwd: tree,
    })
    : spawnSync(node, ["--import", "tsx", ...loop], { encoding: "utf8", cwd: tree });
  const value = Number(out.stdout.trim());
  if (out.status !== 0 || !Number.isFinite(value)) throw new Error(`${tree}: ${out.stderr || out.stdout}`);
  return value;
}

const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
console.log(
  `# core lifecycle on ${
    runtime === "deno" ? "Deno" : `Node ${spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim()}`
  }, ${revision.short} (before) → working tree (after); ${rounds} rounds of ${requests} requests`,
);
try {
  for (const scenario of scenarios) {
    const before = [];
    const after = [];
    for (let round = 0; round < rounds; round++) {
      // Alternating which side goes first, so a drift of the machine within a round hits both alike.
      if (round % 2 === 0) {
        before.push(side(base, scenario));
        after.push(side(ROOT, scenario));
      } else {
        after.push(side(ROOT, scenario));
        before.push(side(base, scenario));
      }
    }
    const ratios = before.map((b, i) => after[i] / b).sort((a, b) => a - b);
    console.log(
      `${scenario}: before ${median(before).toFixed(0)} ns, after ${
        median(after).toFixed(0)
      } ns; after ÷ before ` +
        `${median(ratios).toFixed(3)} (per round ${ratios[0].toFixed(2)}…${ratios.at(-1).toFixed(2)})`,
    );
  }
} finally {
  rmSync(parent, { recursive: true, force: true });
}

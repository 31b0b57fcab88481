// The bench report's verdicts (bench/lib/report.mjs): what a row is judged on, and whether its rounds were
// steady enough for the verdict to mean something. The inputs are round numbers as bench/run.mjs saves them.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  evaluateTargets,
  renderReport,
  roundSpread,
  steadiness,
  STEADY_SPREAD,
} from "../bench/lib/report.mjs";

interface Round {
  round: number;
  rps: number;
  cpuUsPerRequest: number;
  cpuShare: number;
}

/** A scenario's saved numbers: one round per req/s given, each server keeping its core `share` busy. */
function scenario(rps: number[], share = 0.99) {
  const rounds: Round[] = rps.map((value, round) => ({
    round,
    rps: value,
    cpuUsPerRequest: (share * 1e6) / value,
    cpuShare: share,
  }));
  const sorted = [...rps].sort((a, b) => a - b);
  return {
    rounds,
    median: {
      rps: sorted[sorted.length >> 1],
      minRps: sorted[0],
      maxRps: sorted[sorted.length - 1],
      cpuUsPerRequest: (share * 1e6) / sorted[sorted.length >> 1],
      cpuShare: share,
      p50Ms: 1,
      p99Ms: 2,
      rssMB: 50,
      errors: 0,
    },
  };
}

/** Results of a `Deno.serve` run: the floor and ours on read, write and new. */
function results(floor: Record<string, number[]>, ours: Record<string, number[]>) {
  const scenarios = (rows: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(rows).map(([name, rps]) => [name, scenario(rps)]));
  return {
    startedAt: "2026-11-30T16:00:00.000Z",
    options: { rounds: 3, duration: 3, warmup: 1, connections: 50, pool: 100, quick: false },
    machine: {
      cpu: "test",
      cores: 2,
      memoryGiB: 1,
      loadAverage: "0 0 0",
      loadAverageEnd: "0 0 0",
      packages: {},
    },
    http: {
      "deno-serve": {
        label: "Deno.serve (fetch adapter)",
        contenders: {
          noop: { scenarios: scenarios(floor) },
          "ours-memory": { scenarios: scenarios(ours) },
        },
      },
    },
  };
}

test("roundSpread: fastest ÷ slowest − 1 of a server's rounds, on req/s or on CPU per request", () => {
  const s = scenario([100, 120, 110]);
  assert.ok(Math.abs(roundSpread(s, true) - 0.2) < 1e-9);
  // CPU per request is the inverse of req/s here (one busy core): the same spread.
  assert.ok(Math.abs(roundSpread(s, false) - 0.2) < 1e-9);
  // One round, or none, has no spread.
  assert.ok(Number.isNaN(roundSpread(scenario([100]), true)));
  assert.ok(Number.isNaN(roundSpread(undefined, true)));
});

test("steadiness: the larger spread of the two servers decides", () => {
  const steady = scenario([100, 104, 102]);
  const busy = scenario([100, 150, 120]);
  const judged = { saturated: true };
  assert.equal(steadiness(steady, steady, judged).steady, true);
  assert.equal(steadiness(steady, busy, judged).steady, false);
  assert.equal(steadiness(busy, steady, judged).steady, false);
  assert.ok(Math.abs(steadiness(steady, busy, judged).spread - 0.5) < 1e-9);
  // Just inside the bound is steady; just past it is not.
  const inside = scenario([100, 100 * (1 + STEADY_SPREAD) - 0.1]);
  const past = scenario([100, 100 * (1 + STEADY_SPREAD) + 0.1]);
  assert.equal(steadiness(inside, steady, judged).steady, true);
  assert.equal(steadiness(past, steady, judged).steady, false);
});

test("a target row met or missed on unsteady rounds is flagged, and listed, in the report", () => {
  const run = results(
    // Read's floor swung 60% between rounds; write's and new's did not.
    { read: [60_000, 96_000, 80_000], write: [70_000, 71_000, 72_000], new: [70_000, 71_000, 72_000] },
    { read: [58_000, 70_000, 75_000], write: [50_000, 51_000, 52_000], new: [30_000, 31_000, 32_000] },
  );
  interface Row {
    kind: string;
    scenario: string;
    value: number;
    steady: boolean | undefined;
  }
  const rows = (evaluateTargets(run) as Row[]).filter((r) => r.kind === "floor");
  const byScenario = Object.fromEntries(rows.map((r) => [r.scenario, r]));
  assert.equal(byScenario.read.steady, false);
  assert.equal(byScenario.write.steady, true);
  assert.equal(byScenario.new.steady, true);
  // The verdict itself is unchanged: read's median paired ratio is 0.94 (met), write's 0.72 (missed).
  assert.ok(byScenario.read.value >= 0.85);
  assert.ok(byScenario.write.value < 0.8);

  const report = renderReport(run);
  const readRow = report.split("\n").find((line: string) =>
    line.startsWith("| Deno.serve (fetch adapter) | read | ours (MemoryStore) ÷ no-op floor |")
  );
  assert.ok(readRow?.endsWith("| 60% ⚠ |"), readRow);
  const writeRow = report.split("\n").find((line: string) =>
    line.startsWith("| Deno.serve (fetch adapter) | write | ours (MemoryStore) ÷ no-op floor |")
  );
  assert.ok(writeRow?.endsWith("| 4% |"), writeRow);
  assert.match(
    report,
    /Unsteady \(rounds more than 10% apart; [^)]*\): Deno\.serve \(fetch adapter\) read ours \(MemoryStore\) ÷ no-op floor\./,
  );
  // A missed target on steady rounds carries no such mark.
  assert.match(
    report,
    /- Deno\.serve \(fetch adapter\), write: ours \(MemoryStore\) ÷ no-op floor = 0\.72 \(target ≥ 0\.8\)\n/,
  );
});

// Time per request of the Cookie header parser for hostile header shapes at the header limits of the
// servers in use: Node's 16 KB, Deno.serve's 64 KB, and 256 KB for servers configured larger.
//   node --import tsx bench/cookie_shapes.ts      (Node)
//   deno run -A bench/cookie_shapes.ts            (Deno)
// Prints one row per shape: microseconds per parse at each size, and the 256 KB / 16 KB ratio (16 for a
// linear parser, 256 for a quadratic one).
import process from "node:process";
import { readCookieValues } from "../src/_cookie.ts";
import { COOKIE_SHAPES } from "../src/testing/_cookie_shapes.ts";

const SIZES = [16 * 1024, 64 * 1024, 256 * 1024];
const runtime = "Deno" in globalThis
  ? `deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno!.version.deno}`
  : `node ${process.version}`;

/** Microseconds per parse: the median of 5 rounds of enough parses to take about 50 ms. */
function time(header: string): number {
  let runs = 1;
  for (;;) {
    const started = performance.now();
    for (let i = 0; i < runs; i++) readCookieValues(header, "sid", 4093);
    const elapsed = performance.now() - started;
    if (elapsed > 50 || runs >= 1 << 20) break;
    runs *= 2;
  }
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    for (let i = 0; i < runs; i++) readCookieValues(header, "sid", 4093);
    rounds.push(((performance.now() - started) * 1000) / runs);
  }
  return rounds.sort((a, b) => a - b)[2];
}

const format = (us: number) => us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us.toFixed(1)} µs`;

console.log(`Cookie header parsing, ${runtime}: time per parse`);
console.log(`| shape | ${SIZES.map((s) => `${s / 1024} KB`).join(" | ")} | 256/16 |`);
console.log(`| --- | ${SIZES.map(() => "---:").join(" | ")} | ---: |`);
for (const shape of COOKIE_SHAPES) {
  const times = SIZES.map((size) => time(shape.build(size)));
  console.log(
    `| ${shape.name} | ${times.map(format).join(" | ")} | ${(times[2] / times[0]).toFixed(0)}× |`,
  );
}

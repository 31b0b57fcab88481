// CookieStore under Bun: Web Crypto only, through the fetch adapter. Runs when a `bun` binary is found
// (the BUN environment variable or PATH; `npm install --no-save @oven/bun-linux-x64` gives one), and is
// reported as skipped otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

function findBun(): string | undefined {
  for (const candidate of [process.env.BUN, "bun"]) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

const bun = findBun();
const script = `
import { session } from ${JSON.stringify(join(root, "src/adapters/fetch.ts"))};
import { CookieStore } from ${JSON.stringify(join(root, "src/stores/cookie.ts"))};
const handler = session({ store: new CookieStore({ keys: ["bun-test-key-0123456789abcdefghijklmnop"] }) })(
  (_request, s) => {
    s.set("visits", (s.get("visits") ?? 0) + 1);
    return new Response(String(s.get("visits")));
  },
);
let cookie = "";
const seen = [];
for (let i = 0; i < 3; i++) {
  const response = await handler(new Request("http://localhost/", { headers: cookie ? { cookie } : {} }));
  const set = response.headers.getSetCookie()[0];
  if (set) cookie = set.split(";")[0];
  seen.push(await response.text());
}
const tampered = await handler(new Request("http://localhost/", { headers: { cookie: cookie.slice(0, -2) + "AA" } }));
seen.push(await tampered.text());
console.log(JSON.stringify({ runtime: Bun.version, seen }));
`;

test("Bun: a CookieStore session counts 1, 2, 3 through the fetch adapter; a tampered cookie starts afresh", {
  skip: bun === undefined ? "no bun binary (set BUN=/path/to/bun to run it)" : false,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), "sessions-bun-"));
  try {
    const file = join(dir, "cookie_store.ts");
    writeFileSync(file, script);
    const output = execFileSync(bun!, ["run", file], { encoding: "utf8" });
    assert.deepEqual(JSON.parse(output.trim().split("\n").at(-1)!).seen, ["1", "2", "3", "1"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

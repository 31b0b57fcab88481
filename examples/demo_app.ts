/**
 * The demo app: a page counter, login and logout (with `regenerate()` and
 * `destroy()`), and a flash message, on Hono with sessions in SQLite.
 * `demo.ts` serves it; `demo_app_test.ts` tests it.
 *
 * @module
 */

import { Hono } from "hono";
import { session } from "../src/adapters/hono_npm.ts";
import type { Session } from "../src/session.ts";
import type { Store } from "../src/store.ts";

/** What the demo keeps in a session. */
export interface DemoData {
  visits: number;
  user: string;
  notice: string;
}

const escape = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

function page(s: Session<DemoData>): string {
  const user = s.get("user");
  const notice = s.get("notice");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sessions demo</title>
<style>body{font:16px system-ui;max-width:36rem;margin:3rem auto}.notice{background:#e6f4ea;padding:.5rem 1rem}</style>
</head><body>
<h1>Sessions demo</h1>
${notice ? `<p class="notice">${escape(notice)}</p>` : ""}
<p id="visits">Visited page ${s.get("visits")} times</p>
${
    user
      ? `<p>Signed in as <b id="user">${escape(user)}</b>.</p>
<form method="post" action="/logout"><button>Log out</button></form>`
      : `<form method="post" action="/login"><label>Name <input name="user" required></label> <button>Log in</button></form>`
  }
</body></html>`;
}

/**
 * Builds the demo app on `store`, signing cookies with `secret`.
 *
 * @example
 * ```ts
 * import { createDemoApp } from "./demo_app.ts";
 * import { MemoryStore } from "../src/stores/memory.ts";
 *
 * const app = createDemoApp(new MemoryStore(), "demo-secret-that-is-at-least-32-bytes");
 * const response = await app.request("/");
 * console.log(response.status); // 200
 * ```
 */
export function createDemoApp(store: Store, secret: string): Hono {
  const app = new Hono();
  app.use(session<DemoData>({ store, secret }));
  app.get("/", (c) => {
    const s = c.get("session") as Session<DemoData>;
    s.set("visits", (s.get("visits") ?? -1) + 1);
    return c.html(page(s));
  });
  app.post("/login", async (c) => {
    const s = c.get("session") as Session<DemoData>;
    const user = String((await c.req.parseBody()).user ?? "").trim().slice(0, 40);
    if (!user) return c.redirect("/", 303);
    // A new id at login: an id planted before login is worth nothing afterwards.
    await s.regenerate();
    s.set("user", user);
    s.flash("notice", `Welcome, ${user}!`);
    return c.redirect("/", 303);
  });
  app.post("/logout", async (c) => {
    const s = c.get("session") as Session<DemoData>;
    await s.destroy();
    s.flash("notice", "You are logged out.");
    return c.redirect("/", 303);
  });
  return app;
}

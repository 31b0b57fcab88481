/**
 * The demo app: one page that shows what the session library does. A visit
 * counter, a panel with what the server knows about this session (its keys,
 * its cookie, a fingerprint of its id), login and logout, and, once logged
 * in, the list of every browser where the user is logged in, each with a
 * button that logs it out. Hono; the store is the caller's (`demo.ts` passes
 * a `SqliteStore`). `demo_app_test.ts` and `demo_browser_node_test.ts` test it.
 *
 * Forms are POSTs with a per-session token in a hidden field (CSRF), each
 * answered with a redirect; every value shown is HTML-escaped.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { session } from "../src/adapters/hono_npm.ts";
import type { Session, UserSessionInfo } from "../src/session.ts";
import type { Store } from "../src/store.ts";

/** What the demo keeps in a session. */
export interface DemoData {
  /** Loads of the page in this session, from 1. */
  visits: number;
  /** The token every form of this session carries (CSRF defence). */
  csrf: string;
  /** A message for the next page (a flash value). */
  notice: string;
}

/** The demo's session settings (the library's defaults, spelled out because the page explains them). */
const IDLE_HOURS = 24;
const ABSOLUTE_DAYS = 7;
/** A user's logins beyond this many end their oldest session. */
export const MAX_SESSIONS_PER_USER = 5;
/** Longest user name the demo accepts. */
export const MAX_NAME_LENGTH = 40;
const COOKIE_NAME = "sid";

/** A small icon, inline so the page makes no request for it (and gets no 404). */
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">` +
  `<circle cx="8" cy="8" r="7" fill="#c8893b"/><circle cx="5.5" cy="6" r="1.2" fill="#5b3a12"/>` +
  `<circle cx="10" cy="9.5" r="1.2" fill="#5b3a12"/><circle cx="6.5" cy="11" r="1" fill="#5b3a12"/></svg>`;
const ICON_HREF = `data:image/svg+xml,${encodeURIComponent(ICON_SVG)}`;

/**
 * The page's Content-Security-Policy: nothing but its own inline style, the
 * inline icon, and forms posted to itself. No script runs on the page at all.
 */
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; " +
  "base-uri 'none'; frame-ancestors 'none'";

const STYLE = `
:root{color-scheme:light dark;--line:#8884;--soft:#8881;--accent:#2f6fde}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:0 auto;padding:1rem;overflow-wrap:anywhere}
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
section{border-top:1px solid var(--line)}
.lead{margin-top:0;opacity:.85}
.notice{background:#2e9e4f22;border-left:4px solid #2e9e4f;padding:.5rem .75rem;margin:1rem 0}
.warning{background:#d9822b22;border-left-color:#d9822b}
code,.mono{font-family:ui-monospace,monospace;font-size:.95em}
ol,ul{padding-left:1.25rem}li{margin:.25rem 0}
form{display:inline}
form.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.5rem 0}
input{font:inherit;padding:.4rem .5rem;min-width:0;flex:1 1 10rem;max-width:20rem}
button{font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid var(--line);background:var(--soft);cursor:pointer}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:.5rem 0}
dt{font-weight:600}dd{margin:0}
@media (max-width:30rem){dl{grid-template-columns:1fr}dd{margin:0 0 .5rem}}
.sessions{list-style:none;padding:0}
.sessions li{border:1px solid var(--line);border-radius:8px;padding:.6rem .75rem;margin:.5rem 0}
.sessions li.current{border-color:var(--accent)}
.badge{background:var(--accent);color:#fff;border-radius:4px;padding:0 .4rem;font-size:.85em;margin-left:.4rem}
.meta{font-size:.9em;opacity:.85;margin:.25rem 0}
.hint{font-size:.9em;opacity:.8}
footer{margin-top:2rem;font-size:.9em;opacity:.8;border-top:1px solid var(--line);padding-top:.5rem}
`;

/** Escapes text for HTML content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

/** "1 visit", "2 visits". */
export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * A short summary of a `User-Agent` header ("Firefox on Linux"), made only
 * of fixed words: nothing of the header itself is repeated.
 */
export function deviceOf(userAgent: string | undefined): string {
  const ua = userAgent ?? "";
  const browser = /Edg(A|iOS)?\//.test(ua)
    ? "Edge"
    : /OPR\//.test(ua)
    ? "Opera"
    : /Firefox\/|FxiOS\//.test(ua)
    ? "Firefox"
    : /HeadlessChrome\//.test(ua)
    ? "Headless Chrome"
    : /Chrome\/|CriOS\//.test(ua)
    ? "Chrome"
    : /Safari\//.test(ua)
    ? "Safari"
    : /^curl\//.test(ua)
    ? "curl"
    : "A browser";
  const os = /iPhone|iPad|iPod/.test(ua)
    ? "iOS"
    : /Android/.test(ua)
    ? "Android"
    : /Windows/.test(ua)
    ? "Windows"
    : /CrOS/.test(ua)
    ? "ChromeOS"
    : /Mac OS X|Macintosh/.test(ua)
    ? "macOS"
    : /Linux/.test(ua)
    ? "Linux"
    : undefined;
  return os === undefined ? browser : `${browser} on ${os}`;
}

/**
 * The first 8 hex digits of the SHA-256 of a session id: enough to see that
 * the id changed, and nothing that leads back to it (the id is a secret).
 */
export async function fingerprint(id: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(id)));
  return Array.from(digest.subarray(0, 4), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A random form token: 18 bytes, base64url. */
function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

/** Compares two strings in time that depends only on their lengths. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** "in 3 h", "5 min ago", "just now". */
function relative(deltaMs: number): string {
  const seconds = Math.round(Math.abs(deltaMs) / 1000);
  if (seconds < 10) return "just now";
  const amount = seconds < 90
    ? `${seconds} s`
    : seconds < 90 * 60
    ? `${Math.round(seconds / 60)} min`
    : seconds < 36 * 3600
    ? `${Math.round(seconds / 3600)} h`
    : plural(Math.round(seconds / 86_400), "day");
  return deltaMs < 0 ? `${amount} ago` : `in ${amount}`;
}

/** A moment as UTC date and time, with how far from now it is. */
function when(ms: number, now: number): string {
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 16).replace("T", " ")} UTC</time> (${relative(ms - now)})`;
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="${ICON_HREF}">
<style>${STYLE}</style>
</head><body>
${body}
<footer>Source: <code>examples/demo_app.ts</code>. Run it with <code>npm run demo</code>; another port:
<code>PORT=8001 npm run demo</code>.</footer>
</body></html>`;
}

/** Everything the home page shows. */
interface View {
  visits: number;
  csrf: string;
  notice: string | undefined;
  /** The browser presented a session cookie that named no live session. */
  ended: boolean;
  fingerprint: string;
  userId: string | undefined;
  keys: string[];
  https: boolean;
  sessions: UserSessionInfo[];
  now: number;
}

function csrfField(token: string): string {
  return `<input type="hidden" name="csrf" value="${escapeHtml(token)}">`;
}

function keyList(view: View): string {
  const shown = (key: string) =>
    key === "visits"
      ? `<code>visits</code> = ${view.visits}`
      : key === "csrf"
      ? `<code>csrf</code> (the form token; its value stays on the server and in this page's forms)`
      : key === "notice"
      ? `<code>notice</code> (a flash message: read once, then gone)`
      : `<code>${escapeHtml(key)}</code>`;
  return view.keys.map(shown).join("<br>");
}

function expiry(view: View): string {
  const rule = `${IDLE_HOURS} h after the last request (the deadline moves at most every ${
    IDLE_HOURS / 2
  } h), and ${ABSOLUTE_DAYS} days after the session began or last logged in, at the latest`;
  const current = view.sessions.find((s) => s.current);
  if (current === undefined) return `${rule}. The cookie's <code>Max-Age</code> ends with the session.`;
  return `${when(current.expiresAt, view.now)}: ${rule}. The cookie's <code>Max-Age</code> ends with it.`;
}

function sessionList(view: View): string {
  const rows = view.sessions.map((s) => {
    const device = typeof s.details?.device === "string" ? s.details.device : "Unknown device";
    return `<li class="${s.current ? "current" : "other"}" data-current="${s.current}">
<b class="device">${escapeHtml(device)}</b>${s.current ? `<span class="badge">this browser</span>` : ""}
<div class="meta">Logged in ${when(s.createdAt, view.now)}<br>Last seen ${
      when(s.lastSeenAt, view.now)
    }<br>Expires ${when(s.expiresAt, view.now)}</div>
<form method="post" action="/revoke">${csrfField(view.csrf)}<input type="hidden" name="handle" value="${
      escapeHtml(s.handle)
    }"><button>${s.current ? "Log out (this browser)" : "Log out"}</button></form>
</li>`;
  });
  const others = view.sessions.filter((s) => !s.current).length;
  return `<section id="your-sessions"><h2>Your sessions</h2>
<p>Every browser where <b>${escapeHtml(view.userId!)}</b> is logged in (${
    plural(view.sessions.length, "session")
  }).</p>
<ul class="sessions">${rows.join("\n")}</ul>
${
    others > 0
      ? `<form method="post" action="/logout-others" class="row">${
        csrfField(view.csrf)
      }<button>Log out everywhere else</button></form>`
      : ""
  }
<p class="hint">"Last seen" is as precise as the library's touch rule allows: the session's deadline moves
only once half its idle timeout (${IDLE_HOURS / 2} h here) has passed, so it can lag by up to
${IDLE_HOURS / 2} h. A user may have at most ${MAX_SESSIONS_PER_USER} sessions here: another login ends the
oldest.</p>
</section>`;
}

function homePage(view: View): string {
  const notices = [
    view.ended
      ? `<p class="notice warning" id="ended">The session your browser had has ended (logged out from another
browser, or expired): this is a new one.</p>`
      : "",
    view.notice ? `<p class="notice" id="notice">${escapeHtml(view.notice)}</p>` : "",
  ].join("");
  const account = view.userId === undefined
    ? `<form method="post" action="/login" class="row">${csrfField(view.csrf)}
<label for="user">Name</label><input id="user" name="user" required maxlength="${MAX_NAME_LENGTH}"
autocomplete="username" placeholder="e.g. ada"><button class="primary">Log in</button></form>
<p class="hint">Any name will do: there are no passwords in this demo.</p>`
    : `<p>Logged in as <b id="user-name">${escapeHtml(view.userId)}</b>.</p>
<form method="post" action="/logout" class="row">${csrfField(view.csrf)}<button>Log out</button></form>`;
  return layout(
    "Sessions demo",
    `<h1>Sessions demo</h1>
<p class="lead">Your browser holds one cookie: a random id, signed by the server. Everything else about your
session is kept on the server, in its store.</p>
${notices}
<section><h2>What to try</h2><ol>
<li>Reload the page: the counter goes up, the fingerprint stays (same session).</li>
<li>Log in with any name: the fingerprint changes (a new session id at login, so an id planted before it is
worthless), the counter carries on.</li>
<li>Open this page in another browser or a private window and log in with the same name: both appear under
"Your sessions".</li>
<li>Log the other browser out from here, then reload it: it is logged out.</li>
<li>Log out: the session is deleted and its cookie cleared, so the counter starts again at 1.</li>
</ol></section>
<section><h2>You</h2>
<p id="visits"><b>${plural(view.visits, "visit")}</b> in this session.</p>
${account}
</section>
${view.userId === undefined ? "" : sessionList(view)}
<section id="session"><h2>This session, as the server sees it</h2><dl>
<dt>Fingerprint</dt><dd><span class="mono" id="fingerprint">${view.fingerprint}</span>
<span class="hint">(first 8 hex digits of the SHA-256 of the session id; the id itself is a secret and is
never shown)</span></dd>
<dt>User</dt><dd>${view.userId === undefined ? "nobody (not logged in)" : escapeHtml(view.userId)}</dd>
<dt>Keys</dt><dd id="keys">${keyList(view)}</dd>
<dt>Cookie</dt><dd id="cookie"><code>${COOKIE_NAME}</code>: <code>HttpOnly</code> (no script can read it),
<code>SameSite=Lax</code> (not sent with another site's forms), <code>Path=/</code>, ${
      view.https
        ? "<code>Secure</code> (sent over https only)"
        : "not <code>Secure</code> (this page came over http; over https it would be)"
    }</dd>
<dt>Expires</dt><dd id="expires">${expiry(view)}</dd>
</dl></section>`,
  );
}

function messagePage(title: string, text: string): string {
  return layout(
    title,
    `<h1>${escapeHtml(title)}</h1>\n<p id="message">${
      escapeHtml(text)
    }</p>\n<p><a href="/">Back to the demo</a></p>`,
  );
}

type DemoSession = Session<DemoData>;

/**
 * The form fields of a POST, or `undefined` when its `csrf` field is not this
 * session's token (a form of a session that has ended, or of another site).
 */
async function checkedForm(c: Context, s: DemoSession): Promise<Record<string, string> | undefined> {
  const body = await c.req.parseBody();
  const token = s.get("csrf");
  if (token === undefined || typeof body.csrf !== "string" || !sameText(body.csrf, token)) return undefined;
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) if (typeof value === "string") fields[name] = value;
  return fields;
}

function refused(c: Context): Response {
  return c.html(
    messagePage(
      "Form refused",
      "Nothing was done: this form belonged to a session that has ended (logged out, here or from another " +
        "browser), or it came from another site.",
    ),
    403,
  );
}

/**
 * Builds the demo app on `store`, signing cookies with `secret`. Logging in
 * needs a store with a per-user index (every server store of this package).
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
  app.use(async (c, next) => {
    await next();
    c.header("content-security-policy", CSP);
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
  });
  // Browsers that ask for /favicon.ico anyway get the icon, without touching the session.
  app.get("/favicon.ico", (c) => c.body(ICON_SVG, 200, { "content-type": "image/svg+xml" }));
  app.use(
    session<DemoData>({
      store,
      secret,
      cookie: { name: COOKIE_NAME },
      idleTimeout: IDLE_HOURS * 3600,
      absoluteTimeout: ABSOLUTE_DAYS * 86_400,
      maxSessionsPerUser: MAX_SESSIONS_PER_USER,
    }),
  );

  app.get("/", async (c) => {
    const s = c.get("session") as DemoSession;
    const visits = (s.get("visits") ?? 0) + 1;
    s.set("visits", visits);
    let csrf = s.get("csrf");
    if (csrf === undefined) s.set("csrf", csrf = newToken());
    const sessions = await s.sessionsOfUser();
    return c.html(homePage({
      visits,
      csrf,
      notice: s.get("notice"),
      // A cookie was presented, yet the session is new: the one it named is gone.
      ended: s.isNew && getCookie(c, COOKIE_NAME) !== undefined,
      fingerprint: await fingerprint(s.id),
      userId: s.userId,
      keys: s.keys(),
      https: new URL(c.req.url).protocol === "https:",
      sessions,
      now: Date.now(),
    }));
  });

  app.post("/login", async (c) => {
    const s = c.get("session") as DemoSession;
    const form = await checkedForm(c, s);
    if (form === undefined) return refused(c);
    const name = (form.user ?? "").trim();
    if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
      s.flash("notice", `A name is 1 to ${MAX_NAME_LENGTH} characters.`);
      return c.redirect("/", 303);
    }
    // A new session id, the data kept, and the session listed under the user.
    await s.logIn(name, { details: { device: deviceOf(c.req.header("user-agent")) } });
    s.set("csrf", newToken());
    s.flash("notice", `Welcome, ${name}! You have a new session id: see the fingerprint below.`);
    return c.redirect("/", 303);
  });

  app.post("/logout", async (c) => {
    const s = c.get("session") as DemoSession;
    if (await checkedForm(c, s) === undefined) return refused(c);
    await s.logOut();
    s.flash(
      "notice",
      "You are logged out: the session was deleted and this is a new one, so the counter starts again.",
    );
    return c.redirect("/", 303);
  });

  app.post("/revoke", async (c) => {
    const s = c.get("session") as DemoSession;
    const form = await checkedForm(c, s);
    if (form === undefined) return refused(c);
    const handle = form.handle ?? "";
    const target = (await s.sessionsOfUser()).find((info) => info.handle === handle);
    const ended = await s.revoke(handle);
    const device = typeof target?.details?.device === "string" ? target.details.device : "that browser";
    s.flash(
      "notice",
      !ended
        ? "That session had already ended."
        : target?.current
        ? "You are logged out (this browser)."
        : `Logged out ${device}: its next request starts a new, logged-out session.`,
    );
    return c.redirect("/", 303);
  });

  app.post("/logout-others", async (c) => {
    const s = c.get("session") as DemoSession;
    if (await checkedForm(c, s) === undefined) return refused(c);
    const ended = await s.logOutEverywhere({ keepCurrent: true });
    s.flash("notice", `Logged out ${plural(ended, "other session")}; this one stays logged in.`);
    return c.redirect("/", 303);
  });

  app.notFound((c) => c.html(messagePage("Not found", "There is no such page in this demo."), 404));
  app.onError((error, c) => {
    const status = (error as { status?: unknown }).status;
    if (status === 409) {
      return c.html(
        messagePage(
          "Session ended meanwhile",
          "This session was logged out (here or from another browser) while this request was running, so " +
            "its changes were not saved.",
        ),
        409,
      );
    }
    if (status === 503) {
      return c.html(
        messagePage("Sessions unavailable", "The session store did not answer. Try again soon."),
        503,
      );
    }
    console.error(error);
    return c.html(messagePage("Something went wrong", "The demo failed; its console says why."), 500);
  });
  return app;
}

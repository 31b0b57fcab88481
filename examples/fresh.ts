// Sessions on Fresh 2 (Deno, `@fresh/core` from JSR): a page counter, login and logout, and a flash message.
//   deno run -A examples/fresh.ts        then open http://localhost:8000 (PORT changes the port)
// Try /, then /login?user=ada (a flash message rides the redirect), then /logout.
//
// In an app of your own, import Fresh as usual and type the app's state:
//   import { App } from "jsr:@fresh/core@^2";
//   const app = new App<SessionState>();
// Here the specifier goes through a variable, so this repository's type check (which runs without network
// access) does not try to download Fresh; `Context` below stands in for Fresh's type.
import { randomBytes } from "node:crypto";
import process from "node:process";
import { session } from "../src/adapters/fresh.ts";
import type { FreshContext, SessionState } from "../src/adapters/fresh.ts";

type Context = FreshContext<SessionState> & { url: URL };

const FRESH = "jsr:@fresh/core@^2";
const { App } = await import(FRESH);

// A random secret per run: restarting logs everyone out. Set SESSION_SECRET to keep sessions valid.
const secret = process.env.SESSION_SECRET ?? randomBytes(32).toString("base64url");

const text = (body: string, status = 200) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
// Redirects with a relative Location, as Fresh's ctx.redirect() makes them.
const redirect = (location: string) => new Response(null, { status: 302, headers: { location } });

const app = new App()
  .use(session({ secret }))
  .get("/", (ctx: Context) => {
    const visits = (ctx.state.session.get("visits") ?? 0) + 1;
    ctx.state.session.set("visits", visits);
    const user = ctx.state.session.get("user");
    const notice = ctx.state.session.get("notice");
    return text(
      `${notice ? `${notice}\n` : ""}${
        user ? `Signed in as ${user}` : "Not signed in"
      }; ${visits} visit(s)\n`,
    );
  })
  .get("/login", async (ctx: Context) => {
    const user = ctx.url.searchParams.get("user");
    if (!user) return text("Usage: /login?user=name\n", 400);
    // A new session id at login, so an id planted before it (session fixation) is worthless.
    await ctx.state.session.regenerate();
    ctx.state.session.set("user", user);
    ctx.state.session.flash("notice", `Welcome, ${user}!`);
    return redirect("/");
  })
  .get("/logout", async (ctx: Context) => {
    await ctx.state.session.destroy();
    return redirect("/");
  });

await app.listen({ port: Number(process.env.PORT ?? 8000) });

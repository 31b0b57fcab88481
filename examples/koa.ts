// Sessions on Koa 3 (Koa 2 works the same): a page counter, login and logout, and a flash message.
//   node --import tsx examples/koa.ts        then open http://localhost:8000 (PORT changes the port)
// Try /, then /login?user=ada (a flash message rides the redirect), then /logout.
import { randomBytes } from "node:crypto";
import process from "node:process";
import Koa from "koa";
import { session } from "../src/adapters/koa.ts";

const app = new Koa();
// A random secret per run: restarting logs everyone out. Set SESSION_SECRET to keep sessions valid.
app.use(session({ secret: process.env.SESSION_SECRET ?? randomBytes(32).toString("base64url") }));

app.use(async (ctx) => {
  switch (ctx.path) {
    case "/": {
      const visits = (ctx.session.get("visits") ?? 0) + 1;
      ctx.session.set("visits", visits);
      const user = ctx.session.get("user");
      const notice = ctx.session.get("notice");
      ctx.body = `${notice ? `${notice}\n` : ""}${
        user ? `Signed in as ${user}` : "Not signed in"
      }; ${visits} visit(s)\n`;
      return;
    }
    case "/login": {
      const user = typeof ctx.query.user === "string" ? ctx.query.user : "";
      if (!user) {
        ctx.status = 400;
        ctx.body = "Usage: /login?user=name\n";
        return;
      }
      // A new session id at login, so an id planted before it (session fixation) is worthless.
      await ctx.session.regenerate();
      ctx.session.set("user", user);
      ctx.session.flash("notice", `Welcome, ${user}!`);
      ctx.redirect("/");
      return;
    }
    case "/logout":
      await ctx.session.destroy();
      ctx.redirect("/");
      return;
  }
});

const port = Number(process.env.PORT ?? 8000);
app.listen(port, () => console.log(`Koa sessions example at http://localhost:${port}`));

// Sessions on Express 5 (Express 4 works the same): a page counter, login and logout, and a flash message.
//   node --import tsx examples/express.ts        then open http://localhost:8000 (PORT changes the port)
// Try /, then /login?user=ada (a flash message rides the redirect), then /logout.
import { randomBytes } from "node:crypto";
import process from "node:process";
import express from "express";
import { session } from "../src/adapters/express.ts";

const app = express();
// A random secret per run: restarting logs everyone out. Set SESSION_SECRET to keep sessions valid.
app.use(session({ secret: process.env.SESSION_SECRET ?? randomBytes(32).toString("base64url") }));

app.get("/", (req, res) => {
  const visits = (req.session.get("visits") ?? 0) + 1;
  req.session.set("visits", visits);
  const user = req.session.get("user");
  const notice = req.session.get("notice");
  res.type("text").send(
    `${notice ? `${notice}\n` : ""}${user ? `Signed in as ${user}` : "Not signed in"}; ${visits} visit(s)\n`,
  );
});

app.get("/login", async (req, res) => {
  const user = typeof req.query.user === "string" ? req.query.user : "";
  if (!user) {
    res.status(400).type("text").send("Usage: /login?user=name\n");
    return;
  }
  // A new session id at login, so an id planted before it (session fixation) is worthless.
  await req.session.regenerate();
  req.session.set("user", user);
  req.session.flash("notice", `Welcome, ${user}!`);
  res.redirect("/");
});

app.get("/logout", async (req, res) => {
  await req.session.destroy();
  res.redirect("/");
});

const port = Number(process.env.PORT ?? 8000);
app.listen(port, () => console.log(`Express sessions example at http://localhost:${port}`));

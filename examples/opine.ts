// Sessions on Opine 2.3.4 (Deno only): a page counter, login and logout, and a flash message.
//   deno run -A examples/opine.ts        then open http://localhost:8000 (PORT changes the port)
// Try /, then /login?user=ada (a flash message rides the redirect), then /logout.
//
// Opine is archived and written for Deno 1: on Deno 2 it listens only when given a hostname
// (`app.listen({ hostname, port })`, as below: `app.listen(port)` passes Deno an empty hostname), and one of
// its deno.land/x dependencies imports JSON with an import assertion (`assert { type: "json" }`) that Deno 2
// refuses to parse; that module has to be vendored and the word changed to `with` (docs/adapters.md).
//
// In an app of your own, import Opine as usual:
//   import { opine } from "https://deno.land/x/opine@2.3.4/mod.ts";
// Here the specifier goes through a variable, so this repository's type check (which runs without network
// access) does not try to download Opine; the small interfaces below stand in for Opine's types.
import { randomBytes } from "node:crypto";
import process from "node:process";
import { OpineSession } from "../src/adapters/opine.ts";
import type { Session } from "../src/adapters/opine.ts";

interface Request {
  session: Session;
  query: Record<string, string | undefined>;
}
interface Response {
  type(type: string): Response;
  setStatus(code: number): Response;
  send(body: string): Promise<void>;
  redirect(url: string): Promise<void>;
}

const OPINE = "https://deno.land/x/opine@2.3.4/mod.ts";
const { opine } = await import(OPINE);

const app = opine();
// A random secret per run: restarting logs everyone out. Set SESSION_SECRET to keep sessions valid.
const secret = process.env.SESSION_SECRET ?? randomBytes(32).toString("base64url");
// The original module's API; `app.use(session({ secret }))` from the same module works as well.
new OpineSession(app, { secret });

app.get("/", (req: Request, res: Response) => {
  const visits = (req.session.get("visits") ?? 0) + 1;
  req.session.set("visits", visits);
  const user = req.session.get("user");
  const notice = req.session.get("notice");
  return res.type("text").send(
    `${notice ? `${notice}\n` : ""}${user ? `Signed in as ${user}` : "Not signed in"}; ${visits} visit(s)\n`,
  );
});

app.get("/login", async (req: Request, res: Response) => {
  const user = req.query.user ?? "";
  if (!user) return res.setStatus(400).type("text").send("Usage: /login?user=name\n");
  // A new session id at login, so an id planted before it (session fixation) is worthless.
  await req.session.regenerate();
  req.session.set("user", user);
  req.session.flash("notice", `Welcome, ${user}!`);
  return res.redirect("/");
});

app.get("/logout", async (req: Request, res: Response) => {
  await req.session.destroy();
  return res.redirect("/");
});

const port = Number(process.env.PORT ?? 8000);
app.listen(
  { hostname: "127.0.0.1", port },
  () => console.log(`Opine sessions example at http://localhost:${port}`),
);

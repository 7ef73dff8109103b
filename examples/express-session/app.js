// An express app whose sessions live in a sessionmesh peer, through the
// peer's Redis front: express-session + connect-redis + node-redis,
// unchanged. Run two of them against two peers of one mesh and a session
// made on one is there on the other.
//
//   REDIS_URL=redis://127.0.0.1:6380 PORT=3000 node app.js
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";

const port = Number(process.env.PORT ?? 3000);
const redisURL = process.env.REDIS_URL ?? "redis://127.0.0.1:6380";
// Every instance of the app must sign cookies with the same secret.
const secret = process.env.SESSION_SECRET ?? "change-me-in-production";

const client = createClient({ url: redisURL });
client.on("error", (err) => console.error("redis:", err.message));
await client.connect();

const app = express();
app.use(
  session({
    store: new RedisStore({ client, prefix: "sess:" }),
    name: "sid",
    secret,
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 30 * 60 * 1000, httpOnly: true, sameSite: "lax" },
  }),
);

// POST /login?user=alice: a new session id (against fixation), then the user.
app.post("/login", (req, res, next) => {
  const user = req.query.user;
  if (!user) {
    res.status(400).json({ error: "user is required" });
    return;
  }
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = user;
    req.session.views = 0;
    req.session.save((err) => (err ? next(err) : res.json({ user, sid: req.sessionID })));
  });
});

// GET /me: who is logged in; counts views (a write on every call).
app.get("/me", (req, res) => {
  if (!req.session.user) {
    res.status(401).json({ error: "not logged in" });
    return;
  }
  req.session.views = (req.session.views ?? 0) + 1;
  res.json({ user: req.session.user, views: req.session.views, sid: req.sessionID });
});

// POST /logout: the session is destroyed (DEL) on every peer.
app.post("/logout", (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie("sid");
    res.json({ ok: true });
  });
});

const server = app.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    client.quit().finally(() => process.exit(0));
  });
}

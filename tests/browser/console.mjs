// The console in a real browser: Debian's Chromium driven by playwright-core
// against a running demo grid. host/tests/binary/console.rs starts the demo and runs
// this with URL, TOKEN (a full operator token), READ_TOKEN (read scope only),
// CANDIDATE (a second grid strategy .wasm) and SHOTS (where screenshots go).
// Every step asserts what a user would see; any failure exits non-zero.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const { URL: base, TOKEN, READ_TOKEN, CANDIDATE, SHOTS } = process.env;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

const step = (what) => console.log(`-- ${what}`);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Europe/Berlin" });
const page = await context.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
// The refusals this test asks for on purpose show as failed loads; anything
// else the console logs as an error is one.
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
});
const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
// The API as the page's own script calls it: with the session cookie only.
const call = (method, path) => page.evaluate(async ([method, path]) => {
  const res = await fetch(path, { method, credentials: "same-origin" });
  return { status: res.status, body: await res.json().catch(() => null) };
}, [method, path]);
const totals = async () => (await call("GET", "/status")).body.totals;
const waitFor = async (what, fn, ms = 60000) => {
  const until = Date.now() + ms;
  for (;;) {
    const got = await fn();
    if (got) return got;
    if (Date.now() > until) throw new Error(`timed out: ${what}`);
    await page.waitForTimeout(250);
  }
};

// Clicks and waits for the request the click makes: the page sends it
// asynchronously, so reading the API right after the click races it (a shadow
// run or an experiment not stored yet answers 404).
const clickAndWait = async (selector, method, path) => {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname === path),
    page.click(selector),
  ]);
  assert.ok(res.ok(), `${method} ${path}: ${res.status()}`);
};

try {
  step("a visitor gets the sign-in form, and a wrong token is refused");
  let res = await page.goto(`${base}/console`);
  assert.equal(res.status(), 200);
  await page.locator("#token").waitFor();
  await shot("sign-in");
  await page.fill("#token", "not-the-token");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.match(await page.locator(".error").innerText(), /missing or wrong/);
  assert.equal((await call("GET", "/strategies")).status, 401);

  step("signing in with the read token: everything shows, nothing to deploy");
  await page.fill("#token", READ_TOKEN);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(new globalThis.URL(page.url()).pathname, "/console");
  assert.ok(!page.url().includes(READ_TOKEN), "the token is never in a URL");
  await page.goto(`${base}/console/strategies`);
  await page.locator("#versions tbody tr").first().waitFor();
  assert.equal(await page.locator("#upload").isVisible(), false, "a read token gets no upload form");
  assert.equal((await call("PUT", "/strategies/grid")).status, 403);
  await page.click("#sign-out");

  step("signing in with the operator token: an HttpOnly, SameSite=Strict session cookie");
  await page.fill("#token", TOKEN);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  const [cookie] = (await context.cookies()).filter((c) => c.name === "powerplug_session");
  assert.ok(cookie, "a session cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.ok(cookie.expires > Date.now() / 1000, "it expires");
  assert.equal(await page.evaluate(() => document.cookie.includes("powerplug_session")), false);

  step("the overview: ticks advance, charts draw, registrations page");
  const firstTick = Number(await page.locator("#ticks tbody tr:first-child td:first-child").innerText());
  assert.ok(firstTick > 0, "a tick is listed");
  await waitFor("a newer tick on the page", async () =>
    Number(await page.locator("#ticks tbody tr:first-child td:first-child").innerText()) > firstTick);
  assert.ok((await page.locator("#energy-chart polyline").count()) === 2, "energy chart has its two lines");
  await page.locator("#registrations tbody tr td:first-child").first().waitFor();
  const consumers = await page.locator("#registrations tbody tr").count();
  assert.ok(consumers >= 2, `consumers listed: ${consumers}`);
  const firstId = await page.locator("#registrations tbody tr:first-child td:first-child").innerText();
  await page.fill("#reg-q", firstId);
  await page.click("#registrations-filter button");
  await waitFor("the search narrows the list", async () =>
    (await page.locator("#registrations tbody tr").count()) === 1);
  await page.fill("#reg-q", "");
  await page.click("#registrations-filter button");
  await shot("overview");
  // Producers: each one's output and payouts, adding up to the grid's totals.
  await page.selectOption("#reg-kind", "producer");
  await waitFor("the producers are listed", async () =>
    (await page.locator("#registrations thead").innerText()).includes("Share of payouts"));
  // Two reads a tick may fall between: until a pair falls within one tick.
  await waitFor("each producer's output and payouts add up to the grid's", async () => {
    const producers = (await call("GET", "/registrations?kind=producer")).body.registrations;
    const grid = await totals();
    return producers.length === 2 && grid["paid-out"] > 0
      && producers.reduce((a, p) => a + p.output_wh, 0) === grid["output-wh"]
      && producers.reduce((a, p) => a + p.paid_out, 0) === grid["paid-out"]
      && producers.every((p) => p.paid_out === p.balance);
  });
  await page.selectOption("#reg-kind", "consumer");

  step("upload a second version through the page; its dry run shows before it goes live");
  const before = await call("GET", "/strategies");
  const basic = before.body.active.grid;
  await page.goto(`${base}/console/strategies`);
  await page.setInputFiles("#upload-file", CANDIDATE);
  await page.fill("#upload-name", "premium-from-console");
  await page.fill("#upload-notes", "7 tokens per kWh");
  await page.click("#upload button[type=submit]");
  await page.locator("#dry-run h3").waitFor();
  assert.match(await page.locator("#dry-run").innerText(), /Dry run of premium-from-console/);
  assert.equal((await call("GET", "/strategies")).body.active.grid, basic, "not live before activation");
  await shot("strategies-dry-run");

  step("activate it: the next ticks bill 7 a kWh instead of 5");
  await page.click("#activate-uploaded");
  await waitFor("the new version is active", async () =>
    (await page.locator("#versions tr.active td:first-child").innerText()).includes("premium-from-console"));
  const candidate = (await call("GET", "/strategies")).body.active.grid;
  assert.notEqual(candidate, basic);
  const at = await totals();
  const after = await waitFor("two more kWh billed", async () => {
    const t = await totals();
    return t["billed-wh"] - at["billed-wh"] >= 2000 ? t : null;
  }, 120000);
  const kwh = (after["billed-wh"] - at["billed-wh"]) / 1000;
  const asked = after.requested - at.requested;
  assert.equal(asked, 7 * kwh, `asked ${asked} for ${kwh} kWh`);
  await page.goto(`${base}/console`);
  await waitFor("the ticks table names the new version", async () =>
    (await page.locator("#ticks tbody tr:first-child td:nth-child(6)").innerText()) === candidate.slice(0, 12));

  step("roll back from the page");
  await page.goto(`${base}/console/strategies`);
  await page.locator("#versions button", { hasText: "Roll back" }).click();
  await waitFor("the first version is active again", async () =>
    (await call("GET", "/strategies")).body.active.grid === basic);
  const history = (await call("GET", "/strategies")).body.history;
  assert.equal(history[history.length - 1].sha256, basic);
  await page.locator("#history tbody tr").first().waitFor();

  step("a shadow run of the candidate: its divergence shows, then it stops");
  await page.selectOption("#shadow-version", candidate);
  await clickAndWait("#shadow-start button[type=submit]", "POST", "/strategies/grid/shadow");
  await waitFor("the candidate asks more on the same ticks", async () => {
    const s = (await call("GET", "/strategies/grid/shadow")).body;
    return s && !s.stopped && s.stats.ticks_diverged > 0 && s.stats.candidate.requested > s.stats.active.requested;
  });
  await waitFor("the page shows it", async () =>
    (await page.locator("#shadow-facts").innerText()).includes("running")
    && Number((await page.locator("#shadow-totals tbody tr:nth-child(2) td:nth-child(3)").innerText()).replace(/\D/g, "")) > 0);
  await shot("strategies");
  await page.click("#shadow-stop");
  await waitFor("stopped", async () => Boolean((await call("GET", "/strategies/grid/shadow")).body.stopped));

  step("an experiment: start it, watch its report, promote the candidate");
  await page.goto(`${base}/console/experiments`);
  await page.locator("#variants tbody tr").nth(1).waitFor();
  await page.fill("#exp-id", "console-ab");
  await page.locator("#variants tbody tr").nth(1).locator("select").selectOption(candidate);
  await clickAndWait("#experiment button[type=submit]", "POST", "/experiments");
  await waitFor("the experiment runs", async () =>
    (await call("GET", "/experiments/console-ab")).body.status.running !== undefined);
  await waitFor("the page shows it running, its report with both cohorts billed", async () =>
    (await page.locator("#experiments tbody").innerText()).includes("running")
    && (await page.locator("#report-table tbody tr").count()) === 2
    && Number((await page.locator("#report-table tbody tr:nth-child(2) td:nth-child(5)").innerText()).replace(/\D/g, "")) > 0);
  assert.equal(await page.locator("#report-body svg.bars").count(), 2, "the report's charts");
  await shot("experiments");
  await page.locator("#experiments button", { hasText: "Promote candidate" }).click();
  await waitFor("promoted", async () =>
    (await call("GET", "/experiments/console-ab")).body.status.promoted !== undefined);
  assert.equal((await call("GET", "/strategies")).body.active.grid, candidate);

  step("admissions");
  await page.goto(`${base}/console/admissions`);
  await page.fill("#admit-id", "newcomer-1");
  await page.click("#admit button[type=submit]");
  await page.locator("#admit-token code").waitFor();
  await waitFor("the grant is listed", async () =>
    (await page.locator("#admissions tbody").innerText()).includes("newcomer-1"));
  await shot("admissions");

  step("sign out: the cookie no longer opens anything");
  await page.click("#sign-out");
  await page.locator("#token").waitFor();
  assert.equal((await call("GET", "/strategies")).status, 401);
  assert.equal((await call("GET", "/status")).body.registrations, undefined, "only the public status");
  assert.equal((await context.cookies()).filter((c) => c.name === "powerplug_session").length, 0);
  assert.deepEqual(errors, [], "no script error on any page");
  console.log("console: every step passed");
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}

// Drives Airlock's web console in Debian's Chromium, step by step with
// e2e/console_test.go: the Go test runs `airlock serve` and the CLI, this
// script is the person at the browser. They talk over stdio: the script
// prints "STEP <name> [arg]" lines and waits for the test's "GO [arg]"
// reply on stdin where the test has something to do first.
//
// Environment: AIRLOCK_URL, ALICE_KEY, BOT_KEY, FAIL_DIR (screenshots on
// failure), DOCS_IMG (if set, one screenshot of each main page goes there).
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const base = process.env.AIRLOCK_URL;
const aliceKey = process.env.ALICE_KEY;
const botKey = process.env.BOT_KEY;
const failDir = process.env.FAIL_DIR || tmpdir();
const docsImg = process.env.DOCS_IMG || "";

const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
async function step(name, arg = "") {
  console.log(`STEP ${name} ${arg}`.trim());
  const { value, done } = await lines.next();
  if (done || !value.startsWith("GO")) throw new Error(`test did not answer ${name}: ${value}`);
  return value.slice(2).trim();
}
function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

const userDataDir = mkdtempSync(join(tmpdir(), "airlock-chromium-"));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1180, height: 640 },
});
ctx.setDefaultTimeout(15000);
const page = ctx.pages()[0] || (await ctx.newPage());
let current = "start";

async function shot(name) {
  if (docsImg) await page.screenshot({ path: join(docsImg, `console-${name}.png`) });
}

async function signIn(key) {
  await page.goto(base + "/console/login");
  await page.fill("#key", key);
  await Promise.all([page.waitForLoadState("load"), page.click("#login button[type=submit]")]);
}

try {
  // 1. Sign in with a key; the queue is empty.
  current = "sign in";
  await signIn(aliceKey);
  check(new URL(page.url()).pathname === "/console/queue", "signed in lands on the queue, got " + page.url());
  check((await page.textContent("#who")).trim() === "alice", "signed in as alice");

  // 2. A request arrives while the page is open: it shows without a reload.
  current = "queue update";
  await page.evaluate(() => { window.__noReload = true; });
  const id = await step("queue-open");
  await page.waitForSelector(`#queue tr[data-id="${id}"]`);
  check(await page.evaluate(() => window.__noReload === true), "the queue updated without a reload");
  const rowText = await page.textContent(`#queue tr[data-id="${id}"]`);
  check(rowText.includes("log-triage-bot") && rowText.includes("billing errors too"), "the row shows who and why: " + rowText);
  await shot("queue");

  // 3. Approve it with a comment.
  current = "approve";
  const row = page.locator(`#queue tr[data-id="${id}"]`);
  await row.locator("form.approve input[name=comment]").fill("ok for the incident");
  await Promise.all([page.waitForURL(`**/console/grants/${id}`), row.locator("form.approve button").click()]);
  check((await page.textContent("#status")).trim() === "active", "active after approval");
  const own = await step("approved", id);

  // 4. The review for today lists it; its grant page; a session transcript.
  current = "review";
  await page.click("nav a[href='/console/review']");
  await page.waitForSelector(`#review tr[data-id="${id}"]`);
  const today = new Date().toISOString().slice(0, 10);
  check((await page.inputValue("#filters input[name=day]")) === today, "the review opens on today");
  await shot("review");

  // 4a. The window instead of the day, as `airlock grants --since 1h`:
  // typing it clears the day; the grant of a moment ago is listed, and
  // the downloads carry the window.
  current = "review since";
  await page.fill("#filters input[name=since]", "1h");
  check((await page.inputValue("#filters input[name=day]")) === "", "typing a window clears the day");
  await Promise.all([page.waitForURL(/since=1h/), page.click("#filters button[type=submit]")]);
  check(!new URL(page.url()).searchParams.get("day"), "no day sent with the window: " + page.url());
  await page.waitForSelector(`#review tr[data-id="${id}"]`);
  check((await page.inputValue("#filters input[name=since]")) === "1h", "the form keeps since");
  check((await page.getAttribute("#csv", "href")).includes("since=1h"), "the CSV download carries the window");
  // A window that ended an hour ago holds nothing of this grant.
  await page.fill("#filters input[name=since]", "3h");
  await page.fill("#filters input[name=until]", "2h");
  await Promise.all([page.waitForURL(/until=2h/), page.click("#filters button[type=submit]")]);
  check((await page.locator(`#review tr[data-id="${id}"]`).count()) === 0, "since 3h until 2h leaves out a grant of a moment ago");
  await page.waitForSelector("#none");

  // 4b. A bad window is refused beside the form, which keeps what was
  // typed, with the field marked; what was typed is shown as text.
  current = "review bad since";
  await page.fill("#filters input[name=until]", "");
  await page.fill("#filters input[name=since]", "yesterday");
  await Promise.all([page.waitForURL(/since=yesterday/), page.click("#filters button[type=submit]")]);
  const why = await page.textContent("#filter-error");
  check(why.includes('since: "yesterday" is not a time') && why.includes("7d"), "the reason names the field and what is taken: " + why);
  check((await page.inputValue("#filters input[name=since]")) === "yesterday", "the form keeps the bad since");
  check((await page.getAttribute("#filters input[name=since]", "aria-invalid")) === "true", "the since field is marked");
  check((await page.locator("#review").count()) === 0 && (await page.locator("#csv").count()) === 0, "no rows or downloads under a refused filter");
  await page.evaluate(() => { window.__xss = false; });
  const evil = '<img src=x onerror="window.__xss=true">';
  await page.fill("#filters input[name=since]", evil);
  await Promise.all([page.waitForURL(/since=/), page.click("#filters button[type=submit]")]);
  // Quoted as the API quotes a value (its own quotes escaped).
  check((await page.textContent("#filter-error")).includes('since: "<img src=x onerror=\\"window.__xss=true\\">"'), "the typed markup is shown as text");
  check((await page.locator("#filter-error img").count()) === 0, "no element made from the input");
  check((await page.inputValue("#filters input[name=since]")) === evil, "the form keeps it as typed");
  check(await page.evaluate(() => window.__xss !== true), "no script ran from the input");
  // A day and a window at once (no script to clear one): refused, saying so.
  await page.goto(base + "/console/review?day=" + today + "&since=7d");
  check((await page.textContent("#filter-error")).includes("use either day or since/until, not both"), "a day and a window at once are refused");
  check((await page.getAttribute("#filters input[name=day]", "aria-invalid")) === "true", "the day field is marked");
  current = "grant";
  await page.goto(base + "/console/review");
  await page.waitForSelector(`#review tr[data-id="${id}"]`);
  await Promise.all([page.waitForURL(`**/console/grants/${id}`), page.click(`#review tr[data-id="${id}"] a[href="/console/grants/${id}"]`)]);
  check((await page.textContent("#approvals")).includes("ok for the incident"), "the approval and its comment");
  await page.waitForSelector("section.session");
  await shot("grant");
  current = "session";
  await Promise.all([page.waitForURL("**/console/sessions/s_*"), page.click("section.session h3 a")]);
  const transcript = await page.textContent("table.transcript");
  check(transcript.includes("DENIED") && transcript.includes("✓"), "the transcript shows allowed and denied calls: " + transcript);
  check(transcript.includes("arn:aws:s3:::logs/app/2026/12/01/api.log"), "the object read");
  await shot("session");

  // The findings page for today opens from the menu (this grant was used
  // from where it was requested: nothing to find).
  current = "findings";
  await Promise.all([page.waitForURL("**/console/findings"), page.click("nav a[href='/console/findings']")]);
  check((await page.inputValue("#filters input[name=day]")) === today, "the findings open on today");
  check((await page.locator(`#findings a[href="/console/grants/${id}"]`).count()) === 0, "no finding for this grant");

  // 5. Revoke it with a reason.
  current = "revoke";
  await page.goto(base + "/console/grants/" + id);
  await page.fill("form.revoke input[name=reason]", "incident over");
  await Promise.all([page.waitForLoadState("load"), page.click("form.revoke button")]);
  check((await page.textContent("#status")).trim() === "revoked", "revoked");
  await step("revoked", id);

  // 5b. The grant's history a page at a time (two log entries a page
  // here), following each page's "next page" link: every page is read
  // and proven alone, and together they hold the whole history in order,
  // from the request to the revocation.
  current = "history pages";
  await page.goto(base + "/console/grants/" + id + "?limit=2");
  const seen = [];
  let pages = 1;
  for (; ; pages++) {
    check(pages <= 50, "the history ends within 50 pages");
    for (const r of await page.locator("#history tbody tr").all()) {
      const cells = await r.locator("td").allTextContents();
      seen.push({ seq: Number(cells[0]), type: cells[2] });
    }
    const next = page.locator("#history-more a.history-next");
    if ((await next.count()) === 0) break;
    const href = await next.getAttribute("href");
    check(/\?after=\d+&limit=2#history-h$/.test(href), "the next page keeps the limit: " + href);
    await Promise.all([page.waitForURL(/after=\d+/), next.click()]);
    check((await page.textContent("#history-after")).includes("starts after log entry #"), "the page says where it starts");
    check((await page.textContent("#status")).trim() === "revoked", "the record is shown on every page");
  }
  check(pages >= 3 && seen.length >= 3, `history rows over ${pages} pages: ` + JSON.stringify(seen));
  check(seen.every((r, i) => i === 0 || r.seq > seen[i - 1].seq), "each entry once, in log order: " + JSON.stringify(seen));
  check(seen[0].type === "grant.requested" && seen.some((r) => r.type === "grant.revoked"), "from the request to the revocation: " + JSON.stringify(seen));
  check(!seen.some((r) => r.type.startsWith("session.")), "no session entries in the history");

  // 6. The audit page: verify now, and the result shows.
  current = "audit";
  await page.click("nav a[href='/console/audit']");
  await Promise.all([page.waitForLoadState("load"), page.click("#verify button")]);
  check((await page.textContent("#verification")).includes("OK"), "verification OK");
  check((await page.textContent("#checkpoint")).includes("airlock/"), "the checkpoint");
  await shot("audit");

  // 7. Nobody approves their own request: the service's refusal is shown.
  current = "self-approval";
  await page.goto(base + "/console/grants/" + own);
  await Promise.all([page.waitForLoadState("load"), page.click("form.approve button")]);
  check((await page.textContent("#error")).includes("nobody may approve their own grant"), "self-approval refused");

  // 8. An agent's key cannot sign in.
  current = "agent sign-in";
  await page.click("form.who button");
  await signIn(botKey);
  check((await page.textContent("#error")).includes("only people sign in"), "agent refused");
  await page.goto(base + "/console/queue");
  check(new URL(page.url()).pathname === "/console/login", "no session for the agent");

  console.log("DONE");
} catch (e) {
  const path = join(failDir, `console-failure-${current.replace(/\W+/g, "-")}.png`);
  await page.screenshot({ path, fullPage: true }).catch(() => {});
  console.log(`FAIL at ${current}: ${e.message}`);
  console.log(`screenshot: ${path}`);
  process.exitCode = 1;
} finally {
  rl.close();
  await ctx.close();
  process.exit();
}

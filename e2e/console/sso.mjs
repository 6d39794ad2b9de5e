// Signs in to Airlock's web console with SSO at a real OpenID provider
// (op.mjs), in Debian's Chromium, for e2e/console_sso_test.go: alice, whom
// Airlock knows by her email, lands on the queue signed in; mallory, whom
// the provider signs in but Airlock does not know, is refused with the
// console's page and gets no session; one who cancels at the provider
// sees its error code, which a link with no sign-in of this browser's
// behind it cannot put on the console's page.
//
// Environment: AIRLOCK_URL, FAIL_DIR (screenshots on failure). Prints
// "DONE" when every check held.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.AIRLOCK_URL;
const failDir = process.env.FAIL_DIR || tmpdir();

const atConsole = (u) => u.startsWith(base + "/console/");

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

// ssoAs starts at the console's sign-in page, signs in at the provider's
// login page as login, consents if asked, and returns once the browser is
// back at the console (the callback's page).
async function ssoAs(login) {
  await page.goto(base + "/console/login");
  await Promise.all([page.waitForURL((u) => !atConsole(u.href)), page.click("#sso")]);
  await page.waitForSelector("input[name=login]");
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any password");
  let back = page.waitForURL((u) => atConsole(u.href), { waitUntil: "load" });
  await page.click("button[type=submit]");
  // The provider may ask for consent once (bounded: a second login page
  // would be a failure).
  for (let i = 0; i < 3 && !atConsole(page.url()); i++) {
    await page.waitForLoadState("load");
    if (atConsole(page.url())) break;
    const consent = page.locator("input[name=prompt][value=consent]");
    if (await consent.count()) {
      await page.click("button[type=submit]");
    } else {
      await page.waitForTimeout(200);
    }
  }
  await back;
  check(new URL(page.url()).pathname === "/console/sso/callback", "back at the console's callback, got " + page.url());
}

try {
  // 1. alice, mapped by her email: signed in, her queue.
  current = "sso alice";
  await ssoAs("alice");
  check((await page.textContent("h1")).trim() === "Signed in", "the signed-in page");
  await Promise.all([page.waitForURL("**/console/queue"), page.click("#continue")]);
  check((await page.textContent("#who")).trim() === "alice", "signed in as alice");
  await page.click("form.who button"); // sign out
  await page.waitForURL("**/console/login");

  // 2. mallory, whom the provider knows and Airlock does not: refused.
  current = "sso mallory";
  await ctx.clearCookies(); // a new browser: the provider must not remember alice
  await ssoAs("mallory");
  const err = (await page.textContent("#error")) || "";
  check(err.includes("mallory@example.com is not a person Airlock knows"), "mallory refused: " + err);
  check((await page.textContent("h1")).includes("403"), "a 403 page");
  await page.goto(base + "/console/queue");
  check(new URL(page.url()).pathname === "/console/login", "no session for mallory, got " + page.url());

  // 3. Cancelling at the provider: back at the console with the
  // provider's error code (the state is this browser's), and no session.
  current = "sso cancelled";
  await ctx.clearCookies();
  await page.goto(base + "/console/login");
  await Promise.all([page.waitForURL((u) => !atConsole(u.href)), page.click("#sso")]);
  await page.waitForSelector("input[name=login]");
  await Promise.all([page.waitForURL((u) => atConsole(u.href), { waitUntil: "load" }), page.click("text=[ Cancel ]")]);
  const cancelled = (await page.textContent("#error")) || "";
  check(cancelled.includes("did not sign you in (access_denied)"), "the provider's error is shown: " + cancelled);

  // 4. A link to the callback with an error of someone else's choosing
  // and no state of this browser's: refused, the text not repeated.
  current = "sso lure";
  await page.goto(base + "/console/sso/callback?state=x&error=" + encodeURIComponent("Your account is locked. Call +1 555 0100"));
  const lure = (await page.textContent("#error")) || "";
  check(lure.includes("did not start in this browser") && !lure.includes("555"), "a lure link refused: " + lure);
  await page.goto(base + "/console/queue");
  check(new URL(page.url()).pathname === "/console/login", "no session after a cancelled sign-in, got " + page.url());

  console.log("DONE");
} catch (e) {
  const path = join(failDir, `console-sso-failure-${current.replace(/\W+/g, "-")}.png`);
  await page.screenshot({ path, fullPage: true }).catch(() => {});
  console.log(`FAIL at ${current}: ${e.message}`);
  console.log(`screenshot: ${path}`);
  process.exitCode = 1;
} finally {
  await ctx.close();
  process.exit();
}

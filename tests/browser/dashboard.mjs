// Drives the /ops dashboard in Debian's headless Chromium, the way an
// operator would: a wrong token is refused, the right one signs in, the
// dead letter is on the page, its Replay button replays it, and the page
// (refreshing itself) shows its job done. tests/dashboard.rs prepares the
// dead letter, runs this, and checks the database afterwards.
//
// Environment: BASE_URL, OPERATOR_TOKEN, SCREENSHOT (a .png path),
// CHROMIUM (default /usr/bin/chromium). Prints one JSON line on success.

import { chromium } from "playwright-core";

const base = process.env.BASE_URL;
const token = process.env.OPERATOR_TOKEN;
const screenshot = process.env.SCREENSHOT;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !token || !screenshot) {
  throw new Error("BASE_URL, OPERATOR_TOKEN and SCREENSHOT must be set");
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.setDefaultTimeout(15_000);

  // Signed out, /ops is the sign-in form; a portal-ish guess is refused.
  await page.goto(`${base}/ops`);
  await page.fill("#token", "ful_not-a-real-token");
  await page.click("button[type=submit]");
  const refused = await page.textContent("[role=alert]");
  check(/not an operator token/.test(refused), `wrong token answer: ${refused}`);

  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("#queues");
  check(!(await page.content()).includes(token), "the token is shown on the page");

  // The dead letter, with its reason, and the mail.send queue counting it.
  const row = page.locator("#open-dead-letters tr[data-dead-letter]").first();
  await row.waitFor();
  const deadLetter = await row.getAttribute("data-dead-letter");
  const reason = await row.locator("td.error").textContent();
  check(/SMTP delivery failed/.test(reason), `dead letter reason: ${reason}`);
  const mailQueueDead = await page
    .locator('#queues tr[data-kind="mail.send"] td')
    .last()
    .textContent();
  check(mailQueueDead.trim() === "1", `mail.send dead letters: ${mailQueueDead}`);

  await row.locator("button", { hasText: "Replay" }).click();
  const notice = await page.locator("#notice").textContent();
  check(/Replayed 1 dead letter/.test(notice), `after replay: ${notice}`);
  check(
    (await page.locator(`#open-dead-letters tr[data-dead-letter="${deadLetter}"]`).count()) === 0,
    "the replayed dead letter is still listed as open",
  );

  // The page refreshes itself; wait for it to show the job done.
  const done = page.locator(`#replayed tr[data-dead-letter="${deadLetter}"][data-job-status="succeeded"]`);
  await done.waitFor({ timeout: 30_000 });
  await page.screenshot({ path: screenshot, fullPage: true });

  // The browser holds a session secret, never the token; signing out ends it.
  const cookies = await page.context().cookies();
  check(
    cookies.length === 1 && !cookies[0].value.includes(token),
    "the cookie carries the operator token",
  );
  await page.click("button:has-text('Sign out')");
  await page.waitForSelector("#token");

  console.log(JSON.stringify({ dead_letter: deadLetter, job_status: "succeeded", screenshot }));
} finally {
  await browser.close();
}

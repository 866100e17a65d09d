// Opens the sign-up link from a registration mail in Debian's headless
// Chromium, fills in the application and applies, as the person who
// registered would.
// tests/dashboard.rs mails the link, runs this, and checks the database.
//
// Environment: LINK (the mailed link, on this test's server), SCREENSHOT
// (a .png path), CHROMIUM (default /usr/bin/chromium). Prints one JSON
// line on success.

import { chromium } from "playwright-core";

const link = process.env.LINK;
const screenshot = process.env.SCREENSHOT;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!link || !screenshot) throw new Error("LINK and SCREENSHOT must be set");

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
  page.setDefaultTimeout(15_000);
  const opened = await page.goto(link);
  if (opened.status() !== 200) throw new Error(`the link answered ${opened.status()}`);
  await page.check("input[name=aws]");
  await page.selectOption("select[name=aws_account]", "transfer");
  await page.selectOption("select[name=aws_plan]", "direct_contract");
  await page.fill("input[name=organisation_name]", "Browser KK");
  await page.fill("input[name=organisation_address]", "1-1 Chiyoda, Tokyo");
  await page.fill("input[name=organisation_phone]", "03-1234-5678");
  await page.fill("input[name=contact_name]", "Hanako Sato");
  await page.fill("input[name=contact_phone]", "090-1234-5678");
  await page.check("input[name=consent_terms]");
  await page.check("input[name=consent_privacy]");
  await page.click("button[type=submit]");
  const heading = await page.textContent("h1");
  if (!/Application received/.test(heading)) throw new Error(`after the button: ${heading}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ heading }));
} finally {
  await browser.close();
}

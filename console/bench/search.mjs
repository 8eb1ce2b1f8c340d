// Console benchmark (run by `cargo bench --bench console`): time from clicking "Search" to the
// first page rendered, in headless Chromium, for each needle in the JSON file given.
// usage: node bench/search.mjs <console url> <needles.json>   → JSON results on stdout
import { chromium } from "playwright-core";
import { readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, needlesPath] = process.argv.slice(2);
const { warmup, measured } = JSON.parse(readFileSync(needlesPath, "utf8"));
// A fresh profile each run (playwright takes it as launchPersistentContext's directory).
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "auditum-bench-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] || (await context.newPage());
await page.goto(`${url}/`);
await page.waitForSelector("[data-testid=filter-tenant]");

const local = (rfc) => rfc.replace(/Z$/, "").slice(0, 19); // the form's datetime-local, UTC
async function search(needle) {
  await page.fill("[data-testid=filter-tenant]", needle.tenant);
  await page.fill("[data-testid=filter-actor]", needle.actor);
  await page.selectOption("#f-preset", "custom");
  await page.fill("[data-testid=filter-since]", local(needle.since));
  await page.fill("[data-testid=filter-until]", local(needle.until));
  // Measured in the page: from the click to the frame after the first page is in the DOM.
  return page.evaluate(() => new Promise((resolve) => {
    const root = document.documentElement;
    const started = performance.now();
    const observer = new MutationObserver(() => {
      const state = root.dataset.search;
      if (state !== "done" && state !== "error") return;
      observer.disconnect();
      requestAnimationFrame(() => resolve({
        ms: performance.now() - started,
        state,
        rows: document.querySelectorAll("[data-testid=result-row]").length,
      }));
    });
    observer.observe(root, { attributes: true, attributeFilter: ["data-search"] });
    document.querySelector("[data-testid=search-submit]").click();
  }));
}

for (const needle of warmup) await search(needle);
const results = [];
for (const needle of measured) results.push({ ...needle, ...(await search(needle)) });
await context.close();
process.stdout.write(JSON.stringify(results));

// browser.js PORT - a real browser: headless Chromium (Debian's chromium,
// or $CHROMIUM) driven by puppeteer-core opens the demo chat
// (conf/www/chat.html, served by [static]) in two pages, each an ordinary
// Socket.IO app on default options with the official client bundle; the
// second page is reopened until its session lives on another worker than
// the first's.  Both start on long-polling (the requests the browser made)
// and upgrade to WebSocket; the first page sends a message
// through its form, and the test reads it from the second page's list (and
// one back).  Exits 77 with a SKIP line when no browser is installed.
"use strict";
const fs = require("fs");
const path = require("path");
const t = require("./lib");

const exe = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => p && fs.existsSync(p));
if (!exe) {
  console.log("SKIP: no chromium (/usr/bin/chromium; apt-get install chromium, or set CHROMIUM)");
  process.exit(77);
}
const puppeteer = require("puppeteer-core");

// A page in a browser context of its own: its own connection pool, as a
// second browser would have (pages of one context share keep-alive
// connections, so their sessions would all open on one worker).
async function open(browser, name) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => t.log(`${name}: page error: ${e.message}`));
  // What the browser itself sent: long-polling requests first, then the upgrade.
  const polls = [];
  page.on("request", (r) => {
    if (/\/socket\.io\/\?.*transport=polling/.test(r.url())) polls.push(r.method());
  });
  await page.goto(`${t.url}/chat.html?room=browsers&name=${name}`, { timeout: 10000 });
  try {
    await page.waitForFunction(() => document.getElementById("status").dataset.state === "joined" &&
      document.getElementById("status").dataset.transport === "websocket", { timeout: 10000 });
  } catch (e) {
    const seen = await page.evaluate(() => [document.getElementById("status").textContent,
      [...document.querySelectorAll("#log li")].map((li) => li.textContent)]);
    throw new Error(`${name}'s page never joined over websocket: status "${seen[0]}", log ${JSON.stringify(seen[1])}`);
  }
  const worker = await page.$eval("#status", (e) => e.dataset.worker);
  t.check(polls.includes("GET") && polls.includes("POST"), `${name}'s page made no long-polling GET and POST: ${polls}`);
  return { page, context, worker };
}

// Types into the form and clicks Send, as a user would (in the front tab:
// a background tab gets no animation frames, and a click waits for one).
async function say(p, text) {
  await p.page.bringToFront();
  await p.page.type("#text", text);
  await p.page.click("#send");
}

async function lines(p) {
  return p.page.$$eval("#log li", (li) => li.map((e) => e.textContent));
}

let browser;
t.run(async () => {
  // The page loads the bundle the npm package ships, byte for byte.
  const served = await t.get("/vendor/socket.io.min.js");
  const shipped = fs.readFileSync(path.join(__dirname, "node_modules/socket.io-client/dist/socket.io.min.js"), "utf8");
  t.check(served.status === 200, `GET /vendor/socket.io.min.js: ${served.status}`);
  t.check(served.body === shipped, "conf/www/vendor/socket.io.min.js is not the one of tests/socketio's socket.io-client "
    + "(copy node_modules/socket.io-client/dist/socket.io.min.js there)");

  browser = await puppeteer.launch({ executablePath: exe, headless: true, timeout: 20000, pipe: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"] });
  t.log(`browser: ${await browser.version()}`);
  const a = await open(browser, "ann");
  let b = await open(browser, "ben");
  for (let i = 0; i < 15 && b.worker === a.worker; i++) {
    await b.context.close();
    b = await open(browser, "ben");
  }
  t.check(b.worker !== a.worker, `every page of ben landed on ann's worker ${a.worker}`);
  t.log(`ann on worker ${a.worker}, ben on worker ${b.worker}`);

  await say(a, "hello from a browser");
  await b.page.waitForFunction(() => [...document.querySelectorAll("#log li")].some((li) =>
    li.textContent === "ann: hello from a browser"), { timeout: 10000 });
  await say(b, "hi ann");
  await a.page.waitForFunction(() => [...document.querySelectorAll("#log li")].some((li) =>
    li.textContent === "ben: hi ann"), { timeout: 10000 });
  const la = await lines(a), lb = await lines(b);
  t.log(`ann's page: ${JSON.stringify(la)}; ben's page: ${JSON.stringify(lb)}`);
  t.check(JSON.stringify(lb) === JSON.stringify(["ann: hello from a browser", "ben: hi ann"]), `ben's page: ${lb}`);
  t.check(JSON.stringify(la) === JSON.stringify(["ann: hello from a browser", "ben: hi ann"]), `ann's page: ${la}`);
  await browser.close();
  t.pass("two Chromium pages chat across workers");
}, 80000);

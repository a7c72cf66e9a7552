// chat-handlers-browser.js PORT - the page of examples/chat
// (conf/www/chat-handlers.html) in headless Chromium (puppeteer-core, as
// browser.js): ann and ben open it in two browser contexts, ben's reopened
// until it sits on another worker than ann's; both take their nick with the
// form, ann types (ben's page says "ann is typing…") and sends (ben's list
// shows the line, ann's own line gets the server's id from the ack), ben
// answers; a third page asking for "ANN" is told "nick taken".  Run by
// tests/integration/test_chat.c; exits 77 with a SKIP line without a browser.
"use strict";
const fs = require("fs");
const t = require("./lib");

const exe = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => p && fs.existsSync(p));
if (!exe) {
  console.log("SKIP: no chromium (/usr/bin/chromium; apt-get install chromium, or set CHROMIUM)");
  process.exit(77);
}
const puppeteer = require("puppeteer-core");

const logOf = (p) => p.page.$$eval("#log li", (li) => li.map((e) => e.textContent));

// A page connected (the "welcome" seen), in a context of its own.
async function open(browser, nick) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => t.log(`${nick}: page error: ${e.message}`));
  await page.goto(`${t.url}/chat-handlers.html?nick=${nick}`, { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("status").dataset.state === "connected", { timeout: 10000 });
  return { page, context, nick, worker: await page.$eval("#status", (e) => e.dataset.worker) };
}

// Clicks Join; waits until joined (or, refused, until the log says why).
async function join(p, expectJoined = true) {
  await p.page.bringToFront();
  await p.page.click("#setnick");
  await p.page.waitForFunction((ok) => ok ? document.getElementById("status").dataset.state === "joined"
    : [...document.querySelectorAll("#log li")].some((li) => li.textContent.startsWith("nickname refused")),
  { timeout: 10000 }, expectJoined);
}

async function waitLine(p, pred, what) {
  try {
    await p.page.waitForFunction(pred, { timeout: 10000 });
  } catch (e) {
    throw new Error(`${p.nick}'s page: ${what}; its log: ${JSON.stringify(await logOf(p))}`);
  }
}

let browser;
t.run(async () => {
  browser = await puppeteer.launch({ executablePath: exe, headless: true, timeout: 20000, pipe: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"] });
  const a = await open(browser, "ann");
  let b = await open(browser, "ben");
  for (let i = 0; i < 15 && b.worker === a.worker; i++) {
    await b.context.close();
    b = await open(browser, "ben");
  }
  t.check(b.worker !== a.worker, `every page of ben landed on ann's worker ${a.worker}`);
  t.log(`ann on worker ${a.worker}, ben on worker ${b.worker}`);
  await join(a);
  await join(b);
  await waitLine(a, () => [...document.querySelectorAll("#log li")].some((li) => li.textContent === "ben joined lobby"),
    "no 'ben joined lobby'");

  await a.page.bringToFront();
  await a.page.type("#text", "hello ben");
  await waitLine(b, () => document.getElementById("typing").textContent === "ann is typing…", "no typing notice");
  await a.page.click("#send");
  await waitLine(b, () => [...document.querySelectorAll("#log li")].some((li) => li.textContent.endsWith("ann: hello ben")
    && li.querySelector("time")), "no 'ann: hello ben' with a time");
  await waitLine(a, () => [...document.querySelectorAll("#log li.me")].some((li) => /^\d+-\d+$/.test(li.title.slice(3))),
    "ann's own line got no id from the ack");
  t.check((await b.page.$eval("#typing", (e) => e.textContent)) === "", "ben's page still says ann is typing");

  await b.page.bringToFront();
  await b.page.type("#text", "hi ann");
  await b.page.click("#send");
  await waitLine(a, () => [...document.querySelectorAll("#log li")].some((li) => li.textContent.endsWith("ben: hi ann")),
    "no 'ben: hi ann'");

  const c = await open(browser, "ANN");
  await join(c, false);
  const lc = await logOf(c);
  t.check(lc.some((l) => l === "nickname refused: nick taken"), `ANN's page: ${JSON.stringify(lc)}`);
  t.log(`ann's page: ${JSON.stringify(await logOf(a))}; ben's page: ${JSON.stringify(await logOf(b))}`);
  await browser.close();
  t.pass("two Chromium pages chat through the handler module across workers; a third is refused the nick");
}, 80000);

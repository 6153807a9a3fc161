// Connecting a person's own account at an OAuth-protected upstream, in Debian's headless Chromium: the
// Connections page's Connect button, the upstream's own sign-in and consent (a second mcp-gateway), the way
// back to the gateway, and Disconnect. Screenshots of each page go next to the main flow's.
//
// Usage: node connect.mjs <gateway URL> <person> <password> <upstream URL> <upstream person> <password> <shots>
import { launchChromium } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const [base, person, password, upstream, upstreamPerson, upstreamPassword, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await launchChromium();
const problems = [];
const page = await (await browser.newContext({ viewport: { width: 1100, height: 800 } })).newPage();
page.on('console', (m) => {
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
let step = 0;
const snapshot = async (name) => {
  step += 1;
  await page.screenshot({ path: `${shots}/connect-${String(step).padStart(2, '0')}-${name}.png`, fullPage: true });
};
const heading = async () => (await page.locator('h1').first().innerText()).trim();
const main = async () => page.locator('main').innerText();

// Sign in at the gateway, on the way to the Connections page.
await page.goto(`${base}/login?return_to=${encodeURIComponent('/connections')}`);
await page.fill('#username', person);
await page.fill('#password', password);
await Promise.all([page.waitForURL(`${base}/connections`), page.click('main button[type=submit]')]);

// The gateway learns of the upstream within its re-read interval.
for (let i = 0; i < 30 && !(await main()).includes('Connect remote'); i += 1) {
  await page.waitForTimeout(500);
  await page.reload();
}
assert.ok((await main()).includes('Your accounts at upstream servers'), await main());
await snapshot('connections-before');

// Connect: the browser goes to the upstream's own sign-in, not ours.
await Promise.all([page.waitForURL((url) => url.href.startsWith(upstream)), page.click('button:has-text("Connect remote")')]);
assert.equal(await heading(page), 'Sign in');
await snapshot('upstream-login');
await page.fill('#username', upstreamPerson);
await page.fill('#password', upstreamPassword);
await Promise.all([page.waitForLoadState('load'), page.click('main button[type=submit]')]);
assert.match(await heading(page), /^Allow mcp-gateway/);
const consent = await main();
assert.ok(consent.includes(new URL(base).host), `the consent names where the browser goes next: ${consent}`);
await snapshot('upstream-consent');

// Allow: back at the gateway, connected.
await Promise.all([
  page.waitForURL(`${base}/connections?done=connected`).catch(async (e) => {
    throw new Error(`${e.message}\nat ${page.url()}: ${await main()}`);
  }),
  page.click('button[value=allow]'),
]);
const connected = await main();
assert.ok(connected.includes('Connected.') && connected.includes('Disconnect'), connected);
await snapshot('connections-connected');

// Disconnect: revoked at the upstream, forgotten here, Connect offered again.
await Promise.all([page.waitForURL(/done=disconnected/), page.click('button:has-text("Disconnect")')]);
const after = await main();
assert.ok(after.includes('Disconnected.') && after.includes('Connect remote'), after);
await snapshot('connections-disconnected');

assert.deepEqual(problems, [], 'no console errors, no CSP violations');
await browser.close();
console.log(`connect flow passed; ${step} pages`);

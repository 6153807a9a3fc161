// A person's whole journey through mcp-gateway's pages in Debian's headless Chromium: sign up, register an
// app, authorize it through login and consent, see the connection, revoke it, and see the token refused.
// Every page is also checked at phone width, and a screenshot of each is saved for a reviewer.
//
// Usage: node flow.mjs <gateway base URL> <admin username> <admin password> <screenshot directory>
import { launchChromium } from './chromium.mjs';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const [base, adminUser, adminPassword, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const b64url = (buf) => buf.toString('base64url');
const verifier = b64url(randomBytes(32));
const challenge = b64url(createHash('sha256').update(verifier).digest());
const state = b64url(randomBytes(12));

// The app's redirect target: a loopback callback, as a native MCP client would run.
const callback = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>Callback</title><h1>Callback received</h1>');
});
await new Promise((resolve) => callback.listen(0, '127.0.0.1', resolve));
const redirectUri = `http://127.0.0.1:${callback.address().port}/callback`;

const browser = await launchChromium();
const problems = [];
let step = 0;

function watch(page) {
  // A page answered with an error status (the error page) is logged as a failed load; judge sub-resources
  // (the stylesheet, icons) by their responses instead.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.request().resourceType() !== 'document' && r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
}

/** Saves a desktop and a phone-width screenshot, and checks the page fits a phone without sideways scrolling. */
async function snapshot(page, name) {
  step += 1;
  const file = `${String(step).padStart(2, '0')}-${name}`;
  await page.screenshot({ path: `${shots}/${file}.png`, fullPage: true });
  const desktop = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: ${overflow}px wider than a phone screen`);
  await page.screenshot({ path: `${shots}/${file}-phone.png`, fullPage: true });
  await page.setViewportSize(desktop);
  const stylesheetApplied = await page.evaluate(() => getComputedStyle(document.querySelector('main')).maxWidth !== 'none');
  assert.ok(stylesheetApplied, `${name}: the stylesheet did not apply (CSP?)`);
}

async function heading(page) {
  return (await page.locator('h1').first().innerText()).trim();
}

const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
const page = await context.newPage();
watch(page);

// 1. Sign up.
await page.goto(`${base}/signup`);
await snapshot(page, 'signup');
const username = `person${Date.now() % 100000}`;
const password = `pw-${b64url(randomBytes(9))}`;
await page.fill('#username', username);
await page.fill('#password', password);
await page.fill('#password_confirm', password);
await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);
assert.match(await page.content(), new RegExp(`Signed in as <strong>${username}</strong>`));
await snapshot(page, 'home');

// 2. Register a confidential app (secret shown once) and a public one for the flow.
await page.click('nav >> text=My apps');
assert.equal(await heading(page), 'My apps');
await snapshot(page, 'apps-empty');
await page.fill('#name', 'Browser Server App');
await page.fill('#redirect_uris', 'https://server.example/callback');
await page.check('input[value=confidential]');
await page.click('form[action$="/apps"] button[type=submit]');
assert.equal(await heading(page), 'App registered');
assert.equal((await page.locator('#client-secret').innerText()).length, 43);
await snapshot(page, 'app-secret');

await page.goto(`${base}/apps`);
await page.fill('#name', 'Browser Test App');
await page.fill('#redirect_uris', redirectUri);
await page.check('input[value=public]');
await page.click('form[action$="/apps"] button[type=submit]');
await page.waitForURL(/\/apps\/[0-9a-f-]{36}$/);
const clientId = (await page.locator('#client-id').innerText()).trim();
await snapshot(page, 'app-detail');
await page.goto(`${base}/apps`);
assert.ok((await page.content()).includes(clientId));
await snapshot(page, 'apps-list');

// 3. Sign out, then run the authorization flow: login page, consent page, back to the app.
await page.click('nav button:has-text("Sign out")');
await page.waitForURL(`${base}/`);
const authorize = new URL(`${base}/oauth/authorize`);
for (const [k, v] of Object.entries({
  response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'mcp:read mcp:write', state,
  code_challenge: challenge, code_challenge_method: 'S256', resource: `${base}/mcp`,
})) authorize.searchParams.set(k, v);
await page.goto(authorize.href);
assert.equal(await heading(page), 'Sign in');
await snapshot(page, 'login');
await page.fill('#username', username);
await page.fill('#password', password);
await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
assert.match(await heading(page), /^Allow Browser Test App to use your account\?$/);
const consentText = await page.locator('main').innerText();
assert.ok(consentText.includes('127.0.0.1') && consentText.includes('unverified'), consentText);
await snapshot(page, 'consent');
await Promise.all([page.waitForURL(/\/callback\?/), page.click('button[value=allow]')]);
const back = new URL(page.url());
assert.equal(back.searchParams.get('state'), state);
assert.equal(back.searchParams.get('iss'), base);
const code = back.searchParams.get('code');
assert.ok(code, 'a code came back');

const tokenResponse = await fetch(`${base}/oauth/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier,
    resource: `${base}/mcp`,
  }),
});
assert.equal(tokenResponse.status, 200);
const tokens = await tokenResponse.json();

async function callMcp(accessToken) {
  const response = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`, 'content-type': 'application/json',
      accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
      protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'browser-test', version: '1' } } }),
  });
  return response.status;
}
assert.equal(await callMcp(tokens.access_token), 200, 'the token works at /mcp');

// 4. The connection is listed with its scopes; revoking it ends the token.
await page.goto(`${base}/connections`);
const connections = await page.locator('main').innerText();
assert.ok(connections.includes('Browser Test App') && connections.includes('mcp:read') && connections.includes('mcp:write'),
  connections);
await snapshot(page, 'connections');
await page.click(`form:has(input[value="${clientId}"]) button:has-text("Revoke")`);
await page.waitForURL(/done=revoked/);
assert.ok((await page.locator('main').innerText()).includes('Access revoked'));
assert.ok(!(await page.content()).includes(clientId));
await snapshot(page, 'connections-revoked');
assert.equal(await callMcp(tokens.access_token), 401, 'the revoked token is refused');
const refreshed = await fetch(`${base}/oauth/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: clientId }),
});
assert.equal(refreshed.status, 400, 'the revoked refresh token is refused');

// 5. An error page, and the admin view for an admin.
await page.goto(`${base}/oauth/authorize?client_id=nobody&response_type=code`);
assert.equal(await heading(page), 'Unknown application');
await snapshot(page, 'error');

const adminContext = await browser.newContext({ viewport: { width: 1100, height: 800 } });
const adminPage = await adminContext.newPage();
watch(adminPage);
await adminPage.goto(`${base}/login`);
await adminPage.fill('#username', adminUser);
await adminPage.fill('#password', adminPassword);
await Promise.all([adminPage.waitForLoadState('load'), adminPage.click('main button[type=submit]')]);
assert.equal(adminPage.url(), `${base}/`, await adminPage.locator('main').innerText());
await adminPage.click('nav >> text=Admin');
const adminText = await adminPage.locator('main').innerText();
assert.ok(adminText.includes('Browser Test App') && adminText.includes(username), adminText);
await snapshot(adminPage, 'admin');
await adminPage.click(`form:has(input[name=username][value="${username}"]) button:has-text("Disable")`);
await adminPage.waitForURL(/done=user/);
await snapshot(adminPage, 'admin-user-disabled');

// The disabled person's session no longer works.
await page.goto(`${base}/apps`);
assert.equal(await heading(page), 'Sign in');

assert.deepEqual(problems, [], 'no console errors, no CSP violations');
await browser.close();
callback.close();
console.log(`browser flow passed; ${step} pages, screenshots in ${shots}`);

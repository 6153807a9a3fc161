// Signing in through a real OpenID Connect provider, in Debian's headless Chromium: "Sign in with corp" on
// the login page, the provider's own sign-in and consent pages (oidc-provider's development pages), the way
// back to the gateway, a new account with the provider's email; then a person with a password links the same
// provider from their home page and unlinks it. Screenshots of each page go next to the main flow's.
//
// Usage: node sign_in.mjs <gateway URL> <provider URL> <person with a password> <password> <shots>
import { launchChromium } from './chromium.mjs';
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const [base, provider, person, password, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await launchChromium();
const problems = [];
let step = 0;

async function newPage() {
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 800 } })).newPage();
  page.on('console', (m) => {
    // Only our pages count: the provider's development pages are not ours to police.
    if (page.url().startsWith(base) && m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return page;
}

const snapshot = async (page, name) => {
  step += 1;
  await page.screenshot({ path: `${shots}/sign-in-${String(step).padStart(2, '0')}-${name}.png`, fullPage: true });
};
const main = async (page) => page.locator('main').innerText();

// At the provider: its sign-in page (any password for a known login), then its consent page.
async function atProvider(page, login) {
  await page.waitForURL((url) => url.href.startsWith(provider));
  await page.locator('input[name=login]').waitFor();
  await snapshot(page, 'provider-login');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
  if (page.url().startsWith(provider)) {
    await snapshot(page, 'provider-consent');
    await Promise.all([page.waitForURL((url) => url.href.startsWith(base)), page.click('button[type=submit]')]);
  }
}

// 1. Someone new signs in through the provider: an account is made for them (their domain is allowed).
const erin = await newPage();
await erin.goto(`${base}/login`);
await snapshot(erin, 'login-page');
const button = erin.locator('a.sign-in-with', { hasText: 'Sign in with corp' });
assert.equal(await button.count(), 1, await main(erin));
await button.click();
await atProvider(erin, 'erin');
await erin.waitForURL(`${base}/`);
const home = await main(erin);
assert.ok(home.includes('Signed in as erin'), home);
assert.ok(home.includes('Ways to sign in') && home.includes('corp (erin@example.com)'), home);
await snapshot(erin, 'home-signed-in-through-corp');

// 2. A person with a password links the provider from their home page, then unlinks it.
const anna = await newPage();
await anna.goto(`${base}/login`);
await anna.fill('#username', person);
await anna.fill('#password', password);
await Promise.all([anna.waitForURL(`${base}/`), anna.click('main button[type=submit]')]);
await snapshot(anna, 'home-before-linking');
await anna.click('button:has-text("Link corp")');
await atProvider(anna, 'anna');
await anna.waitForURL(`${base}/?done=linked`);
const linked = await main(anna);
assert.ok(linked.includes('The provider is linked') && linked.includes('corp (anna@example.com)'), linked);
await snapshot(anna, 'home-linked');
await Promise.all([anna.waitForURL(`${base}/?done=unlinked`), anna.click('button:has-text("Unlink")')]);
const unlinked = await main(anna);
assert.ok(unlinked.includes('The provider is unlinked') && unlinked.includes('Link corp'), unlinked);
await snapshot(anna, 'home-unlinked');

assert.deepEqual(problems, [], 'no console errors, no CSP violations on our pages');
await browser.close();
console.log(`sign-in flow passed; ${step} pages`);

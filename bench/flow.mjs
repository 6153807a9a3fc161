// Scenario (g) of bench/run.sh: complete authorization-code flows per second, each one
// register → authorize → (login) → consent → token, as an MCP client and a person in a browser would.
//
// Usage: node flow.mjs <base URL> <username> <password> <seconds> <concurrency> <full|signed-in>
//   full:       every flow signs in (one argon2id verification per flow)
//   signed-in:  one sign-in per worker up front; flows reuse the session (no argon2 in the loop)
// Prints: RESULT <flows/s> <p50 ms> <p99 ms> <errors> <flows>
import { createHash, randomBytes } from 'node:crypto';

const [base, username, password, seconds, concurrency, mode] = process.argv.slice(2);
const deadline = Date.now() + Number(seconds) * 1000;
const redirectUri = 'http://127.0.0.1:9/callback';
const resource = `${base}/mcp`;

const unescape = (s) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
  .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
  .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

function hiddenInputs(html) {
  const fields = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]] = unescape(m[2]);
  return fields;
}

class Browser {
  constructor() { this.cookies = new Map(); }
  async fetch(path, init = {}) {
    const headers = { ...(init.headers || {}) };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(path.startsWith('http') ? path : base + path, { ...init, headers, redirect: 'manual' });
    for (const raw of response.headers.getSetCookie()) {
      const [pair] = raw.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      if (value === '' || /max-age=0/i.test(raw)) this.cookies.delete(name); else this.cookies.set(name, value);
    }
    return response;
  }
  post(path, form) {
    return this.fetch(path, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }
}

function expect(ok, what) { if (!ok) throw new Error(what); }

async function signIn(browser, loginHtml) {
  const fields = hiddenInputs(loginHtml);
  const response = await browser.post('/login', { ...fields, username, password });
  expect(response.status === 303, `login answered ${response.status}`);
  return response.headers.get('location');
}

async function flow(browser) {
  const registered = await fetch(`${base}/oauth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: `bench ${randomBytes(6).toString('hex')}`, redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'],
    }),
  });
  expect(registered.status === 201, `register answered ${registered.status}`);
  const { client_id: clientId } = await registered.json();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const query = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'mcp:read mcp:write',
    state: 'bench', code_challenge: challenge, code_challenge_method: 'S256', resource,
  });
  let page = await browser.fetch(`/oauth/authorize?${query}`);
  expect(page.status === 200, `authorize answered ${page.status}`);
  let html = await page.text();
  if (html.includes('action="/login"')) {
    const back = await signIn(browser, html);
    page = await browser.fetch(back);
    expect(page.status === 200, `authorize after login answered ${page.status}`);
    html = await page.text();
  }
  expect(html.includes('name="decision"'), 'no consent page');
  const decided = await browser.post('/oauth/authorize', { ...hiddenInputs(html), decision: 'allow' });
  expect(decided.status === 302, `consent answered ${decided.status}`);
  const code = new URL(decided.headers.get('location')).searchParams.get('code');
  const token = await fetch(`${base}/oauth/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier,
      resource,
    }).toString(),
  });
  expect(token.status === 200, `token answered ${token.status}`);
  await token.json();
}

const latencies = [];
let errors = 0;
let firstError = null;

async function worker() {
  let browser = new Browser();
  if (mode === 'signed-in') {
    const login = await browser.fetch('/login');
    await signIn(browser, await login.text());
  }
  while (Date.now() < deadline) {
    if (mode === 'full') browser = new Browser();
    const started = performance.now();
    try {
      await flow(browser);
      latencies.push(performance.now() - started);
    } catch (e) {
      errors += 1;
      firstError ??= e.message;
    }
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] : 0);
if (firstError) console.error(`first error: ${firstError}`);
console.log(`RESULT ${(latencies.length / elapsed).toFixed(1)} ${pct(0.5).toFixed(3)} ${pct(0.99).toFixed(3)} ${errors} ${latencies.length}`);

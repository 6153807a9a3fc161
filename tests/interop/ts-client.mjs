// The official MCP TypeScript SDK client against a running mcp-gateway, the whole way a real client
// goes: 401 → protected resource metadata → authorization server metadata → dynamic registration →
// authorization (the login and consent forms submitted over HTTP, as a browser would) → token →
// tools/call → refresh after a 401 → the rotated refresh token.
//
// usage: node ts-client.mjs <server base URL> <username> <password>
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [base, username, password] = process.argv.slice(2);
const mcpUrl = new URL("/mcp", base);
const REDIRECT = "http://127.0.0.1:8976/callback";

/** An OAuth client provider that keeps everything in memory, like a CLI client would. */
class MemoryProvider {
  saved = {};
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK interop test",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(info) { this.saved.client = info; }
  tokens() { return this.saved.tokens; }
  saveTokens(tokens) { this.saved.tokens = tokens; this.saved.tokenSaves = (this.saved.tokenSaves ?? 0) + 1; }
  redirectToAuthorization(url) { this.saved.authorizationUrl = url; }
  saveCodeVerifier(verifier) { this.saved.verifier = verifier; }
  codeVerifier() { return this.saved.verifier; }
}

/** A tiny cookie-keeping browser that does not follow redirects, so each step can be checked. */
class Browser {
  cookies = new Map();
  async go(url, init = {}) {
    const headers = { ...(init.headers ?? {}), cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ") };
    const response = await fetch(url, { ...init, headers, redirect: "manual" });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const [name, value] = pair.split("=");
      this.cookies.set(name.trim(), value);
    }
    return response;
  }
  async post(url, fields) {
    return this.go(url, { method: "POST", body: new URLSearchParams(fields), headers: { "content-type": "application/x-www-form-urlencoded" } });
  }
}

const unescape = (s) => s.replaceAll("&amp;", "&").replaceAll("&quot;", '"').replaceAll("&#x27;", "'").replaceAll("&#39;", "'").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d))).replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
function hiddenFields(html) {
  const fields = {};
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[name] = unescape(value);
  return fields;
}

/** What a person does in the browser: sign in, read the consent page, press Allow. Returns the code. */
async function authorizeInBrowser(authorizationUrl) {
  const browser = new Browser();
  const loginPage = await browser.go(authorizationUrl);
  assert.equal(loginPage.status, 200, "authorize shows the login page");
  const login = hiddenFields(await loginPage.text());
  const signedIn = await browser.post(new URL("/login", base), { ...login, username, password });
  assert.equal(signedIn.status, 303, "login redirects back to the authorization request");
  const consentPage = await browser.go(new URL(signedIn.headers.get("location"), base));
  const consentHtml = await consentPage.text();
  assert.match(consentHtml, /TypeScript SDK interop test/, "the consent page names the client");
  const decision = await browser.post(new URL("/oauth/authorize", base), { ...hiddenFields(consentHtml), decision: "allow" });
  assert.equal(decision.status, 302, "Allow redirects to the client");
  const back = new URL(decision.headers.get("location"));
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
  assert.equal(back.searchParams.get("iss"), base, "RFC 9207: the response names the issuer");
  return back.searchParams.get("code");
}

async function connected(provider) {
  const client = new Client({ name: "mcp-gateway-interop", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
  return client;
}

const results = [];
async function step(name, body) {
  try {
    await body();
    results.push([name, true]);
    console.log(`ok - ${name}`);
  } catch (error) {
    results.push([name, false]);
    console.log(`not ok - ${name}\n  ${error?.stack ?? error}`);
  }
}

const provider = new MemoryProvider();
let client;

await step("discovery, registration and authorization through the SDK", async () => {
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  const first = new Client({ name: "mcp-gateway-interop", version: "1.0.0" });
  await assert.rejects(first.connect(transport), UnauthorizedError, "the first connect needs authorization");
  assert.ok(provider.saved.client?.client_id, "the SDK registered a client");
  const url = provider.saved.authorizationUrl;
  assert.ok(url, "the SDK built an authorization URL");
  assert.equal(url.searchParams.get("code_challenge_method"), "S256");
  assert.equal(url.searchParams.get("resource"), mcpUrl.href);
  const code = await authorizeInBrowser(url);
  await transport.finishAuth(code);
  assert.ok(provider.saved.tokens?.access_token && provider.saved.tokens?.refresh_token, "tokens were issued");
});

await step("tools/list and tools/call with the access token", async () => {
  client = await connected(provider);
  const { tools } = await client.listTools();
  assert.ok(tools.some((t) => t.name === "notes_create"), "notes_create is listed");
  const created = await client.callTool({ name: "notes_create", arguments: { title: "From TypeScript", body: "hello" } });
  assert.equal(created.isError, false);
  assert.equal(created.structuredContent.title, "From TypeScript");
  const me = await client.callTool({ name: "whoami", arguments: {} });
  assert.equal(me.structuredContent.username, username);
});

await step("an expired access token is refreshed and the refresh token rotates", async () => {
  const before = provider.saved.tokens;
  provider.saved.tokens = { ...before, access_token: "expired-or-revoked" };
  const listed = await client.callTool({ name: "notes_list", arguments: {} });
  assert.equal(listed.structuredContent.notes[0].title, "From TypeScript");
  const after = provider.saved.tokens;
  assert.notEqual(after.access_token, "expired-or-revoked", "a new access token was obtained");
  assert.notEqual(after.refresh_token, before.refresh_token, "the refresh token rotated");
});

await client?.close();
const passed = results.filter(([, ok]) => ok).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length ? 0 : 1);

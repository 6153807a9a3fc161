// A real OpenID Connect provider for the sign-in tests: `oidc-provider` (pinned in package.json) with its
// development sign-in pages, one confidential client, and a `groups` claim. The people it knows, their email
// and their groups are read from a JSON file at every sign-in, so a test can change someone's groups.
//
// Usage: node oidc_provider.mjs <port> <client id> <client secret> <redirect URI> <people.json>
import Provider from 'oidc-provider';
import { readFileSync } from 'node:fs';

const [port, clientId, clientSecret, redirectUri, peopleFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const person = (id) => JSON.parse(readFileSync(peopleFile, 'utf8'))[id];

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  // The claims the scopes ask for go in the ID token itself (the gateway reads nothing else).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['oidc-provider-test-cookie-key'] },
  async findAccount(ctx, id) {
    const known = person(id);
    if (!known) return undefined;
    return {
      accountId: id,
      async claims() {
        const now = person(id) || known;
        return {
          sub: id,
          email: now.email,
          email_verified: now.email_verified ?? true,
          preferred_username: id,
          name: id,
          groups: now.groups ?? [],
        };
      },
    };
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));

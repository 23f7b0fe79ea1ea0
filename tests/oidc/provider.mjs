// Test-only OIDC provider for Shiftkey's end-to-end tests. Never run it
// anywhere but loopback: it signs whatever /__test/mint is asked to sign.
//
// Usage: node provider.mjs [PORT] [--ignore-stdin]
//   PORT 0 (the default) lets the kernel pick a free port.
//   Prints one JSON line on stdout when ready:
//     {"issuer":"http://localhost:PORT","port":PORT,"kids":[...]}
//   Exits on SIGTERM/SIGINT or when stdin closes (so a test runner that dies
//   does not leak it); --ignore-stdin keeps it up with stdin at /dev/null.
//
// See README.md for the endpoints.
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const HOST = '127.0.0.1';
const TEST_PREFIX = '/__test/';
const MAX_BODY = 64 * 1024;

const args = process.argv.slice(2);
const ignoreStdin = args.includes('--ignore-stdin');
const portArg = args.find((a) => !a.startsWith('--')) ?? '0';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535 || String(port) !== portArg) {
  console.error(`provider.mjs: bad port ${JSON.stringify(portArg)}; give a number 0-65535`);
  process.exit(2);
}

// The provider's published keys: an RS256 key and an ES256 key. Tokens from
// the code flow are signed with them in turn (the library's round robin),
// so a verifier must really look keys up by kid.
const issuer = new OAuth2Issuer();
const service = new OAuth2Service(issuer);
await issuer.keys.generate('RS256', { kid: 'rs256-1' });
await issuer.keys.generate('ES256', { kid: 'es256-1' });

// A key that signs but is never published in /jwks: tokens that look real
// but whose kid no JWKS knows. Generated on first use: RSA key generation
// is most of the start-up time, and most tests never ask for it.
let unpublishedSigner;
function unpublished() {
  unpublishedSigner ??= (async () => {
    const signer = new OAuth2Issuer();
    await signer.keys.generate('RS256', { kid: 'unpublished-1' });
    return signer;
  })();
  return unpublishedSigner;
}

// Who logs in at /authorize when the request does not say (login_hint).
let defaultLogin = {
  sub: 'alice',
  email: 'alice@example.com',
  email_verified: true,
  groups: ['oncall'],
};
// Kids withdrawn from /jwks by DELETE /__test/keys/KID. The keys still
// sign (mint with {"kid": KID}), as a stolen key would.
const withdrawnKids = new Set();
// code -> { identity, clientId, redirectUri, scopes } for codes not yet redeemed.
const pendingCodes = new Map();
// Confidential clients (POST /__test/clients): client_id -> secret. The
// token endpoint refuses their codes without that secret.
const confidentialClients = new Map();
// What discovery lists; `groups` is released only under the scope of that
// name, as at many real providers.
const SCOPES_SUPPORTED = ['openid', 'email', 'profile', 'groups'];
const stats = { jwks_requests: 0, token_requests: 0, authorize_requests: 0 };

function identityFromQuery(query) {
  const identity = { ...defaultLogin };
  if (typeof query.login_hint === 'string' && query.login_hint !== '') {
    identity.email = query.login_hint;
    identity.sub = query.login_hint;
  }
  if (typeof query.groups === 'string') {
    identity.groups = query.groups === '' ? [] : query.groups.split(',');
  }
  return identity;
}

service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  if (code === null) return;
  pendingCodes.set(code, {
    identity: identityFromQuery(req.query),
    clientId: req.query.client_id,
    redirectUri: req.query.redirect_uri,
    scopes: typeof req.query.scope === 'string' ? req.query.scope.split(' ') : [],
  });
});

// Both the access token and the ID token of an authorization_code grant
// carry the logged-in identity.
service.on('beforeTokenSigning', (token, req) => {
  if (req.body?.grant_type !== 'authorization_code') return;
  const pending = pendingCodes.get(req.body.code);
  if (pending === undefined) return;
  const { sub, ...claims } = pending.identity;
  if (!pending.scopes.includes('groups')) delete claims.groups;
  // email_verified is true unless the default login says otherwise; a
  // null claim is left out.
  Object.assign(token.payload, { email_verified: true }, claims, { sub });
  for (const [name, value] of Object.entries(token.payload)) {
    if (value === null) delete token.payload[name];
  }
});

// Codes are single use and bound to the client and redirect URI that asked
// for them, as at a real provider.
service.on('beforeResponse', (response, req) => {
  if (req.body?.grant_type !== 'authorization_code') return;
  const code = req.body.code;
  const pending = pendingCodes.get(code);
  pendingCodes.delete(code);
  const clientId = req.body.client_id ?? clientIdFromBasic(req);
  if (confidentialClients.has(clientId) && clientSecret(req) !== confidentialClients.get(clientId)) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client', error_description: 'client authentication failed' };
    return;
  }
  const bad =
    pending === undefined ||
    (pending.clientId !== undefined && clientId !== pending.clientId) ||
    (pending.redirectUri !== undefined && req.body.redirect_uri !== pending.redirectUri);
  if (bad) {
    response.statusCode = 400;
    response.body = { error: 'invalid_grant' };
  }
});

// The client secret sent by client_secret_basic or client_secret_post.
function clientSecret(req) {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decodeURIComponent(decoded.slice(colon + 1));
  }
  return req.body?.client_secret;
}

function clientIdFromBasic(req) {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  return decodeURIComponent(decoded.split(':')[0]);
}

// --- test-only endpoints ------------------------------------------------

function readJson(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text === '' ? {} : JSON.parse(text));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

// A claim set to null in `claims` is removed from the token.
async function mint(body) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer.url,
    sub: defaultLogin.sub,
    aud: 'shiftkey',
    iat: now,
    exp: now + 600,
    email: defaultLogin.email,
    email_verified: defaultLogin.email_verified ?? true,
    groups: defaultLogin.groups,
    ...(body.claims ?? {}),
  };
  for (const [name, value] of Object.entries(claims)) {
    if (value === null) delete claims[name];
  }
  const signer = body.key === 'unpublished' ? await unpublished() : issuer;
  const kid = body.kid ?? (body.key === 'unpublished' ? 'unpublished-1' : 'rs256-1');
  const header = body.header ?? {};
  const savedUrl = signer.url;
  signer.url = issuer.url;
  try {
    return await signer.buildToken({
      kid,
      scopesOrTransform: (h, payload) => {
        for (const name of Object.keys(payload)) delete payload[name];
        Object.assign(payload, claims);
        Object.assign(h, header);
      },
    });
  } finally {
    signer.url = savedUrl;
  }
}

async function testHandler(req, res) {
  const path = req.url.split('?')[0];
  try {
    if (req.method === 'POST' && path === '/__test/mint') {
      const body = await readJson(req);
      sendJson(res, 200, { token: await mint(body) });
    } else if (req.method === 'POST' && path === '/__test/login') {
      const body = await readJson(req);
      defaultLogin = { ...defaultLogin, ...body };
      sendJson(res, 200, defaultLogin);
    } else if (req.method === 'POST' && path === '/__test/clients') {
      const body = await readJson(req);
      if (typeof body.client_id !== 'string' || typeof body.client_secret !== 'string') {
        throw new Error('client_id and client_secret are required');
      }
      confidentialClients.set(body.client_id, body.client_secret);
      sendJson(res, 200, { client_id: body.client_id });
    } else if (req.method === 'POST' && path === '/__test/keys') {
      const body = await readJson(req);
      const alg = body.alg ?? 'RS256';
      const kid = body.kid ?? `${alg.toLowerCase()}-${randomUUID()}`;
      await issuer.keys.generate(alg, { kid });
      withdrawnKids.delete(kid);
      sendJson(res, 200, { kid, alg });
    } else if (req.method === 'DELETE' && path.startsWith('/__test/keys/')) {
      const kid = decodeURIComponent(path.slice('/__test/keys/'.length));
      const published = issuer.keys.toJSON().some((key) => key.kid === kid);
      if (!published || withdrawnKids.has(kid)) {
        sendJson(res, 404, { error: 'not_found', error_description: `no published key ${kid}` });
        return;
      }
      withdrawnKids.add(kid);
      sendJson(res, 200, { kid });
    } else if (req.method === 'GET' && path === '/__test/stats') {
      sendJson(res, 200, stats);
    } else {
      sendJson(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    sendJson(res, 400, { error: 'invalid_request', error_description: String(err?.message ?? err) });
  }
}

const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path.startsWith(TEST_PREFIX)) {
    testHandler(req, res);
    return;
  }
  if (path === '/jwks') {
    stats.jwks_requests += 1;
    // The library's /jwks handler, minus withdrawn keys.
    if (req.method === 'GET') {
      const keys = issuer.keys.toJSON().filter((key) => !withdrawnKids.has(key.kid));
      sendJson(res, 200, { keys });
      return;
    }
  }
  if (path === '/.well-known/openid-configuration' && req.method === 'GET') {
    // The library's document, plus the scopes this provider supports.
    const end = res.end.bind(res);
    res.end = (chunk, ...rest) => {
      try {
        const doc = JSON.parse(Buffer.isBuffer(chunk) ? chunk.toString('utf8') : chunk);
        doc.scopes_supported = SCOPES_SUPPORTED;
        const text = JSON.stringify(doc);
        res.setHeader('content-length', Buffer.byteLength(text));
        return end(text, ...rest);
      } catch {
        return end(chunk, ...rest);
      }
    };
  }
  if (path === '/token') stats.token_requests += 1;
  if (path === '/authorize') stats.authorize_requests += 1;
  service.requestHandler(req, res);
});

server.on('error', (err) => {
  console.error(`provider.mjs: ${err.message}`);
  process.exit(1);
});

server.listen(port, HOST, () => {
  const actual = server.address().port;
  // oauth2-mock-server's issuer is always http://localhost:PORT.
  issuer.url = `http://localhost:${actual}`;
  process.stdout.write(
    `${JSON.stringify({ issuer: issuer.url, port: actual, kids: ['rs256-1', 'es256-1'] })}\n`,
  );
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (!ignoreStdin) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}

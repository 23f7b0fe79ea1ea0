// Test-only OIDC provider with the device authorization grant (RFC 8628),
// built on `oidc-provider` (a certified OpenID Provider implementation) for
// Shiftkey's end-to-end tests. Never run it anywhere but loopback: any login
// with any password is accepted.
//
// Usage: node device-provider.mjs [PORT] [--ignore-stdin]
//   PORT 0 (the default) lets the kernel pick a free port.
//   Prints one JSON line on stdout when ready:
//     {"issuer":"http://127.0.0.1:PORT","port":PORT,"client_id":"shiftkey"}
//   Exits on SIGTERM/SIGINT or when stdin closes (so a test runner that dies
//   does not leak it); --ignore-stdin keeps it up with stdin at /dev/null.
//
// The client `shiftkey` is public (no secret, PKCE) with the device grant
// and the authorization code grant (redirect http://127.0.0.1:ANY/callback).
// Any login name and any password sign in through the library's own HTML
// pages (devInteractions); the account is the login name: subject = name,
// email = name if it contains `@`, else NAME@example.com. ID tokens carry
// `email` and `email_verified` (scope `email`), are signed RS256 and live
// 10 minutes. No refresh tokens unless `offline_access` is asked for.
//
// Driving a device login by HTTP, as a browser would (keep cookies):
//   1. GET verification_uri_complete: an auto-submit form (xsrf, user_code);
//      POST it to its action.
//   2. The confirm page: form id="op.deviceConfirmForm" (xsrf, user_code,
//      confirm=yes); POST it, adding abort=yes to deny.
//   3. Redirects to /interaction/UID: login form (prompt=login, login,
//      password); POST it. Then /interaction/UID: consent form
//      (prompt=consent); POST it.
//   4. Redirects end on "Sign-in Success" (200). An aborted login ends on
//      the code input page (form id="op.deviceInputForm") saying "The
//      Sign-in request was interrupted"; polls then get access_denied.
//
// Test-only endpoints:
//   POST /__test/device {"interval": N|null, "ttl": SECS, "slow_down": N}
//     (all optional) adds `interval` to device authorization responses
//     (null = leave it out, clients then wait 5 s), sets the lifetime of
//     new device codes (default 600), and turns the next N
//     `authorization_pending` poll answers into `slow_down`. Answers the
//     current settings.
//   GET /__test/stats
//     {"device_authorizations", "device_token_polls", "slow_downs",
//      "token_requests"}
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

// stdout carries the ready line and nothing else: the library's notices
// (console.info, e.g. "default ... function called") go to stderr, and a
// reader that closes stdout after the ready line cannot crash the provider
// with EPIPE.
console.info = console.error;
console.log = console.error;
process.stdout.on('error', () => {});

const HOST = '127.0.0.1';
const CLIENT_ID = 'shiftkey';
const TEST_PREFIX = '/__test/';
const MAX_BODY = 64 * 1024;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const args = process.argv.slice(2);
const ignoreStdin = args.includes('--ignore-stdin');
const portArg = args.find((a) => !a.startsWith('--')) ?? '0';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535 || String(port) !== portArg) {
  console.error(`device-provider.mjs: bad port ${JSON.stringify(portArg)}; give a number 0-65535`);
  process.exit(2);
}

// Knobs the tests turn through POST /__test/device.
const device = {
  // Added to device authorization responses as `interval` (seconds);
  // null leaves it out, so clients use RFC 8628's default of 5.
  interval: null,
  // Lifetime of new device codes, in seconds.
  ttl: 600,
  // How many of the next `authorization_pending` answers become
  // `slow_down` instead.
  slowDown: 0,
};
const stats = { device_authorizations: 0, device_token_polls: 0, slow_downs: 0, token_requests: 0 };

// The login name is the account: `alice@example.com` logs in as subject
// `alice@example.com` with that email; a name without `@` gets
// `NAME@example.com`.
function emailOf(accountId) {
  return accountId.includes('@') ? accountId : `${accountId}@example.com`;
}

// One RS256 signing key per run (instead of the library's development keys).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'device-rs256-1', alg: 'RS256', use: 'sig' };

function readBody(req) {
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
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function testHandler(req, res) {
  const path = req.url.split('?')[0];
  try {
    if (req.method === 'POST' && path === '/__test/device') {
      const text = await readBody(req);
      const body = text === '' ? {} : JSON.parse(text);
      for (const key of ['interval', 'ttl', 'slowDown']) {
        const wire = key === 'slowDown' ? 'slow_down' : key;
        if (body[wire] === undefined) continue;
        const value = body[wire];
        const ok = (key === 'interval' && value === null) || (Number.isInteger(value) && value >= 0);
        if (!ok) throw new Error(`${wire} must be a non-negative integer${key === 'interval' ? ' or null' : ''}`);
        device[key] = value;
      }
      sendJson(res, 200, { interval: device.interval, ttl: device.ttl, slow_down: device.slowDown });
    } else if (req.method === 'GET' && path === '/__test/stats') {
      sendJson(res, 200, stats);
    } else {
      sendJson(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    sendJson(res, 400, { error: 'invalid_request', error_description: String(err?.message ?? err) });
  }
}

const server = createServer();
server.on('error', (err) => {
  console.error(`device-provider.mjs: ${err.message}`);
  process.exit(1);
});
await new Promise((resolve) => server.listen(port, HOST, resolve));
const actual = server.address().port;
const issuer = `http://${HOST}:${actual}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_name: 'Shiftkey',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'authorization_code'],
      response_types: ['code'],
      // Native client: any port on the loopback address (RFC 8252 7.3).
      redirect_uris: [`http://${HOST}/callback`],
    },
  ],
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scope's claims (email) in the ID token, not only in /userinfo.
  conformIdTokenClaims: false,
  async findAccount(ctx, accountId) {
    return {
      accountId,
      async claims() {
        return { sub: accountId, email: emailOf(accountId), email_verified: true, name: accountId };
      },
    };
  },
  features: {
    // The library's own login and consent pages (HTML forms): the tests
    // drive them by HTTP like a user in a browser.
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
  },
  ttl: {
    DeviceCode: () => device.ttl,
    IdToken: 600,
    AccessToken: 600,
    Interaction: 600,
    Session: 600,
    Grant: 600,
  },
});

// Development-only plumbing of the library (devInteractions) behaves as in
// production otherwise; plain HTTP on loopback needs no proxy settings.
provider.use(async (ctx, next) => {
  const isToken = ctx.method === 'POST' && ctx.path === '/token';
  if (isToken) stats.token_requests += 1;
  await next();
  if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200) {
    stats.device_authorizations += 1;
    if (device.interval !== null) ctx.body = { ...ctx.body, interval: device.interval };
  }
  if (isToken && ctx.oidc?.params?.grant_type === DEVICE_GRANT) {
    stats.device_token_polls += 1;
    if (ctx.body?.error === 'authorization_pending' && device.slowDown > 0) {
      device.slowDown -= 1;
      stats.slow_downs += 1;
      ctx.body = { error: 'slow_down', error_description: 'you are polling too quickly and should back off' };
    }
  }
});

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith(TEST_PREFIX)) {
    testHandler(req, res);
    return;
  }
  callback(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer, port: actual, client_id: CLIENT_ID })}\n`);

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

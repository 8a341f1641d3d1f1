// Interop: a TypeScript web app signs a person in with `openid-client` v6 (authorization code +
// PKCE) against a real Signet, the person's browser played by fetch: redirects followed by hand,
// cookies kept, the hosted login form parsed and posted (no JavaScript, as the pages need none).
//
// Run: npm --prefix test/node test          (builds ./cmd/signet; or set SIGNET_BIN=/path/to/signet)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

import { startSignet } from './signet.mjs';

const callback = 'http://127.0.0.1:9/callback'; // never fetched: the browser stops at it
const password = 'correct horse battery staple';

let signet;
let issuer;
let alice; // the user, as `signet user create --json` prints it
let web; // { client_id, client_secret }: type web, client_secret_basic
let spa; // { client_id }: type spa, public (auth none)

const insecure = { execute: [client.allowInsecureRequests] }; // http on loopback (see openid-client.test.mjs)

before(async () => {
  signet = await startSignet();
  issuer = signet.issuer;
  alice = JSON.parse(await signet.cli(['user', 'create', '--username', 'alice', '--email', 'alice@example.com', '--password', password, '--json']));
  assert.equal(typeof alice.id, 'string', `user create --json: ${JSON.stringify(alice)}`);
  web = await signet.createClient('web-app', ['--type', 'web', '--redirect-uri', callback, '--grant', 'authorization_code']);
  spa = JSON.parse(await signet.cli(['client', 'create', '--name', 'spa', '--type', 'spa', '--redirect-uri', callback, '--grant', 'authorization_code', '--json']));
  assert.equal(typeof spa.client_id, 'string', `client create --json: ${JSON.stringify(spa)}`);
}, { timeout: 300_000 });

after(async () => {
  await signet?.stop();
});

/** A browser without JavaScript: a cookie map per origin, redirects followed by hand. */
class Browser {
  cookies = new Map(); // name -> value (one host: 127.0.0.1)

  async request(url, init = {}) {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=(0|-)/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /**
   * GETs (or POSTs) url and follows redirects on the issuer; stops at a redirect anywhere else and
   * returns { url, status, body, location }.
   */
  async go(url, init) {
    for (let hops = 0; hops < 10; hops++) {
      const res = await this.request(url, init);
      const body = await res.text();
      const loc = res.headers.get('location');
      if (res.status < 300 || res.status > 399 || !loc) return { url, status: res.status, body };
      const next = new URL(loc, url);
      if (next.origin !== new URL(issuer).origin) return { url, status: res.status, body, location: next };
      url = next.href;
      init = undefined; // a 302/303 continues with a GET
    }
    throw new Error(`too many redirects, last ${url}`);
  }
}

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#34': '"' };
const unescape = (s) => s.replace(/&(#\d+|#x[0-9a-f]+|\w+);/gi, (m, e) =>
  entities[e] ?? (e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : m));

/** The page's form whose action contains action: its absolute action URL and its inputs' values. */
function form(page, action) {
  for (const m of page.body.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const act = unescape(/\baction="([^"]*)"/.exec(m[1])?.[1] ?? '');
    if (!act.includes(action)) continue;
    const fields = {};
    for (const input of m[2].matchAll(/<input\b[^>]*>/g)) {
      const name = /\bname="([^"]*)"/.exec(input[0])?.[1];
      if (name) fields[unescape(name)] = unescape(/\bvalue="([^"]*)"/.exec(input[0])?.[1] ?? '');
    }
    return { action: new URL(act, page.url).href, fields };
  }
  throw new Error(`no form with action ${action} on ${page.url} (status ${page.status}):\n${page.body.slice(0, 2000)}`);
}

/** Runs a whole sign-in with config and returns { tokens, verifier, state, page }. */
async function signIn(config, { scope = 'openid profile email', username = 'alice', pass = password } = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const code_challenge = await client.calculatePKCECodeChallenge(pkceCodeVerifier);
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: callback, scope, code_challenge, code_challenge_method: 'S256', state,
  });
  const browser = new Browser();
  const login = await browser.go(url.href);
  assert.equal(login.status, 200, `the authorization URL led to ${login.url} (${login.status})`);
  const f = form(login, '/ui/login/password');
  assert.ok(f.fields.id && f.fields.csrf, `hidden fields id and csrf: ${JSON.stringify(f.fields)}`);
  const done = await browser.go(f.action, {
    method: 'POST',
    body: new URLSearchParams({ ...f.fields, username, password: pass }),
  });
  if (!done.location) return { page: done, browser };
  assert.equal(done.location.origin + done.location.pathname, callback, `redirected to ${done.location}`);
  const tokens = await client.authorizationCodeGrant(config, done.location, { pkceCodeVerifier, expectedState: state });
  return { tokens, browser, callbackURL: done.location };
}

describe('sign-in with openid-client (authorization code + PKCE, login form posted)', () => {
  for (const kind of ['web', 'spa']) {
    test(`${kind} client: code exchanged, ID token claims, userinfo`, async () => {
      const config = kind === 'web'
        ? await client.discovery(new URL(issuer), web.client_id, web.client_secret, client.ClientSecretBasic(web.client_secret), insecure)
        : await client.discovery(new URL(issuer), spa.client_id, undefined, client.None(), insecure);
      const t0 = Math.floor(Date.now() / 1000);
      const { tokens, callbackURL } = await signIn(config);
      assert.equal(callbackURL.searchParams.get('iss'), issuer, 'RFC 9207 iss in the redirect');

      const claims = tokens.claims();
      assert.equal(claims.iss, issuer);
      assert.equal(claims.sub, alice.id);
      assert.deepEqual([claims.aud].flat(), [kind === 'web' ? web.client_id : spa.client_id]);
      assert.equal(typeof claims.auth_time, 'number');
      assert.ok(claims.auth_time >= t0 - 1 && claims.auth_time <= Math.floor(Date.now() / 1000) + 1, `auth_time ${claims.auth_time}`);
      assert.match(claims.sid ?? '', /^bs-/, `sid ${claims.sid}`);
      assert.deepEqual(claims.amr, ['pwd']);
      // The scope's claims come from userinfo (OIDC Core 5.4), not the ID token.
      assert.equal(claims.preferred_username, undefined);

      const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.equal(info.sub, alice.id);
      assert.equal(info.email, 'alice@example.com');
      assert.equal(info.preferred_username, 'alice');
    });
  }

  test('a wrong password shows the login page again, with a message and no redirect', async () => {
    const config = await client.discovery(new URL(issuer), spa.client_id, undefined, client.None(), insecure);
    const { page } = await signIn(config, { pass: 'not the password at all' });
    assert.equal(page.location, undefined);
    assert.equal(page.status, 401, `status ${page.status}`);
    assert.match(page.body, /role="alert"/, 'the page says what went wrong');
    form(page, '/ui/login/password'); // and lets the person try again
  });

  test('the code is bound to the PKCE verifier: another verifier is refused', async () => {
    const config = await client.discovery(new URL(issuer), spa.client_id, undefined, client.None(), insecure);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: callback, scope: 'openid', state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const browser = new Browser();
    const login = await browser.go(url.href);
    const f = form(login, '/ui/login/password');
    const done = await browser.go(f.action, { method: 'POST', body: new URLSearchParams({ ...f.fields, username: 'alice', password }) });
    await assert.rejects(
      client.authorizationCodeGrant(config, done.location, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: state }),
      (err) => err.error === 'invalid_grant',
    );
  });
});

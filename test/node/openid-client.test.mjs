// Interop: what a TypeScript backend does with the `openid-client` npm package (v6) and plain fetch,
// against a real Signet server (SPEC §3 endpoints, §5 client authentication, §6 introspection).
//
// Run: npm --prefix test/node test          (builds ./cmd/signet; or set SIGNET_BIN=/path/to/signet)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as jose from 'jose';

import { basic, decodeSegment, postForm, startSignet } from './signet.mjs';

let signet; // the running server (see signet.mjs)
let issuer;
let api; // { client_id, client_secret }: type api, client_secret_basic, JWT ES256 access tokens
let opaqueApp; // { client_id, client_secret }: opaque access tokens, may ask for audience = api

before(async () => {
  signet = await startSignet();
  issuer = signet.issuer;
  api = await signet.createClient('api');
  opaqueApp = await signet.createClient('opaque-app', ['--token-format', 'opaque', '--audience', api.client_id]);
}, { timeout: 300_000 });

after(async () => {
  await signet?.stop();
});

// allowInsecureRequests is marked @deprecated in openid-client 6.9.0 "only to make it stand out as
// something you shouldn't have the need to use, possibly only for local development and testing against
// non-TLS secured environments"; it has no replacement and remains the documented way to allow http.
const insecure = { execute: [client.allowInsecureRequests] };

/** discovery() as the README shows it: client id + secret string (openid-client then uses client_secret_post). */
function discover(c, metadata = c.client_secret, auth = undefined, options = insecure) {
  return client.discovery(new URL(issuer), c.client_id, metadata, auth, options);
}

/** aud as a list (a JWT or introspection response may carry a string or an array). */
function audList(aud) {
  return Array.isArray(aud) ? aud : [aud];
}

const now = () => Math.floor(Date.now() / 1000);

/** Wraps config's fetch to record each request's Accept header and a copy of each response. */
function recordExchanges(config, rewrite) {
  const seen = [];
  config[client.customFetch] = async (url, options) => {
    let res = await fetch(url, options);
    const entry = {
      url: String(url),
      accept: new Headers(options.headers).get('accept'),
      status: res.status,
      contentType: res.headers.get('content-type'),
      body: await res.clone().text(),
    };
    seen.push(entry);
    if (rewrite) res = rewrite(entry, res) ?? res;
    return res;
  };
  return seen;
}

/** Asserts the shape of every Signet error body (SPEC §3) and returns it. */
function assertErrorBody(r, status, error) {
  assert.equal(r.status, status, `status; body: ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json\b/, 'error bodies are application/json');
  assert.ok(r.json, `error body is JSON: ${r.text}`);
  assert.equal(r.json.error, error, `error; body: ${r.text}`);
  assert.equal(typeof r.json.error_description, 'string', `error_description; body: ${r.text}`);
  assert.ok(r.json.error_description.length > 0);
  return r.json;
}

describe('discovery', () => {
  test('openid-client discovers Signet: exact issuer, endpoints, client_credentials', async () => {
    const config = await discover(api);
    const md = config.serverMetadata();
    assert.equal(md.issuer, issuer, 'issuer must match exactly (no trailing slash)');
    assert.equal(md.token_endpoint, `${issuer}/oauth/v2/token`);
    assert.equal(md.introspection_endpoint, `${issuer}/oauth/v2/introspect`);
    assert.equal(md.revocation_endpoint, `${issuer}/oauth/v2/revoke`);
    assert.equal(md.jwks_uri, `${issuer}/oauth/v2/keys`);
    assert.ok(Array.isArray(md.grant_types_supported), 'grant_types_supported is a list');
    assert.ok(md.grant_types_supported.includes('client_credentials'), `grant_types_supported: ${md.grant_types_supported}`);
    for (const m of ['client_secret_basic', 'client_secret_post']) {
      assert.ok(md.token_endpoint_auth_methods_supported?.includes(m), `token_endpoint_auth_methods_supported lacks ${m}`);
    }
    assert.ok(
      md.introspection_signing_alg_values_supported?.includes('ES256'),
      `introspection_signing_alg_values_supported: ${md.introspection_signing_alg_values_supported}`,
    );
  });

  test('RFC 8414 metadata (/.well-known/oauth-authorization-server) names the same issuer', async () => {
    const config = await client.discovery(new URL(issuer), api.client_id, api.client_secret, undefined, {
      ...insecure,
      algorithm: 'oauth2',
    });
    const md = config.serverMetadata();
    assert.equal(md.issuer, issuer);
    assert.equal(md.token_endpoint, `${issuer}/oauth/v2/token`);
    assert.equal(md.introspection_endpoint, `${issuer}/oauth/v2/introspect`);
  });
});

describe('client credentials', () => {
  test('clientCredentialsGrant returns a bearer RFC 9068 JWT for the api client', async () => {
    const config = await discover(api);
    const t0 = now();
    const tokens = await client.clientCredentialsGrant(config);

    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(typeof tokens.expires_in, 'number');
    assert.ok(tokens.expires_in > 0, `expires_in ${tokens.expires_in}`);
    assert.ok(tokens.expiresIn() > 0);

    const parts = tokens.access_token.split('.');
    assert.equal(parts.length, 3, 'a compact JWS has three parts');
    const header = decodeSegment(parts[0]);
    const claims = decodeSegment(parts[1]);
    assert.equal(header.typ, 'at+jwt', 'RFC 9068 typ header');
    assert.equal(header.alg, 'ES256', 'default signing algorithm');
    assert.equal(typeof header.kid, 'string');
    assert.equal(claims.iss, issuer);
    assert.equal(claims.sub, api.client_id);
    assert.equal(claims.client_id, api.client_id);
    assert.ok(audList(claims.aud).includes(api.client_id), `aud ${JSON.stringify(claims.aud)}`);
    assert.equal(typeof claims.jti, 'string');
    assert.ok(claims.iat >= t0 - 5 && claims.iat <= now() + 5, `iat ${claims.iat}`);
    assert.ok(claims.exp > claims.iat, 'exp after iat');
    assert.ok(Math.abs(claims.exp - now() - tokens.expires_in) <= 5, 'exp agrees with expires_in');

    // A TypeScript resource server verifies it locally against the JWKS with jose.
    const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
      issuer,
      audience: api.client_id,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    assert.equal(protectedHeader.kid, header.kid);
    assert.equal(payload.sub, api.client_id);
  });

  test('ClientSecretBasic (the client\'s registered method) works as well', async () => {
    const config = await discover(api, {}, client.ClientSecretBasic(api.client_secret));
    const seen = recordExchanges(config);
    const tokens = await client.clientCredentialsGrant(config);
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(decodeSegment(tokens.access_token.split('.')[1]).sub, api.client_id);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].status, 200);
  });
});

describe('introspection', () => {
  test('tokenIntrospection of a JWT access token: active with sub, client_id, exp, iss', async () => {
    const config = await discover(api);
    const { access_token } = await client.clientCredentialsGrant(config);
    const claims = decodeSegment(access_token.split('.')[1]);

    const info = await client.tokenIntrospection(config, access_token);
    assert.equal(info.active, true);
    assert.equal(info.sub, api.client_id);
    assert.equal(info.client_id, api.client_id);
    assert.equal(info.iss, issuer);
    assert.equal(info.exp, claims.exp);
    assert.ok(info.exp > now());
    assert.equal(info.iat, claims.iat);
    assert.equal(info.jti, claims.jti);
    assert.ok(audList(info.aud).includes(api.client_id), `aud ${JSON.stringify(info.aud)}`);
    assert.equal(info.token_type?.toLowerCase(), 'bearer', `token_type ${info.token_type}`);
  });

  test('introspecting garbage is exactly {"active":false}', async () => {
    const config = await discover(api);
    const info = await client.tokenIntrospection(config, 'garbage');
    assert.deepEqual({ ...info }, { active: false });

    // The same with plain fetch: the whole body is {"active":false}, nothing else.
    for (const token of ['garbage', 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', 'sgn_at_' + 'A'.repeat(43)]) {
      const r = await postForm(`${issuer}/oauth/v2/introspect`, { token }, { authorization: basic(api.client_id, api.client_secret) });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json\b/);
      assert.equal(r.text.trim(), '{"active":false}', `body for ${token}`);
    }
  });

  test('a JWT whose audience is another client is {"active":false} to that client (SPEC §5)', async () => {
    const { access_token } = await client.clientCredentialsGrant(await discover(api));
    const r = await postForm(`${issuer}/oauth/v2/introspect`, { token: access_token }, {
      authorization: basic(opaqueApp.client_id, opaqueApp.client_secret),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text.trim(), '{"active":false}');
  });

  test('opaque token for audience=api: sgn_at_ prefix, and the api client sees it active', async () => {
    const appConfig = await discover(opaqueApp);
    const tokens = await client.clientCredentialsGrant(appConfig, { audience: api.client_id });
    assert.equal(tokens.token_type, 'bearer');
    assert.ok(tokens.expires_in > 0);
    assert.ok(tokens.access_token.startsWith('sgn_at_'), `opaque token: ${tokens.access_token.slice(0, 12)}…`);
    assert.match(tokens.access_token, /^sgn_at_[A-Za-z0-9_-]{43}$/, 'sgn_at_ + base64url of 32 bytes');

    const apiConfig = await discover(api);
    const info = await client.tokenIntrospection(apiConfig, tokens.access_token);
    assert.equal(info.active, true);
    assert.equal(info.client_id, opaqueApp.client_id);
    assert.equal(info.sub, opaqueApp.client_id);
    assert.equal(info.iss, issuer);
    assert.ok(audList(info.aud).includes(api.client_id), `aud ${JSON.stringify(info.aud)}`);
    assert.ok(info.exp > now());
    assert.ok(Math.abs(info.exp - now() - tokens.expires_in) <= 5, 'exp agrees with expires_in');
  });
});

describe('signed introspection (RFC 9701)', () => {
  // openid-client 6.9.0 (oauth4webapi 3.8) asks for a JWT response (Accept:
  // application/token-introspection+jwt) when the client metadata has introspection_signed_response_alg;
  // it then checks typ, alg, iss, aud = client_id and iat, and returns the token_introspection claim.
  // The JWS signature itself is verified against the issuer's JWKS only with enableNonRepudiationChecks.
  const signedMetadata = () => ({ client_secret: api.client_secret, introspection_signed_response_alg: 'ES256' });
  const signedOptions = { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] };

  test('tokenIntrospection asks for and validates a signed JWT response', async () => {
    const config = await discover(api, signedMetadata(), undefined, signedOptions);
    const { access_token } = await client.clientCredentialsGrant(config);
    const claims = decodeSegment(access_token.split('.')[1]);
    const seen = recordExchanges(config);

    const info = await client.tokenIntrospection(config, access_token);

    const introspections = seen.filter((e) => e.url === `${issuer}/oauth/v2/introspect`);
    assert.equal(introspections.length, 1);
    const [ex] = introspections;
    assert.equal(ex.accept, 'application/token-introspection+jwt', 'openid-client asked for RFC 9701');
    assert.equal(ex.status, 200, ex.body);
    assert.match(ex.contentType ?? '', /^application\/token-introspection\+jwt\b/, 'Signet answered with a JWT');
    assert.ok(seen.some((e) => e.url === `${issuer}/oauth/v2/keys`), 'the library fetched the JWKS to verify the signature');

    assert.equal(info.active, true);
    assert.equal(info.sub, api.client_id);
    assert.equal(info.client_id, api.client_id);
    assert.equal(info.iss, issuer);
    assert.equal(info.exp, claims.exp);
    assert.equal(info.jti, claims.jti);

    // Independently: verify the raw response with jose against the JWKS, as RFC 9701 §5 describes.
    const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/oauth/v2/keys`));
    const { payload, protectedHeader } = await jose.jwtVerify(ex.body.trim(), jwks, {
      issuer,
      audience: api.client_id,
      typ: 'token-introspection+jwt',
      algorithms: ['ES256'],
      requiredClaims: ['iat'],
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.deepEqual(payload.token_introspection, { ...info });
    // RFC 9701 §5: SHOULD NOT carry sub/exp at top level, so it cannot be mistaken for an access token.
    assert.equal(payload.sub, undefined, 'no top-level sub in the introspection JWT');
    assert.equal(payload.exp, undefined, 'no top-level exp in the introspection JWT');
  });

  test('an inactive token comes back signed as token_introspection {active:false}', async () => {
    const config = await discover(api, signedMetadata(), undefined, signedOptions);
    const seen = recordExchanges(config);
    const info = await client.tokenIntrospection(config, 'garbage');
    assert.deepEqual({ ...info }, { active: false });
    const ex = seen.find((e) => e.url.endsWith('/oauth/v2/introspect'));
    assert.match(ex.contentType ?? '', /^application\/token-introspection\+jwt\b/);
    assert.deepEqual(decodeSegment(ex.body.trim().split('.')[1]).token_introspection, { active: false });
  });

  test('openid-client rejects a signed response whose payload was altered (signature really checked)', async () => {
    const config = await discover(api, signedMetadata(), undefined, signedOptions);
    // Introspect garbage (active:false) and forge active:true into the payload, keeping the signature.
    recordExchanges(config, (entry, res) => {
      if (!entry.url.endsWith('/oauth/v2/introspect') || entry.status !== 200) return res;
      const [h, p, s] = entry.body.trim().split('.');
      const forged = { ...decodeSegment(p), token_introspection: { active: true, sub: 'mallory' } };
      const body = `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`;
      const headers = new Headers(res.headers);
      headers.delete('content-length');
      return new Response(body, { status: 200, headers });
    });
    await assert.rejects(client.tokenIntrospection(config, 'garbage'), (err) => {
      assert.equal(err.code, 'OAUTH_INVALID_RESPONSE', `unexpected error: ${err.name}: ${err.message}`);
      assert.match(String(err.cause?.message), /signature verification failed/, `cause: ${err.cause?.message}`);
      return true;
    });
  });
});

describe('revocation', () => {
  test('tokenRevocation of a JWT makes it inactive at introspection', async () => {
    const config = await discover(api);
    const { access_token } = await client.clientCredentialsGrant(config);
    assert.equal((await client.tokenIntrospection(config, access_token)).active, true);

    await client.tokenRevocation(config, access_token);

    const info = await client.tokenIntrospection(config, access_token);
    assert.deepEqual({ ...info }, { active: false });
  });

  test('tokenRevocation of an opaque token by its client; the api then sees {"active":false}', async () => {
    const appConfig = await discover(opaqueApp);
    const apiConfig = await discover(api);
    const { access_token } = await client.clientCredentialsGrant(appConfig, { audience: api.client_id });
    assert.equal((await client.tokenIntrospection(apiConfig, access_token)).active, true);

    await client.tokenRevocation(appConfig, access_token, { token_type_hint: 'access_token' });

    assert.deepEqual({ ...(await client.tokenIntrospection(apiConfig, access_token)) }, { active: false });
  });

  test('revoking an unknown token succeeds (RFC 7009 §2.2)', async () => {
    const config = await discover(api);
    await client.tokenRevocation(config, 'garbage');
    const r = await postForm(`${issuer}/oauth/v2/revoke`, { token: 'garbage' }, { authorization: basic(api.client_id, api.client_secret) });
    assert.equal(r.status, 200, r.text);
  });
});

describe('refusals', () => {
  const token = () => `${issuer}/oauth/v2/token`;

  test('wrong secret (Basic) → 401 invalid_client naming the secret, WWW-Authenticate: Basic', async () => {
    const wrong = 'not-the-secret-' + 'x'.repeat(8);
    const r = await postForm(token(), { grant_type: 'client_credentials' }, { authorization: basic(api.client_id, wrong) });
    const body = assertErrorBody(r, 401, 'invalid_client');
    assert.match(body.error_description, /secret/i, body.error_description);
    assert.ok(body.error_description.includes(api.client_id), `names the client: ${body.error_description}`);
    assert.ok(!body.error_description.includes(wrong), 'never echoes the secret');
    assert.match(r.headers.get('www-authenticate') ?? '', /^Basic\b/i, `WWW-Authenticate: ${r.headers.get('www-authenticate')}`);
  });

  test('wrong secret through openid-client: Basic → WWW-Authenticate challenge, post → invalid_client body', async () => {
    const basicConfig = await discover(api, {}, client.ClientSecretBasic('wrong'));
    await assert.rejects(client.clientCredentialsGrant(basicConfig), (err) => {
      assert.ok(err instanceof client.WWWAuthenticateChallengeError, `got ${err?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      assert.equal(err.cause[0].scheme, 'basic');
      return true;
    });

    const postConfig = await discover({ client_id: api.client_id, client_secret: 'wrong' });
    const err = await client.clientCredentialsGrant(postConfig).then(
      () => assert.fail('a wrong client_secret_post secret was accepted'),
      (e) => e,
    );
    // RFC 6749 §5.2 requires the challenge only when the Authorization header was used; accept both.
    if (err instanceof client.WWWAuthenticateChallengeError) {
      assert.equal(err.status, 401);
      const body = await err.response.json();
      assert.equal(body.error, 'invalid_client');
      assert.match(body.error_description, /secret/i);
    } else {
      assert.ok(err instanceof client.ResponseBodyError, `got ${err?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      assert.equal(err.error, 'invalid_client');
      assert.match(err.error_description, /secret/i);
    }
  });

  test('missing grant_type → 400 invalid_request', async () => {
    const r = await postForm(token(), { scope: 'openid' }, { authorization: basic(api.client_id, api.client_secret) });
    const body = assertErrorBody(r, 400, 'invalid_request');
    assert.match(body.error_description, /grant_type/, body.error_description);
  });

  test('unsupported grant → 400 unsupported_grant_type', async () => {
    const r = await postForm(token(), { grant_type: 'password', username: 'u', password: 'p' }, {
      authorization: basic(api.client_id, api.client_secret),
    });
    const body = assertErrorBody(r, 400, 'unsupported_grant_type');
    assert.ok(!body.error_description.includes('"p"'), 'never echoes the password');
  });

  test('introspection without credentials → 401 invalid_client', async () => {
    const r = await postForm(`${issuer}/oauth/v2/introspect`, { token: 'garbage' });
    const body = assertErrorBody(r, 401, 'invalid_client');
    assert.match(body.error_description, /client/i, body.error_description);
    assert.ok(r.headers.get('www-authenticate'), 'docs/errors.md: a challenge when no credentials were sent');
  });

  test('revocation without credentials → 401 invalid_client', async () => {
    const r = await postForm(`${issuer}/oauth/v2/revoke`, { token: 'garbage' });
    assertErrorBody(r, 401, 'invalid_client');
  });
});

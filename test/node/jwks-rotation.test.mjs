// Interop: a TypeScript resource server that caches the JWKS (jose's createRemoteJWKSet) keeps
// verifying tokens across `signet keys rotate` without fetching the JWKS again: Signet publishes the
// next key before it signs with it.
//
// Run: npm --prefix test/node test          (builds ./cmd/signet; or set SIGNET_BIN=/path/to/signet)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import * as jose from 'jose';

import { basic, decodeSegment, postForm, startSignet } from './signet.mjs';

let signet;
let api;

before(async () => {
  signet = await startSignet();
  api = await signet.createClient('api');
}, { timeout: 300_000 });

after(async () => {
  await signet?.stop();
});

async function accessToken() {
  const r = await postForm(`${signet.issuer}/oauth/v2/token`, { grant_type: 'client_credentials' }, { authorization: basic(api.client_id, api.client_secret) });
  assert.equal(r.status, 200, r.text);
  return r.json.access_token;
}

const kid = (jwt) => decodeSegment(jwt.split('.')[0]).kid;

describe('a cached JWKS across key rotation (jose createRemoteJWKSet)', () => {
  test('tokens signed after `keys rotate` verify without a second JWKS fetch', async () => {
    let fetches = 0;
    const jwks = jose.createRemoteJWKSet(new URL(`${signet.issuer}/oauth/v2/keys`), {
      // No refetch would be allowed within the test anyway: a long cooldown and cache age.
      cooldownDuration: 600_000,
      cacheMaxAge: 600_000,
      [jose.customFetch]: (url, options) => {
        fetches++;
        return fetch(url, options);
      },
    });
    const verify = (jwt) => jose.jwtVerify(jwt, jwks, { issuer: signet.issuer, audience: api.client_id, typ: 'at+jwt' });

    const before = await accessToken();
    await verify(before);
    assert.equal(fetches, 1);

    await signet.cli(['keys', 'rotate', '--alg', 'ES256']);
    // The CLI wrote to the database; the server loads the keys with its next change-feed poll.
    // Poll for a token signed with another key, with a generous bound.
    const started = Date.now();
    let after;
    for (;;) {
      after = await accessToken();
      if (kid(after) !== kid(before)) break;
      assert.ok(Date.now() - started < 30_000, `still signing with ${kid(before)} after ${Date.now() - started} ms`);
      await delay(50);
    }
    const { protectedHeader } = await verify(after);
    assert.equal(protectedHeader.kid, kid(after));
    await verify(before); // the retired key stays published
    assert.equal(fetches, 1, 'the JWKS fetched before the rotation must already hold the key that signs after it');
  });
});

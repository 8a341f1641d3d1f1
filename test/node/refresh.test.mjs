// A support tool's backend keeps an "Act as user" session alive with openid-client (v6): the
// exchange asks for a refresh token (allowed by the rule), refreshTokenGrant rotates it, a reuse
// within the race window spares the winner, and revoking the refresh token ends the whole grant
// (SPEC §4 refresh tokens, §7 allow_refresh).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

import { basic, postForm, startSignet } from './signet.mjs';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const USER_ID = 'urn:zitadel:params:oauth:token-type:user_id';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const REFRESH_TOKEN = 'urn:ietf:params:oauth:token-type:refresh_token';

describe('impersonation session kept alive with refresh tokens (openid-client)', () => {
  let s, api, helpdesk, sam, dana, samToken, config;
  const json = async (args) => JSON.parse(await s.cli([...args, '--json']));
  const introspect = (token) => postForm(`${s.issuer}/oauth/v2/introspect`, { token }, { authorization: basic(api.client_id, api.client_secret) });

  before(async () => {
    s = await startSignet();
    api = await s.createClient('orders-api');
    helpdesk = await s.createClient('helpdesk', ['--grant', TE, '--grant', 'refresh_token']);
    sam = await json(['user', 'create', '--username', 'sam', '--role', 'support', '--generate-password']);
    dana = await json(['user', 'create', '--username', 'dana']);
    await json(['policy', 'add', '--name', 'helpdesk-sessions', '--mode', 'impersonation', '--actor-role', 'support',
      '--subject-user', '*', '--client', helpdesk.client_id, '--audience', api.client_id, '--scope', 'read',
      '--max-ttl', '5m', '--allow-refresh', '--refresh-ttl', '30m', '--require-reason']);
    samToken = (await json(['token', 'issue', '--client', helpdesk.client_id, '--user', 'sam', '--scope', 'read'])).access_token;
    // allowInsecureRequests: the test server speaks http on loopback (see openid-client.test.mjs).
    config = await client.discovery(new URL(s.issuer), helpdesk.client_id, helpdesk.client_secret, undefined,
      { execute: [client.allowInsecureRequests] });
  }, { timeout: 300_000 });
  after(async () => s && s.stop());

  let first;
  let second;
  let third;

  test('discovery advertises the refresh grant and refresh_token as a requested type', () => {
    const m = config.serverMetadata();
    assert.ok(m.grant_types_supported.includes('refresh_token'));
    assert.ok(m.token_exchange_requested_token_types_supported.includes(REFRESH_TOKEN));
  });

  test('the exchange returns an access token and a refresh token', async () => {
    first = await client.genericGrantRequest(config, TE, {
      subject_token: dana.id, subject_token_type: USER_ID, actor_token: samToken, actor_token_type: ACCESS_TOKEN,
      audience: api.client_id, reason: 'ticket 4812', requested_token_type: REFRESH_TOKEN,
    });
    assert.equal(first.issued_token_type, ACCESS_TOKEN);
    assert.match(first.refresh_token, /^sgn_rt_/);
    assert.ok(first.expires_in <= 300, `expires_in ${first.expires_in}`);
  });

  test('refreshTokenGrant rotates the refresh token and keeps who acts', async () => {
    second = await client.refreshTokenGrant(config, first.refresh_token);
    assert.notEqual(second.refresh_token, first.refresh_token);
    const r = await introspect(second.access_token);
    assert.equal(r.json.active, true);
    assert.equal(r.json.sub, dana.id);
    assert.equal(r.json.act.sub, sam.id);
    assert.equal(r.json.signet_exchange.kind, 'impersonation');
  });

  // A second use within two seconds of the first is a lost race (a retry, another replica): refused,
  // and the winner's tokens live on. Replays after that window revoke the grant (tested in Go with
  // an injected clock: internal/oauth TestRefreshTokenReuseRevokesTheGrant).
  test('reusing the used refresh token at once is refused as a lost race and spares the new tokens', async () => {
    await assert.rejects(client.refreshTokenGrant(config, first.refresh_token), (err) => {
      assert.equal(err.error, 'invalid_grant');
      assert.match(err.error_description, /used by a concurrent request/);
      return true;
    });
    assert.equal((await introspect(second.access_token)).json.active, true);
    third = await client.refreshTokenGrant(config, second.refresh_token);
    assert.equal((await introspect(third.access_token)).json.active, true);
  });

  test('revoking the refresh token (tokenRevocation) ends the whole grant', async () => {
    await client.tokenRevocation(config, third.refresh_token);
    assert.equal((await introspect(third.access_token)).json.active, false);
    assert.equal((await introspect(second.access_token)).json.active, false);
    await assert.rejects(client.refreshTokenGrant(config, third.refresh_token), (err) => err.error === 'invalid_grant');
  });
});

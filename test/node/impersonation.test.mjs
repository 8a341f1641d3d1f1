// The backend of an admin SPA's "Act as user" button, written the way a TypeScript backend does it:
// plain fetch and URLSearchParams, no OAuth library (SPEC §1 S2, §7 "Who may ask").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

import { basic, postForm, startSignet } from './signet.mjs';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const USER_ID = 'urn:zitadel:params:oauth:token-type:user_id';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

describe('Act as user (impersonation from an admin backend with fetch)', () => {
  let s, api, other, spa, sam, dana, olga, samToken;
  const json = async (args) => JSON.parse(await s.cli([...args, '--json']));

  before(async () => {
    s = await startSignet();
    api = await s.createClient('orders-api');
    other = await s.createClient('hr-api');
    spa = await json(['client', 'create', '--name', 'admin-spa', '--type', 'spa', '--grant', TE, '--redirect-uri', 'https://admin.example.com/callback']);
    assert.equal(spa.auth_method, 'none');
    sam = await json(['user', 'create', '--username', 'sam', '--role', 'support', '--generate-password']);
    dana = await json(['user', 'create', '--username', 'dana']);
    olga = await json(['user', 'create', '--username', 'olga', '--role', 'admin', '--generate-password']);
    await json(['policy', 'add', '--name', 'support-impersonates', '--mode', 'impersonation', '--actor-role', 'support',
      '--subject-user', '*', '--client', spa.client_id, '--audience', api.client_id,
      '--scope', 'read', '--scope', 'write', '--max-ttl', '10m', '--require-reason']);
    // Until hosted sign-in exists, the staff member's token comes from the CLI.
    samToken = (await json(['token', 'issue', '--client', spa.client_id, '--user', 'sam', '--scope', 'read write'])).access_token;
  });
  after(async () => s && s.stop());

  // actAs is the backend endpoint's one call: admin token + target user ID → impersonation token.
  const actAs = (overrides = {}) => postForm(`${s.issuer}/oauth/v2/token`, {
    grant_type: TE,
    client_id: spa.client_id,
    subject_token: dana.id,
    subject_token_type: USER_ID,
    actor_token: samToken,
    actor_token_type: ACCESS_TOKEN,
    audience: api.client_id,
    reason: 'ticket 4812',
    requested_token_type: ACCESS_TOKEN,
    ...overrides,
  });
  const introspect = (token) => postForm(`${s.issuer}/oauth/v2/introspect`, { token }, { authorization: basic(api.client_id, api.client_secret) });

  let impersonation;

  test('the exchange returns a short-lived, scoped-down token', async () => {
    const r = await actAs();
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.issued_token_type, ACCESS_TOKEN);
    assert.equal(r.json.token_type, 'Bearer');
    assert.equal(r.json.scope, 'read write');
    assert.ok(r.json.expires_in > 0 && r.json.expires_in <= 600, `expires_in ${r.json.expires_in}`);
    impersonation = r.json.access_token;
  });

  test('the API introspects it and sees who acts', async () => {
    const r = await introspect(impersonation);
    assert.equal(r.status, 200);
    assert.equal(r.json.active, true);
    assert.equal(r.json.sub, dana.id);
    assert.equal(r.json.act.sub, sam.id);
    assert.equal(r.json.act.client_id, spa.client_id);
    assert.equal(r.json.signet_exchange.kind, 'impersonation');
    assert.match(r.json.signet_exchange.session, /^xs-/);
    assert.ok(r.json.exp - r.json.iat <= 600);
  });

  test('refusals say what to fix', async () => {
    const cases = [
      [{ reason: '' }, 'invalid_request', /reason/],
      [{ subject_token: olga.id }, 'unauthorized_client', /is not among its subjects/],
      [{ scope: 'read admin' }, 'invalid_scope', /"admin"/],
      [{ audience: other.client_id }, 'invalid_target', new RegExp(other.client_id)],
    ];
    for (const [overrides, code, description] of cases) {
      const r = await actAs(overrides);
      assert.equal(r.status, 400, r.text);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      assert.equal(r.json.error, code, r.text);
      assert.match(r.json.error_description, description);
    }
  });

  test('Exit: ending the session makes the token inactive', async () => {
    const ended = await json(['impersonation', 'end', '--subject', dana.id, '--reason', 'done']);
    assert.equal(ended.ended, 1);
    // The CLI wrote to the database; the server applies it with its next change-feed poll (250 ms).
    // The bound is generous: a loaded 2-core machine must not fail what is only slow.
    const started = Date.now();
    const deadline = started + 30_000;
    let last;
    for (;;) {
      last = await introspect(impersonation);
      if (last.text === '{"active":false}') break;
      assert.ok(Date.now() < deadline, `still ${last.text} after ${Date.now() - started} ms`);
      await delay(50);
    }
    assert.equal(last.text, '{"active":false}');
  });

  test('the audit log has the event and verifies', async () => {
    const events = await json(['audit', 'list', '--type', 'exchange.allowed']);
    const ev = events.find((e) => e.actor === sam.id && e.subject === dana.id);
    assert.ok(ev, JSON.stringify(events));
    assert.equal(ev.details.reason, 'ticket 4812');
    const verify = await json(['audit', 'verify']);
    assert.equal(verify.intact, true);
  });
});

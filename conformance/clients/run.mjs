#!/usr/bin/env node
// Third-party SMART/FHIR clients against a live gpgate.
//
//   node run.mjs BASE_URL KEYFILE CLIENT_ID NHS_NUMBER
//
// jose signs the SMART Backend Services client assertion (private_key_jwt)
// with the client's private JWK; the token comes from BASE/auth/token
// (client_credentials). fhir-kit-client then discovers the endpoints, reads
// the CapabilityStatement, finds the patient by NHS number, reads the
// record and follows `next` links with nextPage; fhirclient (SMART's JS
// client) searches the same patient and walks paged searches with
// pageLimit: 0. One PASS/FAIL line per check; exit status 1 if any failed.
// Nothing here prints the token or patient data.

import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK, decodeJwt, decodeProtectedHeader } from 'jose';
import { Client } from 'fhir-kit-client';
import smart from 'fhirclient';

const NHS_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';
const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

const [base0, keyFile, clientId, nhs] = process.argv.slice(2);
if (!base0 || !keyFile || !clientId || !/^\d{10}$/.test(nhs ?? '')) {
  console.error('usage: node run.mjs BASE_URL KEYFILE CLIENT_ID NHS_NUMBER');
  process.exit(2);
}
const base = base0.replace(/\/+$/, '');
const scope = process.env.GPGATE_SCOPE || 'system/*.rs system/Consent.c';
const clinician = process.env.GPGATE_CLINICIAN || '555000111222';

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = performance.now();
  try {
    const detail = await fn();
    passed++;
    console.log(`PASS ${name}${detail ? ` (${detail})` : ''} [${Math.round(performance.now() - t0)} ms]`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err && err.message ? err.message.split('\n')[0] : err}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
// needs fails a check whose input an earlier check did not produce.
function needs(...keys) {
  for (const k of keys) assert(state[k] !== undefined, `no ${k}: an earlier check failed`);
}
// statusOf finds the HTTP status in either library's error.
function statusOf(err) {
  return err?.response?.status ?? err?.status ?? err?.statusCode;
}

// ---- discovery and the client assertion ----------------------------------

const state = {};
const anonymous = new Client({ baseUrl: base });

await check('fhir-kit-client: CapabilityStatement', async () => {
  const cs = await anonymous.capabilityStatement();
  assert(cs.resourceType === 'CapabilityStatement', `resourceType ${cs.resourceType}`);
  assert(cs.fhirVersion === '4.0.1', `fhirVersion ${cs.fhirVersion}`);
  const rest = cs.rest?.[0];
  const types = new Set((rest?.resource ?? []).map((r) => r.type));
  for (const t of ['Patient', 'Condition', 'Observation']) assert(types.has(t), `${t} not declared`);
  const uris = rest?.security?.extension?.find((e) => e.url === OAUTH_URIS);
  const token = uris?.extension?.find((e) => e.url === 'token')?.valueUri;
  assert(token === `${base}/auth/token`, `oauth-uris token ${token}`);
  return `${types.size} resource types, token endpoint in rest.security`;
});

await check('fhir-kit-client: smartAuthMetadata finds the token endpoint', async () => {
  const meta = await anonymous.smartAuthMetadata();
  state.tokenUrl = meta.tokenUrl?.toString();
  assert(state.tokenUrl === `${base}/auth/token`, `tokenUrl ${state.tokenUrl}`);
  return state.tokenUrl;
});
state.tokenUrl ??= `${base}/auth/token`;

await check('fhir-kit-client: no token, no data (401)', async () => {
  try {
    await anonymous.search({ resourceType: 'Patient', searchParams: { identifier: `${NHS_SYSTEM}|${nhs}` } });
  } catch (err) {
    assert(statusOf(err) === 401, `status ${statusOf(err)}`);
    return '401';
  }
  throw new Error('an unauthenticated search was answered');
});

const jwk = JSON.parse(await readFile(keyFile, 'utf8'));
const alg = jwk.alg || 'ES384';
const privateKey = await importJWK(jwk, alg);

async function assertion(b2b) {
  return new SignJWT(b2b ? { extensions: { 'hl7-b2b': b2b } } : {})
    .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(state.tokenUrl)
    .setIssuedAt()
    .setExpirationTime('4m')
    .setJti(randomUUID())
    .sign(privateKey);
}

async function requestToken(clientAssertion, requestedScope) {
  const res = await fetch(state.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
      scope: requestedScope,
    }),
  });
  return { status: res.status, body: await res.json() };
}

await check(`jose: ${alg} client assertion, client_credentials token`, async () => {
  state.assertion = await assertion();
  const { status, body } = await requestToken(state.assertion, scope);
  assert(status === 200, `HTTP ${status} ${body.error ?? ''} ${body.error_description ?? ''}`);
  assert(typeof body.access_token === 'string' && body.access_token.length > 0, 'no access_token');
  assert(String(body.token_type).toLowerCase() === 'bearer', `token_type ${body.token_type}`);
  assert(body.expires_in > 0 && body.expires_in <= 300, `expires_in ${body.expires_in}`);
  assert(body.scope.split(' ').sort().join(' ') === scope.split(' ').sort().join(' '), `scope ${body.scope}`);
  const claims = decodeJwt(body.access_token);
  const header = decodeProtectedHeader(body.access_token);
  assert(claims.client_id === clientId && claims.iss === base, `claims iss ${claims.iss} client_id ${claims.client_id}`);
  state.token = body.access_token;
  return `${header.alg} access token, ${body.expires_in} s, scope ${body.scope}`;
});

await check('jose: a replayed assertion is refused (invalid_client)', async () => {
  needs('assertion');
  const { status, body } = await requestToken(state.assertion, scope);
  assert(status === 401 && body.error === 'invalid_client' && !body.access_token, `HTTP ${status} ${JSON.stringify(body)}`);
  return `401 ${body.error}`;
});

await check('jose: scope escalation is refused (invalid_scope)', async () => {
  const { status, body } = await requestToken(await assertion(), 'system/*.cruds');
  assert(status === 400 && body.error === 'invalid_scope' && !body.access_token, `HTTP ${status} ${JSON.stringify(body)}`);
  return `400 ${body.error}`;
});

// ---- fhir-kit-client ------------------------------------------------------

const fkc = new Client({ baseUrl: base, bearerToken: state.token });

await check('fhir-kit-client: Patient search by NHS number', async () => {
  needs('token');
  const b = await fkc.search({ resourceType: 'Patient', searchParams: { identifier: `${NHS_SYSTEM}|${nhs}` } });
  assert(b.resourceType === 'Bundle' && b.type === 'searchset', `got ${b.resourceType}/${b.type}`);
  const pats = (b.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === 'Patient');
  assert(pats.length === 1, `${pats.length} Patients`);
  assert(pats[0].identifier?.some((i) => i.system === NHS_SYSTEM && i.value === nhs), 'NHS number not on the Patient');
  state.patientId = pats[0].id;
  return `Patient/${state.patientId}`;
});

await check('fhir-kit-client: read Patient', async () => {
  needs('token', 'patientId');
  const p = await fkc.read({ resourceType: 'Patient', id: state.patientId });
  assert(p.resourceType === 'Patient' && p.id === state.patientId, `got ${p.resourceType}/${p.id}`);
  return `Patient/${p.id}`;
});

// Clinical data needs the clinician's consent to view: record it with the
// system token, then take a patient-context token bound to it.
await check('consent to view recorded (POST /Consent), patient-context token issued', async () => {
  needs('token', 'patientId');
  const res = await fetch(`${base}/Consent`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', authorization: `Bearer ${state.token}` },
    body: JSON.stringify({
      resourceType: 'Consent', status: 'active',
      patient: { reference: `Patient/${state.patientId}` },
      performer: [{ identifier: { system: 'https://fhir.nhs.uk/Id/sds-user-id', value: clinician } }],
    }),
  });
  const consent = await res.json();
  assert(res.status === 201 && consent.resourceType === 'Consent' && consent.id, `POST /Consent: HTTP ${res.status}`);
  const { status, body } = await requestToken(await assertion({ version: '1', subject_id: clinician, consent_reference: [consent.id] }), 'patient/*.rs');
  assert(status === 200 && body.access_token, `patient token: HTTP ${status} ${body.error ?? ''} ${body.error_description ?? ''}`);
  const claims = decodeJwt(body.access_token);
  assert(claims.patient === state.patientId, `token patient ${claims.patient}`);
  state.ptoken = body.access_token;
  return `Consent/${consent.id}, token narrowed to: ${body.scope}`;
});

const fkcp = new Client({ baseUrl: base, bearerToken: state.ptoken });

await check('fhir-kit-client: Conditions, following next with nextPage', async () => {
  needs('ptoken', 'patientId');
  const first = await fkcp.search({ resourceType: 'Condition', searchParams: { patient: state.patientId, _count: '10' } });
  assert(first.resourceType === 'Bundle', `got ${first.resourceType}`);
  assert(typeof first.total === 'number' && first.total > 10, `total ${first.total}: too few to page`);
  assert(first.link?.some((l) => l.relation === 'next'), 'no next link');
  const seen = new Set();
  let page = first;
  let pages = 0;
  while (page) {
    pages++;
    for (const e of page.entry ?? []) {
      if (e.search?.mode === 'outcome') continue;
      assert(e.resource?.resourceType === 'Condition', `a ${e.resource?.resourceType} in a Condition search`);
      assert(!seen.has(e.resource.id), `Condition ${e.resource.id} on two pages`);
      seen.add(e.resource.id);
    }
    page = await fkcp.nextPage({ bundle: page });
    assert(pages < 1000, 'too many pages');
  }
  assert(pages >= 2, `${pages} page(s)`);
  assert(seen.size === first.total, `${seen.size} Conditions over the pages, total ${first.total}`);
  state.conditions = first.total;
  return `${seen.size} Conditions over ${pages} pages`;
});

await check('fhir-kit-client: Observation search answers a searchset', async () => {
  needs('ptoken', 'patientId');
  const b = await fkcp.search({ resourceType: 'Observation', searchParams: { patient: state.patientId, _count: '5' } });
  assert(b.resourceType === 'Bundle' && (b.entry ?? []).every((e) => e.search?.mode === 'outcome' || e.resource?.resourceType === 'Observation'), 'not a searchset of Observations');
  return `total ${b.total}`;
});

// ---- fhirclient (SMART's JS client) ---------------------------------------

// fhirclient's Node entry takes the incoming request (with a session, where
// its ServerStorage keeps state) and response of a web app; a backend
// service has neither, so it gets a stand-in with an empty session.
const FHIR = smart({ headers: {}, socket: {}, url: '/', session: {} }, {});
const fc = FHIR.client({ serverUrl: base, tokenResponse: { access_token: state.ptoken, token_type: 'bearer', scope: 'patient/*.rs' } });

await check('fhirclient: request Patient?identifier=', async () => {
  needs('ptoken', 'patientId');
  const b = await fc.request(`Patient?identifier=${encodeURIComponent(`${NHS_SYSTEM}|${nhs}`)}`);
  assert(b.resourceType === 'Bundle', `got ${b.resourceType}`);
  const ids = (b.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === 'Patient').map((r) => r.id);
  assert(ids.length === 1 && ids[0] === state.patientId, `Patients ${ids}`);
  return `Patient/${ids[0]}`;
});

await check('fhirclient: request Condition search with pageLimit: 0 (all pages)', async () => {
  needs('ptoken', 'patientId');
  const pages = await fc.request(`Condition?patient=${state.patientId}&_count=10`, { pageLimit: 0 });
  assert(Array.isArray(pages), 'pageLimit: 0 did not give an array of pages');
  const ids = new Set();
  for (const p of pages) {
    assert(p.resourceType === 'Bundle', `a page is a ${p.resourceType}`);
    for (const e of p.entry ?? []) if (e.resource?.resourceType === 'Condition') ids.add(e.resource.id);
  }
  assert(pages.length >= 2, `${pages.length} page(s)`);
  assert(ids.size === pages[0].total, `${ids.size} distinct Conditions, total ${pages[0].total}`);
  if (state.conditions !== undefined) assert(ids.size === state.conditions, `fhir-kit-client saw ${state.conditions}`);
  return `${ids.size} Conditions over ${pages.length} pages`;
});

await check('fhirclient: $everything, pageLimit: 0 and flat', async () => {
  needs('ptoken', 'patientId');
  const count = 200;
  const first = await fc.request(`Patient/${state.patientId}/$everything?_count=${count}`);
  assert(first.resourceType === 'Bundle' && typeof first.total === 'number', 'no searchset');
  const all = await fc.request(`Patient/${state.patientId}/$everything?_count=${count}`, { pageLimit: 0, flat: true });
  assert(Array.isArray(all), 'flat did not give an array of resources');
  const matches = all.filter((r) => r && r.resourceType !== 'OperationOutcome');
  assert(matches.length === first.total, `${matches.length} resources, total ${first.total}`);
  assert(matches.some((r) => r.resourceType === 'Patient' && r.id === state.patientId), 'the Patient is not in $everything');
  return `${matches.length} resources over ${Math.ceil(first.total / count)} pages`;
});

await check('fhirclient: a forged token is refused (401)', async () => {
  needs('token');
  const forged = FHIR.client({ serverUrl: base, tokenResponse: { access_token: `${state.token.split('.').slice(0, 2).join('.')}.AAAA` } });
  try {
    await forged.request(`Patient?identifier=${encodeURIComponent(`${NHS_SYSTEM}|${nhs}`)}`);
  } catch (err) {
    assert(statusOf(err) === 401, `status ${statusOf(err)}`);
    return '401';
  }
  throw new Error('a token with a bad signature was accepted');
});

console.log(`${failed === 0 ? 'ok' : 'FAILED'}: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

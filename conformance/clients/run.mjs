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
// pageLimit: 0; MedplumClient (@medplum/core) reads, searches and pages the
// same record. Each library makes its natural calls, as its documentation
// shows them: operation('everything') with its default method (POST),
// nextPage to the end, compartment search, POST _search, _include,
// _summary=count. One PASS/FAIL line per check; exit status 1 if any
// failed. Nothing here prints the token or patient data.

import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK, decodeJwt, decodeProtectedHeader } from 'jose';
import { Client } from 'fhir-kit-client';
import smart from 'fhirclient';
import { MedplumClient } from '@medplum/core';

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

await check("fhir-kit-client: operation('everything') (default method POST), nextPage to the end", async () => {
  needs('ptoken', 'patientId');
  const first = await fkcp.operation({ name: 'everything', resourceType: 'Patient', id: state.patientId });
  assert(first.resourceType === 'Bundle' && first.type === 'searchset', `got ${first.resourceType}/${first.type}`);
  assert(typeof first.total === 'number' && first.total > (first.entry ?? []).length, `total ${first.total}: too few to page`);
  const seen = new Set();
  let page = first;
  let pages = 0;
  while (page) {
    pages++;
    for (const e of page.entry ?? []) {
      if (e.search?.mode === 'outcome') continue;
      const key = `${e.resource.resourceType}/${e.resource.id}`;
      assert(!seen.has(key), `${key} on two pages`);
      seen.add(key);
    }
    page = await fkcp.nextPage({ bundle: page });
    assert(pages < 1000, 'too many pages');
  }
  assert(seen.size === first.total, `${seen.size} resources over the pages, total ${first.total}`);
  assert(seen.has(`Patient/${state.patientId}`), 'the Patient is not in $everything');
  state.everything = first.total;
  return `${seen.size} resources over ${pages} pages`;
});

await check('fhir-kit-client: compartment search Patient/{id}/Condition', async () => {
  needs('ptoken', 'patientId');
  const b = await fkcp.search({ resourceType: 'Condition', compartment: { resourceType: 'Patient', id: state.patientId }, searchParams: { _count: '5' } });
  assert(b.resourceType === 'Bundle' && b.type === 'searchset', `got ${b.resourceType}/${b.type}`);
  if (state.conditions !== undefined) assert(b.total === state.conditions, `total ${b.total}, Condition?patient= gave ${state.conditions}`);
  const next = b.link?.find((l) => l.relation === 'next')?.url;
  assert(next, 'no next link');
  const p2 = await fkcp.nextPage({ bundle: b });
  assert((p2.entry ?? []).every((e) => e.search?.mode === 'outcome' || e.resource?.resourceType === 'Condition'), 'page 2 is not Conditions');
  return `total ${b.total}, paged`;
});

await check('fhir-kit-client: search with postSearch (POST Condition/_search)', async () => {
  needs('ptoken', 'patientId');
  const b = await fkcp.search({ resourceType: 'Condition', searchParams: { patient: state.patientId, _count: '3' }, options: { postSearch: true } });
  assert(b.resourceType === 'Bundle' && b.type === 'searchset', `got ${b.resourceType}/${b.type}`);
  if (state.conditions !== undefined) assert(b.total === state.conditions, `total ${b.total}, GET gave ${state.conditions}`);
  return `total ${b.total}`;
});

await check('fhir-kit-client: _include=MedicationRequest:medication', async () => {
  needs('ptoken', 'patientId');
  const b = await fkcp.search({ resourceType: 'MedicationRequest', searchParams: { patient: state.patientId, _count: '20', _include: 'MedicationRequest:medication' } });
  const matches = (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource);
  const included = new Set((b.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => `${e.resource.resourceType}/${e.resource.id}`));
  assert(matches.length > 0, 'no MedicationRequests');
  const refs = matches.map((m) => m.medicationReference?.reference).filter(Boolean);
  assert(refs.length > 0, 'no medicationReference to include');
  for (const r of refs) assert(included.has(r), `${r} not included`);
  return `${matches.length} matches, ${included.size} Medications included`;
});

await check('fhir-kit-client: _summary=count', async () => {
  needs('ptoken', 'patientId');
  const b = await fkcp.search({ resourceType: 'Observation', searchParams: { patient: state.patientId, _summary: 'count' } });
  assert(b.resourceType === 'Bundle' && typeof b.total === 'number' && b.total > 0, `total ${b.total}`);
  assert(!(b.entry ?? []).some((e) => e.search?.mode === 'match'), 'entries in a count');
  return `total ${b.total}, no entries`;
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

// A patient-context client, as a SMART app holds after launch: the token
// response names the patient, and client.patient.request searches it.
const fcp = FHIR.client({ serverUrl: base, tokenResponse: { access_token: state.ptoken, token_type: 'bearer', scope: 'patient/*.rs', patient: state.patientId } });

await check('fhirclient: client.patient.read and patient.request (compartment via the CapabilityStatement)', async () => {
  needs('ptoken', 'patientId');
  const p = await fcp.patient.read();
  assert(p.resourceType === 'Patient' && p.id === state.patientId, `got ${p.resourceType}/${p.id}`);
  const pages = await fcp.patient.request('Condition?_count=50', { pageLimit: 0 });
  const ids = new Set(pages.flatMap((b) => (b.entry ?? []).filter((e) => e.resource?.resourceType === 'Condition').map((e) => e.resource.id)));
  if (state.conditions !== undefined) assert(ids.size === state.conditions, `${ids.size} Conditions, total ${state.conditions}`);
  return `${ids.size} Conditions over ${pages.length} pages`;
});

await check('fhirclient: resolveReferences medicationReference, _summary=count', async () => {
  needs('ptoken', 'patientId');
  const b = await fcp.request(`MedicationRequest?patient=${state.patientId}&_count=5`, { resolveReferences: ['medicationReference'], graph: true });
  const reqs = (b.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === 'MedicationRequest');
  assert(reqs.length > 0, 'no MedicationRequests');
  const resolved = reqs.filter((r) => r.medicationReference?.resourceType === 'Medication');
  assert(resolved.length === reqs.filter((r) => r.medicationReference).length, `${resolved.length} of ${reqs.length} references resolved`);
  const c = await fcp.request(`Observation?patient=${state.patientId}&_summary=count`);
  assert(typeof c.total === 'number' && !(c.entry ?? []).length, 'not a count');
  return `${resolved.length} Medications resolved; ${c.total} Observations counted`;
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

// ---- MedplumClient (@medplum/core) ---------------------------------------

// gpgate serves FHIR at its base URL (no fhir/R4 path) and issues tokens by
// SMART Backend Services, so the client is given the base and the token.
const medplum = new MedplumClient({ baseUrl: `${base}/`, fhirUrlPath: '', fetch: globalThis.fetch.bind(globalThis) });
if (state.ptoken) medplum.setAccessToken(state.ptoken);

await check('MedplumClient: readResource Patient, readPatientEverything', async () => {
  needs('ptoken', 'patientId');
  const p = await medplum.readResource('Patient', state.patientId);
  assert(p.resourceType === 'Patient' && p.id === state.patientId, `got ${p.resourceType}/${p.id}`);
  const b = await medplum.readPatientEverything(state.patientId);
  assert(b.resourceType === 'Bundle' && b.type === 'searchset', `got ${b.resourceType}/${b.type}`);
  if (state.everything !== undefined) assert(b.total === state.everything, `total ${b.total}, fhir-kit-client saw ${state.everything}`);
  return `$everything total ${b.total}`;
});

await check('MedplumClient: searchResourcePages to the end', async () => {
  needs('ptoken', 'patientId');
  const ids = new Set();
  let pages = 0;
  for await (const page of medplum.searchResourcePages('Condition', { patient: state.patientId, _count: 25 })) {
    pages++;
    for (const r of page) {
      assert(r.resourceType === 'Condition', `a ${r.resourceType}`);
      assert(!ids.has(r.id), `Condition ${r.id} twice`);
      ids.add(r.id);
    }
    assert(pages < 1000, 'too many pages');
  }
  if (state.conditions !== undefined) assert(ids.size === state.conditions, `${ids.size} Conditions, total ${state.conditions}`);
  return `${ids.size} Conditions over ${pages} pages`;
});

await check('MedplumClient: search _summary=count, _include, _elements', async () => {
  needs('ptoken', 'patientId');
  const count = await medplum.search('Observation', { patient: state.patientId, _summary: 'count' });
  assert(typeof count.total === 'number' && count.total > 0 && !(count.entry ?? []).length, `count ${count.total}`);
  const inc = await medplum.search('MedicationStatement', { patient: state.patientId, _count: 10, _include: 'MedicationStatement:medication' });
  const included = (inc.entry ?? []).filter((e) => e.search?.mode === 'include');
  assert(included.length > 0 && included.every((e) => e.resource.resourceType === 'Medication'), `${included.length} included`);
  const el = await medplum.searchResources('Condition', { patient: state.patientId, _count: 5, _elements: 'code' });
  assert(el.length > 0 && el.every((r) => r.code && !r.onsetDateTime && r.meta?.tag?.some((t) => t.code === 'SUBSETTED')), 'not subsetted');
  return `${count.total} Observations; ${included.length} Medications included; _elements subsetted`;
});

console.log(`${failed === 0 ? 'ok' : 'FAILED'}: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

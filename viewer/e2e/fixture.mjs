// The fixture of the end-to-end tests against a real `gpgate serve` (see
// run.sh): which demo patients play which part, the accounts, and where the
// server is. Used by run.sh in two steps:
//
//   node fixture.mjs plan DEMO-SUMMARY.json     shell assignments (eval) naming
//                                                the patients and practices
//   node fixture.mjs write                       the fixture JSON, from the
//                                                environment run.sh exports
import fs from 'node:fs';

// The record views, in the viewer's order.
export const VIEWS = ['summary', 'problems', 'diagnoses', 'medication', 'allergies', 'risks', 'procedures',
  'investigations', 'examination', 'immunisations', 'events'];

// checkDigit is the NHS number's Modulus 11 check digit of nine digits, or
// null when none exists (remainder 10).
export function checkDigit(nine) {
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(nine[i]) * (10 - i);
  const c = 11 - (sum % 11);
  if (c === 10) return null;
  return String(c === 11 ? 0 : c);
}

export const validNHS = (n) => /^\d{10}$/.test(n) && checkDigit(n.slice(0, 9)) === n[9];

const spaced = (n) => `${n.slice(0, 3)} ${n.slice(3, 6)} ${n.slice(6)}`;

// plan picks the parts from the demo summary: the largest record (full
// agreement, most readings), the dissenting patient, a patient at a third
// practice (whose agreement with the clinician's organisation run.sh ends),
// the number that fails Modulus 11, and a valid number no one has.
function plan(summaryPath) {
  const s = JSON.parse(fs.readFileSync(summaryPath, 'utf8'));
  const by = (k) => s.notable.find((n) => n.kind === k);
  const full = by('largest');
  const dissent = by('dissent');
  const invalid = by('invalid-nhs-number');
  if (!full || !dissent || !invalid) throw new Error('the demo region lacks a largest, dissent or invalid-nhs-number patient: use --patients 8 or more');
  if (dissent.practice === full.practice) throw new Error('the dissenting and the full patient share a practice: use --practices 3 or more');
  if (validNHS(invalid.nhs)) throw new Error('the invalid-nhs-number patient passes Modulus 11');
  const other = s.notable.find((n) => ![full.practice, dissent.practice].includes(n.practice) && validNHS(n.nhs));
  if (!other) throw new Error('no patient at a third practice: use --practices 3 or more');
  const taken = new Set(s.notable.map((n) => n.nhs));
  let unknown = '';
  // Demo numbers are 999 000 00x + a check digit, in patient order (numbers
  // without a check digit skipped): one well past the region's size is no one's.
  for (let i = 999000000 + 2 * s.patients + 1000; !unknown; i++) {
    const nine = String(i).padStart(9, '0');
    const c = checkDigit(nine);
    if (c !== null && !taken.has(nine + c)) unknown = nine + c;
  }
  const out = {
    FULL_NHS: full.nhs, FULL_PRACTICE: full.practice, DISSENT_NHS: dissent.nhs, DISSENT_PRACTICE: dissent.practice,
    OTHER_NHS: other.nhs, OTHER_PRACTICE: other.practice, INVALID_NHS: invalid.nhs, UNKNOWN_NHS: unknown,
  };
  for (const [k, v] of Object.entries(out)) {
    if (!/^[A-Z0-9]+$/.test(v)) throw new Error(`unexpected ${k}`);
    console.log(`${k}=${v}`);
  }
  // identifiers the server's log must never carry
  const ids = s.notable.flatMap((n) => [n.nhs, n.patientId]).filter((x) => /^[A-Za-z0-9]+$/.test(x));
  console.log(`PATIENT_IDENTIFIERS='${ids.join('|')}'`);
}

// write assembles the fixture from the environment run.sh sets.
function write() {
  const env = (k) => {
    const v = process.env[k];
    if (!v) throw new Error(`${k} is not set`);
    return v;
  };
  const user = (prefix) => ({
    username: env(`${prefix}_USER`), password: env('E2E_PASSWORD'), sdsId: env(`${prefix}_SDS`), org: env(`${prefix}_ORG`),
  });
  const fx = {
    url: env('VIEWER_URL'),
    fhirBase: env('FHIR_BASE'),
    server: 'gpgate',
    users: {
      clinician: user('CLINICIAN'),
      limited: user('LIMITED'),
      summaryOnly: user('SUMMARY'),
      noBreakGlass: user('NOBG'),
      locked: user('LOCKED'),
    },
    patients: {
      full: spaced(env('FULL_NHS')),
      otherOrg: spaced(env('OTHER_NHS')),
      dissent: spaced(env('DISSENT_NHS')),
      unknown: spaced(env('UNKNOWN_NHS')),
      invalid: spaced(env('INVALID_NHS')),
    },
    // The limited user's organisation (RXX03) shares blood pressure only.
    notShared: VIEWS.filter((v) => v !== 'examination'),
    canaries: [],
    audit: {
      tokenCommand: [env('GPGATE_BIN'), 'token', '--base', env('FHIR_BASE'), '--client', 'demo-auditor',
        '--key', env('AUDITOR_KEY'), '--scope', 'system/AuditEvent.rs'],
    },
  };
  if (process.env.GP2GP_NHS) {
    fx.gp2gp = { patients: process.env.GP2GP_NHS.split(',').map(spaced), extracts: env('GP2GP_EXTRACTS').split(',') };
  }
  process.stdout.write(JSON.stringify(fx, null, 2) + '\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [cmd, arg] = process.argv.slice(2);
  if (cmd === 'plan') plan(arg);
  else if (cmd === 'write') write();
  else {
    console.error('usage: node fixture.mjs plan SUMMARY.json | write');
    process.exit(2);
  }
}

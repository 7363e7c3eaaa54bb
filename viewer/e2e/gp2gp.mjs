// freeTextOf reads a GP2GP EHR Extract (HL7v3 XML) and returns the free
// text it carries: the contents of its <text> elements (notes, narrative,
// comments, plan and pharmacy text), except a prescription's dosage
// instruction (pertinentMedicationDosage), which gpgate keeps. Strings
// shorter than 10 characters, and any that is also a coded term of the
// extract (a code's displayName or originalText, which may legitimately
// show), are left out, so a match on a page is free text and nothing else.
// A long string is looked for by its beginning too.
//
// A small scanner, not a full XML parser: the extracts are well-formed, and
// the tests need element nesting, text and attributes only.
const entities = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const decode = (s) => s.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (m, e) => {
  if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  return entities[e] ?? m;
});
const local = (name) => name.slice(name.indexOf(':') + 1);
const norm = (s) => s.replace(/\s+/g, ' ').trim();

export function freeTextOf(xml) {
  xml = xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<\?[\s\S]*?\?>/g, '').replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, (m, t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;'));
  const stack = [];
  const texts = []; // [parent element, text]
  const terms = new Set();
  const re = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  for (const m of xml.matchAll(re)) {
    const [, close, name, attrs, selfClose, chars] = m;
    if (chars !== undefined) {
      const top = stack[stack.length - 1];
      const t = norm(decode(chars));
      if (!t || !top) continue;
      if (top === 'text') texts.push([stack[stack.length - 2] ?? '', t]);
      if (top === 'originalText') terms.add(t);
      continue;
    }
    if (close) {
      stack.pop();
      continue;
    }
    for (const a of (attrs ?? '').matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      if (local(a[1]) === 'displayName') terms.add(norm(decode(a[2] ?? a[3])));
    }
    if (!selfClose) stack.push(local(name));
  }
  const out = new Set();
  for (const [parent, t] of texts) {
    if (parent === 'pertinentMedicationDosage' || t.length < 10) continue;
    if ([...terms].some((term) => term.includes(t))) continue;
    out.add(t);
    if (t.length > 48) out.add(t.slice(0, 40).trim()); // a long note, cut short, is still free text
  }
  return [...out];
}

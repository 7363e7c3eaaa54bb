// Progressive enhancement only: every page works without it, and the server
// checks everything again.
import { checkNHS } from './nhs.js';

function nhsField(form) {
  const input = form.querySelector('[data-nhs-input]');
  const error = form.querySelector('#nhs-error');
  if (!input || !error) return;
  const show = (msg) => {
    error.textContent = msg;
    if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
    input.closest('.field')?.classList.toggle('has-error', !!msg);
  };
  // as typed: only characters that cannot be part of an NHS number are flagged at once
  input.addEventListener('input', () => {
    const r = checkNHS(input.value);
    show(r.kind === 'chars' || r.kind === 'long' ? r.message : '');
  });
  input.addEventListener('blur', () => { if (input.value.trim()) show(checkNHS(input.value).message); });
  form.addEventListener('submit', (e) => {
    const r = checkNHS(input.value);
    if (r.message) { e.preventDefault(); show(r.message); input.focus(); }
  });
}

function consentForm(form) {
  const sync = () => {
    const basis = form.querySelector('input[name=basis]:checked')?.value || 'patient';
    for (const el of form.querySelectorAll('[data-for]')) el.hidden = el.dataset.for !== basis;
  };
  form.addEventListener('change', sync);
  sync();
}

for (const f of document.querySelectorAll('[data-nhs-form]')) nhsField(f);
for (const f of document.querySelectorAll('[data-consent-form]')) consentForm(f);
for (const b of document.querySelectorAll('[data-print]')) b.addEventListener('click', () => window.print());

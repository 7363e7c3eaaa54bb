// NHS number check as typed: ten digits, spaces allowed, Modulus 11 check
// digit. The same rules as the server (viewer/nhsinput.go).
export function checkNHS(value) {
  const s = value.replace(/[\s\u00a0\u202f]/g, '');
  if (s === '') return { kind: 'empty', message: "Enter the patient's NHS number." };
  if (!/^[0-9]+$/.test(s)) return { kind: 'chars', message: 'An NHS number has only digits (spaces are allowed between them).' };
  if (s.length > 10) return { kind: 'long', message: 'An NHS number has 10 digits. You entered more than 10.' };
  if (s.length < 10) return { kind: 'short', message: `An NHS number has 10 digits. You entered ${s.length}.` };
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(s[i]) * (10 - i);
  let check = 11 - (sum % 11);
  if (check === 11) check = 0;
  if (check === 10 || check !== Number(s[9])) {
    return { kind: 'check', message: 'This is not a valid NHS number: the last digit is a check digit and it does not match. Check the number and try again.' };
  }
  return { kind: 'ok', message: '' };
}

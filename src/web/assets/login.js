// The sign-in page: the password step (POST /auth/login in cookie mode), then, when the server asks for one, the
// second-factor step (POST /auth/mfa/verify; POST /auth/mfa/send for a new SMS code). Success goes to /chat.

import { api, errorText, fetchStatus, logPageView, showError } from './common.js';

const $ = (id) => document.getElementById(id);
const loginForm = $('login-form');
const mfaForm = $('mfa-form');
const errorRegion = $('login-error');
const infoRegion = $('login-info');
const METHODS = ['totp', 'sms', 'recovery'];

let mfaToken = null;

function info(text) {
  infoRegion.textContent = text || '';
}

function busy(form, on) {
  for (const button of form.querySelectorAll('button')) button.disabled = on;
}

function chosenMethod() {
  const checked = mfaForm.querySelector('input[name="mfa-method"]:checked');
  return checked ? checked.value : null;
}

function updateResend() {
  $('mfa-resend').hidden = chosenMethod() !== 'sms';
}

function showPasswordStep() {
  mfaToken = null;
  mfaForm.hidden = true;
  loginForm.hidden = false;
  $('password').value = '';
  $('password').focus();
}

function showMfaStep(token, methods) {
  mfaToken = token;
  const offered = METHODS.filter((m) => Array.isArray(methods) && methods.includes(m));
  for (const m of METHODS) {
    $(`mfa-choice-${m}`).hidden = !offered.includes(m);
    $(`mfa-method-${m}`).checked = false;
  }
  const first = offered[0] || 'totp';
  $(`mfa-choice-${first}`).hidden = false;
  $(`mfa-method-${first}`).checked = true;
  updateResend();
  $('mfa-code').value = '';
  loginForm.hidden = true;
  mfaForm.hidden = false;
  info(offered.includes('sms') ? 'If you chose SMS, a code was sent to your phone.' : '');
  $('mfa-code').focus();
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(errorRegion, '');
  info('');
  busy(loginForm, true);
  const result = await api('POST', '/auth/login', {
    username: $('username').value,
    password: $('password').value,
    mode: 'cookie',
  });
  busy(loginForm, false);
  if (!result.ok || !result.data) {
    showError(errorRegion, errorText(result));
    return;
  }
  if (result.data.mfa_required) {
    showMfaStep(result.data.mfa_token, result.data.methods);
    return;
  }
  location.assign('/chat');
});

mfaForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(errorRegion, '');
  busy(mfaForm, true);
  const result = await api('POST', '/auth/mfa/verify', {
    mfa_token: mfaToken,
    code: $('mfa-code').value.trim(),
    method: chosenMethod(),
  });
  busy(mfaForm, false);
  if (!result.ok) {
    showError(errorRegion, errorText(result));
    $('mfa-code').select();
    return;
  }
  location.assign('/chat');
});

for (const m of METHODS) $(`mfa-method-${m}`).addEventListener('change', updateResend);

$('mfa-resend').addEventListener('click', async () => {
  showError(errorRegion, '');
  info('');
  const result = await api('POST', '/auth/mfa/send', { mfa_token: mfaToken });
  if (result.ok) info('A new code was sent.');
  else showError(errorRegion, errorText(result));
});

$('mfa-back').addEventListener('click', () => {
  showError(errorRegion, '');
  info('');
  showPasswordStep();
});

// Already signed in: straight to the chat. Otherwise report the view (with the CSRF token when there is one).
const status = await fetchStatus();
if (status.authenticated) {
  location.replace('/chat');
} else {
  logPageView();
  $('username').focus();
}

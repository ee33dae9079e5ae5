// The settings page: second factors (GET /api/me/mfa; TOTP via POST /api/me/mfa/totp, its QR code from
// GET /api/me/mfa/totp/qr.svg, POST /api/me/mfa/totp/confirm; a phone via POST /api/me/phone and
// /api/me/phone/verify), the password (POST /api/me/password) and the caller's sessions (GET /api/me/sessions,
// DELETE /api/me/sessions/{id}, POST /auth/logout-all). Everything is built with textContent only.

import { api, el, errorText, fetchStatus, logPageView, showError } from './common.js';

const $ = (id) => document.getElementById(id);

/** Shows the server's error in `region`; a signed-out browser goes to /login. */
function fail(region, result) {
  if (result.status === 401) {
    location.replace('/login');
    return;
  }
  showError(region, errorText(result));
}

function when(value) {
  if (!value) return 'never';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

// --- Second factors --------------------------------------------------------------------------------------------

async function loadFactors() {
  const result = await api('GET', '/api/me/mfa');
  if (!result.ok) {
    fail($('totp-error'), result);
    return;
  }
  const factors = result.data.factors || {};
  if (factors.totp) {
    $('totp-state').textContent =
      `An authenticator app is set up (${factors.recovery_codes_remaining} recovery codes left).`;
    $('totp-start').hidden = true;
  } else {
    $('totp-state').textContent = 'No authenticator app is set up.';
  }
  const phone = factors.phone;
  if (phone && phone.verified) {
    $('phone-state').textContent = `Verified phone: ${phone.number}.`;
    $('phone-form').hidden = true;
  } else if (phone) {
    $('phone-state').textContent = `A code was sent to ${phone.number}; it is not verified yet.`;
  } else {
    $('phone-state').textContent = 'No phone is enrolled.';
  }
}

$('totp-start').addEventListener('click', async () => {
  showError($('totp-error'), '');
  const result = await api('POST', '/api/me/mfa/totp', {});
  if (!result.ok) {
    fail($('totp-error'), result);
    return;
  }
  $('totp-secret').textContent = result.data.secret;
  // A new query each time: the browser must not show the QR code of an earlier enrolment.
  $('totp-qr').src = `/api/me/mfa/totp/qr.svg?t=${Date.now()}`;
  $('totp-enrol').hidden = false;
  $('totp-start').textContent = 'Start again with a new key';
  $('totp-code').focus();
});

$('totp-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError($('totp-error'), '');
  const result = await api('POST', '/api/me/mfa/totp/confirm', { code: $('totp-code').value.trim() });
  if (!result.ok) {
    fail($('totp-error'), result);
    return;
  }
  $('recovery-codes').replaceChildren(...(result.data.recovery_codes || []).map((c) => el('li', {}, el('code', {}, c))));
  $('totp-enrol').hidden = true;
  $('totp-secret').textContent = '';
  $('totp-qr').removeAttribute('src');
  $('totp-recovery').hidden = false;
  await loadFactors();
});

$('phone-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError($('phone-error'), '');
  const result = await api('POST', '/api/me/phone', { phone_number: $('phone-number').value.trim() });
  if (!result.ok) {
    fail($('phone-error'), result);
    return;
  }
  $('phone-state').textContent = `A code was sent to ${result.data.phone_number}.`;
  $('phone-verify-form').hidden = false;
  $('phone-code').focus();
});

$('phone-verify-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError($('phone-error'), '');
  const result = await api('POST', '/api/me/phone/verify', { code: $('phone-code').value.trim() });
  if (!result.ok) {
    fail($('phone-error'), result);
    return;
  }
  $('phone-verify-form').hidden = true;
  await loadFactors();
});

// --- Password --------------------------------------------------------------------------------------------------

$('password-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError($('password-error'), '');
  $('password-info').textContent = '';
  const current = $('current-password').value;
  const next = $('new-password').value;
  if (next !== $('repeat-password').value) {
    showError($('password-error'), 'The new passwords do not match.');
    return;
  }
  const result = await api('POST', '/api/me/password', { current_password: current, new_password: next });
  if (!result.ok) {
    // A wrong current password is a 401 too: say so here rather than leave the page.
    showError($('password-error'), errorText(result));
    return;
  }
  $('password-form').reset();
  $('password-info').textContent = result.data.message || 'Password changed.';
  await loadDevices();
});

// --- Sessions --------------------------------------------------------------------------------------------------

function deviceItem(session) {
  const agent = session.user_agent || (session.kind === 'service' ? 'Service client' : 'Unknown device');
  const times = `Signed in ${when(session.created_at)} · last active ${when(session.last_seen_at)}` +
    (session.client_ip ? ` · from ${session.client_ip}` : '');
  const item = el(
    'li',
    { dataset: { sessionId: session.id } },
    el('span', { className: 'device-agent' }, agent),
    el('span', { className: 'device-times' }, times),
  );
  if (session.current) {
    item.append(el('strong', { className: 'device-current' }, 'This session'));
  } else {
    const revoke = el(
      'button',
      { type: 'button', className: 'device-revoke secondary', 'aria-label': `Revoke the session of ${agent}` },
      'Revoke',
    );
    revoke.addEventListener('click', () => revokeDevice(session.id));
    item.append(revoke);
  }
  return item;
}

async function loadDevices() {
  const result = await api('GET', '/api/me/sessions');
  if (!result.ok) {
    fail($('devices-error'), result);
    return;
  }
  const sessions = result.data.sessions || [];
  $('device-list').replaceChildren(...sessions.map(deviceItem));
}

async function revokeDevice(id) {
  showError($('devices-error'), '');
  const result = await api('DELETE', `/api/me/sessions/${encodeURIComponent(id)}`);
  if (!result.ok) {
    fail($('devices-error'), result);
    return;
  }
  $('devices-info').textContent = 'Session revoked.';
  await loadDevices();
}

$('sign-out-everywhere').addEventListener('click', async () => {
  await api('POST', '/auth/logout-all', {});
  location.replace('/login');
});

$('sign-out').addEventListener('click', async () => {
  await api('POST', '/auth/logout', {});
  location.replace('/login');
});

const status = await fetchStatus();
if (!status.authenticated) {
  location.replace('/login');
} else {
  $('user-name').textContent = status.username || '';
  logPageView();
  await Promise.all([loadFactors(), loadDevices()]);
}

// Drives Debian's Chromium (headless) through Warden's pages for tests/api/ui.rs, and prints one JSON report on
// standard output: the steps done, and everything that must stay empty (console errors, page errors, CSP
// violations, requests to any other host, serious or critical axe-core findings). The Rust test asserts on it.
//
//   node tests/browser/run.cjs '{"base": "http://127.0.0.1:PORT", "scenario": "sign_in_and_chat",
//                               "username": "...", "password": "...", "screenshots": "DIR"}'
//
// playwright-core and axe-core come from NODE_PATH (.ci/run installs them from tests/browser/package-lock.json).
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const config = JSON.parse(process.argv[2]);
const origin = new URL(config.base).origin;
const report = {
  steps: [],
  consoleErrors: [],
  pageErrors: [],
  cspViolations: [],
  foreignRequests: [],
  failedResponses: [],
  axe: {},
  screenshots: [],
  error: null,
};
const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
];
const STEP_TIMEOUT = 30000;

function step(name) {
  report.steps.push(name);
}

function watch(page) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const text = msg.text();
      // Chromium logs every 4xx/5xx answer as "Failed to load resource"; those are in failedResponses, where the
      // test compares them with the ones the scenario expects (a wrong password's 401).
      if (text.startsWith('Failed to load resource')) return;
      (text.includes('Content Security Policy') ? report.cspViolations : report.consoleErrors).push(text);
    }
  });
  page.on('response', (res) => {
    if (res.status() >= 400) {
      report.failedResponses.push(`${res.request().method()} ${new URL(res.url()).pathname} ${res.status()}`);
    }
  });
  page.on('pageerror', (err) => report.pageErrors.push(String(err)));
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin) {
      report.foreignRequests.push(url);
    }
  });
  page.on('dialog', (dialog) => dialog.accept());
}

// Every page is audited and photographed in both colour schemes (contrast differs); the page is left light.
const SCHEMES = ['light', 'dark'];

// axe-core run through the DevTools protocol, so the page's CSP (no inline script) does not block it.
async function audit(page, name) {
  await page.evaluate(axeSource);
  for (const scheme of SCHEMES) {
    await page.emulateMedia({ colorScheme: scheme });
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    report.axe[scheme === 'light' ? name : `${name}-dark`] = result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

async function shoot(page, name) {
  for (const scheme of SCHEMES) {
    await page.emulateMedia({ colorScheme: scheme });
    const suffix = scheme === 'light' ? '' : '-dark';
    for (const vp of VIEWPORTS) {
      await page.setViewportSize({ width: vp.width, height: vp.height });
      const file = path.join(config.screenshots, `${name}${suffix}-${vp.width}x${vp.height}.png`);
      await page.screenshot({ path: file, fullPage: false });
      report.screenshots.push(file);
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: VIEWPORTS[0].width, height: VIEWPORTS[0].height });
}

/** The page's icon as the browser would fetch it: {href, status, type}. */
function favicon(page) {
  return page.evaluate(async () => {
    const link = document.querySelector('link[rel="icon"]');
    if (!link) return null;
    const r = await fetch(link.href);
    return { href: new URL(link.href).pathname, status: r.status, type: r.headers.get('content-type') };
  });
}

async function signInAndChat(page) {
  await page.goto(`${config.base}/chat`);
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  step('signed-out browser sent to /login');
  report.favicon = await favicon(page);
  await audit(page, 'login');
  await shoot(page, 'login');

  await page.fill('#username', config.username);
  await page.fill('#password', 'not-the-password');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.trim() !== '', null, {
    timeout: STEP_TIMEOUT,
  });
  report.wrongPasswordMessage = (await page.textContent('#login-error')).trim();
  step('wrong password refused with a message');

  await page.fill('#password', config.password);
  await page.click('#login-submit');
  await page.waitForURL(/\/chat$/, { timeout: STEP_TIMEOUT });
  await page.waitForFunction(() => document.querySelector('#user-name').textContent.trim() !== '', null, {
    timeout: STEP_TIMEOUT,
  });
  report.userName = (await page.textContent('#user-name')).trim();
  step('signed in and on /chat');

  await page.click('#new-session');
  await page.waitForSelector('#session-list li[data-session-id]', { timeout: STEP_TIMEOUT });
  step('new conversation');

  await page.fill('#message-input', config.message);
  await page.click('#send');
  await page.waitForSelector('.message.assistant:not([aria-busy="true"])', { timeout: STEP_TIMEOUT });
  await page.waitForFunction(
    () => {
      const all = document.querySelectorAll('.message.assistant');
      const last = all[all.length - 1];
      return last && last.getAttribute('aria-busy') !== 'true' && last.textContent.trim() !== '';
    },
    null,
    { timeout: STEP_TIMEOUT },
  );
  report.answer = await page.evaluate(() => {
    const all = document.querySelectorAll('.message.assistant');
    return all[all.length - 1].textContent.trim();
  });
  report.toolCards = await page.$$eval('.tool-card', (cards) =>
    cards.map((c) => ({
      name: (c.querySelector('.tool-name') || {}).textContent || '',
      status: (c.querySelector('.tool-status') || {}).textContent || '',
      result: (c.querySelector('.tool-result') || {}).textContent || '',
    })),
  );
  step('answer streamed with its tool card');
  await audit(page, 'chat');
  await shoot(page, 'chat');

  await page.click('#session-list li[data-session-id] button.session-delete');
  await page.waitForFunction(() => document.querySelectorAll('#session-list li[data-session-id]').length === 0, null, {
    timeout: STEP_TIMEOUT,
  });
  step('conversation deleted');

  await page.click('#sign-out');
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  await page.goto(`${config.base}/chat`);
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  step('signed out: /chat sends the browser back to /login');
}

async function signIn(page) {
  await page.goto(`${config.base}/login`);
  await page.fill('#username', config.username);
  await page.fill('#password', config.password);
  await page.click('#login-submit');
  await page.waitForURL(/\/chat$/, { timeout: STEP_TIMEOUT });
  step('signed in');
}

// A model answer full of markup that would run script if it were rendered as HTML: it must arrive as text.
async function hostileMarkdown(page) {
  await signIn(page);
  await page.click('#new-session');
  await page.waitForSelector('#session-list li[data-session-id]', { timeout: STEP_TIMEOUT });
  await page.fill('#message-input', config.message);
  await page.click('#send');
  await page.waitForFunction(
    () => {
      const all = document.querySelectorAll('.message.assistant');
      const last = all[all.length - 1];
      return last && last.getAttribute('aria-busy') !== 'true' && last.textContent.includes('end of answer');
    },
    null,
    { timeout: STEP_TIMEOUT },
  );
  step('hostile answer shown');
  // Anything that could have run gets a moment to do so.
  await page.waitForTimeout(300);
  report.rendered = await page.evaluate(() => {
    const log = document.querySelector('#messages');
    return {
      pwned: window.__pwned === undefined ? null : String(window.__pwned),
      elements: [...log.querySelectorAll('script, img, iframe, object, embed, svg, style, form')].map((e) => e.tagName),
      handlers: [...log.querySelectorAll('*')]
        .flatMap((e) => [...e.attributes].map((a) => a.name))
        .filter((n) => n.startsWith('on')),
      hrefs: [...log.querySelectorAll('a[href]')].map((a) => a.href),
      text: log.textContent,
    };
  });
  step('checked');
}

// The second-factor step: a wrong TOTP code is refused with a message, the right one signs in.
async function totpSignIn(page) {
  await page.goto(`${config.base}/login`);
  await page.fill('#username', config.username);
  await page.fill('#password', config.password);
  await page.click('#login-submit');
  await page.waitForSelector('#mfa-form:not([hidden])', { timeout: STEP_TIMEOUT });
  report.methods = await page.$$eval('#mfa-methods input[type=radio]', (radios) =>
    radios.filter((r) => !r.closest('[hidden]')).map((r) => r.value),
  );
  step('second factor asked');
  await audit(page, 'login-mfa');
  await shoot(page, 'login-mfa');
  await page.check('#mfa-method-totp');
  await page.fill('#mfa-code', config.wrongCode);
  await page.click('#mfa-submit');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.trim() !== '', null, {
    timeout: STEP_TIMEOUT,
  });
  report.wrongCodeMessage = (await page.textContent('#login-error')).trim();
  step('wrong code refused with a message');
  await page.fill('#mfa-code', config.code);
  await page.click('#mfa-submit');
  await page.waitForURL(/\/chat$/, { timeout: STEP_TIMEOUT });
  step('signed in with the code');
}

/** Sends `text` and waits until the turn's approval card appears; returns the card count. */
async function sendAndWaitForApproval(page, text, count) {
  await page.fill('#message-input', text);
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.approval-card').length === n, count, {
    timeout: STEP_TIMEOUT,
  });
}

async function lastAnswerDone(page) {
  await page.waitForFunction(
    () => {
      const all = document.querySelectorAll('.message.assistant');
      const last = all[all.length - 1];
      return last && last.getAttribute('aria-busy') !== 'true' && last.textContent.trim() !== '';
    },
    null,
    { timeout: STEP_TIMEOUT },
  );
  return page.evaluate(() => {
    const all = document.querySelectorAll('.message.assistant');
    return all[all.length - 1].textContent.trim();
  });
}

// An `ask` tool: the first call is approved and runs, the second is refused and does not.
async function approvals(page) {
  await signIn(page);
  await page.click('#new-session');
  await page.waitForSelector('#session-list li[data-session-id]', { timeout: STEP_TIMEOUT });
  await sendAndWaitForApproval(page, config.firstMessage, 1);
  step('approval asked');
  await audit(page, 'chat-approval');
  await shoot(page, 'chat-approval');
  await page.locator('.approval-card').nth(0).locator('button.approve').click();
  report.approvedAnswer = await lastAnswerDone(page);
  step('approved call ran');
  await sendAndWaitForApproval(page, config.secondMessage, 2);
  await page.locator('.approval-card').nth(1).locator('button.refuse').click();
  report.refusedAnswer = await lastAnswerDone(page);
  step('refused call did not run');
  report.toolCards = await page.$$eval('.tool-card', (cards) =>
    cards.map((c) => ({
      name: (c.querySelector('.tool-name') || {}).textContent || '',
      status: (c.querySelector('.tool-status') || {}).textContent || '',
      result: (c.querySelector('.tool-result') || {}).textContent || '',
    })),
  );
}

/** The TOTP code of a base32 `secret` at unix time `secs` (RFC 6238: SHA-1, 30 s, 6 digits). */
function totpCode(secret, secs) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(secs / 30)));
  const mac = require('crypto').createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, '0');
}

// The settings page: TOTP enrolment (QR code, confirmation, recovery codes), a phone code sent, the other
// session revoked, a password change (mismatch and wrong current password refused first), sign out everywhere.
async function settings(page) {
  await signIn(page);
  await page.click('#settings-link');
  await page.waitForURL(/\/settings$/, { timeout: STEP_TIMEOUT });
  await page.waitForFunction(() => document.querySelectorAll('#device-list li[data-session-id]').length >= 2, null, {
    timeout: STEP_TIMEOUT,
  });
  report.sessionsBefore = await page.locator('#device-list li[data-session-id]').count();
  report.currentMarked = await page.locator('#device-list li .device-current').count();
  step('settings open with the sessions listed');
  await audit(page, 'settings');
  await shoot(page, 'settings');

  await page.click('#totp-start');
  await page.waitForFunction(() => document.querySelector('#totp-secret').textContent.trim() !== '', null, {
    timeout: STEP_TIMEOUT,
  });
  await page.waitForFunction(
    () => {
      const img = document.querySelector('#totp-qr');
      return img.complete && img.naturalWidth > 0;
    },
    null,
    { timeout: STEP_TIMEOUT },
  );
  report.qrWidth = await page.$eval('#totp-qr', (img) => img.naturalWidth);
  const secret = (await page.textContent('#totp-secret')).trim();
  report.secretLength = secret.length;
  step('authenticator started: key and QR code shown');
  await audit(page, 'settings-totp');
  await shoot(page, 'settings-totp');
  await page.fill('#totp-code', totpCode(secret, config.nowSecs));
  await page.click('#totp-confirm');
  await page.waitForFunction(() => document.querySelectorAll('#recovery-codes li').length > 0, null, {
    timeout: STEP_TIMEOUT,
  });
  report.recoveryCodes = await page.$$eval('#recovery-codes li', (items) => items.map((li) => li.textContent.trim()));
  report.totpState = (await page.textContent('#totp-state')).trim();
  step('authenticator confirmed: recovery codes shown');

  await page.fill('#phone-number', config.phone);
  await page.click('#phone-submit');
  await page.waitForSelector('#phone-verify-form:not([hidden])', { timeout: STEP_TIMEOUT });
  report.phoneState = (await page.textContent('#phone-state')).trim();
  step('phone code sent');

  await page.click('#device-list li:not(:has(.device-current)) button.device-revoke');
  await page.waitForFunction(() => document.querySelectorAll('#device-list li[data-session-id]').length === 1, null, {
    timeout: STEP_TIMEOUT,
  });
  report.sessionsAfter = await page.locator('#device-list li[data-session-id]').count();
  step('other session revoked');

  await page.fill('#current-password', config.password);
  await page.fill('#new-password', config.newPassword);
  await page.fill('#repeat-password', `${config.newPassword}x`);
  await page.click('#password-submit');
  await page.waitForFunction(() => document.querySelector('#password-error').textContent.trim() !== '', null, {
    timeout: STEP_TIMEOUT,
  });
  report.mismatchMessage = (await page.textContent('#password-error')).trim();
  await page.fill('#current-password', 'not-the-password');
  await page.fill('#repeat-password', config.newPassword);
  await page.click('#password-submit');
  await page.waitForFunction(
    (before) => {
      const text = document.querySelector('#password-error').textContent.trim();
      return text !== '' && text !== before;
    },
    report.mismatchMessage,
    { timeout: STEP_TIMEOUT },
  );
  report.wrongPasswordMessage = (await page.textContent('#password-error')).trim();
  await page.fill('#current-password', config.password);
  await page.fill('#new-password', config.newPassword);
  await page.fill('#repeat-password', config.newPassword);
  await page.click('#password-submit');
  await page.waitForFunction(() => document.querySelector('#password-info').textContent.trim() !== '', null, {
    timeout: STEP_TIMEOUT,
  });
  report.passwordError = (await page.textContent('#password-error')).trim();
  step('password changed after a mismatch and a wrong password were refused');
  await audit(page, 'settings-done');

  await page.click('#sign-out-everywhere');
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  await page.goto(`${config.base}/settings`);
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  step('signed out everywhere: /settings sends the browser back to /login');
}

// Benchmark (bench/ui.sh, not a test): what the chat page's first load transfers, and how long each streamed
// token takes from the model (`warden bench-llm` stamps its send time into the token, `t=<epoch ms>`) to the page.
async function firstToken(page) {
  const context = page.context();
  const login = await context.request.post(`${config.base}/auth/login`, {
    data: { username: config.username, password: config.password, mode: 'cookie' },
  });
  if (!login.ok()) throw new Error(`login answered ${login.status()}`);
  const loads = [];
  const onFinished = (req) => loads.push(req);
  page.on('requestfinished', onFinished);
  await page.goto(`${config.base}/chat`, { waitUntil: 'networkidle' });
  page.off('requestfinished', onFinished);
  let transfer = 0;
  for (const req of loads) {
    const sizes = await req.sizes();
    transfer += sizes.responseBodySize + sizes.responseHeadersSize;
  }
  report.firstLoad = { requests: loads.length, bytes: transfer };
  step('chat page loaded');
  await page.click('#new-session');
  await page.waitForSelector('#session-list li[data-session-id]', { timeout: STEP_TIMEOUT });
  report.firstTokenMs = [];
  for (let i = 0; i < config.turns; i += 1) {
    const seen = page.evaluate((before) => new Promise((resolve) => {
      const log = document.querySelector('#messages');
      const check = () => {
        const all = log.querySelectorAll('.message.assistant');
        if (all.length <= before) return false;
        const m = /t=(\d+)/.exec(all[all.length - 1].textContent);
        if (!m) return false;
        resolve(Date.now() - Number(m[1]));
        return true;
      };
      if (!check()) {
        const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
        observer.observe(log, { subtree: true, childList: true, characterData: true });
      }
    }), await page.locator('.message.assistant').count());
    await page.fill('#message-input', `turn ${i}`);
    await page.click('#send');
    report.firstTokenMs.push(await seen);
    await page.waitForSelector('#send:not([disabled])', { timeout: STEP_TIMEOUT });
    await page.waitForFunction(() => !document.querySelector('.message.assistant[aria-busy="true"]'), null, {
      timeout: STEP_TIMEOUT,
    });
  }
  step('turns measured');
}

// The admin page: an admin adds a user, makes them an admin, sees analytics with both charts drawn, adds an MCP
// server (when the test has one to give) and sees tools; then a normal user is told "not allowed" and refused.
async function admin(page) {
  await signIn(page);
  await page.waitForSelector('#admin-link:not([hidden])', { timeout: STEP_TIMEOUT });
  report.chatAdminLink = true;
  await page.click('#admin-link');
  await page.waitForURL(/\/admin$/, { timeout: STEP_TIMEOUT });
  await page.waitForSelector('#admin-content:not([hidden]) #user-table tbody tr', { timeout: STEP_TIMEOUT });
  step('admin page open');

  await page.fill('#new-username', config.newUser);
  await page.fill('#new-password', config.newPassword);
  await page.selectOption('#new-role', 'user');
  await page.click('#add-user-submit');
  const row = `#user-table tr[data-username="${config.newUser}"]`;
  await page.waitForSelector(row, { timeout: STEP_TIMEOUT });
  step('user added');
  const put = page.waitForResponse((r) => r.request().method() === 'PUT' && r.url().includes('/api/users/'));
  await page.selectOption(`${row} select.user-role`, 'admin');
  report.roleChangeStatus = (await put).status();
  // Read back from the server: search again and look at the row's role.
  await page.fill('#user-q', config.newUser);
  await page.click('#user-search-submit');
  await page.waitForFunction((sel) => {
    const select = document.querySelector(sel);
    return select && select.value === 'admin';
  }, `${row} select.user-role`, { timeout: STEP_TIMEOUT });
  step('role changed');

  const chartIds = ['chart-requests', 'chart-latency', 'chart-pages', 'chart-tools', 'chart-tokens'];
  await page.waitForFunction(
    (ids) => ids.every((id) => {
      const canvas = document.querySelector(`#${id} canvas`);
      return canvas && canvas.width > 0 && canvas.height > 0;
    }),
    chartIds,
    { timeout: STEP_TIMEOUT },
  );
  report.metrics = await page.$$eval('#metrics .metric', (ms) =>
    Object.fromEntries(ms.map((m) => [m.dataset.metric, m.querySelector('dd').textContent])));
  report.charts = await page.evaluate((ids) => ids.map((id) => {
    const c = document.querySelector(`#${id} canvas`).getBoundingClientRect();
    // uPlot's legend shows each series' label: the bar charts name what they count.
    const labels = [...document.querySelectorAll(`#${id} .u-legend .u-label`)].map((l) => l.textContent);
    return { id, width: c.width, height: c.height, labels };
  }), chartIds);
  // The x axis labels of the bar charts (drawn on the canvas) are the data's names: read them from uPlot's data.
  report.chartNames = await page.evaluate(() => Object.fromEntries(
    ['chart-pages', 'chart-tools', 'chart-tokens'].map((id) => [id, document.querySelector(`#${id}`).dataset.names || '']),
  ));
  report.routeRows = await page.locator('#route-table tbody tr').count();
  step('analytics shown');

  // Permissions: a permission granted to the user role, then revoked; a new role offered for new users.
  const userRole = '#permission-table tr[data-role="user"]';
  await page.selectOption(`${userRole} select.permission-choice`, 'analytics:read');
  await page.click(`${userRole} button.permission-grant`);
  await page.waitForSelector(`${userRole} li[data-permission="analytics:read"]`, { timeout: STEP_TIMEOUT });
  report.grantedPermissions = await page.$$eval(`${userRole} li[data-permission]`, (lis) => lis.map((li) => li.dataset.permission));
  await page.click(`${userRole} li[data-permission="analytics:read"] button.permission-revoke`);
  await page.waitForSelector(`${userRole} li[data-permission="analytics:read"]`, { state: 'detached', timeout: STEP_TIMEOUT });
  report.revokedPermissions = await page.$$eval(`${userRole} li[data-permission]`, (lis) => lis.map((li) => li.dataset.permission));
  await page.fill('#role-name', 'auditor');
  await page.fill('#role-description', 'Reads the audit trail');
  await page.fill('#role-permissions', 'audit:read');
  await page.click('#add-role-submit');
  await page.waitForSelector('#permission-table tr[data-role="auditor"] li[data-permission="audit:read"]', { timeout: STEP_TIMEOUT });
  await page.waitForSelector('#new-role option[value="auditor"]', { state: 'attached', timeout: STEP_TIMEOUT });
  step('permissions granted, revoked and a role added');

  // Tool policy: `ask` with a step-up code for `add`; a `deny` rule set and removed again.
  await page.selectOption('#policy-role', 'user');
  await page.fill('#policy-tool', 'add');
  await page.selectOption('#policy-decision', 'ask');
  await page.check('#policy-step-up');
  await page.click('#set-policy-submit');
  const askRow = '#policy-table tr[data-role="user"][data-tool="add"][data-decision="ask"]';
  await page.waitForSelector(askRow, { timeout: STEP_TIMEOUT });
  report.askRule = (await page.textContent(askRow)).trim();
  await page.selectOption('#policy-role', 'user');
  await page.fill('#policy-tool', 'echo');
  await page.selectOption('#policy-decision', 'deny');
  report.stepUpDisabledForDeny = await page.isDisabled('#policy-step-up');
  await page.click('#set-policy-submit');
  const denyRow = '#policy-table tr[data-role="user"][data-tool="echo"][data-decision="deny"]';
  await page.waitForSelector(denyRow, { timeout: STEP_TIMEOUT });
  await page.click(`${denyRow} button.policy-remove`);
  await page.waitForSelector(denyRow, { state: 'detached', timeout: STEP_TIMEOUT });
  step('tool policy set and a rule removed');
  await page.evaluate(() => document.querySelector('#permissions').scrollIntoView());
  await shoot(page, 'admin-access');

  // SMS transactions: all of them, then the failed ones only.
  await page.waitForFunction(() => document.querySelectorAll('#sms-table tbody tr').length > 0, null, { timeout: STEP_TIMEOUT });
  report.smsRows = await page.locator('#sms-table tbody tr').count();
  report.smsSummary = (await page.textContent('#sms-summary')).trim();
  await page.check('#sms-failed');
  await page.click('#sms-filter-submit');
  await page.waitForFunction(
    (before) => {
      const rows = document.querySelectorAll('#sms-table tbody tr');
      return rows.length > 0 && rows.length < before;
    },
    report.smsRows,
    { timeout: STEP_TIMEOUT },
  );
  report.smsFailed = await page.$$eval('#sms-table tbody tr', (rows) => rows.map((r) => r.dataset.success));
  step('SMS transactions listed and filtered');

  // Connection profiles: one added, then deleted; a saved test run with its result shown.
  await page.fill('#conn-name', 'reports');
  await page.selectOption('#conn-type', 'postgresql');
  await page.fill('#conn-host', '127.0.0.1');
  await page.fill('#conn-port', '5432');
  await page.fill('#conn-user', 'postgres');
  await page.fill('#conn-database', 'reports');
  await page.click('#add-connection-submit');
  const profile = '#connection-table tr[data-connection="reports"]';
  await page.waitForSelector(profile, { timeout: STEP_TIMEOUT });
  report.profileRow = (await page.textContent(profile)).trim();
  await page.click(`${profile} button.connection-delete`);
  await page.waitForSelector(profile, { state: 'detached', timeout: STEP_TIMEOUT });
  step('connection profile added and deleted');
  const test = `#test-table tr[data-test="${config.savedTest}"]`;
  report.testBefore = await page.getAttribute(test, 'data-status');
  await page.click(`${test} button.test-run`);
  await page.waitForSelector(`${test}[data-status="ok"] pre.test-result`, { timeout: STEP_TIMEOUT });
  report.testResult = (await page.textContent(`${test} pre.test-result`)).trim();
  step('saved test run with its last result');
  await audit(page, 'admin-ops');
  await page.evaluate(() => document.querySelector('#sms').scrollIntoView());
  await shoot(page, 'admin-ops');

  if (config.serverName) {
    await page.fill('#server-name', config.serverName);
    await page.fill('#server-target', config.serverCommand);
    await page.fill('#server-args', config.serverArgs);
    await page.click('#add-server-submit');
    await page.waitForSelector(`#server-table tr[data-server="${config.serverName}"][data-status="up"]`, {
      timeout: 30000,
    });
    await page.waitForSelector('#server-tools li[data-tool]', { timeout: STEP_TIMEOUT });
    step('server added with its tools');
  } else {
    await page.click('#server-table tr[data-server="builtin"] button.server-tools');
    await page.waitForSelector('#server-tools li[data-tool]', { timeout: STEP_TIMEOUT });
    step('built-in tools shown');
  }
  report.servers = await page.$$eval('#server-table tbody tr', (rows) =>
    rows.map((r) => ({ name: r.dataset.server, status: r.dataset.status })));
  report.tools = await page.$$eval('#server-tools li[data-tool]', (lis) => lis.map((li) => li.dataset.tool));
  report.toolCallRows = await page.locator('#tool-call-table tbody tr').count();
  report.auditRows = await page.locator('#audit-table tbody tr').count();
  await audit(page, 'admin');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shoot(page, 'admin');
  await page.evaluate(() => document.querySelector('#analytics').scrollIntoView());
  await shoot(page, 'admin-analytics');
  await page.evaluate(() => document.querySelector('#chart-pages-title').scrollIntoView());
  await shoot(page, 'admin-charts');

  await page.click('#sign-out');
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  await page.fill('#username', config.plainUser);
  await page.fill('#password', config.plainPassword);
  await page.click('#login-submit');
  await page.waitForURL(/\/chat$/, { timeout: STEP_TIMEOUT });
  report.plainUserSeesAdminLink = await page.isVisible('#admin-link');
  await page.goto(`${config.base}/admin`);
  await page.waitForSelector('#admin-denied:not([hidden])', { timeout: STEP_TIMEOUT });
  report.deniedMessage = (await page.textContent('#admin-denied')).trim();
  report.deniedContentHidden = await page.isHidden('#admin-content');
  report.plainUserApiStatus = await page.evaluate(async () => (await fetch('/api/users')).status);
  step('normal user not allowed');
  await audit(page, 'admin-denied');
  await shoot(page, 'admin-denied');
}

// The Stop button: a slow streamed answer is cut off after its first words; the page is ready to send again.
async function stopStream(page) {
  await signIn(page);
  await page.click('#new-session');
  await page.waitForSelector('#session-list li[data-session-id]', { timeout: STEP_TIMEOUT });
  await page.fill('#message-input', config.message);
  await page.click('#send');
  await page.waitForFunction(
    (first) => {
      const all = document.querySelectorAll('.message.assistant');
      const last = all[all.length - 1];
      return last && last.getAttribute('aria-busy') === 'true' && last.textContent.includes(first);
    },
    config.firstWords,
    { timeout: STEP_TIMEOUT },
  );
  report.stopVisible = await page.isVisible('#stop');
  step('answer streaming');
  await page.click('#stop');
  await page.waitForFunction(
    () => {
      const all = document.querySelectorAll('.message.assistant');
      const last = all[all.length - 1];
      return last.getAttribute('aria-busy') !== 'true' && last.textContent.includes('Stopped.');
    },
    null,
    { timeout: STEP_TIMEOUT },
  );
  report.answer = await page.evaluate(() => {
    const all = document.querySelectorAll('.message.assistant');
    return all[all.length - 1].textContent.trim();
  });
  report.stopHidden = await page.isHidden('#stop');
  report.sendVisible = await page.isVisible('#send');
  report.inputEditable = await page.isEditable('#message-input');
  step('stopped');
  // The rest of the answer would have arrived by now had the stream gone on.
  await page.waitForTimeout(config.restMs);
  report.answerLater = await page.evaluate(() => {
    const all = document.querySelectorAll('.message.assistant');
    return all[all.length - 1].textContent.trim();
  });
  await audit(page, 'chat-stopped');
  await shoot(page, 'chat-stopped');
}

// An approval under a step-up rule: sign in with the second factor, the approval card asks for a code, a wrong
// code is refused with a message and nothing runs, a fresh code approves and the tool runs. With TOTP the codes
// come in the config; with SMS the card's "Text me a code" sends one, and the test hands the page each code the
// console provider sent through config.codeFiles ([login, approval]).
async function stepUpApproval(page) {
  const sms = Array.isArray(config.codeFiles);
  await page.goto(`${config.base}/login`);
  await page.fill('#username', config.username);
  await page.fill('#password', config.password);
  await page.click('#login-submit');
  await page.waitForSelector('#mfa-form:not([hidden])', { timeout: STEP_TIMEOUT });
  await page.check(sms ? '#mfa-method-sms' : '#mfa-method-totp');
  await page.fill('#mfa-code', sms ? await fileWritten(config.codeFiles[0]) : config.loginCode);
  await page.click('#mfa-submit');
  await page.waitForURL(/\/chat$/, { timeout: STEP_TIMEOUT });
  step('signed in with the second factor');
  await page.click('#new-session');
  await page.waitForSelector('#session-list li[data-session-id]', { timeout: STEP_TIMEOUT });
  await sendAndWaitForApproval(page, config.message, 1);
  const card = page.locator('.approval-card').nth(0);
  const code = card.locator('input');
  report.codeLabel = (await card.locator('label').textContent()).trim();
  report.sendCodeVisible = await card.locator('button.approval-send-code').isVisible();
  step('approval asks for a code');
  await audit(page, sms ? 'chat-step-up-sms' : 'chat-step-up');
  await shoot(page, sms ? 'chat-step-up-sms' : 'chat-step-up');
  let right = config.code;
  if (sms) {
    await card.locator('button.approval-send-code').click();
    await page.waitForFunction(
      () => document.querySelector('.approval-card .tool-status').textContent.includes('sent'),
      null,
      { timeout: STEP_TIMEOUT },
    );
    report.sentMessage = (await card.locator('.tool-status').textContent()).trim();
    right = await fileWritten(config.codeFiles[1]);
    step('code sent');
  }
  // A wrong code: the right one with its first digit moved on by one.
  await code.fill(`${(Number(right[0]) + 1) % 10}${right.slice(1)}`);
  await card.locator('button.approve').click();
  await page.waitForFunction(
    (before) => {
      const text = document.querySelector('.approval-card .tool-status').textContent.trim();
      return text !== '' && text !== before;
    },
    report.sentMessage || '',
    { timeout: STEP_TIMEOUT },
  );
  report.wrongCodeMessage = (await card.locator('.tool-status').textContent()).trim();
  report.buttonsAfterWrong = await card.locator('button.approve:enabled, button.refuse:enabled').count();
  report.cardsAfterWrong = await page.locator('.tool-card .tool-result').count();
  step('wrong code refused');
  await code.fill(right);
  await card.locator('button.approve').click();
  report.answer = await lastAnswerDone(page);
  report.approvalStatus = (await card.locator('.tool-status').textContent()).trim();
  report.toolCards = await page.$$eval('.tool-card', (cards) =>
    cards.map((c) => ({
      name: (c.querySelector('.tool-name') || {}).textContent || '',
      result: (c.querySelector('.tool-result') || {}).textContent || '',
    })),
  );
  step('fresh code approved and the tool ran');
}

/** Waits (bounded) until the test writes `file`; returns its text. */
async function fileWritten(file) {
  for (let i = 0; i < 300; i += 1) {
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${file} was never written`);
}

// The SMS second factor: the page asks for a new code ("Send a new code") once the server allows it (the test
// moves the server's clock past the 30 s between sends and writes config.clockMoved), then signs in with the new
// code (the test reads it from the console provider's outbox into config.codeFile).
async function smsResend(page) {
  await page.goto(`${config.base}/login`);
  await page.fill('#username', config.username);
  await page.fill('#password', config.password);
  await page.click('#login-submit');
  await page.waitForSelector('#mfa-form:not([hidden])', { timeout: STEP_TIMEOUT });
  report.methods = await page.$$eval('#mfa-methods input[type=radio]', (radios) =>
    radios.filter((r) => !r.closest('[hidden]')).map((r) => r.value),
  );
  await page.check('#mfa-method-sms');
  report.resendVisible = await page.isVisible('#mfa-resend');
  step('SMS code asked');
  await fileWritten(config.clockMoved);
  await page.click('#mfa-resend');
  await page.waitForFunction(() => document.querySelector('#login-info').textContent.includes('new code'), null, {
    timeout: STEP_TIMEOUT,
  });
  report.resendMessage = (await page.textContent('#login-info')).trim();
  step('new code sent');
  await audit(page, 'login-sms');
  await shoot(page, 'login-sms');
  await page.fill('#mfa-code', await fileWritten(config.codeFile));
  await page.click('#mfa-submit');
  await page.waitForURL(/\/chat$/, { timeout: STEP_TIMEOUT });
  step('signed in with the new code');
}

const SCENARIOS = {
  first_token: firstToken,
  sign_in_and_chat: signInAndChat,
  hostile_markdown: hostileMarkdown,
  totp_sign_in: totpSignIn,
  sms_resend: smsResend,
  approvals,
  stop_stream: stopStream,
  step_up_approval: stepUpApproval,
  admin,
  settings,
};

(async () => {
  fs.mkdirSync(config.screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: config.chromium || '/usr/bin/chromium',
    // Root in a container: Chromium's sandbox needs user namespaces it may not have.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    watch(page);
    await SCENARIOS[config.scenario](page);
  } catch (err) {
    report.error = String(err && err.stack ? err.stack : err);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report));
})();

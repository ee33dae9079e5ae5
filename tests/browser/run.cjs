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

// axe-core run through the DevTools protocol, so the page's CSP (no inline script) does not block it.
async function audit(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  report.axe[name] = result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
}

async function shoot(page, name) {
  for (const vp of VIEWPORTS) {
    await page.setViewportSize({ width: vp.width, height: vp.height });
    const file = path.join(config.screenshots, `${name}-${vp.width}x${vp.height}.png`);
    await page.screenshot({ path: file, fullPage: false });
    report.screenshots.push(file);
  }
  await page.setViewportSize({ width: VIEWPORTS[0].width, height: VIEWPORTS[0].height });
}

async function signInAndChat(page) {
  await page.goto(`${config.base}/chat`);
  await page.waitForURL(/\/login$/, { timeout: STEP_TIMEOUT });
  step('signed-out browser sent to /login');
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

  await page.waitForFunction(
    () => ['chart-requests', 'chart-latency'].every((id) => {
      const canvas = document.querySelector(`#${id} canvas`);
      return canvas && canvas.width > 0 && canvas.height > 0;
    }),
    null,
    { timeout: STEP_TIMEOUT },
  );
  report.metrics = await page.$$eval('#metrics .metric', (ms) =>
    Object.fromEntries(ms.map((m) => [m.dataset.metric, m.querySelector('dd').textContent])));
  report.charts = await page.evaluate(() => ['chart-requests', 'chart-latency'].map((id) => {
    const c = document.querySelector(`#${id} canvas`).getBoundingClientRect();
    return { id, width: c.width, height: c.height };
  }));
  report.routeRows = await page.locator('#route-table tbody tr').count();
  step('analytics shown');

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

const SCENARIOS = {
  first_token: firstToken,
  sign_in_and_chat: signInAndChat,
  hostile_markdown: hostileMarkdown,
  totp_sign_in: totpSignIn,
  approvals,
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

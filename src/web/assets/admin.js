// The admin page: users (GET/POST /api/users, PUT /api/users/{id}), MCP servers (GET /api/servers for health,
// GET /api/servers/{id}/tools, POST and DELETE /api/mcp/servers), analytics (GET /api/analytics/key-metrics,
// /timeseries, /routes, /top-pages, /events; charts drawn by the vendored uPlot, a global from
// /static/uplot.iife.min.js) and the tool-call and audit logs. Roles, permissions and the tool policy are in
// admin_access.js; SMS transactions, connection profiles and saved tests in admin_ops.js. A user without
// `users:manage` sees "not allowed" and nothing else (the API refuses them anyway: 403).

import { api, el, errorText, fetchStatus, logPageView, showError } from './common.js';
import { setupAccess } from './admin_access.js';
import { setupOps } from './admin_ops.js';

const $ = (id) => document.getElementById(id);
const errorRegion = $('admin-error');
const PAGE_SIZE = 20;
const HOURS = 1;

let userOffset = 0;
let roles = ['admin', 'user'];
let rolesKnown = false;
const charts = {};

function fail(result) {
  if (result.status === 401) {
    location.replace('/login');
    return;
  }
  showError(errorRegion, errorText(result));
}

function cell(text) {
  return el('td', {}, text === null || text === undefined ? '' : String(text));
}

function ms(value) {
  return typeof value === 'number' ? value.toFixed(1) : '–';
}

// --- Users ---------------------------------------------------------------------------------------------------

function roleSelect(user) {
  const select = el('select', { className: 'user-role', 'aria-label': `Role of ${user.username}` });
  const names = roles.includes(user.role) ? roles : [...roles, user.role];
  for (const name of names) select.append(el('option', { value: name, selected: name === user.role }, name));
  select.addEventListener('change', async () => {
    showError(errorRegion, '');
    const result = await api('PUT', `/api/users/${encodeURIComponent(user.id)}`, { role: select.value });
    if (!result.ok) {
      select.value = user.role;
      fail(result);
      return;
    }
    user.role = select.value;
  });
  return select;
}

function userRow(user) {
  const toggle = el(
    'button',
    { type: 'button', className: 'user-active secondary', 'aria-label': `${user.is_active ? 'Disable' : 'Enable'} ${user.username}` },
    user.is_active ? 'Disable' : 'Enable',
  );
  toggle.addEventListener('click', async () => {
    showError(errorRegion, '');
    const result = await api('PUT', `/api/users/${encodeURIComponent(user.id)}`, { is_active: !user.is_active });
    if (!result.ok) {
      fail(result);
      return;
    }
    await loadUsers();
  });
  return el(
    'tr',
    { dataset: { username: user.username } },
    el('th', { scope: 'row' }, user.username),
    el('td', {}, roleSelect(user)),
    cell(user.is_active ? 'active' : 'disabled'),
    cell(user.last_login || 'never'),
    el('td', {}, toggle),
  );
}

async function loadUsers() {
  const q = $('user-q').value.trim();
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(userOffset) });
  if (q) query.set('q', q);
  const result = await api('GET', `/api/users?${query}`);
  if (!result.ok) {
    fail(result);
    return;
  }
  const data = result.data.data;
  $('user-table').tBodies[0].replaceChildren(...data.users.map(userRow));
  const last = userOffset + data.users.length;
  $('user-page').textContent = data.total ? `${userOffset + 1}–${last} of ${data.total}` : 'No users match.';
  $('user-prev').disabled = userOffset === 0;
  $('user-next').disabled = !data.has_more;
}

/** The role names the access section read: the add-user form offers them, and the user rows' selects too. */
function rolesChanged(names) {
  roles = names;
  $('new-role').replaceChildren(...roles.map((r) => el('option', { value: r, selected: r === 'user' }, r)));
  // The first read comes before the users are listed; a later one (a role added) refreshes their selects.
  if (rolesKnown) loadUsers();
  rolesKnown = true;
}

$('user-search').addEventListener('submit', (event) => {
  event.preventDefault();
  userOffset = 0;
  loadUsers();
});
$('user-prev').addEventListener('click', () => {
  userOffset = Math.max(0, userOffset - PAGE_SIZE);
  loadUsers();
});
$('user-next').addEventListener('click', () => {
  userOffset += PAGE_SIZE;
  loadUsers();
});
$('add-user').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(errorRegion, '');
  const body = { username: $('new-username').value.trim(), password: $('new-password').value, role: $('new-role').value };
  const result = await api('POST', '/api/users', body);
  if (!result.ok) {
    fail(result);
    return;
  }
  $('new-username').value = '';
  $('new-password').value = '';
  $('user-q').value = body.username;
  userOffset = 0;
  await loadUsers();
});

// --- MCP servers ---------------------------------------------------------------------------------------------

async function showTools(name) {
  const box = $('server-tools');
  const result = await api('GET', `/api/servers/${encodeURIComponent(name)}/tools`);
  if (!result.ok) {
    fail(result);
    return;
  }
  const tools = result.data.tools || [];
  box.replaceChildren(
    el('h3', {}, `Tools of ${name}`),
    el('ul', { className: 'tool-list' }, ...tools.map((t) => el('li', { dataset: { tool: t.name } }, el('code', {}, t.name), ` ${t.description || ''}`))),
  );
}

function serverRow(server) {
  const name = server.server_name;
  const tools = el('button', { type: 'button', className: 'server-tools secondary', 'aria-label': `Tools of ${name}` }, 'Tools');
  tools.addEventListener('click', () => showTools(name));
  const actions = el('td', { className: 'actions-cell' }, tools);
  if (name !== 'builtin') {
    const remove = el('button', { type: 'button', className: 'server-remove secondary', 'aria-label': `Remove ${name}` }, 'Remove');
    remove.addEventListener('click', async () => {
      if (!window.confirm(`Remove the MCP server "${name}"?`)) return;
      showError(errorRegion, '');
      const result = await api('DELETE', `/api/mcp/servers/${encodeURIComponent(name)}`);
      if (!result.ok) {
        fail(result);
        return;
      }
      $('server-tools').replaceChildren();
      await loadServers();
    });
    actions.append(remove);
  }
  const health = el('span', { className: `health health-${server.status}` }, server.status);
  return el(
    'tr',
    { dataset: { server: name, status: server.status } },
    el('th', { scope: 'row' }, name),
    cell(server.transport),
    el('td', { title: server.error_message || '' }, health),
    cell(server.response_time_ms === null || server.response_time_ms === undefined ? '–' : `${ms(server.response_time_ms)} ms`),
    actions,
  );
}

async function loadServers() {
  const result = await api('GET', '/api/servers');
  if (!result.ok) {
    fail(result);
    return [];
  }
  const servers = result.data.servers || [];
  $('server-table').tBodies[0].replaceChildren(...servers.map(serverRow));
  return servers;
}

/** A new server connects in the background: its row is refreshed until it is up or down (at most ~15 s). */
async function waitForServer(name) {
  for (let i = 0; i < 30; i += 1) {
    const server = (await loadServers()).find((s) => s.server_name === name);
    if (server && (server.status === 'up' || server.status === 'down')) return server.status;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return null;
}

$('add-server').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError(errorRegion, '');
  const name = $('server-name').value.trim();
  const target = $('server-target').value.trim();
  const args = $('server-args').value.trim();
  const http = target.startsWith('http:') || target.startsWith('https:');
  const body = http ? { name, url: target } : { name, command: target, args: args ? args.split(/\s+/) : [] };
  const result = await api('POST', '/api/mcp/servers', body);
  if (!result.ok) {
    fail(result);
    return;
  }
  for (const id of ['server-name', 'server-target', 'server-args']) $(id).value = '';
  if ((await waitForServer(name)) === 'up') await showTools(name);
});

// --- Analytics -----------------------------------------------------------------------------------------------

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function axis() {
  const stroke = themeColour('--text');
  const grid = { stroke: themeColour('--border'), width: 1 };
  return { stroke, grid, ticks: grid };
}

function chartWidth(box) {
  return Math.max(240, Math.floor((box.clientWidth || 600) - 8));
}

function draw(id, options, data) {
  const box = $(id);
  if (charts[id]) charts[id].destroy();
  box.replaceChildren();
  charts[id] = new window.uPlot({ width: chartWidth(box), height: 220, ...options }, data, box);
}

function drawRequests(points, window) {
  const xs = points.map((p) => Math.floor(p.bucket_start / 1000));
  // The whole window on the x axis (uPlot would stretch one point over years).
  const range = [Math.floor(window.from / 1000), Math.ceil(window.to / 1000)];
  draw(
    'chart-requests',
    {
      scales: { x: { time: true, range: () => range } },
      axes: [axis(), axis()],
      series: [
        {},
        { label: 'Requests', stroke: themeColour('--accent'), width: 2 },
        { label: 'Server errors', stroke: themeColour('--error'), width: 2 },
      ],
    },
    [xs, points.map((p) => p.requests), points.map((p) => p.server_errors)],
  );
}

/** Bars stand on zero (uPlot would otherwise start the axis near the smallest value). */
function fromZero(_, _min, max) {
  return [0, Math.max(1, (max || 0) * 1.1)];
}

function drawLatency(routes) {
  const top = routes.slice(0, 12);
  const labels = top.map((r) => `${r.method} ${r.route}`);
  const bars = window.uPlot.paths.bars({ size: [0.6, 60] });
  draw(
    'chart-latency',
    {
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, top.length - 0.5)] }, y: { range: fromZero } },
      axes: [
        { ...axis(), splits: () => top.map((_, i) => i), values: (_, splits) => splits.map((i) => (labels[i] || '').slice(0, 18)), rotate: -20, size: 70 },
        axis(),
      ],
      series: [
        { label: 'Route', value: (_, i) => (i === null || i === undefined ? '' : labels[i] || '') },
        { label: 'p95 ms', stroke: themeColour('--accent'), fill: themeColour('--user'), paths: bars, points: { show: false } },
        { label: 'p50 ms', stroke: themeColour('--muted'), fill: themeColour('--muted'), paths: bars, points: { show: false } },
      ],
    },
    [top.map((_, i) => i), top.map((r) => r.latency.p95_ms), top.map((r) => r.latency.p50_ms)],
  );
}

/** A bar chart of `values` per label (labels on the x axis, cut to fit). */
function drawBars(id, labels, seriesLabel, values) {
  // The names drawn on the canvas, kept readable for the tests.
  $(id).dataset.names = labels.join('|');
  const bars = window.uPlot.paths.bars({ size: [0.6, 60] });
  draw(
    id,
    {
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, labels.length - 0.5)] }, y: { range: fromZero } },
      axes: [
        { ...axis(), splits: () => labels.map((_, i) => i), values: (_, splits) => splits.map((i) => (labels[i] || '').slice(0, 18)), rotate: -20, size: 70 },
        axis(),
      ],
      series: [
        { label: 'Name', value: (_, i) => (i === null || i === undefined ? '' : labels[i] || '') },
        { label: seriesLabel, stroke: themeColour('--accent'), fill: themeColour('--user'), paths: bars, points: { show: false } },
      ],
    },
    [labels.map((_, i) => i), values],
  );
}

/** Sums `value(row)` per `key(row)`, largest first, at most `max` entries. */
function totals(rows, key, value, max) {
  const sums = new Map();
  for (const row of rows) sums.set(key(row), (sums.get(key(row)) || 0) + value(row));
  return [...sums.entries()].sort((a, b) => b[1] - a[1]).slice(0, max);
}

function drawEvents(pages, events) {
  const top = pages.slice(0, 10);
  drawBars('chart-pages', top.map((p) => p.path), 'Views', top.map((p) => p.views));
  const tools = totals(events.tool_calls || [], (c) => c.tool, (c) => c.calls, 12);
  drawBars('chart-tools', tools.map(([t]) => t), 'Calls', tools.map(([, n]) => n));
  const models = totals(events.llm_tokens || [], (t) => t.model, (t) => t.tokens, 12);
  drawBars('chart-tokens', models.map(([m]) => m), 'Tokens', models.map(([, n]) => n));
}

function showMetrics(m) {
  const figures = [
    ['requests', 'Requests', String(m.total_requests)],
    ['error-rate', 'Error rate', `${(m.error_rate * 100).toFixed(1)} %`],
    ['p50', 'p50', `${ms(m.latency.p50_ms)} ms`],
    ['p95', 'p95', `${ms(m.latency.p95_ms)} ms`],
    ['p99', 'p99', `${ms(m.latency.p99_ms)} ms`],
    ['active-users', 'Active users', String(m.active_users)],
  ];
  $('metrics').replaceChildren(
    ...figures.map(([key, label, value]) => el('div', { className: 'metric', dataset: { metric: key } }, el('dt', {}, label), el('dd', {}, value))),
  );
}

async function loadAnalytics() {
  const [metrics, series, routes, pages, events] = await Promise.all([
    api('GET', `/api/analytics/key-metrics?hours=${HOURS}`),
    api('GET', `/api/analytics/timeseries?hours=${HOURS}`),
    api('GET', `/api/analytics/routes?hours=${HOURS}`),
    api('GET', `/api/analytics/top-pages?hours=${HOURS}&limit=10`),
    api('GET', `/api/analytics/events?hours=${HOURS}`),
  ]);
  for (const result of [metrics, series, routes, pages, events]) {
    if (!result.ok) {
      fail(result);
      return;
    }
  }
  showMetrics(metrics.data.data);
  const list = routes.data.data.routes || [];
  $('route-table').tBodies[0].replaceChildren(
    ...list.map((r) =>
      el(
        'tr',
        {},
        el('th', { scope: 'row' }, `${r.method} ${r.route}`),
        cell(r.requests),
        cell(`${(r.error_rate * 100).toFixed(1)} %`),
        cell(ms(r.latency.p50_ms)),
        cell(ms(r.latency.p95_ms)),
        cell(ms(r.latency.p99_ms)),
      ),
    ),
  );
  if (typeof window.uPlot !== 'function') {
    $('analytics-status').textContent = 'Charts are unavailable (the chart library did not load).';
    return;
  }
  drawRequests(series.data.data.points || [], series.data.data.window);
  drawLatency(list);
  drawEvents(pages.data.data.pages || [], events.data.data);
  $('analytics-status').textContent = `Figures for the last ${HOURS} hour.`;
}

window.addEventListener('resize', () => {
  for (const [id, chart] of Object.entries(charts)) chart.setSize({ width: chartWidth($(id)), height: 220 });
});
// The charts take their colours from the theme when drawn: a switch between light and dark redraws them.
window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  if (Object.keys(charts).length) loadAnalytics();
});

// --- Logs ----------------------------------------------------------------------------------------------------

async function loadToolCalls() {
  const query = new URLSearchParams({ limit: '50' });
  const tool = $('tool-filter').value.trim();
  if (tool) query.set('tool_name', tool);
  const result = await api('GET', `/api/tool-calls?${query}`);
  if (!result.ok) {
    fail(result);
    return;
  }
  $('tool-call-table').tBodies[0].replaceChildren(
    ...(result.data.tool_calls || []).map((c) =>
      el('tr', {}, cell(c.at), cell(c.user_id), el('th', { scope: 'row' }, c.tool_name), cell(c.status), cell(ms(c.duration_ms))),
    ),
  );
}

async function loadAudit() {
  const query = new URLSearchParams({ limit: '50' });
  const action = $('audit-action').value.trim();
  if (action) query.set('action', action);
  const result = await api('GET', `/api/audit?${query}`);
  if (!result.ok) {
    fail(result);
    return;
  }
  $('audit-table').tBodies[0].replaceChildren(
    ...(result.data.events || []).map((e) =>
      el('tr', {}, cell(e.time), cell(e.actor_id), el('th', { scope: 'row' }, e.event), cell(e.subject), cell(e.outcome)),
    ),
  );
}

$('tool-filter-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadToolCalls();
});
$('audit-filter-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadAudit();
});

// --- Start ---------------------------------------------------------------------------------------------------

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
  const me = await api('GET', '/api/me');
  const permissions = me.ok && Array.isArray(me.data.permissions) ? me.data.permissions : [];
  if (!permissions.includes('*') && !permissions.includes('users:manage')) {
    const denied = $('admin-denied');
    denied.textContent = 'Not allowed: this page is for administrators. ';
    denied.append(el('a', { href: '/chat' }, 'Back to the chat'));
    denied.hidden = false;
  } else {
    $('admin-content').hidden = false;
    const loadAccess = setupAccess(fail, rolesChanged);
    const loadOps = setupOps(fail);
    await loadAccess();
    await Promise.all([loadUsers(), loadServers(), loadAnalytics(), loadToolCalls(), loadAudit(), loadOps()]);
  }
}

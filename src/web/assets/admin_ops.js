// The admin page's operations sections: the SMS transaction log (GET /api/sms/transactions with its filters and
// summary), and the admin's own database connection profiles (GET /api/get-connections, POST
// /api/save-connection, DELETE /api/delete-connection/{id}) and saved tests (GET /api/tests, POST
// /api/tests/{id}/run, which records and answers the last result).

import { api, el } from './common.js';

const $ = (id) => document.getElementById(id);
const SMS_LIMIT = 50;

function cell(text) {
  return el('td', {}, text === null || text === undefined ? '' : String(text));
}

function when(ms) {
  return typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '–';
}

/** Wires the sections; `fail(result)` shows an API error. Returns the function that loads them. */
export function setupOps(fail) {
  // --- SMS transactions --------------------------------------------------------------------------------------

  async function loadSms() {
    const query = new URLSearchParams({ limit: String(SMS_LIMIT) });
    const phone = $('sms-phone').value.trim();
    if (phone) query.set('phone_number', phone);
    if ($('sms-type').value) query.set('type', $('sms-type').value);
    if ($('sms-failed').checked) query.set('failed', 'true');
    const result = await api('GET', `/api/sms/transactions?${query}`);
    if (!result.ok) {
      fail(result);
      return;
    }
    const list = result.data.transactions || [];
    const s = result.data.summary || {};
    $('sms-summary').textContent =
      `${result.data.total} matching (showing ${list.length}); ${s.successful ?? 0} successful, ` +
      `${s.failed ?? 0} failed, success rate ${s.success_rate ?? 0} %.`;
    $('sms-table').tBodies[0].replaceChildren(
      ...list.map((t) =>
        el(
          'tr',
          { dataset: { type: t.type, success: String(t.success) } },
          cell(t.created_at),
          el('th', { scope: 'row' }, t.type),
          cell(t.phone_number),
          cell(t.success ? 'ok' : 'failed'),
          cell(t.final_status || t.status || t.error || ''),
          cell(t.reference_id || ''),
        ),
      ),
    );
  }

  $('sms-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    loadSms();
  });

  // --- Connection profiles -----------------------------------------------------------------------------------

  function profileRow(p) {
    const remove = el('button', { type: 'button', className: 'connection-delete secondary', 'aria-label': `Delete ${p.name}` }, 'Delete');
    remove.addEventListener('click', async () => {
      if (!window.confirm(`Delete the connection profile "${p.name}"?`)) return;
      const result = await api('DELETE', `/api/delete-connection/${encodeURIComponent(p.id)}`);
      if (!result.ok) {
        fail(result);
        return;
      }
      await loadConnections();
    });
    const where = p.database_type === 'sqlite' ? '' : `${p.host}:${p.port}`;
    return el(
      'tr',
      { dataset: { connection: p.name } },
      el('th', { scope: 'row' }, p.name),
      cell(p.database_type),
      cell(where),
      cell(p.database),
      cell(p.user),
      el('td', {}, remove),
    );
  }

  async function loadConnections() {
    const result = await api('GET', '/api/get-connections');
    if (!result.ok) {
      fail(result);
      return;
    }
    const list = result.data.connections || [];
    $('connection-table').tBodies[0].replaceChildren(...list.map(profileRow));
    $('connection-empty').hidden = list.length > 0;
  }

  $('add-connection').addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      name: $('conn-name').value.trim(),
      database_type: $('conn-type').value,
      host: $('conn-host').value.trim(),
      port: $('conn-port').value.trim(),
      user: $('conn-user').value.trim(),
      password: $('conn-password').value,
      database: $('conn-database').value.trim(),
    };
    const result = await api('POST', '/api/save-connection', body);
    if (!result.ok) {
      fail(result);
      return;
    }
    for (const id of ['conn-name', 'conn-host', 'conn-port', 'conn-user', 'conn-password', 'conn-database']) $(id).value = '';
    await loadConnections();
  });

  // --- Saved tests -------------------------------------------------------------------------------------------

  function lastResult(test) {
    if (!test.last_result) return el('span', { className: 'muted' }, 'never run');
    return el('pre', { className: 'test-result', 'aria-label': `Last result of ${test.name}` }, JSON.stringify(test.last_result, null, 2));
  }

  function testRow(test) {
    const run = el('button', { type: 'button', className: 'test-run', 'aria-label': `Run ${test.name}` }, 'Run');
    const row = el(
      'tr',
      { dataset: { test: test.name, status: test.last_status || '' } },
      el('th', { scope: 'row' }, test.name),
      cell(test.request_type),
      cell(test.tool_name || test.endpoint_path),
      cell(test.last_status || '–'),
      cell(test.execution_count),
      cell(when(test.last_execution)),
      el('td', {}, lastResult(test)),
      el('td', {}, run),
    );
    run.addEventListener('click', async () => {
      run.disabled = true;
      const result = await api('POST', `/api/tests/${encodeURIComponent(test.id)}/run`);
      run.disabled = false;
      if (!result.ok) {
        fail(result);
        return;
      }
      row.replaceWith(testRow(result.data.test));
    });
    return row;
  }

  async function loadTests() {
    const result = await api('GET', '/api/tests');
    if (!result.ok) {
      fail(result);
      return;
    }
    const tests = result.data.tests || [];
    $('test-table').tBodies[0].replaceChildren(...tests.map(testRow));
    $('test-empty').hidden = tests.length > 0;
  }

  return () => Promise.all([loadSms(), loadConnections(), loadTests()]);
}

// The admin page's access sections: roles and their permissions (GET /api/permissions; POST /api/permissions
// replaces a role's whole list, so granting or revoking one permission sends the list with or without it) and the
// tool policy (GET and PUT /api/tool-policies: allow, ask, ask with a step-up code, deny, or no rule).

import { api, el } from './common.js';

const $ = (id) => document.getElementById(id);

/** Wires both sections; `fail(result)` shows an API error, `rolesChanged(names)` tells the page the roles. */
export function setupAccess(fail, rolesChanged) {
  let known = [];

  async function saveRole(role, permissions) {
    const result = await api('POST', '/api/permissions', {
      role: role.name,
      description: role.description || '',
      permissions,
    });
    if (!result.ok) {
      fail(result);
      return false;
    }
    await loadRoles();
    return true;
  }

  function roleRow(role) {
    // The admin role holds `*` and the API refuses to change it: no controls there.
    const fixed = role.name === 'admin';
    const items = role.permissions.map((p) => {
      const item = el('li', { dataset: { permission: p } }, el('code', {}, p));
      if (!fixed) {
        const revoke = el(
          'button',
          { type: 'button', className: 'permission-revoke secondary small', 'aria-label': `Revoke ${p} from ${role.name}` },
          'Revoke',
        );
        revoke.addEventListener('click', () => saveRole(role, role.permissions.filter((x) => x !== p)));
        item.append(' ', revoke);
      }
      return item;
    });
    const grantCell = el('td', {});
    if (!fixed) {
      // `*` (everything) is only given on purpose, through the add-role form, never one click away here.
      const missing = known.filter((p) => p !== '*' && !role.permissions.includes(p));
      const select = el(
        'select',
        { className: 'permission-choice', 'aria-label': `Permission to grant to ${role.name}` },
        ...missing.map((p) => el('option', { value: p }, p)),
      );
      const grant = el(
        'button',
        { type: 'button', className: 'permission-grant', 'aria-label': `Grant to ${role.name}`, disabled: missing.length === 0 },
        'Grant',
      );
      grant.addEventListener('click', () => saveRole(role, [...role.permissions, select.value]));
      grantCell.append(el('div', { className: 'actions-cell' }, select, grant));
    }
    return el(
      'tr',
      { dataset: { role: role.name } },
      el('th', { scope: 'row' }, role.name),
      el('td', {}, role.description || ''),
      el('td', {}, el('ul', { className: 'permission-list' }, ...items)),
      el('td', {}, role.require_mfa ? 'required' : 'optional'),
      grantCell,
    );
  }

  async function loadRoles() {
    const result = await api('GET', '/api/permissions');
    if (!result.ok) {
      fail(result);
      return;
    }
    const data = result.data.data;
    known = data.permissions || [];
    $('permission-table').tBodies[0].replaceChildren(...data.roles.map(roleRow));
    $('policy-role').replaceChildren(...data.roles.map((r) => el('option', { value: r.name, selected: r.name === 'user' }, r.name)));
    rolesChanged(data.roles.map((r) => r.name));
  }

  $('add-role').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('role-name').value.trim();
    const permissions = $('role-permissions').value.split(/[\s,]+/).filter(Boolean);
    if (await saveRole({ name, description: $('role-description').value.trim() }, permissions)) {
      for (const id of ['role-name', 'role-description', 'role-permissions']) $(id).value = '';
    }
  });

  // --- Tool policy -------------------------------------------------------------------------------------------

  async function setRule(role, tool, decision, stepUp) {
    const result = await api('PUT', '/api/tool-policies', { role, tool, decision, step_up: stepUp });
    if (!result.ok) {
      fail(result);
      return false;
    }
    await loadPolicies();
    return true;
  }

  function ruleRow(rule) {
    const remove = el(
      'button',
      { type: 'button', className: 'policy-remove secondary', 'aria-label': `Remove the rule for ${rule.tool} (${rule.role})` },
      'Remove',
    );
    remove.addEventListener('click', () => setRule(rule.role, rule.tool, null, false));
    return el(
      'tr',
      { dataset: { role: rule.role, tool: rule.tool, decision: rule.decision || '' } },
      el('td', {}, rule.role),
      el('th', { scope: 'row' }, el('code', {}, rule.tool)),
      el('td', {}, rule.decision || ''),
      el('td', {}, rule.step_up ? 'code required' : ''),
      el('td', {}, remove),
    );
  }

  async function loadPolicies() {
    const result = await api('GET', '/api/tool-policies');
    if (!result.ok) {
      fail(result);
      return;
    }
    const rules = result.data.policies || [];
    $('policy-table').tBodies[0].replaceChildren(...rules.map(ruleRow));
    $('policy-empty').hidden = rules.length > 0;
  }

  // Step-up applies to `ask` only.
  const syncStepUp = () => {
    const ask = $('policy-decision').value === 'ask';
    $('policy-step-up').disabled = !ask;
    if (!ask) $('policy-step-up').checked = false;
  };
  $('policy-decision').addEventListener('change', syncStepUp);
  syncStepUp();

  $('set-policy').addEventListener('submit', async (event) => {
    event.preventDefault();
    const tool = $('policy-tool').value.trim();
    if (await setRule($('policy-role').value, tool, $('policy-decision').value, $('policy-step-up').checked)) {
      $('policy-tool').value = '';
    }
  });

  return () => Promise.all([loadRoles(), loadPolicies()]);
}

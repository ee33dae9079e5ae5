// The chat page: conversations (GET /chat/sessions, POST /chat/session/new, DELETE /chat/session/{id}), their
// history, and a turn streamed from POST /chat/message (Accept: text/event-stream) read with fetch and a
// ReadableStream, since EventSource cannot POST. Events: token, tool_call, tool_result, approval_required, then
// done or error. Model text is rendered by markdown.js, with textContent only.

import { api, csrfHeaders, el, errorText, fetchStatus, logPageView, showError } from './common.js';
import { renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const messages = $('messages');
const sessionList = $('session-list');
const input = $('message-input');
const errorRegion = $('chat-error');
const usage = $('usage');
// Asked at once: api() makes every state change wait for it (its answer carries the CSRF token); the streamed
// turn, sent with fetch itself, waits for it explicitly.
const statusReady = fetchStatus();

let currentId = null;
let controller = null;

function fail(result) {
  if (result.status === 401) {
    location.replace('/login');
    return;
  }
  showError(errorRegion, errorText(result));
}

function scrollDown() {
  messages.scrollTop = messages.scrollHeight;
}

// --- Conversations -------------------------------------------------------------------------------------------

function sessionItem(session) {
  const id = session.session_id || session.id;
  const title = session.title || 'New chat';
  const open = el('button', { type: 'button', className: 'session-open', title }, title);
  if (id === currentId) open.setAttribute('aria-current', 'page');
  open.addEventListener('click', () => openSession(id));
  const remove = el(
    'button',
    { type: 'button', className: 'session-delete', 'aria-label': `Delete conversation: ${title}` },
    'Delete',
  );
  remove.addEventListener('click', () => deleteSession(id, title));
  return el('li', { dataset: { sessionId: id } }, open, remove);
}

async function loadSessions() {
  const result = await api('GET', '/chat/sessions?limit=100');
  if (!result.ok) {
    fail(result);
    return [];
  }
  const sessions = result.data.sessions || [];
  sessionList.replaceChildren(...sessions.map(sessionItem));
  return sessions;
}

function markCurrent() {
  for (const li of sessionList.children) {
    const button = li.querySelector('.session-open');
    if (li.dataset.sessionId === currentId) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
}

async function newSession() {
  showError(errorRegion, '');
  const result = await api('POST', '/chat/session/new', {});
  if (!result.ok) {
    fail(result);
    return null;
  }
  currentId = result.data.session_id;
  messages.replaceChildren();
  usage.textContent = '';
  await loadSessions();
  input.focus();
  return currentId;
}

async function deleteSession(id, title) {
  if (!window.confirm(`Delete the conversation "${title}"?`)) return;
  showError(errorRegion, '');
  const result = await api('DELETE', `/chat/session/${encodeURIComponent(id)}`);
  if (!result.ok) {
    fail(result);
    return;
  }
  if (id === currentId) {
    currentId = null;
    messages.replaceChildren();
    usage.textContent = '';
  }
  await loadSessions();
}

async function openSession(id) {
  if (controller) return;
  showError(errorRegion, '');
  const result = await api('GET', `/chat/session/${encodeURIComponent(id)}/history?limit=1000`);
  if (!result.ok) {
    fail(result);
    return;
  }
  currentId = id;
  markCurrent();
  usage.textContent = '';
  messages.replaceChildren();
  for (const m of result.data.messages || []) {
    const meta = m.metadata || {};
    if (m.role === 'user') {
      messages.append(userBubble(m.content));
    } else if (m.role === 'assistant' && !meta.step) {
      for (const call of meta.tool_calls || []) {
        const card = toolCard(call.id, call.name, call.arguments);
        finishToolCard(card, call);
        messages.append(card);
      }
      const bubble = assistantBubble();
      renderMarkdown(bubble, m.content);
      messages.append(bubble);
    }
  }
  scrollDown();
}

// --- Messages and tool cards ---------------------------------------------------------------------------------

function userBubble(text) {
  return el('div', { className: 'message user' }, String(text));
}

function assistantBubble() {
  return el('div', { className: 'message assistant' });
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text ?? '');
  }
}

function toolCard(id, name, args) {
  return el(
    'div',
    { className: 'tool-card', dataset: { toolCallId: id || '' } },
    el('div', {}, 'Tool ', el('strong', { className: 'tool-name' }, String(name || '')), ' ',
      el('span', { className: 'tool-status' }, 'running…')),
    el('pre', { className: 'tool-args', 'aria-label': 'Arguments' }, pretty(args)),
  );
}

function finishToolCard(card, result) {
  const ok = result.status === 'success';
  card.classList.toggle('error', !ok);
  const seconds = typeof result.duration_ms === 'number' ? ` in ${Math.round(result.duration_ms)} ms` : '';
  card.querySelector('.tool-status').textContent = `${result.status || 'done'}${seconds}`;
  card.append(el('pre', { className: 'tool-result', 'aria-label': 'Result' }, pretty(result.result)));
}

function approvalCard(event) {
  const card = el(
    'div',
    { className: 'approval-card', dataset: { approvalId: event.approval_id } },
    el('div', {}, 'The tool ', el('strong', {}, String(event.name)), ' waits for your approval.'),
    el('pre', { 'aria-label': 'Arguments' }, pretty(event.arguments)),
  );
  let code = null;
  const methods = event.methods || [];
  let method = methods[0];
  const status = el('div', { className: 'tool-status', role: 'status' });
  if (event.step_up && method) {
    const codeId = `approval-code-${event.approval_id}`;
    code = el('input', { type: 'text', id: codeId, autocomplete: 'one-time-code', inputMode: 'numeric' });
    const label = el('label', { htmlFor: codeId }, `Code (${method})`);
    // An SMS code is sent only when asked for, bound to this approval.
    const send = el('button', { type: 'button', className: 'approval-send-code secondary' }, 'Text me a code');
    send.hidden = method !== 'sms';
    send.addEventListener('click', async () => {
      const result = await api('POST', `/chat/approvals/${encodeURIComponent(event.approval_id)}/code`, {});
      status.textContent = result.ok ? 'A code was sent to your phone.' : errorText(result);
    });
    if (methods.length > 1) {
      const choiceId = `approval-method-${event.approval_id}`;
      const choice = el('select', { id: choiceId, className: 'approval-method' }, ...methods.map((m) => el('option', { value: m }, m)));
      choice.addEventListener('change', () => {
        method = choice.value;
        label.textContent = `Code (${method})`;
        send.hidden = method !== 'sms';
      });
      card.append(el('label', { htmlFor: choiceId }, 'Second factor'), choice);
    }
    card.append(label, code, send);
  }
  const decide = async (approve) => {
    const body = { approve };
    if (code && approve) Object.assign(body, { code: code.value.trim(), method });
    const result = await api('POST', `/chat/approvals/${encodeURIComponent(event.approval_id)}`, body);
    if (!result.ok) {
      status.textContent = errorText(result);
      return;
    }
    for (const b of card.querySelectorAll('button')) b.disabled = true;
    status.textContent = approve ? 'Approved.' : 'Refused.';
  };
  const yes = el('button', { type: 'button', className: 'approve' }, 'Approve');
  const no = el('button', { type: 'button', className: 'refuse secondary' }, 'Refuse');
  yes.addEventListener('click', () => decide(true));
  no.addEventListener('click', () => decide(false));
  card.append(el('div', { className: 'actions' }, yes, no), status);
  return card;
}

// --- One streamed turn ---------------------------------------------------------------------------------------

/** Splits a server-sent event stream into {event, data} records; `onEvent` gets each one. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}

function setStreaming(on) {
  $('send').hidden = on;
  $('stop').hidden = !on;
  input.readOnly = on;
}

async function sendMessage() {
  await statusReady;
  const text = input.value.trim();
  if (!text || controller) return;
  showError(errorRegion, '');
  if (!currentId && !(await newSession())) return;
  input.value = '';
  messages.append(userBubble(text));
  let answer = '';
  let bubble = null;
  const cards = new Map();
  const ensureBubble = () => {
    if (!bubble) {
      bubble = assistantBubble();
      bubble.setAttribute('aria-busy', 'true');
      messages.append(bubble);
    }
    return bubble;
  };
  ensureBubble();
  controller = new AbortController();
  setStreaming(true);
  usage.textContent = '';
  try {
    const response = await fetch('/chat/message', {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'text/event-stream',
        ...csrfHeaders('POST'),
      },
      body: JSON.stringify({ session_id: currentId, message: text }),
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      bubble.remove();
      fail({ ok: false, status: response.status, data });
      return;
    }
    await readEvents(response.body, (name, raw) => {
      let data;
      try {
        data = JSON.parse(raw);
      } catch {
        return;
      }
      if (name === 'token') {
        answer += data.text || '';
        renderMarkdown(ensureBubble(), answer);
      } else if (name === 'tool_call') {
        const card = toolCard(data.id, data.name, data.arguments);
        cards.set(data.id, card);
        messages.insertBefore(card, bubble);
      } else if (name === 'tool_result') {
        let card = cards.get(data.id);
        if (!card) {
          card = toolCard(data.id, data.name, '');
          messages.insertBefore(card, bubble);
        }
        finishToolCard(card, data);
      } else if (name === 'approval_required') {
        messages.insertBefore(approvalCard(data), bubble);
      } else if (name === 'done') {
        renderMarkdown(ensureBubble(), data.content ?? answer);
        const m = data.metadata || {};
        if (typeof m.tokens_used === 'number') {
          usage.textContent = `Tokens this turn: ${m.tokens_used} (${m.input_tokens ?? 0} in, ${m.output_tokens ?? 0} out)`;
        }
      } else if (name === 'error') {
        bubble.classList.add('failed');
        showError(errorRegion, errorText({ status: 500, data }));
      }
      scrollDown();
    });
  } catch (err) {
    if (err && err.name === 'AbortError') {
      ensureBubble().append(el('p', { className: 'tool-status' }, 'Stopped.'));
    } else {
      showError(errorRegion, 'The connection to the server was lost.');
    }
  } finally {
    if (bubble) bubble.setAttribute('aria-busy', 'false');
    controller = null;
    setStreaming(false);
    scrollDown();
    loadSessions();
  }
}

// --- Wiring --------------------------------------------------------------------------------------------------

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  sendMessage();
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});

$('stop').addEventListener('click', () => {
  if (controller) controller.abort();
});

$('new-session').addEventListener('click', () => {
  if (!controller) newSession();
});

$('sign-out').addEventListener('click', async () => {
  await api('POST', '/auth/logout', {});
  location.replace('/login');
});

const status = await statusReady;
if (!status.authenticated) {
  location.replace('/login');
} else {
  $('user-name').textContent = status.username || '';
  $('admin-link').hidden = status.role !== 'admin';
  logPageView();
  const sessions = await loadSessions();
  if (sessions.length) await openSession(sessions[0].session_id || sessions[0].id);
  input.focus();
}

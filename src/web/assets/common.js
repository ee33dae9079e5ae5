// Shared by the pages: JSON calls to Warden's API (same origin, the session cookie, the CSRF token on every
// state change), the page-view report, and a DOM builder that only ever sets text (never markup).

let csrfToken = null;
/** The GET /api/status in flight, if any: a state change waits for it, since its answer carries the CSRF token. */
let statusPending = null;

/** Keeps the CSRF token a login or GET /api/status handed out; every unsafe request sends it. */
export function setCsrf(token) {
  csrfToken = typeof token === 'string' && token ? token : null;
}

export function csrfHeaders(method) {
  return csrfToken && method !== 'GET' ? { 'X-CSRF-Token': csrfToken } : {};
}

/** One API call: resolves to {ok, status, data} (data is the parsed JSON body, or null); never throws on HTTP errors. */
export async function api(method, path, body) {
  // A click in a page's first moments must not go out before the token is there (it would be refused with 403).
  if (method !== 'GET' && statusPending) await statusPending;
  const headers = { Accept: 'application/json', ...csrfHeaders(method) };
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: { error: 'The server cannot be reached.' } };
  }
  let text;
  try {
    text = await response.text();
  } catch {
    // The answer's body could not be read (the page is being left, the connection dropped). Callers read the
    // `data` of every ok answer, so this is no answer at all.
    return { ok: false, status: 0, data: { error: 'The server cannot be reached.' } };
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

/** The server's own `error` message, or a plain one: nothing more is revealed. */
export function errorText(result) {
  if (result.data && typeof result.data.error === 'string' && result.data.error) {
    return result.data.error;
  }
  return result.status ? `Request failed (${result.status}).` : 'The server cannot be reached.';
}

/** GET /api/status: who is signed in; keeps the fresh CSRF token it returns. */
export function fetchStatus() {
  statusPending = (async () => {
    const result = await api('GET', '/api/status');
    const data = result.ok && result.data ? result.data : { authenticated: false };
    if (data.authenticated) setCsrf(data.csrf_token);
    return data;
  })();
  return statusPending;
}

/** Reports this page view once; failures are ignored (analytics never gets in the way). */
export function logPageView() {
  const loadTime = Math.max(0, Math.round(performance.now()));
  api('POST', '/api/analytics/log-page-view', {
    path: location.pathname,
    title: document.title,
    loadTime,
  }).catch(() => {});
}

/** Builds an element: `props` are set as DOM properties (className, id, type, ...), children are nodes or text. */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('aria-') || key === 'role') node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** Shows `text` in a role=alert region (empty text clears it). */
export function showError(region, text) {
  region.textContent = text || '';
}

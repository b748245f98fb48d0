// The API client. The token lives in sessionStorage only (gone when the
// tab closes) and travels in the Authorization header, never in a URL:
// URLs end up in history, logs and screenshots.

const TOKEN_KEY = 'audit-export.token';

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  save(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An API error: `status`, `code`, `message`, `field` and the whole error object. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `request failed (HTTP ${status})`);
    this.status = status;
    this.code = error?.code ?? 'http_error';
    this.field = error?.field ?? null;
    this.error = error ?? {};
  }
}

let onUnauthorized = () => {};
/** Called when the server rejects the stored token (revoked, expired). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function buildQuery(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value == null || value === '') continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, v);
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // A proxy's HTML page or an empty body: keep the status alone.
  }
  return new ApiError(resp.status, body?.error);
}

/**
 * Sends a request; `raw: true` returns the Response for the caller to read
 * (exports answer with a file). Non-2xx answers throw ApiError.
 */
export async function request(method, path, { query, body, raw = false, token = session.token() } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path + buildQuery(query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, { code: 'network_error', message: 'The server cannot be reached. Check your connection and try again.' });
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && token === session.token()) onUnauthorized(err);
    throw err;
  }
  return raw ? resp : resp.json();
}

export const api = {
  me: (token) => request('GET', '/api/v1/me', { token }),
  auditLogs: (query) => request('GET', '/api/v1/audit-logs', { query }),
  estimate: (filters) => request('POST', '/api/v1/exports/estimate', { body: { filters } }),
  createExport: (body) => request('POST', '/api/v1/exports', { body, raw: true }),
  jobs: (query) => request('GET', '/api/v1/exports', { query }),
  job: (id) => request('GET', `/api/v1/exports/${encodeURIComponent(id)}`),
  cancelJob: (id) => request('DELETE', `/api/v1/exports/${encodeURIComponent(id)}`),
  restartJob: (id) => request('POST', `/api/v1/exports/${encodeURIComponent(id)}/restart`),
  schedules: () => request('GET', '/api/v1/schedules'),
  runSchedule: (name) => request('POST', `/api/v1/schedules/${encodeURIComponent(name)}/run`),
  reloadSchedules: () => request('POST', '/api/v1/schedules/reload'),
  notifications: (query) => request('GET', '/api/v1/notifications', { query }),
  markRead: (id) => request('POST', `/api/v1/notifications/${encodeURIComponent(id)}/read`),
  markAllRead: () => request('POST', '/api/v1/notifications/read-all'),
};

/** True for job states that will still change. */
export function jobRunning(job) {
  return job.state === 'exporting' || job.state === 'uploading';
}

const STATE_LABELS = {
  exporting: 'Exporting',
  uploading: 'Uploading',
  completed: 'Completed',
  failed: 'Failed',
  expired: 'Expired',
};
export function stateLabel(state) {
  return STATE_LABELS[state] ?? state;
}

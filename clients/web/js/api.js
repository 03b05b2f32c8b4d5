// HTTP client for the medseg /v1 API: the API key (kept in sessionStorage for this tab),
// typed errors, and the server time of every answer (Server-Timing: app;dur=<ms>).

const KEY_STORAGE = 'medseg.apiKey';

export class ApiError extends Error {
  /** status: HTTP status (0 when the server could not be reached); code: the server's error code. */
  constructor(status, code, message, requestId = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }

  static async from(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      /* not JSON (a proxy's error page): fall back to the status text */
    }
    return new ApiError(response.status, body?.error ?? 'http_error',
      body?.message ?? (response.statusText || `HTTP ${response.status}`),
      body?.request_id ?? response.headers.get('X-Request-ID'));
  }
}

/** Milliseconds from a Server-Timing header (`app;dur=12.3`), or null. */
export function serverMs(headers) {
  const match = /dur=([0-9.]+)/.exec(headers.get('Server-Timing') ?? '');
  return match ? Number(match[1]) : null;
}

export class Api extends EventTarget {
  constructor(base = '') {
    super();
    this.base = base;
    this.key = sessionStorage.getItem(KEY_STORAGE) ?? '';
  }

  setKey(key) {
    this.key = key.trim();
    if (this.key) sessionStorage.setItem(KEY_STORAGE, this.key);
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  headers(extra = {}) {
    return this.key ? { 'X-API-Key': this.key, ...extra } : { ...extra };
  }

  /** fetch + error mapping; emits 'response' {ms, path, status}. Returns the Response. */
  async fetch(method, path, { json, body, headers = {}, signal } = {}) {
    const init = { method, headers: this.headers(headers), signal };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers['Content-Type'] = 'application/json';
    } else if (body !== undefined) {
      init.body = body;
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', `cannot reach the server (${err.message})`);
    }
    this.dispatchEvent(new CustomEvent('response', {
      detail: { ms: serverMs(response.headers), path, status: response.status },
    }));
    if (!response.ok) {
      const err = await ApiError.from(response);
      err.path = path; // which call failed (a 404 on the open session's path means it is gone)
      throw err;
    }
    return response;
  }

  async json(method, path, options) {
    const response = await this.fetch(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  get(path, options) { return this.json('GET', path, options); }
  post(path, json, headers) { return this.json('POST', path, { json, headers }); }
  patch(path, json) { return this.json('PATCH', path, { json }); }
  delete(path) { return this.json('DELETE', path); }

  /** Multipart upload with progress (fetch has no upload progress): resolves to the JSON body. */
  upload(path, files, onProgress = () => {}) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const file of files) form.append('files', file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', this.base + path);
      for (const [name, value] of Object.entries(this.headers())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
      xhr.onerror = () => reject(new ApiError(0, 'network', 'cannot reach the server'));
      xhr.onload = () => {
        const headers = { get: (n) => xhr.getResponseHeader(n) };
        this.dispatchEvent(new CustomEvent('response', {
          detail: { ms: serverMs(headers), path, status: xhr.status },
        }));
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { /* handled below */ }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new ApiError(xhr.status, body?.error ?? 'http_error',
          body?.message ?? `HTTP ${xhr.status}`, body?.request_id ?? null));
      };
      xhr.send(form);
    });
  }
}

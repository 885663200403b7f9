// Helpers shared by the job list (app.js) and the job page (job-page.js): building DOM nodes and
// formatting what the API returns. Every value reaches the DOM as text, never as markup.

export const STATUSES = ['pending', 'uploading', 'queued', 'running', 'completed', 'failed', 'cancelled'];

export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of [].concat(children)) {
    if (child != null && child !== false) node.append(child); // strings become Text nodes
  }
  return node;
}

export function parseTimestamp(value) {
  if (typeof value !== 'string' || !value) return null;
  // The API's timestamps are UTC; treat a bare date-time without an offset as UTC too.
  const hasZone = /(?:[zZ]|[+-]\d{2}:?\d{2})$/.test(value);
  const date = new Date(hasZone || !value.includes('T') ? value : `${value}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

export const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
export const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const intFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function formatInt(value) {
  const n = Number(value);
  return value == null || !Number.isFinite(n) ? '—' : intFormat.format(n);
}

export function formatCost(value) {
  const n = Number(value);
  return value == null || !Number.isFinite(n) ? '—' : `$${n.toFixed(4)}`;
}

// A per-second price has six significant decimals ($0.001525/s); four would show $0.0015.
export function formatPrice(value) {
  const n = Number(value);
  return value == null || !Number.isFinite(n) ? '—' : `$${n.toFixed(6)}/s`;
}

export function formatDuration(value) {
  const n = Number(value);
  if (value == null || !Number.isFinite(n)) return '—';
  const total = Math.max(0, Math.round(n));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (x) => String(x).padStart(2, '0');
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

export function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 10)}…` : id;
}

export function safeHttpUrl(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

export function plural(n, one, many) {
  return n === 1 ? one : many;
}

export function buildStatusBadge(status, testId = 'job-status') {
  const known = STATUSES.includes(status);
  return el('span', { class: `badge badge--${known ? status : 'unknown'}`, 'data-testid': testId }, [
    el('span', { class: 'badge__icon', 'aria-hidden': 'true' }),
    String(status || 'unknown'),
  ]);
}

// The address of a job's page in this app (a hash route, so the static page needs no server rules).
export function jobHref(jobId) {
  return `#/jobs/${encodeURIComponent(jobId)}`;
}

// A running job's time so far, by the page's clock (the provider's started_at is UTC, as Date.now is);
// null when it has not started or is not running.
export function runningSeconds(job, nowMs) {
  if (!job || job.status !== 'running') return null;
  const started = parseTimestamp(job.started_at);
  return started ? Math.max(0, (nowMs - started.getTime()) / 1000) : null;
}

// What a running job has cost so far at its hardware's price; null when either is unknown.
export function costSoFar(job, seconds) {
  const price = Number(job && job.price_per_second_usd);
  if (seconds == null || job.price_per_second_usd == null || !Number.isFinite(price)) return null;
  return seconds * price;
}

// jobsync dashboard: a plain ES module, no build step, no external resources.
// Every value that comes from the API reaches the DOM through textContent,
// Text nodes or setAttribute, never through innerHTML. One job's page is job-page.js; the helpers both
// use are util.js.

import { createJobPage } from './job-page.js';
import { buildProgressBlock, paintProgressBlock } from './progress.js';
import {
  STATUSES,
  buildStatusBadge,
  costSoFar,
  dateFormat,
  el,
  formatCost,
  formatDuration,
  formatInt,
  jobHref,
  parseTimestamp,
  plural,
  runningSeconds,
  safeHttpUrl,
  shortId,
  timeFormat,
} from './util.js';

const PAGE_SIZE = 50;
const MAX_LIMIT = 500;
const TOKEN_KEY = 'jobsync.apiToken';
const RELOAD_DEBOUNCE_MS = 300;
const RELOAD_MAX_WAIT_MS = 2000;
const TOAST_MS = 6000;
const HIGHLIGHT_MS = 2400;
const WS_BASE_DELAY_MS = 1000;
const WS_MAX_DELAY_MS = 30000;
const LIST_RETRY_BASE_MS = 2000;
const LIST_RETRY_MAX_MS = 30000;
// A failure seen by the page asks the server to check the provider's credentials, at most this often.
const VALIDATE_GAP_MS = 10000;

const pageParams = new URLSearchParams(window.location.search);

// Intervals can be shortened (`?poll_ms=200` or window.JOBSYNC_POLL_MS); the defaults are the
// product's: 5 s inline progress, 30 s fallback refresh, 30 s health check (polling status, and the
// provider's credentials while they are in trouble).
function intervalSetting(queryName, globalName, fallback) {
  const candidates = [pageParams.get(queryName), window[globalName]];
  for (const raw of candidates) {
    const value = Number(raw);
    if (raw != null && raw !== '' && Number.isFinite(value) && value >= 50) return Math.round(value);
  }
  return fallback;
}

const POLL_MS = intervalSetting('poll_ms', 'JOBSYNC_POLL_MS', 5000);
const REFRESH_MS = intervalSetting('refresh_ms', 'JOBSYNC_REFRESH_MS', 30000);
const HEALTH_MS = intervalSetting('health_ms', 'JOBSYNC_HEALTH_MS', 30000);

const API_BASE = (() => {
  const meta = document.querySelector('meta[name="jobsync-api-base"]');
  const configured = meta && meta.content ? meta.content.trim() : '';
  return (configured || window.location.origin).replace(/\/+$/, '');
})();

// ---------------------------------------------------------------- DOM refs

const $ = (selector) => document.querySelector(selector);
const dom = {
  tokenPanel: $('#token-panel'),
  tokenForm: $('#token-form'),
  tokenInput: $('#token-input'),
  tokenMessage: $('#token-message'),
  tokenToggle: $('#token-toggle'),
  connection: $('[data-testid="connection-state"]'),
  connectionText: $('.connection__text'),
  syncButton: $('#sync-button'),
  syncSpinner: $('[data-testid="sync-spinner"]'),
  syncLabel: $('.sync-button__label'),
  toast: $('#toast'),
  jobsBody: $('#jobs-body'),
  jobsStatus: $('#jobs-status'),
  loadMore: $('#load-more'),
  metricsTotal: $('[data-testid="metrics-total"]'),
  metricsActive: $('[data-testid="metrics-active"]'),
  metricsCost: $('[data-testid="metrics-cost"]'),
  statusCounts: $('#status-counts'),
  polling: $('#polling'),
  pollingSelect: $('#polling-select'),
  pollingState: $('#polling-state'),
  pollingText: $('.polling__text'),
  trouble: $('#trouble'),
  providerAlert: $('[data-testid="provider-alert"]'),
  providerTitle: $('#provider-alert-title'),
  providerDetail: $('#provider-alert-detail'),
  providerRecheck: $('#provider-recheck'),
  pollingAlert: $('[data-testid="polling-alert"]'),
  pollingAlertDetail: $('#polling-alert-detail'),
  listSections: [$('section.metrics'), $('section.jobs')],
  jobBack: $('#job-back'),
};

// ---------------------------------------------------------------- state

const state = {
  token: null,
  authFailed: false,
  jobs: [],
  nextCursor: null,
  // Requests are numbered; an answer is shown unless a later one is on screen already. (Showing only the
  // latest request's answer starves the list when reloads come faster than the server answers.)
  listSeq: 0,
  listShown: 0,
  listLoaded: false,
  loadingMore: false,
  metricsSeq: 0,
  metricsShown: 0,
  syncing: false,
  progress: new Map(), // job_id -> last inline-progress answer
  pollers: new Map(), // job_id -> { timer, controller, stopped }
  highlight: new Set(), // job ids to flash after the next render
  polling: { value: null, seq: 0, saving: false, failing: null }, // value: the select's last confirmed option
  // failing: { error, at } while the server's poller reports failing ticks, else null
  provider: { problem: null, seq: 0, askedAt: -Infinity }, // problem: { title, detail, checkedAt } or null
  listRetry: { timer: null, attempt: 0 },
  view: 'list', // 'list' or 'job' (#/jobs/<id>)
};

// ---------------------------------------------------------------- token

function readStoredToken() {
  try {
    return window.localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  state.token = token;
  try {
    window.localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage may be unavailable (private mode); the token still lives for this page.
  }
}

// The local stack opens `/#token=<token>`: keep the token, then drop it from the address bar.
function takeTokenFromFragment() {
  const hash = window.location.hash.replace(/^#/, '');
  if (!hash) return;
  const fragment = new URLSearchParams(hash);
  if (!fragment.has('token')) return;
  const token = (fragment.get('token') || '').trim();
  fragment.delete('token');
  if (token) storeToken(token);
  const rest = fragment.toString();
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : '');
  window.history.replaceState(window.history.state, '', url);
}

function showTokenPanel(message, { focus = false } = {}) {
  dom.tokenMessage.textContent = message;
  dom.tokenPanel.hidden = false;
  dom.tokenToggle.setAttribute('aria-expanded', 'true');
  if (focus) dom.tokenInput.focus();
}

function hideTokenPanel() {
  dom.tokenPanel.hidden = true;
  dom.tokenToggle.setAttribute('aria-expanded', 'false');
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// `body`, when given (anything but undefined), is sent as JSON; `null` inside it stays null.
async function api(path, { method = 'GET', query = null, body: payload, signal } = {}) {
  const url = new URL(API_BASE + path);
  if (query) {
    for (const [key, value] of Object.entries(query)) {
      if (value != null) url.searchParams.set(key, String(value));
    }
  }
  const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token || ''}` };
  const init = { method, headers, cache: 'no-store', signal };
  if (payload !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(payload);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'Could not reach the jobsync API.');
  }
  const text = await response.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    const message =
      body && typeof body.message === 'string' && body.message
        ? body.message
        : `The API answered ${response.status} ${response.statusText}`.trim();
    const error = new ApiError(response.status, body && body.error ? String(body.error) : 'http_error', message);
    if (response.status === 401) onUnauthorized();
    throw error;
  }
  return body && typeof body === 'object' ? body : {};
}

function onUnauthorized() {
  if (state.authFailed) return;
  state.authFailed = true;
  stopAllPollers();
  stopLive();
  stopListRetry();
  window.clearInterval(healthTimer);
  setConnection('offline', 'Live updates paused until a valid token is saved');
  dom.pollingSelect.disabled = true;
  setPollingText('unknown', 'Polling state needs a valid API token');
  showTokenPanel('The API rejected the token (401 Unauthorized). Enter a valid token to continue.');
  if (!state.listLoaded) setListStatus('Enter a valid API token to load jobs.');
}

// ---------------------------------------------------------------- job list

function setListStatus(text) {
  dom.jobsStatus.textContent = text;
}

function sortNewestFirst(jobs) {
  const key = (job) => {
    const date = parseTimestamp(job.created_at);
    return date ? date.getTime() : -Infinity;
  };
  // Array.prototype.sort is stable: ties keep the server's order.
  return jobs.slice().sort((a, b) => key(b) - key(a));
}

async function loadJobs({ syncActive = false } = {}) {
  if (!state.token || state.authFailed) return;
  const seq = ++state.listSeq;
  const limit = Math.min(MAX_LIMIT, Math.max(PAGE_SIZE, state.jobs.length));
  if (!state.listLoaded) setListStatus('Loading jobs…');
  try {
    const data = await api('/api/cloud/jobs', {
      query: { limit, sync_active: syncActive ? 'true' : null },
    });
    if (seq < state.listShown) return;
    state.listShown = seq;
    stopListRetry();
    state.jobs = sortNewestFirst(Array.isArray(data.jobs) ? data.jobs : []);
    state.nextCursor = data.next_cursor || null;
    state.listLoaded = true;
    renderJobs();
  } catch (err) {
    if (seq < state.listShown || err.status === 401) return;
    setListStatus(`Could not load jobs: ${err.message}`);
    if (isProviderFailure(err)) checkProvider();
    // A failed reload must not leave the list stale until the next event: try again, with backoff.
    scheduleListRetry();
  }
}

function scheduleListRetry() {
  const retry = state.listRetry;
  if (retry.timer) return;
  const delay = Math.min(LIST_RETRY_MAX_MS, LIST_RETRY_BASE_MS * 2 ** retry.attempt);
  retry.attempt = Math.min(retry.attempt + 1, 16);
  retry.timer = window.setTimeout(() => {
    retry.timer = null;
    loadJobs();
    loadMetrics();
  }, delay);
}

function stopListRetry() {
  window.clearTimeout(state.listRetry.timer);
  state.listRetry.timer = null;
  state.listRetry.attempt = 0;
}

async function loadMoreJobs() {
  if (!state.nextCursor || state.loadingMore || state.authFailed) return;
  const shown = state.listShown;
  state.loadingMore = true;
  dom.loadMore.disabled = true;
  dom.loadMore.setAttribute('aria-busy', 'true');
  try {
    const data = await api('/api/cloud/jobs', { query: { limit: PAGE_SIZE, cursor: state.nextCursor } });
    if (state.listShown !== shown) return; // a full reload replaced the list meanwhile
    const known = new Set(state.jobs.map((job) => job.job_id));
    const fresh = (Array.isArray(data.jobs) ? data.jobs : []).filter((job) => !known.has(job.job_id));
    state.jobs = sortNewestFirst(state.jobs.concat(fresh));
    state.nextCursor = data.next_cursor || null;
    renderJobs();
  } catch (err) {
    if (err.status !== 401) showToast(`Could not load more jobs: ${err.message}`, 'error');
  } finally {
    state.loadingMore = false;
    dom.loadMore.disabled = false;
    dom.loadMore.setAttribute('aria-busy', 'false');
  }
}

function renderJobs() {
  // The rows are rebuilt on every reload: a keyboard user's focus on a job's link moves to its new link.
  const focused = document.activeElement && document.activeElement.closest('a.job-open');
  const focusedJob = focused && dom.jobsBody.contains(focused) ? focused.closest('tr.job-row').dataset.jobId : null;
  const fragment = document.createDocumentFragment();
  for (const job of state.jobs) {
    if (job && typeof job.job_id === 'string') fragment.append(buildRow(job));
  }
  dom.jobsBody.replaceChildren(fragment);
  if (focusedJob != null) focusJobLink(focusedJob);
  dom.loadMore.hidden = !state.nextCursor;
  const n = state.jobs.length;
  setListStatus(
    n === 0
      ? 'No jobs yet. Use Sync to discover jobs from Replicate.'
      : `Showing ${n} ${plural(n, 'job', 'jobs')}${state.nextCursor ? ' (more available)' : ''}.`,
  );
  reconcilePollers();
  flashHighlightedRows();
}

// Each cell has a class of its own: on a phone the row becomes a two-line grid that places them.
function cell(label, children, className) {
  return el('td', { 'data-label': label, class: className }, el('div', { class: 'cell' }, children));
}

function buildRow(job) {
  const created = parseTimestamp(job.created_at);
  const createdNode = created
    ? el('time', { datetime: created.toISOString(), title: `${created.toISOString()} (UTC)` }, dateFormat.format(created))
    : el('span', { class: 'muted' }, job.created_at ? String(job.created_at) : '—');

  const modelName = job.model ? String(job.model) : '—';
  // The model is the link to the job's page (the ID column is out of sight on a phone); its name says
  // which job, as several rows may share a model.
  const modelChildren = [
    el('a', { class: 'job-open', href: jobHref(job.job_id), 'data-testid': 'job-open' }, [
      el('span', { class: 'job-model', title: modelName }, modelName),
      el('span', { class: 'visually-hidden' }, `(job ${job.job_id})`), // named "model (job id)"
    ]),
  ];
  if (job.config_name) modelChildren.push(el('span', { class: 'job-sub' }, String(job.config_name)));

  const row = el(
    'tr',
    {
      class: 'job-row',
      'data-testid': 'job-row',
      'data-job-id': job.job_id,
      'data-status': job.status == null ? '' : String(job.status),
    },
    [
      cell('Status', buildStatusBadge(job.status), 'col-status'),
      cell('Model', modelChildren, 'col-model'),
      cell('Job ID', el('code', { class: 'job-id', title: job.job_id }, shortId(job.job_id)), 'col-id'),
      cell('Created', createdNode, 'col-created'),
      cell('Duration', formatDuration(job.duration_seconds), 'num col-duration'),
      cell('Cost', formatCost(job.cost_usd), 'num col-cost'),
      cell('Details', buildDetails(job), 'details'),
    ],
  );
  if (job.status === 'running') paintRowClock(row, job, Date.now());
  return row;
}

// A running job has no final duration or cost yet: show its time so far and what that has cost at
// its hardware's price, redrawn every second by tickRunningRows().
function paintRowClock(row, job, nowMs) {
  const duration = row.querySelector('.col-duration .cell');
  const cost = row.querySelector('.col-cost .cell');
  const seconds = runningSeconds(job, nowMs);
  const soFar = costSoFar(job, seconds);
  duration.textContent = formatDuration(seconds);
  duration.title = seconds == null ? '' : 'Running for';
  cost.textContent = soFar == null ? '—' : `≈ ${formatCost(soFar)}`;
  cost.title = soFar == null ? '' : 'Cost so far, estimated from the time so far and the hardware price';
}

function tickRunningRows() {
  if (state.view === 'job') return;
  const now = Date.now();
  const byId = new Map(state.jobs.map((job) => [job.job_id, job]));
  for (const row of dom.jobsBody.querySelectorAll('tr.job-row[data-status="running"]')) {
    const job = byId.get(row.dataset.jobId);
    if (job) paintRowClock(row, job, now);
  }
}

function buildDetails(job) {
  if (job.status === 'running') {
    const block = buildProgressBlock(job);
    const data = state.progress.get(job.job_id);
    if (data) paintProgressBlock(block, data);
    return block;
  }
  const parts = [];
  if (job.status === 'failed') {
    parts.push(
      el('p', { class: 'job-error', 'data-testid': 'job-error', title: job.error_message || null }, [
        el('span', { class: 'visually-hidden' }, 'Error: '),
        job.error_message ? String(job.error_message) : 'The provider reported no error message.',
      ]),
    );
  }
  const output = safeHttpUrl(job.output_url);
  if (output && job.status === 'completed') {
    parts.push(el('a', { class: 'job-link', href: output, rel: 'noopener noreferrer' }, 'Output'));
  }
  if (!parts.length) parts.push(el('span', { class: 'muted' }, '—'));
  return parts;
}

// ---------------------------------------------------------------- inline progress

function paintProgress(jobId) {
  const data = state.progress.get(jobId);
  if (!data) return;
  for (const block of dom.jobsBody.querySelectorAll('.progress')) {
    if (block.dataset.jobId === jobId) paintProgressBlock(block, data);
  }
}

function reconcilePollers() {
  // The list's progress is polled only while the list is on screen; the job page polls its own job.
  const shown = state.view === 'job' ? [] : state.jobs;
  const running = new Set(shown.filter((job) => job.status === 'running').map((job) => job.job_id));
  for (const jobId of [...state.pollers.keys()]) {
    if (!running.has(jobId)) stopPoller(jobId);
  }
  for (const jobId of [...state.progress.keys()]) {
    if (!running.has(jobId)) state.progress.delete(jobId);
  }
  for (const jobId of running) {
    if (!state.pollers.has(jobId)) startPoller(jobId);
  }
}

function startPoller(jobId) {
  const poller = { timer: null, controller: null, stopped: false };
  state.pollers.set(jobId, poller);
  const tick = async () => {
    poller.timer = null;
    if (poller.stopped) return;
    poller.controller = new AbortController();
    try {
      const data = await api(`/api/cloud/jobs/${encodeURIComponent(jobId)}/inline-progress`, {
        signal: poller.controller.signal,
      });
      if (poller.stopped) return;
      state.progress.set(jobId, data);
      paintProgress(jobId);
    } catch (err) {
      if (poller.stopped) return;
      if (err.status === 404 || err.status === 401) {
        stopPoller(jobId);
        return;
      }
      // Other failures are transient: try again on the next tick. A provider failure may not be:
      // ask the server whether the credentials still work, so that the banner can say what to fix.
      if (isProviderFailure(err)) checkProvider();
    } finally {
      poller.controller = null;
    }
    if (!poller.stopped) poller.timer = window.setTimeout(tick, POLL_MS);
  };
  tick();
}

function stopPoller(jobId) {
  const poller = state.pollers.get(jobId);
  if (!poller) return;
  poller.stopped = true;
  if (poller.timer) window.clearTimeout(poller.timer);
  if (poller.controller) poller.controller.abort();
  state.pollers.delete(jobId);
}

function stopAllPollers() {
  for (const jobId of [...state.pollers.keys()]) stopPoller(jobId);
}

// ---------------------------------------------------------------- metrics

async function loadMetrics() {
  if (!state.token || state.authFailed) return;
  const seq = ++state.metricsSeq;
  try {
    const data = await api('/api/cloud/metrics');
    if (seq < state.metricsShown) return;
    state.metricsShown = seq;
    renderMetrics(data);
  } catch {
    // The list shows errors; metrics keep their last known values.
  }
}

function renderMetrics(data) {
  dom.metricsTotal.textContent = formatInt(data.job_count);
  dom.metricsActive.textContent = formatInt(data.active_count);
  dom.metricsCost.textContent = formatCost(data.total_cost_usd);
  const byStatus = data.jobs_by_status && typeof data.jobs_by_status === 'object' ? data.jobs_by_status : {};
  const items = STATUSES.map((status) =>
    el('li', { class: `status-count status-count--${status}`, 'data-status': status }, [
      el('span', { class: 'badge__icon', 'aria-hidden': 'true' }),
      el('span', { class: 'status-count__label' }, status),
      el('span', { class: 'status-count__value', 'data-testid': `metrics-status-${status}` }, formatInt(byStatus[status] ?? 0)),
    ]),
  );
  dom.statusCounts.replaceChildren(...items);
}

// ---------------------------------------------------------------- background polling

// The select's options and the `enabled` value each one stands for (null = automatic).
const POLLING_OPTIONS = { auto: null, on: true, off: false };

function pollingOption(preference) {
  if (preference === true) return 'on';
  if (preference === false) return 'off';
  return 'auto';
}

// `how` (automatic or forced) repeats what the select shows: a phone leaves it out to keep one line.
function setPollingText(kind, text, how = '') {
  dom.pollingState.dataset.state = kind;
  dom.pollingText.replaceChildren(text, how ? el('span', { class: 'polling__how' }, ` (${how})`) : '');
}

function renderPolling(data) {
  const preference = data.preference === true || data.preference === false ? data.preference : null;
  const option = pollingOption(preference);
  state.polling.value = option;
  dom.pollingSelect.value = option;
  dom.pollingSelect.disabled = false;
  dom.pollingState.removeAttribute('title');
  const tick = data.last_tick && typeof data.last_tick === 'object' ? data.last_tick : {};
  const failing =
    data.is_active === true && typeof tick.error === 'string' && tick.error
      ? { error: tick.error, at: parseTimestamp(tick.at) }
      : null;
  setPollingFailing(failing);
  if (typeof data.is_active !== 'boolean') {
    setPollingText('unknown', 'Polling state unknown');
    return;
  }
  const how = preference === null ? 'automatic' : 'forced';
  if (failing) {
    // On, but its ticks fail: saying "on" alone would claim the jobs are being kept current.
    setPollingText('failing', 'Polling is failing', how);
    dom.pollingState.title = failing.error;
    return;
  }
  setPollingText(data.is_active ? 'on' : 'off', `Polling is ${data.is_active ? 'on' : 'off'}`, how);
}

async function loadPolling() {
  if (!state.token || state.authFailed || state.polling.saving) return;
  const seq = ++state.polling.seq;
  try {
    const data = await api('/api/cloud/polling/status');
    if (seq !== state.polling.seq) return;
    renderPolling(data);
    if (state.polling.failing) checkProvider();
  } catch (err) {
    if (seq !== state.polling.seq || err.status === 401) return;
    // Not worth a toast on load; the control says so and the next refresh tries again.
    if (state.polling.value == null || dom.pollingSelect.disabled) {
      dom.pollingSelect.disabled = true;
      setPollingText('unknown', 'Polling state unavailable');
      dom.pollingState.title = err.message;
    }
  }
}

function setPollingBusy(busy) {
  state.polling.saving = busy;
  dom.pollingSelect.disabled = busy || state.authFailed;
  dom.polling.setAttribute('aria-busy', busy ? 'true' : 'false');
}

async function onPollingChange() {
  const select = dom.pollingSelect;
  const option = select.value;
  const previous = state.polling.value;
  if (state.polling.saving || !(option in POLLING_OPTIONS) || option === previous) return;
  // Disabling a focused control drops its focus; give it back afterwards for keyboard users.
  const hadFocus = document.activeElement === select;
  const seq = ++state.polling.seq; // an earlier status read must not overwrite this answer
  setPollingBusy(true);
  try {
    const data = await api('/api/cloud/polling/setting', {
      method: 'PUT',
      body: { enabled: POLLING_OPTIONS[option] },
    });
    if (seq === state.polling.seq) renderPolling(data);
  } catch (err) {
    if (previous != null) select.value = previous;
    if (err.status !== 401) showToast(`Could not change background polling: ${err.message}`, 'error');
  } finally {
    setPollingBusy(false);
    if (hadFocus && (document.activeElement === document.body || document.activeElement == null)) select.focus();
  }
}

// ---------------------------------------------------------------- sync + toast

let toastTimer = null;

function showToast(message, kind = 'info') {
  window.clearTimeout(toastTimer);
  dom.toast.dataset.kind = kind;
  dom.toast.textContent = message;
  dom.toast.classList.add('is-visible');
  toastTimer = window.setTimeout(hideToast, TOAST_MS);
}

function hideToast() {
  dom.toast.classList.remove('is-visible');
  toastTimer = window.setTimeout(() => {
    dom.toast.textContent = '';
  }, 250);
}

function setSyncBusy(busy) {
  state.syncing = busy;
  dom.syncButton.disabled = busy;
  dom.syncButton.setAttribute('aria-busy', busy ? 'true' : 'false');
  dom.syncSpinner.hidden = !busy;
  dom.syncLabel.textContent = busy ? 'Syncing…' : 'Sync';
}

async function runSync() {
  if (state.syncing) return;
  if (!state.token) {
    showTokenPanel('Enter the API token before syncing.', { focus: true });
    return;
  }
  setSyncBusy(true);
  try {
    const data = await api('/api/cloud/jobs/sync', { method: 'POST' });
    showToast(syncMessage(data));
    // The provider answered: a banner about it may be out of date.
    if (state.provider.problem) checkProvider({ force: true });
  } catch (err) {
    showToast(`Sync failed: ${err.message}`, 'error');
    // The toast goes away; what the provider's trouble is, and what to fix, stays in the banner.
    if (err.status !== 401) checkProvider({ force: true });
  } finally {
    setSyncBusy(false);
  }
  await Promise.all([loadJobs(), loadMetrics()]);
}

// The sync answer counts new and updated jobs and says whether the provider's history is all in
// (`history_complete`): a first sync answers after the newest pages and imports the rest in the background.
function syncMessage(data) {
  const count = (value) => Math.max(0, Math.trunc(Number(value) || 0));
  const discovered = count(data.synced);
  const updated = count(data.updated);
  let text = `Discovered ${discovered} new ${plural(discovered, 'job', 'jobs')} from Replicate`;
  if (updated > 0) text = `${text}, ${updated} updated`;
  if (data.history_complete === false) text = `${text}. The rest of the history is being imported in the background`;
  return text;
}

// ---------------------------------------------------------------- provider trouble

// Errors that come from the provider rather than from jobsync: 502 (provider failed or refused our
// credentials) and 503 provider_rate_limited.
function isProviderFailure(err) {
  return Boolean(err) && (err.status === 502 || (err.status === 503 && err.code === 'provider_rate_limited'));
}

function describeProviderProblem(error) {
  const detail = typeof error === 'string' && error ? error : 'The provider gave no reason.';
  if (/^could not reach the provider/i.test(detail)) {
    return { title: 'Cannot reach the provider: check REPLICATE_API_BASE_URL', detail };
  }
  if (/REPLICATE_API_TOKEN is not set/.test(detail)) {
    return { title: 'No Replicate token is configured: set REPLICATE_API_TOKEN', detail };
  }
  return { title: 'Replicate refused the token: check REPLICATE_API_TOKEN', detail };
}

// Asks the server whether the provider's credentials work (GET /api/cloud/replicate/validate). At load
// and after a failed sync it always asks (`force`); after other failures at most every VALIDATE_GAP_MS.
async function checkProvider({ force = false } = {}) {
  if (!state.token || state.authFailed) return;
  const provider = state.provider;
  const now = Date.now();
  if (!force && now - provider.askedAt < VALIDATE_GAP_MS) return;
  provider.askedAt = now;
  const seq = ++provider.seq;
  let data;
  try {
    data = await api('/api/cloud/replicate/validate');
  } catch {
    return; // could not ask: what the banner says stays until an answer comes
  }
  if (seq !== provider.seq) return;
  setProviderProblem(data.valid === true ? null : { ...describeProviderProblem(data.error), checkedAt: new Date() });
}

function setProviderProblem(problem) {
  state.provider.problem = problem;
  dom.providerAlert.hidden = !problem;
  if (problem) {
    dom.providerTitle.textContent = problem.title;
    dom.providerDetail.textContent = `${problem.detail} (checked at ${timeFormat.format(problem.checkedAt)})`;
  }
  renderTrouble();
}

function setPollingFailing(failing) {
  state.polling.failing = failing;
  dom.pollingAlert.hidden = !failing;
  if (failing) {
    const when = failing.at ? ` (last failed tick at ${timeFormat.format(failing.at)})` : '';
    dom.pollingAlertDetail.textContent = `${failing.error}${when}`;
  }
  renderTrouble();
}

// The banner stays while any problem lasts; the connection pill says "Live" plainly only when the
// jobs it shows can be current.
function renderTrouble() {
  dom.trouble.hidden = !state.provider.problem && !state.polling.failing;
  renderConnection();
}

let healthTimer = null;

function startHealthChecks() {
  window.clearInterval(healthTimer);
  healthTimer = window.setInterval(healthCheck, HEALTH_MS);
}

function healthCheck() {
  if (!state.token || state.authFailed) return;
  loadPolling(); // the automatic state follows the server's configuration; the poller's last tick
  if (state.provider.problem) checkProvider(); // so the banner goes once the problem is fixed
}

// ---------------------------------------------------------------- live updates

const live = {
  socket: null,
  generation: 0,
  attempt: 0,
  timer: null,
  url: null,
  everOpened: false,
  kind: 'connecting',
  detail: '',
};
let reloadTimer = null;
let reloadFirstAskedAt = 0;
let reloadPolling = false; // the pending debounced reload also reads the polling status
let fallbackTimer = null;

// Every change of the connection state goes through here, and so does the fallback
// refresh: it runs exactly while the socket is not open and the token is usable.
function setConnection(kind, detail) {
  live.kind = kind;
  live.detail = detail || 'Live updates over WebSocket';
  renderConnection();
  setFallbackRefresh(kind !== 'live' && Boolean(state.token) && !state.authFailed);
}

function renderConnection() {
  const labels = { live: 'Live', reconnecting: 'Reconnecting', connecting: 'Connecting', offline: 'Offline' };
  const kind = live.kind;
  if (kind === 'live' && (state.provider.problem || state.polling.failing)) {
    // The socket is open, but what it carries can only be as fresh as jobsync's news from Replicate.
    dom.connection.dataset.state = 'degraded';
    dom.connectionText.textContent = 'Live, provider failing';
    dom.connection.title = 'Connected to jobsync, but jobsync cannot get news from Replicate: statuses may be stale';
    return;
  }
  dom.connection.dataset.state = kind;
  dom.connectionText.textContent = labels[kind] || kind;
  dom.connection.title = live.detail;
}

// Fallback for when live updates are not arriving (connecting, reconnecting, offline, or
// no websocket_url): every REFRESH_MS, ask the API to refresh the active jobs from the
// provider. While the socket is open, pushed job_status_changed messages replace it, so
// an open tab does not make the provider refresh every 30 s.
function setFallbackRefresh(on) {
  if (on && !fallbackTimer) {
    fallbackTimer = window.setInterval(fallbackRefresh, REFRESH_MS);
  } else if (!on && fallbackTimer) {
    window.clearInterval(fallbackTimer);
    fallbackTimer = null;
  }
}

function fallbackRefresh() {
  if (!state.token || state.authFailed) return;
  loadJobs({ syncActive: true });
  loadMetrics();
}

function buildSocketUrl(raw) {
  const url = new URL(String(raw), `${API_BASE}/`);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  url.searchParams.set('token', state.token || ''); // adds `?` or `&` as needed
  return url.href;
}

function stopLive() {
  live.generation += 1;
  window.clearTimeout(live.timer);
  live.timer = null;
  if (live.socket) {
    try {
      live.socket.close(1000, 'closing');
    } catch {
      // already closed
    }
    live.socket = null;
  }
}

function startLive() {
  stopLive();
  live.attempt = 0;
  live.url = null;
  live.everOpened = false;
  if (!('WebSocket' in window)) {
    setConnection('offline', 'This browser has no WebSocket support; the list refreshes every 30 s');
    return;
  }
  setConnection('connecting');
  connectLive(live.generation);
}

async function connectLive(generation) {
  if (generation !== live.generation || state.authFailed) return;
  if (!live.url) {
    let config;
    try {
      config = await api('/api/cloud/config');
    } catch (err) {
      if (generation !== live.generation || err.status === 401) return;
      setConnection('reconnecting', `Could not read the live-update settings: ${err.message}`);
      scheduleReconnect(generation);
      return;
    }
    if (generation !== live.generation) return;
    if (!config.websocket_url) {
      setConnection('offline', 'The server offers no live updates; the list refreshes every 30 s');
      return;
    }
    try {
      live.url = buildSocketUrl(config.websocket_url);
    } catch {
      setConnection('offline', 'The server gave an unusable WebSocket address');
      return;
    }
  }
  let socket;
  try {
    socket = new WebSocket(live.url);
  } catch {
    setConnection('reconnecting');
    scheduleReconnect(generation);
    return;
  }
  live.socket = socket;
  socket.addEventListener('open', () => {
    if (generation !== live.generation) return;
    const wasReconnect = live.everOpened || live.attempt > 0;
    live.attempt = 0;
    live.everOpened = true;
    setConnection('live', 'Connected: changes appear as they happen'); // stops the fallback refresh
    // Catch up on what was missed while away: one plain list + metrics reload (no provider
    // refresh), plus the polling status, which is otherwise only read by the fallback refresh.
    // The first open right after startAll() needs none: the list was just loaded.
    if (wasReconnect) scheduleReload({ polling: true });
    jobPage.onSocketOpen(); // a follow lives on one connection: the job page asks again
  });
  socket.addEventListener('message', (event) => {
    if (generation === live.generation) forwardToJobPage(event.data);
  });
  socket.addEventListener('message', (event) => {
    if (generation !== live.generation) return;
    onLiveMessage(event.data);
  });
  socket.addEventListener('message', (event) => {
    if (generation === live.generation) importProgress.onMessage(event.data);
  });
  socket.addEventListener('close', () => {
    if (generation !== live.generation) return;
    live.socket = null;
    jobPage.onSocketClosed();
    setConnection('reconnecting', 'Connection lost; retrying with backoff');
    scheduleReconnect(generation);
  });
}

function scheduleReconnect(generation) {
  if (generation !== live.generation) return;
  const base = Math.min(WS_MAX_DELAY_MS, WS_BASE_DELAY_MS * 2 ** live.attempt);
  live.attempt = Math.min(live.attempt + 1, 16);
  const jittered = Math.min(WS_MAX_DELAY_MS, base * (0.8 + Math.random() * 0.4));
  window.clearTimeout(live.timer);
  live.timer = window.setTimeout(() => connectLive(generation), jittered);
}

function onLiveMessage(raw) {
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    return;
  }
  if (!message || message.type !== 'job_status_changed') return;
  if (message.job_id != null) state.highlight.add(String(message.job_id));
  scheduleReload();
}

// Debounced (trailing, with a ceiling so a burst of events cannot starve the reload).
function scheduleReload({ polling = false } = {}) {
  const now = Date.now();
  if (!reloadTimer) reloadFirstAskedAt = now;
  if (polling) reloadPolling = true;
  window.clearTimeout(reloadTimer);
  const wait = Math.max(0, Math.min(RELOAD_DEBOUNCE_MS, reloadFirstAskedAt + RELOAD_MAX_WAIT_MS - now));
  reloadTimer = window.setTimeout(() => {
    reloadTimer = null;
    const withPolling = reloadPolling;
    reloadPolling = false;
    loadJobs();
    loadMetrics();
    if (withPolling) loadPolling();
  }, wait);
}

function flashHighlightedRows() {
  if (!state.highlight.size) return;
  for (const row of dom.jobsBody.querySelectorAll('tr.job-row')) {
    if (!state.highlight.has(row.dataset.jobId)) continue;
    row.classList.add('is-flash');
    window.setTimeout(() => row.classList.remove('is-flash'), HIGHLIGHT_MS);
  }
  state.highlight.clear();
}

// Sends a message on the open socket (the job page's follow and unfollow); false when none is open.
function sendLive(message) {
  const socket = live.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  try {
    socket.send(JSON.stringify(message));
    return true;
  } catch {
    return false;
  }
}

function forwardToJobPage(raw) {
  if (!jobPage.currentJobId()) return;
  try {
    jobPage.onSocketMessage(JSON.parse(raw));
  } catch {
    // not JSON: nothing for the job page
  }
}

// ---------------------------------------------------------------- history import progress

// A first sync answers after the newest pages; the rest of the provider's history is imported in the
// background, which pushes {"type": "sync_progress", "imported", "done"} to every client. Providers give
// no total, so the bar runs (indeterminate) beside the count while the import goes on, fills at the
// end, and goes away a little later.
const IMPORT_DONE_SHOWN_MS = 6_000;
const importProgress = (() => {
  let box = null;
  let hideTimer = null;

  function element() {
    if (box) return box;
    box = document.createElement('div');
    box.className = 'import-progress';
    box.dataset.testid = 'import-progress';
    box.setAttribute('role', 'status');
    box.hidden = true;
    const label = document.createElement('span');
    label.className = 'import-progress__label';
    label.dataset.testid = 'import-progress-label';
    const bar = document.createElement('progress');
    bar.className = 'import-progress__bar';
    bar.dataset.testid = 'import-progress-bar';
    bar.setAttribute('aria-label', 'History import');
    box.append(label, bar);
    const toolbar = document.querySelector('.jobs__toolbar');
    if (toolbar) toolbar.after(box);
    else document.body.append(box);
    return box;
  }

  function show(imported, done) {
    const node = element();
    const [label, bar] = node.children;
    const jobs = `${imported} ${plural(imported, 'job', 'jobs')}`;
    window.clearTimeout(hideTimer);
    node.hidden = false;
    node.dataset.state = done ? 'done' : 'running';
    node.dataset.imported = String(imported);
    if (done) {
      label.textContent = `History imported: ${jobs}`;
      bar.max = 1;
      bar.value = 1;
      hideTimer = window.setTimeout(() => { node.hidden = true; }, IMPORT_DONE_SHOWN_MS);
    } else {
      label.textContent = `Importing the history in the background: ${jobs} so far`;
      bar.removeAttribute('value'); // indeterminate: nobody knows the total
    }
  }

  function onMessage(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (!message || message.type !== 'sync_progress') return;
    show(Math.max(0, Math.trunc(Number(message.imported) || 0)), message.done === true);
    if (message.done === true) scheduleReload();
  }

  return { onMessage };
})();

// ---------------------------------------------------------------- pages: the list and #/jobs/<id>

const LIST_TITLE = document.title;
const JOB_ROUTE = /^#\/jobs\/([^/?#]+)\/?$/;
const jobPage = createJobPage({
  api,
  canCall: () => Boolean(state.token) && !state.authFailed,
  isLive: () => live.kind === 'live',
  sendLive,
  showToast,
  onProviderTrouble: (err) => {
    if (isProviderFailure(err)) checkProvider();
  },
  pollMs: POLL_MS,
  refreshMs: REFRESH_MS,
});
const nav = { listScrollY: 0, openedFromList: false, lastJobId: null };

function routedJobId() {
  const match = JOB_ROUTE.exec(window.location.hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

function route({ initial = false } = {}) {
  const jobId = routedJobId();
  if (jobId != null) {
    if (state.view !== 'job') {
      nav.listScrollY = window.scrollY;
      nav.openedFromList = !initial;
    } else {
      nav.openedFromList = false; // from another job's page: Back would lead there, not to the list
    }
    state.view = 'job';
    for (const section of dom.listSections) section.hidden = true;
    reconcilePollers();
    jobPage.show(jobId, { focus: !initial });
    nav.lastJobId = jobId;
    if (!initial) window.scrollTo(0, 0);
    return;
  }
  const wasJob = state.view === 'job';
  state.view = 'list';
  jobPage.hide();
  document.title = LIST_TITLE;
  for (const section of dom.listSections) section.hidden = false;
  if (!wasJob) return;
  nav.openedFromList = false;
  reconcilePollers();
  tickRunningRows();
  window.scrollTo(0, nav.listScrollY);
  focusJobLink(nav.lastJobId); // back where the reader left: on the link of the job they had opened
}

function focusJobLink(jobId) {
  const link = [...dom.jobsBody.querySelectorAll('a.job-open')].find(
    (a) => a.closest('tr.job-row').dataset.jobId === jobId,
  );
  if (link) link.focus({ preventScroll: true });
}

// A click anywhere on a row opens the job, as its link does (unless it was on another link or a
// selection of text).
function onRowClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  if (event.target.closest('a, button, input, select, textarea')) return;
  if (String(window.getSelection() || '')) return;
  const row = event.target.closest('tr.job-row');
  if (row && row.dataset.jobId) window.location.hash = jobHref(row.dataset.jobId);
}

// "All jobs" is the browser's Back when the list is where the reader came from, so the list keeps its
// place in the history; from a deep link it opens the list.
function onBackClick(event) {
  if (!nav.openedFromList || event.button !== 0 || event.metaKey || event.ctrlKey) return;
  event.preventDefault();
  window.history.back();
}

// ---------------------------------------------------------------- boot

function startAll() {
  state.authFailed = false;
  loadJobs();
  loadMetrics();
  loadPolling();
  checkProvider({ force: true });
  startHealthChecks();
  startLive();
  jobPage.reload(); // a job page shown before the token was saved reads its job now
}

function onTokenSubmit(event) {
  event.preventDefault();
  const token = dom.tokenInput.value.trim();
  if (!token) {
    dom.tokenMessage.textContent = 'The token cannot be empty.';
    dom.tokenInput.focus();
    return;
  }
  storeToken(token);
  dom.tokenInput.value = '';
  hideTokenPanel();
  dom.tokenToggle.focus();
  startAll();
}

function onTokenToggle() {
  if (dom.tokenPanel.hidden) {
    showTokenPanel(
      state.token ? 'Replace the stored API token.' : 'Enter the bearer token of the jobsync API.',
      { focus: true },
    );
  } else {
    hideTokenPanel();
  }
}

function boot() {
  takeTokenFromFragment();
  state.token = state.token || readStoredToken();

  dom.tokenForm.addEventListener('submit', onTokenSubmit);
  dom.tokenToggle.addEventListener('click', onTokenToggle);
  dom.syncButton.addEventListener('click', runSync);
  dom.loadMore.addEventListener('click', loadMoreJobs);
  dom.pollingSelect.addEventListener('change', onPollingChange);
  dom.providerRecheck.addEventListener('click', () => checkProvider({ force: true }));
  dom.jobsBody.addEventListener('click', onRowClick);
  dom.jobBack.addEventListener('click', onBackClick);
  // The skip link moves the focus without touching the address: #main is not a page of this app.
  document.querySelector('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    document.getElementById('main').focus();
  });
  window.addEventListener('hashchange', () => route());
  window.setInterval(tickRunningRows, 1000);

  // The fallback refresh (sync_active=true every REFRESH_MS) is started and stopped by
  // setConnection(): it runs only while the WebSocket is not open.

  if (state.token) {
    startAll();
  } else {
    setConnection('offline', 'Enter the API token to receive live updates');
    setListStatus('Enter the API token to load jobs.');
    setPollingText('unknown', 'Polling state needs the API token');
    showTokenPanel('Enter the bearer token of the jobsync API to load jobs.', { focus: true });
  }
  route({ initial: true }); // a deep link (#/jobs/<id>) opens that job's page
}

boot();
